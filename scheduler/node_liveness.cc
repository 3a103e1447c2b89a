#include "scheduler/node_liveness.h"

#include <algorithm>
#include <chrono>

namespace lumen::scheduler {

NodeLiveness::Clock NodeLiveness::SteadyClock() {
  return [] { return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch()); };
}

NodeLiveness::NodeLiveness(absl::Duration timeout, absl::Duration stall_threshold, Clock clock)
    : timeout_(timeout),
      stall_threshold_(stall_threshold),
      clock_(std::move(clock)),
      last_check_(clock_()) {}

void NodeLiveness::Heard(const std::string& node_id) {
  Entry& entry = nodes_[node_id];
  entry.last_heard = clock_();
  entry.dead = false;
}

std::vector<std::string> NodeLiveness::Check() {
  const absl::Duration now = clock_();
  const absl::Duration gap = now - last_check_;
  last_check_ = now;
  if (gap > stall_threshold_) {
    // The head did not run for `gap`: nobody could have reached it meanwhile.
    for (auto& [id, entry] : nodes_) entry.last_heard = std::min(now, entry.last_heard + gap);
  }
  std::vector<std::string> newly_dead;
  for (auto& [id, entry] : nodes_) {
    if (!entry.dead && now - entry.last_heard > timeout_) {
      entry.dead = true;
      newly_dead.push_back(id);
    }
  }
  return newly_dead;
}

void NodeLiveness::MarkDead(const std::string& node_id) {
  auto it = nodes_.find(node_id);
  if (it != nodes_.end()) it->second.dead = true;
}

bool NodeLiveness::IsAlive(const std::string& node_id) const {
  auto it = nodes_.find(node_id);
  return it != nodes_.end() && !it->second.dead;
}

absl::Duration NodeLiveness::Silence(const std::string& node_id) const {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return absl::InfiniteDuration();
  return std::max(absl::ZeroDuration(), clock_() - it->second.last_heard);
}

}  // namespace lumen::scheduler
