#include "runtime/internal/actor_submitter.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "runtime/internal/object_table.h"

namespace lumen::internal {

ActorSubmitter::ActorSubmitter(std::string token, proto::HeadService::Stub* head,
                               TaskEventRecorder* events)
    : token_(std::move(token)), head_(head), events_(events) {}

ActorSubmitter::~ActorSubmitter() { Shutdown(); }

uint64_t ActorSubmitter::Reserve(const std::string& actor_id) {
  absl::MutexLock lock(&mu_);
  Actor& actor = actors_[actor_id];
  const uint64_t ticket = actor.next_ticket++;
  actor.queue.emplace(ticket, nullptr);
  return ticket;
}

void ActorSubmitter::Fill(const std::string& actor_id, uint64_t ticket,
                          std::unique_ptr<PendingTask> task) {
  std::vector<std::shared_ptr<Connection>> flush;
  Failures failures;
  {
    absl::MutexLock lock(&mu_);
    Actor& actor = actors_[actor_id];
    if (shutdown_) {
      actor.queue.erase(ticket);
      failures.emplace_back(std::move(task), "lumen::Shutdown() was called");
    } else {
      actor.queue[ticket] = std::move(task);
      DrainLocked(actor_id, actor, &flush, &failures);
    }
  }
  for (auto& conn : flush) conn->Flush();
  Fail(failures);
}

void ActorSubmitter::Skip(const std::string& actor_id, uint64_t ticket) {
  std::vector<std::shared_ptr<Connection>> flush;
  Failures failures;
  {
    absl::MutexLock lock(&mu_);
    Actor& actor = actors_[actor_id];
    actor.queue.erase(ticket);
    if (!shutdown_) DrainLocked(actor_id, actor, &flush, &failures);
  }
  for (auto& conn : flush) conn->Flush();
  Fail(failures);
}

void ActorSubmitter::DrainLocked(const std::string& actor_id, Actor& actor,
                                 std::vector<std::shared_ptr<Connection>>* flush,
                                 Failures* failures) {
  switch (actor.state) {
    case Actor::State::kDead:
      while (!actor.queue.empty() && actor.queue.begin()->second != nullptr) {
        failures->emplace_back(std::move(actor.queue.begin()->second), actor.death_cause);
        actor.queue.erase(actor.queue.begin());
      }
      return;
    case Actor::State::kUnknown:
      if (actor.queue.empty()) return;
      actor.state = Actor::State::kResolving;
      resolvers_.emplace_back([this, actor_id] { Resolve(actor_id); });
      return;
    case Actor::State::kResolving:
      return;
    case Actor::State::kConnected:
      break;
  }
  // With calls in flight on a one-at-a-time actor, their replies' reader flushes what is queued
  // here (on_batch_end), so a burst of calls goes out in few writes; the actor could not start
  // them earlier anyway. An idle or concurrent actor gets its calls at once.
  const bool flush_now = actor.in_flight.empty() || actor.max_concurrency > 1;
  bool sent = false;
  while (!actor.queue.empty() && actor.queue.begin()->second != nullptr) {
    const uint64_t ticket = actor.queue.begin()->first;
    std::unique_ptr<PendingTask> task = std::move(actor.queue.begin()->second);
    actor.queue.erase(actor.queue.begin());
    task->spec.set_seq(ticket);
    proto::Frame frame;
    frame.mutable_task()->Swap(&task->spec);
    actor.conn->Send(frame, /*flush=*/false);
    frame.mutable_task()->Swap(&task->spec);
    RecordPushed(events_, task->spec);
    actor.in_flight.emplace(ticket, std::move(task));
    sent = true;
  }
  if (sent && flush_now) flush->push_back(actor.conn);
}

void ActorSubmitter::Resolve(std::string actor_id) {
  int failures_in_a_row = 0;
  int stale_rounds = 0;
  while (true) {
    std::string stale;
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
      stale = actors_[actor_id].stale_address;
    }
    proto::GetActorInfoRequest request;
    request.set_actor_id(actor_id);
    request.set_wait_ms(1000);
    request.set_stale_address(stale);
    proto::ActorInfo info;
    grpc::ClientContext context;
    PrepareContext(&context, token_, absl::Seconds(15));
    grpc::Status status = head_->GetActorInfo(&context, request, &info);
    if (status.ok() && info.state() != proto::ActorInfo::ALIVE &&
        info.state() != proto::ActorInfo::DEAD) {
      continue;  // pending or restarting: ask again
    }
    if (status.ok() && info.state() == proto::ActorInfo::ALIVE && info.address() == stale &&
        ++stale_rounds < 60) {
      continue;  // the head has not heard of the death yet (each round waits up to 1 s)
    }
    std::shared_ptr<Connection> conn;
    std::string cause;
    if (!status.ok()) {
      cause = absl::StrCat("cannot reach the head to find the actor: ", status.error_message());
      // The head may be restarting: retry for about ten seconds before giving up.
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE && ++failures_in_a_row < 50) {
        absl::SleepFor(absl::Milliseconds(200));
        absl::MutexLock lock(&mu_);
        if (!shutdown_) continue;
        return;
      }
    } else if (info.state() == proto::ActorInfo::DEAD) {
      cause = info.death_cause();
    } else if (info.address() == stale) {
      cause = absl::StrCat("it stopped answering at ", stale,
                           " and the head has not heard of its death for a minute");
      info.set_state(proto::ActorInfo::DEAD);
    } else {
      auto connected = Connection::Connect(info.address(), absl::Seconds(10));
      if (!connected.ok()) {
        absl::MutexLock lock(&mu_);
        actors_[actor_id].stale_address = info.address();
        continue;
      }
      conn = *connected;
    }
    const std::string who =
        info.name().empty() ? "actor " + ShortHex(actor_id) : "actor '" + info.name() + "'";
    std::vector<std::shared_ptr<Connection>> flush;
    Failures failures;
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) {
        // Shutdown collected the calls already; a connection made meanwhile is not used.
        if (conn != nullptr) conn->Close();
        return;
      }
      Actor& actor = actors_[actor_id];
      for (auto& task : actor.orphaned) {
        const std::string message =
            info.state() == proto::ActorInfo::DEAD
                ? absl::StrCat("the ", who, " died while running ", task->spec.function(), ": ",
                               cause)
                : absl::StrCat("the ", who, " died while running ", task->spec.function(), " (",
                               info.death_cause(),
                               ") and was restarted; the call is not retried "
                               "(SetMaxTaskRetries allows it)");
        failures.emplace_back(std::move(task), message);
      }
      actor.orphaned.clear();
      if (conn == nullptr) {
        actor.state = Actor::State::kDead;
        actor.death_cause = absl::StrCat("the ", who, " is dead: ", cause);
      } else {
        actor.state = Actor::State::kConnected;
        actor.address = info.address();
        actor.max_task_retries = info.max_task_retries();
        actor.max_concurrency = info.max_concurrency();
        actor.conn = conn;
        proto::Frame hello;
        hello.mutable_hello()->set_token(token_);
        conn->Send(hello, /*flush=*/false);
        std::weak_ptr<Connection> weak = conn;
        conn->Start({
            .on_frame =
                [this, actor_id, weak](Connection&, proto::Frame& frame) {
                  if (auto c = weak.lock(); c && frame.has_reply()) {
                    OnReply(actor_id, c, *frame.mutable_reply());
                  }
                },
            .on_batch_end = [](Connection& c) { c.Flush(); },
            .on_close =
                [this, actor_id, weak](Connection&, const std::string& reason) {
                  if (auto c = weak.lock()) OnClosed(actor_id, c, reason);
                },
        });
      }
      DrainLocked(actor_id, actor, &flush, &failures);
    }
    for (auto& c : flush) c->Flush();
    Fail(failures);
    return;
  }
}

