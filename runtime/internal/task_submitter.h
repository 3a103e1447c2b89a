// Submits normal tasks the way the design's fast path says: lease a worker from a node manager
// for a resource shape, push tasks straight to it over a fast-path connection with many in
// flight, keep the lease while work of that shape is queued, and return it once idle. Retries a
// task whose worker died, went silent, or whose node the head declared dead, up to its max
// retries. SPREAD shapes ask for a lease on every feasible node and share their tasks out over
// those leases (spread_dispatch.h) instead of pipelining them all to the first leases granted.
//
// Bounds: at most max_in_flight_per_worker calls and max_in_flight_bytes_per_worker bytes are
// pushed to one worker ahead of its replies; the rest wait here. limiter() bounds everything a
// process has submitted and not seen finish; Remote() waits on it (backpressure).
//
// Thread-safe. Lease replies arrive on gRPC's callback threads, connections and task replies on
// I/O threads; the core worker's maintenance thread calls Tick(). Nothing here blocks.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lumen/scheduling.h"
#include "net/connection.h"
#include "net/flow_control.h"
#include "net/io_pool.h"
#include "proto/control.grpc.pb.h"
#include "proto/wire.pb.h"
#include "runtime/internal/object_table.h"
#include "runtime/internal/spread_dispatch.h"
#include "runtime/internal/task_events.h"

namespace lumen::internal {

struct PendingTask {
  proto::TaskSpec spec;
  absl::Time pushed_at;
  std::map<std::string, double> resources;
  int retries_left = 0;
  bool retry_exceptions = false;
  size_t bytes = 0;  // the arguments' size, for in-flight byte bounds
  proto::SchedulingStrategy strategy;
  // Called once with the final result (value or error).
  std::function<void(PendingTask&, ValuePtr)> on_done;
};

proto::SchedulingStrategy ToProtoStrategy(const SchedulingStrategy& strategy);

class TaskSubmitter {
 public:
  struct Options {
    std::string local_node_address;  // node manager that leases are asked from first
    std::string local_node_id;       // its node id when this client registered
    uint64_t client_id = 0;
    std::string token;
    // Tasks pushed to one worker ahead of its replies. The depth adapts to how long tasks of
    // a shape take: about kPipelineBudget of work, so that short tasks stream while a long
    // task never holds others hostage behind it on one worker.
    int max_in_flight_per_worker = 128;
    size_t max_in_flight_bytes_per_worker = size_t{16} << 20;
    int max_pending_leases_per_shape = 4;
    absl::Duration lease_idle_timeout = absl::Milliseconds(50);
    // Everything submitted and not finished: $LUMEN_MAX_PENDING_TASKS (default 100,000) and
    // $LUMEN_MAX_PENDING_TASK_BYTES (default 256 MiB).
    net::FlowLimits pending = PendingLimitsFromEnvironment();
    net::ConnectionOptions connection = net::ConnectionOptions::FromEnvironment();
    static net::FlowLimits PendingLimitsFromEnvironment();
    TaskEventRecorder* events = nullptr;  // not owned; may be null
  };
  using StubFactory = std::function<proto::NodeService::Stub*(const std::string& address)>;

  TaskSubmitter(Options options, net::IoPool& io, StubFactory stubs);
  ~TaskSubmitter();

  // Queues a task whose arguments are all resolved.
  void Submit(std::unique_ptr<PendingTask> task);
  // The head declared this node dead: its workers' tasks are retried elsewhere at once.
  void OnNodeDeath(const std::string& node_id, const std::string& reason);
  net::InFlightLimiter& limiter() { return limiter_; }
  // Returns idle leases and asks for leases that queued work needs. Called periodically.
  void Tick();
  // Returns every lease and fails queued tasks; later Submits fail at once.
  void Shutdown();

