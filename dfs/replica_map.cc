#include "dfs/replica_map.h"

#include <algorithm>
#include <tuple>

namespace lumen::dfs {

ReplicaMap::ReplicaMap(int num_nodes, int replication)
    : replication_(replication), nodes_(static_cast<size_t>(std::max(0, num_nodes))) {}

void ReplicaMap::SetAlive(int node, bool alive) {
  if (Valid(node)) nodes_[node].alive = alive;
}

bool ReplicaMap::IsAlive(int node) const { return Valid(node) && nodes_[node].alive; }

int ReplicaMap::LiveNodes() const {
  return static_cast<int>(
      std::count_if(nodes_.begin(), nodes_.end(), [](const Node& n) { return n.alive; }));
}

void ReplicaMap::SetClusterNode(int node, const std::string& cluster_node) {
  if (Valid(node)) nodes_[node].cluster_node = cluster_node;
}

const std::string& ReplicaMap::ClusterNode(int node) const {
  static const std::string kNone;
  return Valid(node) ? nodes_[node].cluster_node : kNone;
}

uint64_t ReplicaMap::NodeChunks(int node) const { return Valid(node) ? nodes_[node].chunks : 0; }

uint64_t ReplicaMap::NodeBytes(int node) const { return Valid(node) ? nodes_[node].bytes : 0; }

void ReplicaMap::Reserve(int node, int64_t bytes) {
  if (Valid(node)) nodes_[node].reserved += bytes;
}

int64_t ReplicaMap::Load(int node) const {
  return static_cast<int64_t>(nodes_[node].bytes) + nodes_[node].reserved;
}

void ReplicaMap::AddChunk(const std::string& id, uint64_t size, uint64_t checksum) {
  chunks_.try_emplace(id, Chunk{size, checksum, {}});
}

uint64_t ReplicaMap::ChunkChecksum(const std::string& id) const {
  auto it = chunks_.find(id);
  return it == chunks_.end() ? 0 : it->second.checksum;
}

std::vector<int> ReplicaMap::RemoveChunk(const std::string& id) {
  auto it = chunks_.find(id);
  if (it == chunks_.end()) return {};
  std::vector<int> held = it->second.replicas;
  for (int node : held) {
    nodes_[node].chunks -= 1;
    nodes_[node].bytes -= it->second.size;
  }
  chunks_.erase(it);
  return held;
}

bool ReplicaMap::HasChunk(const std::string& id) const { return chunks_.contains(id); }

bool ReplicaMap::AddReplica(const std::string& id, int node) {
  auto it = chunks_.find(id);
  if (it == chunks_.end() || !Valid(node)) return false;
  std::vector<int>& replicas = it->second.replicas;
  auto at = std::lower_bound(replicas.begin(), replicas.end(), node);
  if (at != replicas.end() && *at == node) return false;
  replicas.insert(at, node);
  nodes_[node].chunks += 1;
  nodes_[node].bytes += it->second.size;
  return true;
}

bool ReplicaMap::RemoveReplica(const std::string& id, int node) {
  auto it = chunks_.find(id);
  if (it == chunks_.end()) return false;
  std::vector<int>& replicas = it->second.replicas;
  auto at = std::lower_bound(replicas.begin(), replicas.end(), node);
  if (at == replicas.end() || *at != node) return false;
  replicas.erase(at);
  nodes_[node].chunks -= 1;
  nodes_[node].bytes -= it->second.size;
  return true;
}

std::vector<std::string> ReplicaMap::SetHeldBy(int node, const std::vector<std::string>& held) {
  std::vector<std::string> unknown;
  if (!Valid(node)) return unknown;
  std::set<std::string> reported(held.begin(), held.end());
  std::vector<std::string> gone;
  for (const auto& [id, chunk] : chunks_) {
    if (std::binary_search(chunk.replicas.begin(), chunk.replicas.end(), node) &&
        !reported.contains(id)) {
      gone.push_back(id);
    }
  }
  for (const std::string& id : gone) RemoveReplica(id, node);
  for (const std::string& id : reported) {
    if (chunks_.contains(id)) {
      AddReplica(id, node);
    } else {
      unknown.push_back(id);
    }
  }
  return unknown;
}

std::vector<int> ReplicaMap::Replicas(const std::string& id) const {
  auto it = chunks_.find(id);
  return it == chunks_.end() ? std::vector<int>() : it->second.replicas;
}

std::vector<int> ReplicaMap::LiveReplicas(const std::string& id) const {
  std::vector<int> live;
  for (int node : Replicas(id)) {
    if (nodes_[node].alive) live.push_back(node);
  }
  return live;
}

size_t ReplicaMap::LiveCount(const Chunk& chunk) const {
  return static_cast<size_t>(std::count_if(chunk.replicas.begin(), chunk.replicas.end(),
                                           [this](int node) { return nodes_[node].alive; }));
}

std::vector<int> ReplicaMap::Place(int count, const std::vector<int>& exclude) const {
  std::vector<int> picked;
  std::set<std::string> used_cluster_nodes;
  for (int node : exclude) {
    if (IsAlive(node)) used_cluster_nodes.insert(nodes_[node].cluster_node);
  }
  auto taken = [&](int node) {
    return std::find(exclude.begin(), exclude.end(), node) != exclude.end() ||
           std::find(picked.begin(), picked.end(), node) != picked.end();
  };
  while (static_cast<int>(picked.size()) < count) {
    int best = -1;
    // (shares a cluster node with an earlier replica, load, index): smallest wins.
    std::tuple<bool, int64_t, int> best_key;
    for (int node = 0; node < num_nodes(); ++node) {
      if (!nodes_[node].alive || taken(node)) continue;
      const std::tuple<bool, int64_t, int> key{
          used_cluster_nodes.contains(nodes_[node].cluster_node), Load(node), node};
      if (best < 0 || key < best_key) {
        best = node;
        best_key = key;
      }
    }
    if (best < 0) break;
    picked.push_back(best);
    used_cluster_nodes.insert(nodes_[best].cluster_node);
  }
  return picked;
}

std::vector<ReplicaMap::Repair> ReplicaMap::PlanRepairs(size_t max, size_t per_target) const {
  std::vector<Repair> plan;
  if (in_flight_.size() >= max) return plan;
  const size_t wanted = std::min<size_t>(replication_, static_cast<size_t>(LiveNodes()));
  // (live replicas, chunk id) of every chunk below what the live nodes allow.
  std::vector<std::pair<size_t, const std::string*>> needy;
  for (const auto& [id, chunk] : chunks_) {
    const size_t live = LiveCount(chunk);
    if (live > 0 && live < wanted && !in_flight_.contains(id)) needy.emplace_back(live, &id);
  }
  std::sort(needy.begin(), needy.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : *a.second < *b.second;
  });
  std::vector<size_t> incoming(nodes_.size());
  std::vector<size_t> outgoing(nodes_.size());
  std::vector<int64_t> planned(nodes_.size());
  for (size_t n = 0; n < nodes_.size(); ++n) {
    incoming[n] = nodes_[n].repairs_in;
    outgoing[n] = nodes_[n].repairs_out;
  }
  for (const auto& [live, id] : needy) {
    if (in_flight_.size() + plan.size() >= max) break;
    const Chunk& chunk = chunks_.at(*id);
    // The source: the live replica with the fewest copies going out.
    int source = -1;
    for (int node : chunk.replicas) {
      if (nodes_[node].alive && (source < 0 || outgoing[node] < outgoing[source])) source = node;
    }
    // The target: as Place, among nodes that can take another copy now.
    std::set<std::string> used;
    for (int node : chunk.replicas) {
      if (nodes_[node].alive) used.insert(nodes_[node].cluster_node);
    }
    int target = -1;
    std::tuple<bool, int64_t, int> best_key;
    for (int node = 0; node < num_nodes(); ++node) {
      if (!nodes_[node].alive || incoming[node] >= per_target ||
          std::binary_search(chunk.replicas.begin(), chunk.replicas.end(), node)) {
        continue;
      }
      const std::tuple<bool, int64_t, int> key{used.contains(nodes_[node].cluster_node),
                                               Load(node) + planned[node], node};
      if (target < 0 || key < best_key) {
        target = node;
        best_key = key;
      }
    }
    if (source < 0 || target < 0) continue;
    ++incoming[target];
    ++outgoing[source];
    planned[target] += static_cast<int64_t>(chunk.size);
    plan.push_back(Repair{*id, source, target, chunk.size});
  }
  return plan;
}