void ActorSubmitter::OnReply(const std::string& actor_id, const std::shared_ptr<Connection>& conn,
                             proto::TaskReply& reply) {
  std::unique_ptr<PendingTask> task;
  {
    absl::MutexLock lock(&mu_);
    Actor& actor = actors_[actor_id];
    auto it = actor.in_flight.find(reply.seq());
    if (it == actor.in_flight.end()) return;
    task = std::move(it->second);
    actor.in_flight.erase(it);
  }
  auto value = std::make_shared<proto::Value>();
  value->Swap(reply.mutable_result());
  auto on_done = std::move(task->on_done);
  if (on_done) on_done(*task, std::move(value));
}

void ActorSubmitter::OnClosed(const std::string& actor_id, const std::shared_ptr<Connection>& conn,
                              const std::string& reason) {
  absl::MutexLock lock(&mu_);
  Actor& actor = actors_[actor_id];
  if (actor.conn != conn || shutdown_) return;
  actor.conn = nullptr;
  actor.stale_address = actor.address;
  actor.state = Actor::State::kUnknown;
  for (auto& [ticket, task] : actor.in_flight) {
    if (task->spec.attempt() < actor.max_task_retries) {
      task->spec.set_attempt(task->spec.attempt() + 1);
      RecordRetrying(events_, task->spec, "its actor's connection broke: " + reason);
      actor.queue[ticket] = std::move(task);  // back in its place in the order
    } else {
      actor.orphaned.push_back(std::move(task));
    }
  }
  actor.in_flight.clear();
  // Resolution starts again (also to learn the cause for orphaned calls).
  actor.state = Actor::State::kResolving;
  resolvers_.emplace_back([this, actor_id] { Resolve(actor_id); });
  LUMEN_LOG(DEBUG) << "connection to actor " << ShortHex(actor_id) << " lost: " << reason;
}

void ActorSubmitter::Fail(Failures& failures) {
  for (auto& [task, message] : failures) {
    auto on_done = std::move(task->on_done);
    if (on_done) on_done(*task, MakeErrorValue(proto::ErrorInfo::ACTOR_DIED, message));
  }
  failures.clear();
}

void ActorSubmitter::Shutdown() {
  std::vector<std::thread> resolvers;
  Failures failures;
  std::vector<std::shared_ptr<Connection>> conns;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    resolvers.swap(resolvers_);
    for (auto& [id, actor] : actors_) {
      if (actor.conn) conns.push_back(actor.conn);
      for (auto& [ticket, task] : actor.queue) {
        if (task) failures.emplace_back(std::move(task), "lumen::Shutdown() was called");
      }
      for (auto& [ticket, task] : actor.in_flight) {
        failures.emplace_back(std::move(task), "lumen::Shutdown() was called");
      }
      for (auto& task : actor.orphaned) {
        failures.emplace_back(std::move(task), "lumen::Shutdown() was called");
      }
      actor.queue.clear();
      actor.in_flight.clear();
      actor.orphaned.clear();
    }
  }
  for (auto& conn : conns) conn->Close();
  for (auto& conn : conns) conn->Join();
  for (auto& thread : resolvers) {
    if (thread.joinable()) thread.join();
  }
  Fail(failures);
}

}  // namespace lumen::internal
