// Shares the tasks of one SPREAD shape out over leases on every live feasible node, for the
// task submitter (task_submitter.h). Without it a burst of short tasks drains into the first
// few leases granted, each of which pipelines many tasks, and never reaches most nodes.
//
//   SpreadDispatch spread;
//   spread.set_feasible_nodes(reply.feasible_nodes());  // the head's count, from a lease reply
//   while (pending < spread.LeasesWanted(queued, default_pending)) AskForLease();
//   if (spread.MayTake(worker.tally, queued)) { Push(task); spread.Took(worker.tally); }
//
// Leases: ask in parallel for one on each feasible node that holds no lease of this shape yet,
// and never for fewer than the default bound, so that long tasks still grow onto every CPU.
// Shares: within a burst (from a task queued while the shape had nothing queued or in flight,
// until it is idle again), a worker may take tasks while it has taken fewer than
// ceil((dispatched + queued) / slots) of them. Slots are the workers held plus the lease
// requests the head routed to another node, each about to bring one more worker. A routed
// request that brings none (its node turned busy) gives its slot up when it returns, within the
// node's lease hold (about a second), so work waits for a lease at most that long. With no
// routed request in flight some worker always has room (the shares add up to the work).
//
// Not thread-safe: the submitter calls it under its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace lumen::internal {

class SpreadDispatch {
 public:
  // What one leased worker has taken in the current burst; the submitter keeps one per worker.
  struct Tally {
    uint64_t burst = 0;
    int64_t taken = 0;
  };

  // The head's count of live nodes that hold the shape; ignored unless positive.
  void set_feasible_nodes(int nodes);
  int feasible_nodes() const { return feasible_nodes_; }

  // Lease requests to keep in flight while `queued` tasks wait.
  int LeasesWanted(size_t queued, int default_pending) const;

  // A lease request was routed by the head to another node, and that one returned (granted,
  // refused or failed).
  void OnRouted() { ++routed_; }
  void OnRoutedDone();

  // A worker on `node_id` joined the shape, or left it.
  void WorkerAdded(const std::string& node_id);
  void WorkerGone(const std::string& node_id);
  int held_nodes() const { return static_cast<int>(workers_by_node_.size()); }

  // A task was queued while the shape had nothing queued or in flight: shares start afresh.
  void StartBurst();
  // Whether the worker with `tally` may take one of `queued` (at least 1) queued tasks.
  bool MayTake(const Tally& tally, size_t queued) const;
  void Took(Tally& tally);

 private:
  int feasible_nodes_ = 0;
  int routed_ = 0;
  int workers_ = 0;
  absl::flat_hash_map<std::string, int> workers_by_node_;
  uint64_t burst_ = 1;
  int64_t dispatched_ = 0;  // in this burst
};

}  // namespace lumen::internal
