// The name node of the DFS: a detached actor named "dfs.namenode", restarted after a crash,
// that maps artifact name -> committed version -> chunks -> replicas.
//
// Every metadata change goes to its write-ahead log in the cluster's KV store before it is
// applied and acknowledged (MetadataLog); a restarted name node replays the log, asks every
// storage node what it holds, and only then answers ("recovering" until then). A monitor thread
// pings the storage nodes (a node is dead when its actor is gone or it has not answered for
// three seconds), re-replicates what they held (fewest live replicas first), trims replicas
// beyond R when nodes return, and deletes the chunks of replaced, deleted and aborted versions.
//
// Writes: BeginWrite logs the write and plans where each chunk's replicas go; the client writes
// the chunks straight to the storage nodes; Commit logs the new version, which readers see from
// then on, and the old version's chunks are deleted.
//
// Thread-safe: calls run on the actor's thread pool; all state is under one mutex, which KV
// writes also hold, so that log order is apply order. Methods report failures by throwing
// (ThrowStatus).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dfs/kv_store.h"
#include "dfs/messages.h"
#include "dfs/metadata.h"
#include "dfs/metadata_log.h"
#include "dfs/replica_map.h"
#include "dfs/storage_node.h"
#include "lumen/lumen.h"

namespace lumen::dfs {

class NameNode {
 public:
  // Reads the store's configuration from the KV store and starts recovering in the background.
  static NameNode* Create();
  ~NameNode();

  // Starts writing `size` bytes as a new artifact (or a new version of it, `update`).
  WritePlan BeginWrite(const std::string& name, uint64_t size, bool update);
  // A live storage node for a replica of write `write_id` not in `exclude` (a write to one of
  // the planned nodes failed); -1 if there is none.
  int ReplaceReplica(uint64_t write_id, const std::vector<int>& exclude);
  // Makes the written version current. Idempotent: a retried commit returns the same version.
  ArtifactInfo Commit(uint64_t write_id, std::vector<ChunkInfo> chunks, uint64_t checksum);
  bool Abort(uint64_t write_id);
  // The current version, each chunk with its live replicas.
  ArtifactInfo Lookup(const std::string& name);
  bool Delete(const std::string& name);
  // Every artifact ("") or the one named, with live replicas, by name.
  std::vector<ArtifactInfo> List(const std::string& name);
  StoreStatus Status();
  // A client could not read a replica: the node is asked what it holds.
  bool ReportBadReplica(const std::string& chunk_id, int node);
  // A storage node was killed or started: look at it now.
  bool Probe(int node);
  // True if `node` can die without leaving a chunk with no live replica.
  bool CanLose(int node);

 private:
  // What the monitor knows of one storage node.
  struct Storage {
    std::optional<ActorHandle<StorageNode>> handle;
    std::optional<ObjectRef<StorageReport>> ping;
    absl::Time ping_sent;
    absl::Time last_answer;
    std::string boot_id;
    int pid = 0;
    bool known = false;  // answered, or declared dead, since this name node started
    bool dead = false;
    bool needs_inventory = true;
    std::optional<ObjectRef<std::vector<ChunkSummary>>> inventory;
    std::vector<std::string> deletes;  // replicas to delete on it
    std::vector<ObjectRef<int64_t>> deleting;
    bool probe_now = false;
  };
  struct RepairCall {
    ReplicaMap::Repair repair;
    ObjectRef<bool> done;
    absl::Time started;
  };
  // The nodes and bytes a write in progress reserved.
  struct Plan {
    std::vector<std::pair<int, int64_t>> reserved;
  };

  NameNode(StoreConfig config, std::unique_ptr<KvStore> kv);
  // Replays the log (retrying while the KV store cannot be reached).
  void Recover();
  void MonitorLoop();
  // One round of the monitor: pings, inventories, repairs, trims, deletes.
  void Tick();
  void PingStorage(int node) ABSL_LOCKS_EXCLUDED(mu_);
  void CollectPing(int node) ABSL_LOCKS_EXCLUDED(mu_);
  void MarkDeadLocked(int node, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyInventoryLocked(int node, const std::vector<ChunkSummary>& held)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunRepairs() ABSL_LOCKS_EXCLUDED(mu_);
  void RunDeletes() ABSL_LOCKS_EXCLUDED(mu_);
  // Logs `record` and applies it; the chunks it made garbage are deleted from their holders.
  absl::Status LogAndApplyLocked(const LogRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleasePlanLocked(uint64_t write_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Throws UNAVAILABLE if recovery has not finished within a minute.
  void AwaitReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ArtifactInfo WithLiveReplicasLocked(const ArtifactInfo& artifact) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Set at construction.
  const StoreConfig config_;
  const std::unique_ptr<KvStore> kv_;

  absl::Mutex mu_;
  MetadataLog log_ ABSL_GUARDED_BY(mu_);
  Metadata metadata_ ABSL_GUARDED_BY(mu_);
  ReplicaMap map_ ABSL_GUARDED_BY(mu_);
  std::vector<Storage> storage_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Plan> plans_ ABSL_GUARDED_BY(mu_);
  std::vector<RepairCall> repairs_ ABSL_GUARDED_BY(mu_);
  bool replayed_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string recovery_error_ ABSL_GUARDED_BY(mu_);
  uint64_t truncate_through_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;

  std::thread monitor_;
};

}  // namespace lumen::dfs
