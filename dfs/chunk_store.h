// A storage node's replicas: one file per chunk under its folder (a header with the size and
// checksum, then the bytes, then zeros to a whole block where O_DIRECT wrote it), written to a
// temporary name and renamed, and a bounded in-memory cache of recently read chunks. Every read
// verifies the checksum; Scrub verifies every file.
// A replica that fails its checksum is deleted and remembered until TakeCorrupt reports it.
//
// Durability: Write returns once the bytes are in the file, written around the page cache
// (O_DIRECT, see chunk_file.h) where the file system allows, so they have reached the device;
// there is no fsync, so the file's name and size reach the disk with the file system's next
// journal commit (ext4: within 5 s). As in HDFS, where a block is acknowledged once the pipeline
// has it and hsync is optional, a write survives through its R replicas on distinct nodes: a
// replica lost in a machine's crash is an under-replicated chunk that the name node repairs, and
// a torn file fails its header or checksum check and is dropped.
//
//   absl::StatusOr<std::unique_ptr<ChunkStore>> store = ChunkStore::Open(dir, 32 << 20);
//   (*store)->Write("00000000000000a1-0", Checksum(data), data);
//   absl::StatusOr<ChunkBytes> read = (*store)->Read("00000000000000a1-0");
//
// Read gives an immutable buffer shared with the cache (a ChunkBytes, which a storage node
// returns from a task and a client reads in place from the object store), so neither a cached
// read nor the way out copies the bytes before they go into the object store.
//
// Thread-safe: file I/O runs outside the lock, so reads and writes of different chunks overlap.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dfs/chunk_bytes.h"
#include "dfs/messages.h"

namespace lumen::dfs {

class ChunkStore {
 public:
  // Opens (creating it) the folder `dir` and indexes the replicas in it from their headers;
  // leftovers of interrupted writes are removed. `cache_bytes` bounds the memory cache.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ChunkStore>> Open(const std::string& dir,
                                                                        uint64_t cache_bytes);

  const std::string& dir() const { return dir_; }

  // Stores a replica (replacing one with the same id). DATA_LOSS if `data` does not have
  // `checksum`; INVALID_ARGUMENT if `id` is not a chunk id; the file error otherwise.
  [[nodiscard]] absl::Status Write(const std::string& id, uint64_t checksum, std::string_view data);
  // The replica's bytes after checking them. NOT_FOUND if there is none; DATA_LOSS if they do
  // not match their checksum (the replica is then deleted and reported by TakeCorrupt).
  [[nodiscard]] absl::StatusOr<ChunkBytes> Read(const std::string& id);
  // Deletes a replica; false if there was none.
  bool Delete(const std::string& id);
  // Every replica: id, size, checksum.
  std::vector<ChunkSummary> Inventory();
  uint64_t chunks();
  uint64_t bytes();

  // Reads every replica from disk and checks it; deletes the corrupt ones and returns their ids
  // (also kept for TakeCorrupt).
  std::vector<std::string> Scrub();
  // Replicas found corrupt since the last call.
  std::vector<std::string> TakeCorrupt();
  // Deletes every replica and the folder.
  [[nodiscard]] absl::Status Purge();

 private:
  struct Entry {
    uint64_t size = 0;
    uint64_t checksum = 0;
  };
  explicit ChunkStore(std::string dir, uint64_t cache_bytes)
      : dir_(std::move(dir)), cache_bytes_(cache_bytes) {}
  std::string PathOf(const std::string& id) const;
  // Reads and checks the file of `id` against `entry`.
  absl::StatusOr<ChunkBytes> ReadFile(const std::string& id, const Entry& entry) const;
  void DropCorrupt(const std::string& id, const Entry& seen) ABSL_LOCKS_EXCLUDED(mu_);
  void CacheLocked(const std::string& id, const ChunkBytes& data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UncacheLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Set at construction.
  const std::string dir_;
  const uint64_t cache_bytes_;

  absl::Mutex mu_;
  std::map<std::string, Entry> index_ ABSL_GUARDED_BY(mu_);
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> corrupt_ ABSL_GUARDED_BY(mu_);
  // The cache: most recently used first.
  std::list<std::pair<std::string, ChunkBytes>> lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::list<std::pair<std::string, ChunkBytes>>::iterator> cached_
      ABSL_GUARDED_BY(mu_);
  uint64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lumen::dfs
