#include "scheduler/actor_directory.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"

namespace lumen::scheduler {
namespace {

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::string Describe(const proto::ActorInfo& info) {
  return info.name().empty() ? "actor " + internal::ShortHex(info.actor_id())
                             : "actor '" + info.name() + "'";
}

grpc::Status KillWorker(const std::string& token, const std::string& node_address,
                        const std::string& actor_id, uint64_t incarnation) {
  auto stub = proto::NodeService::NewStub(internal::MakeChannel(node_address));
  grpc::ClientContext context;
  internal::PrepareContext(&context, token, absl::Seconds(10));
  proto::KillActorWorkerRequest request;
  request.set_actor_id(actor_id);
  request.set_incarnation(incarnation);
  proto::KillActorWorkerReply reply;
  return stub->KillActorWorker(&context, request, &reply);
}

}  // namespace

std::string ActorDirectory::NameKey(const std::string& ns, const std::string& name) {
  return ns + std::string(1, '\0') + name;
}

ActorDirectory::ActorDirectory(std::string token, NodePicker pick_node, size_t max_dead_actors,
                               HeadStore* store)
    : token_(std::move(token)),
      pick_node_(std::move(pick_node)),
      state_(std::make_shared<State>()) {
  absl::MutexLock lock(&state_->mu);
  state_->max_dead = max_dead_actors;
  state_->store = store;
}

ActorDirectory::~ActorDirectory() {
  absl::MutexLock lock(&state_->mu);
  state_->stopping = true;
  state_->changed.SignalAll();
}

grpc::Status ActorDirectory::Create(const proto::ActorSpec& spec) {
  if (spec.actor_id().empty() || spec.factory().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "an actor needs an id and a factory");
  }
  {
    absl::MutexLock lock(&state_->mu);
    if (!spec.name().empty()) {
      auto existing = state_->names.find(NameKey(spec.ns(), spec.name()));
      if (existing != state_->names.end() &&
          state_->actors[existing->second].info.state() != proto::ActorInfo::DEAD) {
        return grpc::Status(
            grpc::StatusCode::ALREADY_EXISTS,
            absl::StrCat("an actor named '", spec.name(), "' already exists",
                         spec.ns().empty() ? "" : " in namespace '" + spec.ns() + "'",
                         "; pick another name or use lumen::GetActor to reach it"));
      }
      state_->names[NameKey(spec.ns(), spec.name())] = spec.actor_id();
    }
    Actor& actor = state_->actors[spec.actor_id()];
    actor.spec = spec;
    actor.info.set_actor_id(spec.actor_id());
    actor.info.set_state(proto::ActorInfo::PENDING);
    actor.info.set_name(spec.name());
    actor.info.set_ns(spec.ns());
    actor.info.set_class_name(spec.factory());
    actor.info.set_max_task_retries(spec.max_task_retries());
    actor.info.set_max_concurrency(spec.max_concurrency());
    *actor.info.mutable_resources() = spec.resources();
    actor.info.set_create_time_ms(NowMs());
    actor.info.set_detached(spec.detached());
    actor.info.set_max_restarts(spec.max_restarts());
    PersistLocked(*state_, actor);
  }
  std::thread(StartActor, state_, token_, pick_node_, spec.actor_id(), false).detach();
  return grpc::Status::OK;
}

