#include "scheduler/lease_holders.h"

#include <algorithm>
#include <utility>

namespace lumen::scheduler {

void LeaseHolders::Granted(uint64_t lease_id, uint64_t client, Node node) {
  absl::MutexLock lock(&mu_);
  leases_[lease_id] = Holder{.client = client, .node = std::move(node)};
}

void LeaseHolders::Released(uint64_t lease_id) {
  absl::MutexLock lock(&mu_);
  leases_.erase(lease_id);
}

std::vector<uint64_t> LeaseHolders::NodeDied(const std::string& node_id) {
  std::vector<uint64_t> orphans;
  if (node_id.empty()) return orphans;
  absl::MutexLock lock(&mu_);
  if (dead_nodes_.insert(node_id).second) {
    dead_order_.push_back(node_id);
    if (dead_order_.size() > kMaxDeadNodes) {
      dead_nodes_.erase(dead_order_.front());
      dead_order_.pop_front();
    }
  }
  for (const auto& [lease_id, holder] : leases_) {
    if (holder.node.id == node_id) orphans.push_back(lease_id);
  }
  return orphans;
}

std::vector<uint64_t> LeaseHolders::FindOrphans(HolderDirectory& directory) {
  std::vector<uint64_t> orphans;
  std::map<std::string, std::vector<uint64_t>> to_ask;  // node address -> clients
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [lease_id, holder] : leases_) {
      if (!holder.node.id.empty() && dead_nodes_.contains(holder.node.id)) {
        orphans.push_back(lease_id);
      } else {
        to_ask[holder.node.address].push_back(holder.client);
      }
    }
  }
  std::set<std::pair<std::string, uint64_t>> gone;
  for (auto& [node_address, clients] : to_ask) {
    std::sort(clients.begin(), clients.end());
    clients.erase(std::unique(clients.begin(), clients.end()), clients.end());
    auto answer = directory.GoneClients(node_address, clients);
    if (!answer.ok()) continue;
    for (uint64_t client : *answer) gone.emplace(node_address, client);
  }
  if (gone.empty()) return orphans;
  absl::MutexLock lock(&mu_);
  for (const auto& [lease_id, holder] : leases_) {
    if (gone.contains({holder.node.address, holder.client})) orphans.push_back(lease_id);
  }
  return orphans;
}

size_t LeaseHolders::size() const {
  absl::MutexLock lock(&mu_);
  return leases_.size();
}

}  // namespace lumen::scheduler