 private:
  struct LeasedWorker {
    uint64_t lease_id = 0;
    std::string worker_address;
    std::string node_address;
    std::string node_id;
    std::string key;
    std::shared_ptr<net::Connection> conn;
    absl::flat_hash_map<uint64_t, std::unique_ptr<PendingTask>> in_flight;
    size_t in_flight_bytes = 0;
    absl::Time idle_since;
    absl::Time last_reply;
    bool dead = false;
    SpreadDispatch::Tally spread;  // SPREAD shapes only
  };
  struct ShapeQueue {
    std::map<std::string, double> resources;
    proto::SchedulingStrategy strategy;
    std::deque<std::unique_ptr<PendingTask>> queue;
    std::vector<std::shared_ptr<LeasedWorker>> workers;
    int pending_leases = 0;
    int lease_failures = 0;
    absl::Time retry_after = absl::InfinitePast();
    std::optional<SpreadDispatch> spread;  // set for SPREAD shapes
    // Moving average of one task's service time on a worker, by function.
    absl::flat_hash_map<std::string, double> service_us;
  };

  // Work decided under mu_ and done after releasing it: socket writes and lease RPCs.
  struct LeaseAsk {
    std::string key;
    std::string node_address;
    std::map<std::string, double> resources;
    proto::SchedulingStrategy strategy;
  };
  // What a node that never saw this client needs (from the spillback that sent it there).
  struct SpillTicket {
    std::string executable;
    uint64_t job_id = 0;
  };
  struct Outbox {
    std::vector<std::shared_ptr<net::Connection>> flush;
    std::vector<LeaseAsk> leases;
  };

  int PipelineDepthLocked(const ShapeQueue& shape, const std::string& function) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Nothing queued and nothing in flight.
  static bool IdleLocked(const ShapeQueue& shape);
  static std::string ShapeKey(const std::map<std::string, double>& resources,
                              const proto::SchedulingStrategy& strategy);
  // Pushes queued tasks to workers with room.
  void DispatchLocked(ShapeQueue& shape, Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestLeasesLocked(const std::string& key, ShapeQueue& shape, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(Outbox& out) ABSL_LOCKS_EXCLUDED(mu_);
  void RequestLease(const std::string& key, const std::string& node_address,
                    const std::map<std::string, double>& resources,
                    const proto::SchedulingStrategy& strategy, const SpillTicket& ticket);
  void OnLeaseReply(const std::string& key, const std::string& node_address,
                    const grpc::Status& status, const proto::LeaseReply& reply);
  // Connects to a granted worker; the lease counts as pending until that is done.
  void ConnectWorker(const std::string& key, const std::string& node_address,
                     const proto::WorkerLease& lease);
  void AddWorker(const std::string& key, const std::string& node_address,
                 const proto::WorkerLease& lease, const std::shared_ptr<net::Connection>& conn);
  void OnTaskReply(const std::shared_ptr<LeasedWorker>& worker, proto::TaskReply& reply);
  void OnWorkerClosed(const std::shared_ptr<LeasedWorker>& worker, const std::string& reason);
  void ReturnLease(const std::string& node_address, uint64_t lease_id, bool disconnect);
  // Takes an idle worker out of its shape; the caller returns its lease (GiveBack) unlocked.
  void RetireLocked(ShapeQueue& shape, LeasedWorker& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GiveBack(const std::shared_ptr<LeasedWorker>& worker);
  void Finish(std::unique_ptr<PendingTask> task, ValuePtr value);
  void FailShapeLocked(ShapeQueue& shape, const std::string& message,
                       std::vector<std::unique_ptr<PendingTask>>* failed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  net::IoPool& io_;
  const StubFactory stubs_;
  net::InFlightLimiter limiter_;

  mutable absl::Mutex mu_;
  std::map<std::string, ShapeQueue> shapes_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_lease_rpcs_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex contexts_mu_;
  absl::flat_hash_set<grpc::ClientContext*> lease_contexts_ ABSL_GUARDED_BY(contexts_mu_);
};

}  // namespace lumen::internal