void ActorDirectory::StartActor(const std::shared_ptr<State>& state, const std::string& token,
                                const NodePicker& pick_node, const std::string& actor_id,
                                bool restarted) {
  proto::StartActorRequest request;
  {
    absl::MutexLock lock(&state->mu);
    Actor& actor = state->actors[actor_id];
    request.mutable_spec()->CopyFrom(actor.spec);
    request.set_incarnation(++actor.incarnation);
    actor.died_while_starting = false;
    PersistLocked(*state, actor);
  }
  const uint64_t incarnation = request.incarnation();
  request.set_restarted(restarted);
  NodePick pick;
  proto::StartActorReply reply;
  grpc::Status status;
  while (true) {
    pick = pick_node(request.spec());
    if (pick.address.empty() && pick.never) {
      status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, pick.why);
      break;
    }
    if (!pick.address.empty()) {
      reply.Clear();
      auto stub = proto::NodeService::NewStub(internal::MakeChannel(pick.address));
      grpc::ClientContext context;
      internal::PrepareContext(&context, token, kActorStartDeadline);
      status = stub->StartActor(&context, request, &reply);
      // A node that could not take it after all (busy past its wait, gone, or too small) is
      // no reason for the actor to die: it is placed again.
      const bool retry = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                         status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                         status.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
      if (!retry) break;
      if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        // The node gives up a start before this deadline; make sure nothing of it lives on.
        (void)KillWorker(token, pick.address, actor_id, incarnation);
      }
      LUMEN_LOG(WARNING) << "actor " << internal::ShortHex(actor_id) << " did not start on "
                         << pick.address << " (" << status.error_message() << "); placing it again";
    }
    // Wait in the head's queue until nodes or actors change (or a poll), unless killed.
    absl::MutexLock lock(&state->mu);
    if (!state->actors[actor_id].killed && !state->stopping) {
      state->changed.WaitWithTimeout(&state->mu, absl::Milliseconds(500));
    }
    if (state->stopping) return;
    if (state->actors[actor_id].killed) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "killed while waiting for a node");
      break;
    }
  }
  const std::string& address = pick.address;
  const bool started = status.ok() && reply.error().empty();
  // The node may have started a process the head gave up on: it must not outlive this call.
  bool end_process = !address.empty() && !status.ok() &&
                     status.error_code() != grpc::StatusCode::FAILED_PRECONDITION &&
                     status.error_code() != grpc::StatusCode::INVALID_ARGUMENT;
  bool restart = false;
  {
    absl::MutexLock lock(&state->mu);
    Actor& actor = state->actors[actor_id];
    // lumen::Kill arrived while the process was being started.
    end_process = end_process || (started && actor.killed);
    if (end_process && !started && !actor.killed) {
      // The node failed or did not answer in time: a death of this incarnation, which its
      // restart policy may replace (elsewhere, if the node is gone).
      restart = DiedLocked(
          *state, actor,
          absl::StrCat("its node at ", address, " could not start it: ", status.error_message()),
          /*restartable=*/true);
    } else {
      RecordStart(*state, actor, started, address, reply, status);
      PersistLocked(*state, actor);
      if (started && !actor.killed && actor.died_while_starting) {
        restart = DiedLocked(*state, actor, actor.pending_cause, actor.pending_restartable);
      }
    }
    state->changed.SignalAll();
  }
  if (restart) {
    // After a pause when its node failed it: a node that keeps failing is not hammered
    // before the head declares it dead.
    const absl::Duration pause = started ? absl::ZeroDuration() : absl::Milliseconds(500);
    std::thread([state, token, pick_node, actor_id, pause] {
      absl::SleepFor(pause);
      StartActor(state, token, pick_node, actor_id, true);
    }).detach();
  }
  if (end_process) {
    const grpc::Status killed = KillWorker(token, address, actor_id, incarnation);
    if (!killed.ok()) {
      LUMEN_LOG(WARNING) << "could not end killed actor " << internal::ShortHex(actor_id) << ": "
                         << killed.error_message();
    }
  }
}

