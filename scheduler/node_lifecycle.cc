// The node manager's side of the lifecycle protocol with the head: reports that are retried
// until acknowledged (actor deaths, drivers that come and go), fencing after the head declared
// this node dead, and giving up on a head that stays out of reach.
#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "scheduler/node_manager.h"

namespace lumen::scheduler {

void NodeManager::Fence() {
  absl::MutexLock lock(&mu_);
  const std::string old_id = node_id_;
  node_id_ = internal::Hex(internal::RandomBytes(8));
  int killed = 0;
  for (auto& [id, worker] : workers_) {
    if (worker.dying) continue;
    if (worker.kill_reason.empty()) {
      worker.kill_reason = absl::StrCat("its node (", old_id, ") was declared dead by the head");
    }
    KillWorkerLocked(worker);
    ++killed;
  }
  DropBundlesLocked();
  LUMEN_LOG(WARNING) << "the head declared this node (" << old_id << ") dead; ended its " << killed
                     << " workers and registering again as " << node_id_;
  cv_.SignalAll();
}

bool NodeManager::HeadLost(const HeadWatch& watch) {
  if (config_.is_head || !watch.Lost()) return false;
  LUMEN_LOG(ERROR) << "could not reach the head at " << config_.head_address << " for "
                   << absl::FormatDuration(watch.Unreachable()) << " (limit "
                   << absl::FormatDuration(watch.timeout())
                   << "); stopping this node's workers and exiting";
  kill(getpid(), SIGTERM);
  return true;
}

void NodeManager::ReportToHead(proto::ReportActorDeathRequest death) {
  const std::string what = absl::StrCat("death of actor ", internal::ShortHex(death.actor_id()),
                                        " (incarnation ", death.incarnation(), ")");
  reporter_->Report(what, [this, death = std::move(death)] {
    proto::ReportActorDeathReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, config_.token, absl::Seconds(5));
    return head_->ReportActorDeath(&context, death, &reply);
  });
}

void NodeManager::ReportDriverLocked(uint64_t job, const Client& driver, bool finished) {
  proto::DriverJobEvent event;
  event.set_job_id(job);
  event.set_finished(finished);
  event.set_driver_pid(driver.pid);
  event.set_node_id(node_id_);
  event.set_executable(driver.executable);
  const CodeCache::JobHash hash = code_->HashOf(job);
  event.set_executable_hash(hash.hash);
  event.set_executable_hash_pending(hash.pending);
  event.set_code_source(config_.address);
  event.set_time_ms(absl::ToUnixMillis(absl::Now()));
  const std::string what =
      absl::StrCat(finished ? "end" : "start", " of the job of driver pid ", driver.pid);
  reporter_->Report(what, [this, event = std::move(event)] {
    proto::DriverJobEventReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, config_.token, absl::Seconds(5));
    return head_->ReportDriverJob(&context, event, &reply);
  });
}

void NodeManager::OnDriverHashed(uint64_t job) {
  absl::MutexLock lock(&mu_);
  auto driver = clients_.find(job);
  // A driver that left already reported its job's end, which ends the wait for the hash.
  if (stopping_ || driver == clients_.end()) return;
  ReportDriverLocked(job, driver->second, /*finished=*/false);
}

int NodeManager::CountCappedWorkersLocked() const {
  int n = 0;
  for (const auto& [id, worker] : workers_) {
    if (!worker.actor_id.empty() || worker.dying) continue;
    if (worker.lease_id != 0) {
      auto lease = leases_.find(worker.lease_id);
      if (lease != leases_.end() && lease->second.cpu_lent) continue;  // blocked in Get/Wait
    }
    ++n;
  }
  return n;
}

bool NodeManager::EvictIdleWorkerLocked(const std::string& executable, uint64_t job) {
  for (auto& [id, worker] : workers_) {
    if (worker.state != WorkerState::kIdle || worker.dying || !worker.actor_id.empty()) continue;
    if (worker.executable == executable && (worker.job == job || worker.job == 0)) continue;
    LUMEN_LOG(INFO) << "worker " << internal::ShortHex(worker.id) << " (pid " << worker.pid
                    << ", idle) stopped to make room under the soft cap of " << config_.max_workers
                    << " for a worker of " << executable;
    KillWorkerLocked(worker);
    return true;
  }
  return false;
}

}  // namespace lumen::scheduler
