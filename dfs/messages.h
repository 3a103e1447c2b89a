// What the DFS's client, name node and storage nodes pass to each other through actor calls,
// and what the name node writes to its log: plain values that Cereal serializes.
//
// Storage nodes are numbered 0..N-1; node i is the detached actor named "dfs.storage.<i>" and
// is shown as "storage.<i>". A chunk id is "<write id, 16 hex digits>-<index>": unique for every
// write, so that replicas of different versions never share a name.
#pragma once

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lumen::dfs {

inline constexpr char kNameNodeActor[] = "dfs.namenode";
inline constexpr char kKvNamespace[] = "dfs";

// "dfs.storage.<index>", the actor's name.
std::string StorageActorName(int index);
// "storage.<index>", as list and status show it.
std::string StorageDisplayName(int index);
// The chunk id of chunk `index` of write `write_id`.
std::string ChunkId(uint64_t write_id, uint64_t index);
// The write a chunk id belongs to; false if `id` is not a chunk id.
bool ParseChunkId(const std::string& id, uint64_t* write_id, uint64_t* index);
// 16 lowercase hex digits.
std::string ChecksumHex(uint64_t checksum);

// The store's settings, chosen by `lumen dfs start` and kept in the KV store.
struct StoreConfig {
  int storage_nodes = 4;
  int replication = 3;
  uint64_t chunk_size = uint64_t{1} << 20;
  int64_t scrub_interval_ms = 60000;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(storage_nodes, replication, chunk_size, scrub_interval_ms);
  }
};

// One chunk of an artifact's version.
struct ChunkInfo {
  std::string id;
  uint64_t size = 0;
  uint64_t checksum = 0;
  // Storage nodes holding a replica. In lookups: the live ones, the preferred first.
  std::vector<int> replicas;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(id, size, checksum, replicas);
  }
};

// A committed version of an artifact.
struct ArtifactInfo {
  std::string name;
  uint64_t version = 0;
  uint64_t write_id = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;     // of the whole content
  int64_t committed_ms = 0;  // wall clock, milliseconds since the epoch
  std::vector<ChunkInfo> chunks;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, version, write_id, size, checksum, committed_ms, chunks);
  }
};

// The name node's answer to BeginWrite: where each chunk's replicas go.
struct WritePlan {
  uint64_t write_id = 0;
  uint64_t chunk_size = 0;
  std::vector<std::vector<int>> placements;  // per chunk: R distinct storage nodes

  template <class Archive>
  void serialize(Archive& archive) {
    archive(write_id, chunk_size, placements);
  }
};

// One chunk of a batch: where its bytes are in the object that carries the batch
// (StorageNode::WriteChunks), so that one object and one call carry several chunks.
struct ChunkSlice {
  std::string id;
  uint64_t checksum = 0;
  uint64_t offset = 0;
  uint64_t size = 0;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(id, checksum, offset, size);
  }
};

// A storage node's answer to Ping.
struct StorageReport {
  std::string boot_id;       // new each time the actor starts
  std::string cluster_node;  // the cluster node it runs on
  int pid = 0;
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  std::vector<std::string> corrupt;  // replicas it dropped since the last Ping

  template <class Archive>
  void serialize(Archive& archive) {
    archive(boot_id, cluster_node, pid, chunks, bytes, corrupt);
  }
};

// One replica a storage node holds.
struct ChunkSummary {
  std::string id;
  uint64_t size = 0;
  uint64_t checksum = 0;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(id, size, checksum);
  }
};

struct StorageNodeStatus {
  int index = 0;
  bool alive = false;
  std::string cluster_node;
  int pid = 0;          // of its actor's process, while alive
  uint64_t chunks = 0;  // replicas the name node knows it holds
  uint64_t bytes = 0;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(index, alive, cluster_node, pid, chunks, bytes);
  }
};

struct StoreStatus {
  std::string name_node_state;  // "ready" or "recovering"
  int name_node_pid = 0;
  StoreConfig config;
  uint64_t artifacts = 0;
  uint64_t chunks = 0;
  uint64_t under_replicated = 0;  // chunks with fewer than R live replicas
  uint64_t lost = 0;              // chunks with no live replica
  uint64_t repairs_in_flight = 0;
  std::vector<StorageNodeStatus> storage;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(name_node_state, name_node_pid, config, artifacts, chunks, under_replicated, lost,
            repairs_in_flight, storage);
  }
};

// Actor methods report failures by throwing; these carry an absl::Status across as the
// exception's message ("<code>:<message>"), so that the caller gets the same status back.
[[noreturn]] void ThrowStatus(const absl::Status& status);
// The status a remote ThrowStatus carried (UNKNOWN with the whole text for other exceptions).
absl::Status StatusFromRemote(const std::string& remote_message);

// Writes one line to stderr (the actor's log file) with the time and `who`.
void LogLine(const std::string& who, const std::string& message);

// Cereal binary with a leading format byte, for the KV store.
std::string Encode(const StoreConfig& config);
absl::StatusOr<StoreConfig> DecodeConfig(const std::string& bytes);

}  // namespace lumen::dfs