void ActorDirectory::RecordStart(State& state, Actor& actor, bool started,
                                 const std::string& address, const proto::StartActorReply& reply,
                                 const grpc::Status& status) {
  if (started && !actor.killed) {
    actor.node_address = address;
    actor.info.set_state(proto::ActorInfo::ALIVE);
    actor.info.set_address(reply.address());
    actor.info.set_pid(reply.pid());
    actor.info.set_node_id(reply.node_id());
    actor.info.set_worker_id(reply.worker_id());
    actor.info.set_start_time_ms(NowMs());
  } else {
    actor.info.set_state(proto::ActorInfo::DEAD);
    actor.info.set_address("");
    if (actor.killed) {
      actor.info.set_death_cause(actor.killed_cause);
    } else if (!status.ok()) {
      actor.info.set_death_cause(absl::StrCat("could not be started: ", status.error_message()));
    } else {
      actor.info.set_death_cause(absl::StrCat("its factory failed: ", reply.error()));
    }
    // Its worker's log tells why the factory failed.
    if (!reply.worker_id().empty()) actor.info.set_worker_id(reply.worker_id());
    if (!reply.node_id().empty()) actor.info.set_node_id(reply.node_id());
    LUMEN_LOG(WARNING) << Describe(actor.info) << " is dead: " << actor.info.death_cause();
    RecordDeathLocked(state, actor);
  }
}

void ActorDirectory::RecordDeathLocked(State& state, Actor& actor) {
  actor.info.set_end_time_ms(NowMs());
  state.dead.push_back(actor.info.actor_id());
  while (state.dead.size() > state.max_dead) {
    const std::string id = std::move(state.dead.front());
    state.dead.pop_front();
    auto it = state.actors.find(id);
    if (it == state.actors.end() || it->second.info.state() != proto::ActorInfo::DEAD) continue;
    auto name = state.names.find(NameKey(it->second.info.ns(), it->second.info.name()));
    if (name != state.names.end() && name->second == id) state.names.erase(name);
    state.actors.erase(it);
    if (state.store != nullptr) {
      if (auto erased = state.store->Delete(kActorTable, id); !erased.ok()) {
        LUMEN_LOG(WARNING) << "cannot forget actor " << internal::ShortHex(id) << ": "
                           << erased.status();
      }
    }
  }
}

grpc::Status ActorDirectory::Get(const proto::GetActorInfoRequest& request,
                                 proto::ActorInfo* info) {
  absl::MutexLock lock(&state_->mu);
  std::string id = request.actor_id();
  if (id.empty()) {
    auto named = state_->names.find(NameKey(request.ns(), request.name()));
    if (named == state_->names.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("no actor named '", request.name(), "'"));
    }
    id = named->second;
  }
  auto it = state_->actors.find(id);
  if (it == state_->actors.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such actor");
  }
  const absl::Time deadline = absl::Now() + absl::Milliseconds(request.wait_ms());
  auto settled = [&] {
    const proto::ActorInfo& current = state_->actors[id].info;
    if (current.state() == proto::ActorInfo::PENDING ||
        current.state() == proto::ActorInfo::RESTARTING) {
      return false;
    }
    return !(current.state() == proto::ActorInfo::ALIVE && !request.stale_address().empty() &&
             current.address() == request.stale_address());
  };
  while (!settled() && !state_->stopping && absl::Now() < deadline) {
    state_->changed.WaitWithDeadline(&state_->mu, deadline);
  }
  *info = state_->actors[id].info;
  return grpc::Status::OK;
}

grpc::Status ActorDirectory::Kill(const std::string& actor_id, bool no_restart,
                                  const std::string& cause) {
  std::string node_address;
  uint64_t incarnation = 0;
  {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->actors.find(actor_id);
    if (it == state_->actors.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such actor");
    }
    if (no_restart && !it->second.killed) {
      it->second.killed = true;
      it->second.killed_cause = cause;
      PersistLocked(*state_, it->second);
    }
    node_address = it->second.node_address;
    if (it->second.info.state() != proto::ActorInfo::ALIVE) return grpc::Status::OK;
    incarnation = it->second.incarnation;
  }
  return KillWorker(token_, node_address, actor_id, incarnation);
}

