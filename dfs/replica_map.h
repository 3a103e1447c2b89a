// Where every committed chunk's replicas are, which storage nodes are alive, where new replicas
// go, and which copies repair should make first.
//
//   ReplicaMap map(/*num_nodes=*/4, /*replication=*/3);
//   std::vector<int> nodes = map.Place(3, /*exclude=*/{});      // least loaded, distinct
//   map.AddChunk(id, size);  for (int n : nodes) map.AddReplica(id, n);
//   map.SetAlive(1, false);
//   for (const auto& repair : map.PlanRepairs(16, 4)) { map.StartRepair(repair); ... }
//
// Placement: R distinct live storage nodes, each the least loaded (bytes held plus bytes
// reserved for writes and repairs in progress), preferring cluster nodes that the chunk's other
// replicas do not run on; ties go to the lower index, so placement is deterministic.
// Repair: chunks with the fewest live replicas first, copied from a live replica to a live
// node without one, until each has R, or as many as there are live nodes.
//
// Not thread-safe: the name node guards it with its mutex.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace lumen::dfs {

class ReplicaMap {
 public:
  struct Repair {
    std::string chunk;
    int source = -1;
    int target = -1;
    uint64_t size = 0;
  };

  ReplicaMap(int num_nodes, int replication);

  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  int replication() const { return replication_; }

  // ---- Storage nodes
  void SetAlive(int node, bool alive);
  bool IsAlive(int node) const;
  int LiveNodes() const;
  void SetClusterNode(int node, const std::string& cluster_node);
  const std::string& ClusterNode(int node) const;
  // Replicas the node holds (whether it is alive or not) and their bytes.
  uint64_t NodeChunks(int node) const;
  uint64_t NodeBytes(int node) const;
  // Bytes a write in progress will add to the node (negative to release them).
  void Reserve(int node, int64_t bytes);

  // ---- Chunks
  // A chunk of a committed version; nothing happens if it is known.
  void AddChunk(const std::string& id, uint64_t size, uint64_t checksum);
  // 0 for an unknown chunk.
  uint64_t ChunkChecksum(const std::string& id) const;
  // Forgets a chunk; returns the nodes that held a replica of it.
  std::vector<int> RemoveChunk(const std::string& id);
  bool HasChunk(const std::string& id) const;
  // False if the chunk is unknown or the node holds it already.
  bool AddReplica(const std::string& id, int node);
  bool RemoveReplica(const std::string& id, int node);
  // What `node` reported it holds replaces what the map thought; returns the reported ids the
  // map does not know (for the caller to keep or delete).
  std::vector<std::string> SetHeldBy(int node, const std::vector<std::string>& held);
  // Every node holding a replica, ascending.
  std::vector<int> Replicas(const std::string& id) const;
  // The live ones, ascending.
  std::vector<int> LiveReplicas(const std::string& id) const;

  // ---- Placement
  // Up to `count` distinct live nodes not in `exclude` (fewer if there are not enough).
  std::vector<int> Place(int count, const std::vector<int>& exclude) const;

  // ---- Repair
  // Copies to start now: at most `max` in flight in all, at most `per_target` into one node,
  // one per chunk; fewest live replicas first.
  std::vector<Repair> PlanRepairs(size_t max, size_t per_target) const;
  void StartRepair(const Repair& repair);
  // Adds the new replica if the copy succeeded (and the chunk is still wanted).
  void FinishRepair(const Repair& repair, bool succeeded);
  size_t RepairsInFlight() const { return in_flight_.size(); }
  // Replicas over R on live nodes (a node came back): up to `max` (chunk, node) pairs to
  // delete, from the most loaded node first. The caller removes them.
  std::vector<std::pair<std::string, int>> PlanTrims(size_t max) const;

  // ---- Counts
  uint64_t chunks() const { return chunks_.size(); }
  // Chunks with fewer than R live replicas, and with none.
  uint64_t UnderReplicated() const;
  uint64_t Lost() const;
  // True if `node` can die without leaving a chunk with no live replica, or no live node.
  bool CanLose(int node) const;

 private:
  struct Node {
    bool alive = false;
    std::string cluster_node;
    uint64_t chunks = 0;
    uint64_t bytes = 0;
    int64_t reserved = 0;
    size_t repairs_in = 0;   // copies in flight into this node
    size_t repairs_out = 0;  // copies in flight from this node
  };
  struct Chunk {
    uint64_t size = 0;
    uint64_t checksum = 0;
    std::vector<int> replicas;  // ascending
  };
  bool Valid(int node) const { return node >= 0 && node < num_nodes(); }
  int64_t Load(int node) const;
  size_t LiveCount(const Chunk& chunk) const;

  const int replication_;
  std::vector<Node> nodes_;
  absl::flat_hash_map<std::string, Chunk> chunks_;
  std::map<std::string, Repair> in_flight_;  // by chunk
};

}  // namespace lumen::dfs
