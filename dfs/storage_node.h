// A storage node of the DFS: a detached actor named "dfs.storage.<i>" that keeps replicas of
// chunks in a ChunkStore under its cluster node's session folder (<session>/dfs/dfs.storage.<i>/),
// so that a storage node started again on that node finds its data. A scrub thread checks every
// replica on disk each scrub interval; corrupt replicas are deleted and reported to the name node
// through Ping.
//
//   auto storage = lumen::Actor(StorageNode::Create).SetName(StorageActorName(0))
//                      .SetDetached().SetMaxConcurrency(4).Remote(0, std::string(), cache, scrub);
//   storage.Task(&StorageNode::WriteChunk).Remote(id, checksum, data_ref);
//   storage.Task(&StorageNode::WriteChunks).Remote(slices, batch_ref);  // several chunks at once
//
// Thread-safe: calls run on the actor's thread pool, and the scrub on its own thread. Methods
// report failures by throwing (ThrowStatus), which the caller sees as a lumen::TaskError.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "dfs/chunk_batch.h"
#include "dfs/chunk_bytes.h"
#include "dfs/chunk_store.h"
#include "dfs/messages.h"

namespace lumen::dfs {

class StorageNode {
 public:
  // `data_root` "": <session folder of its node>/dfs. Throws if the folder cannot be used.
  static StorageNode* Create(int index, std::string data_root, uint64_t cache_bytes,
                             int64_t scrub_interval_ms);
  ~StorageNode();

  // Stores a replica; throws DATA_LOSS if `data` does not match `checksum`. `data` is read in
  // place from the object store.
  bool WriteChunk(const std::string& id, uint64_t checksum, const ChunkBytes& data);
  // Stores a replica of each slice of `data` (several chunks put in the store as one object).
  // One entry per slice: empty if stored, else why not (StatusFromRemote reads it).
  std::vector<std::string> WriteChunks(const std::vector<ChunkSlice>& slices,
                                       const ChunkBytes& data);
  // The replica's bytes, checked; throws NOT_FOUND or DATA_LOSS (the replica is then dropped).
  ChunkBytes ReadChunk(const std::string& id);
  // Several replicas' bytes back to back, each checked; throws as ReadChunk for the first that
  // fails.
  ChunkBatch ReadChunks(const std::vector<std::string>& ids);
  StorageReport Ping();
  std::vector<ChunkSummary> Inventory();
  // Deletes replicas; returns how many it had.
  int64_t DeleteChunks(const std::vector<std::string>& ids);
  // Checks every replica now; returns how many were corrupt.
  int64_t Scrub();
  // Deletes every replica and the folder (`lumen dfs stop --purge`).
  bool Purge();

 private:
  StorageNode(int index, std::unique_ptr<ChunkStore> store, int64_t scrub_interval_ms);
  void ScrubLoop();

  // Set at construction.
  const int index_;
  const std::string boot_id_;
  const std::string cluster_node_;
  const std::unique_ptr<ChunkStore> store_;
  const int64_t scrub_interval_ms_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread scrubber_;
};

}  // namespace lumen::dfs