void ActorDirectory::ReportDeath(const std::string& actor_id, uint64_t incarnation,
                                 const std::string& cause, bool restartable) {
  bool restart = false;
  {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->actors.find(actor_id);
    // A dead actor stays dead (a late report about its last process changes nothing).
    if (it == state_->actors.end() || it->second.info.state() == proto::ActorInfo::DEAD) return;
    Actor& actor = it->second;
    if (incarnation != 0 && incarnation != actor.incarnation) {
      LUMEN_LOG(INFO) << "dropping a stale death report about incarnation " << incarnation << " of "
                      << Describe(actor.info) << " (now " << actor.incarnation << "): " << cause;
      return;
    }
    if (actor.info.state() != proto::ActorInfo::ALIVE) {
      // Its start is not recorded yet: the death applies once it is.
      actor.died_while_starting = true;
      actor.pending_cause = cause;
      actor.pending_restartable = restartable;
      return;
    }
    restart = DiedLocked(*state_, actor, cause, restartable);
  }
  if (restart) std::thread(StartActor, state_, token_, pick_node_, actor_id, true).detach();
}

bool ActorDirectory::DiedLocked(State& state, Actor& actor, const std::string& cause,
                                bool restartable) {
  actor.info.set_address("");
  actor.info.set_death_cause(actor.killed ? actor.killed_cause : cause);
  const bool restart =
      restartable && !actor.killed && !state.stopping &&
      (actor.spec.max_restarts() < 0 || actor.info.num_restarts() < actor.spec.max_restarts());
  if (restart) {
    actor.info.set_num_restarts(actor.info.num_restarts() + 1);
    actor.info.set_state(proto::ActorInfo::RESTARTING);
    LUMEN_LOG(INFO) << Describe(actor.info) << " died (" << cause << "); restart "
                    << actor.info.num_restarts() << " of " << actor.spec.max_restarts();
  } else {
    actor.info.set_state(proto::ActorInfo::DEAD);
    LUMEN_LOG(INFO) << Describe(actor.info) << " died: " << actor.info.death_cause();
    RecordDeathLocked(state, actor);
  }
  PersistLocked(state, actor);
  state.changed.SignalAll();
  return restart;
}

void ActorDirectory::NodeDied(const std::string& address) {
  std::vector<std::pair<std::string, uint64_t>> lost;
  {
    absl::MutexLock lock(&state_->mu);
    for (const auto& [id, actor] : state_->actors) {
      if (actor.node_address == address && actor.info.state() == proto::ActorInfo::ALIVE) {
        lost.emplace_back(id, actor.incarnation);
      }
    }
  }
  for (const auto& [id, incarnation] : lost) {
    ReportDeath(id, incarnation, absl::StrCat("its node (", address, ") died"),
                /*restartable=*/true);
  }
}

void ActorDirectory::JobFinished(uint64_t job_id, const std::string& cause) {
  struct Doomed {
    std::string id;
    std::string address;
    uint64_t incarnation;
  };
  std::vector<Doomed> doomed;
  {
    absl::MutexLock lock(&state_->mu);
    for (auto& [id, actor] : state_->actors) {
      if (actor.spec.owner_job() != job_id || actor.spec.detached() || actor.killed ||
          actor.info.state() == proto::ActorInfo::DEAD) {
        continue;
      }
      actor.killed = true;
      actor.killed_cause = cause;
      PersistLocked(*state_, actor);
      // One that is still starting is ended when its start is recorded.
      if (actor.info.state() == proto::ActorInfo::ALIVE) {
        doomed.push_back({id, actor.node_address, actor.incarnation});
      }
    }
  }
  for (const Doomed& actor : doomed) {
    const grpc::Status status = KillWorker(token_, actor.address, actor.id, actor.incarnation);
    if (!status.ok()) {
      // Its node is gone or going: its death is declared with the node's.
      LUMEN_LOG(WARNING) << "could not end actor " << internal::ShortHex(actor.id)
                         << " of a finished job: " << status.error_message();
    }
  }
}

void ActorDirectory::RetryPlacements() {
  absl::MutexLock lock(&state_->mu);
  state_->changed.SignalAll();
}

std::vector<proto::ActorInfo> ActorDirectory::List() {
  absl::MutexLock lock(&state_->mu);
  std::vector<proto::ActorInfo> out;
  for (const auto& [id, actor] : state_->actors) out.push_back(actor.info);
  return out;
}

}  // namespace lumen::scheduler