void ReplicaMap::StartRepair(const Repair& repair) {
  if (!Valid(repair.source) || !Valid(repair.target)) return;
  in_flight_[repair.chunk] = repair;
  nodes_[repair.target].repairs_in += 1;
  nodes_[repair.source].repairs_out += 1;
  nodes_[repair.target].reserved += static_cast<int64_t>(repair.size);
}

void ReplicaMap::FinishRepair(const Repair& repair, bool succeeded) {
  auto it = in_flight_.find(repair.chunk);
  if (it == in_flight_.end()) return;
  const Repair started = it->second;
  in_flight_.erase(it);
  nodes_[started.target].repairs_in -= 1;
  nodes_[started.source].repairs_out -= 1;
  nodes_[started.target].reserved -= static_cast<int64_t>(started.size);
  if (succeeded) AddReplica(started.chunk, started.target);
}

std::vector<std::pair<std::string, int>> ReplicaMap::PlanTrims(size_t max) const {
  std::vector<std::pair<std::string, int>> trims;
  std::vector<int64_t> load(nodes_.size());
  for (size_t n = 0; n < nodes_.size(); ++n) load[n] = Load(static_cast<int>(n));
  for (const auto& [id, chunk] : chunks_) {
    if (trims.size() >= max) break;
    if (in_flight_.contains(id)) continue;
    std::vector<int> live;
    for (int node : chunk.replicas) {
      if (nodes_[node].alive) live.push_back(node);
    }
    while (live.size() > static_cast<size_t>(replication_) && trims.size() < max) {
      auto most = std::max_element(live.begin(), live.end(), [&load](int a, int b) {
        return load[a] != load[b] ? load[a] < load[b] : a < b;
      });
      trims.emplace_back(id, *most);
      load[*most] -= static_cast<int64_t>(chunk.size);
      live.erase(most);
    }
  }
  return trims;
}

uint64_t ReplicaMap::UnderReplicated() const {
  uint64_t count = 0;
  for (const auto& [id, chunk] : chunks_) {
    if (LiveCount(chunk) < static_cast<size_t>(replication_)) ++count;
  }
  return count;
}

bool ReplicaMap::CanLose(int node) const {
  if (!IsAlive(node)) return true;
  if (LiveNodes() < 2) return false;
  for (const auto& [id, chunk] : chunks_) {
    if (std::binary_search(chunk.replicas.begin(), chunk.replicas.end(), node) &&
        LiveCount(chunk) < 2) {
      return false;
    }
  }
  return true;
}

uint64_t ReplicaMap::Lost() const {
  uint64_t count = 0;
  for (const auto& [id, chunk] : chunks_) {
    if (LiveCount(chunk) == 0) ++count;
  }
  return count;
}

}  // namespace lumen::dfs
