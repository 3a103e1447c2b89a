#include "runtime/internal/spread_dispatch.h"

#include <algorithm>

namespace lumen::internal {

void SpreadDispatch::set_feasible_nodes(int nodes) {
  if (nodes > 0) feasible_nodes_ = nodes;
}

int SpreadDispatch::LeasesWanted(size_t queued, int default_pending) const {
  const int wanted = std::max(default_pending, feasible_nodes_ - held_nodes());
  return static_cast<int>(std::min(static_cast<size_t>(wanted), queued));
}

void SpreadDispatch::OnRoutedDone() {
  if (routed_ > 0) --routed_;
}

void SpreadDispatch::WorkerAdded(const std::string& node_id) {
  ++workers_;
  ++workers_by_node_[node_id];
}

void SpreadDispatch::WorkerGone(const std::string& node_id) {
  if (workers_ > 0) --workers_;
  auto it = workers_by_node_.find(node_id);
  if (it != workers_by_node_.end() && --it->second <= 0) workers_by_node_.erase(it);
}

void SpreadDispatch::StartBurst() {
  ++burst_;
  dispatched_ = 0;
}

bool SpreadDispatch::MayTake(const Tally& tally, size_t queued) const {
  if (tally.burst != burst_) return true;  // nothing taken in this burst
  const int64_t slots = std::max(1, workers_ + routed_);
  const int64_t work = dispatched_ + static_cast<int64_t>(queued);
  return tally.taken < (work + slots - 1) / slots;
}

void SpreadDispatch::Took(Tally& tally) {
  if (tally.burst != burst_) tally = Tally{.burst = burst_, .taken = 0};
  ++tally.taken;
  ++dispatched_;
}

}  // namespace lumen::internal
