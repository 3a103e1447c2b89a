// The actor directory's durable side: every change written to the head's store, and a
// restarted head's recovery of the table it reads back (see ActorDirectory::Recover).
#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "scheduler/actor_directory.h"

namespace lumen::scheduler {
void ActorDirectory::PersistLocked(State& state, const Actor& actor) {
  if (state.store == nullptr) return;
  proto::ActorRecord record;
  *record.mutable_spec() = actor.spec;
  *record.mutable_info() = actor.info;
  record.set_node_address(actor.node_address);
  record.set_incarnation(actor.incarnation);
  record.set_killed(actor.killed);
  record.set_killed_cause(actor.killed_cause);
  if (auto status =
          state.store->Put(kActorTable, actor.spec.actor_id(), record.SerializeAsString());
      !status.ok()) {
    LUMEN_LOG(WARNING) << "cannot keep actor " << internal::ShortHex(actor.spec.actor_id())
                       << " in the head's store: " << status;
  }
}

absl::Status ActorDirectory::Recover(absl::Duration confirm_within) {
  if (state_->store == nullptr) return absl::OkStatus();
  auto records = state_->store->Scan(kActorTable, "");
  if (!records.ok()) return records.status();
  absl::MutexLock lock(&state_->mu);
  std::vector<std::pair<int64_t, std::string>> dead;  // by time of death
  int alive = 0;
  int starting = 0;
  for (const auto& stored : *records) {
    proto::ActorRecord record;
    if (!record.ParseFromString(stored.value) || record.spec().actor_id().empty()) {
      LUMEN_LOG(WARNING) << "skipping a malformed actor record";
      continue;
    }
    const std::string id = record.spec().actor_id();
    Actor& actor = state_->actors[id];
    actor.spec = record.spec();
    actor.info = record.info();
    actor.node_address = record.node_address();
    actor.incarnation = record.incarnation();
    actor.killed = record.killed();
    actor.killed_cause = record.killed_cause();
    const std::string name_key = NameKey(actor.info.ns(), actor.info.name());
    switch (actor.info.state()) {
      case proto::ActorInfo::DEAD:
        dead.emplace_back(actor.info.end_time_ms(), id);
        if (!actor.info.name().empty() && !state_->names.contains(name_key)) {
          state_->names[name_key] = id;
        }
        continue;
      case proto::ActorInfo::ALIVE:
        actor.unconfirmed = true;
        ++alive;
        break;
      case proto::ActorInfo::PENDING:
      case proto::ActorInfo::RESTARTING:
        // Its start died with the previous head: start it again once nodes are back.
        state_->restart_after_recovery.push_back(id);
        ++starting;
        break;
      default:
        break;
    }
    if (!actor.info.name().empty()) state_->names[name_key] = id;
  }
  std::sort(dead.begin(), dead.end());
  for (auto& [time, id] : dead) state_->dead.push_back(std::move(id));
  state_->recovering = true;
  state_->recover_until =
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(confirm_within);
  LUMEN_LOG(INFO) << "recovered " << state_->actors.size() << " actors from the head's store ("
                  << alive << " to confirm, " << starting << " to start again, " << dead.size()
                  << " dead)";
  return absl::OkStatus();
}

void ActorDirectory::NodeRegistered(const proto::NodeInfo& node) {
  std::vector<std::pair<std::string, uint64_t>> lost;
  {
    absl::MutexLock lock(&state_->mu);
    if (!state_->recovering) return;
    for (auto& [id, actor] : state_->actors) {
      if (!actor.unconfirmed || actor.node_address != node.address()) continue;
      actor.unconfirmed = false;
      bool running = false;
      for (const auto& process : node.processes()) {
        running = running || (process.actor_id() == id && process.pid() == actor.info.pid());
      }
      if (running) {
        LUMEN_LOG(INFO) << "actor " << internal::ShortHex(id) << " still runs on "
                        << node.address();
      } else {
        lost.emplace_back(id, actor.incarnation);
      }
    }
  }
  for (const auto& [id, incarnation] : lost) {
    ReportDeath(id, incarnation,
                "its process was gone when its node re-registered with a "
                "restarted head",
                /*restartable=*/true);
  }
}

void ActorDirectory::CheckRecovery() {
  std::vector<std::pair<std::string, uint64_t>> lost;
  std::vector<std::string> restart;
  {
    absl::MutexLock lock(&state_->mu);
    if (!state_->recovering || std::chrono::steady_clock::now() < state_->recover_until) return;
    state_->recovering = false;
    for (auto& [id, actor] : state_->actors) {
      if (!actor.unconfirmed) continue;
      actor.unconfirmed = false;
      lost.emplace_back(id, actor.incarnation);
    }
    restart.swap(state_->restart_after_recovery);
  }
  for (const auto& [id, incarnation] : lost) {
    ReportDeath(id, incarnation, "its node did not come back after the head restarted",
                /*restartable=*/true);
  }
  for (const auto& id : restart) {
    std::thread(StartActor, state_, token_, pick_node_, id, true).detach();
  }
}

}  // namespace lumen::scheduler
