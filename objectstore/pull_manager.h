// Pulls objects that other nodes hold into this node's store: in chunks, several in flight,
// written straight into the store's shared memory, with concurrent pulls of one object merged
// into one transfer.
//
//   PullManager pulls(store, source, PullManager::Options{});
//   pulls.Pull(id, size, "10.0.0.2:4100", [](const absl::Status& status) { ... });
//   // the source's answers come back through ChunkDestination + OnChunkWritten (the bytes
//   // are read from the socket straight into the store), OnChunkError and OnSourceLost.
//
// A pulled object is a secondary copy in the store (evictable once nobody pins it); it is sealed
// when its last byte arrived, and every waiter of the transfer learns the result at once. A
// transfer that fails (the source lost the object or went away, or the store has no room) frees
// what it reserved and fails its waiters with the reason.
//
// Thread-safe. Callbacks run without the manager's lock, on the thread that finished the
// transfer. ChunkSource::RequestChunk is called without the lock and may answer from within.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "objectstore/object_store.h"

namespace lumen::objectstore {

class PullManager {
 public:
  // Where chunks come from: the other nodes' data planes, or a fake.
  class ChunkSource {
   public:
    virtual ~ChunkSource() = default;
    // Asks `source` for bytes [offset, offset + length) of object `id`.
    virtual void RequestChunk(const std::string& source, const std::string& id, uint64_t offset,
                              uint64_t length) = 0;
  };
  struct Options {
    uint64_t chunk_bytes = uint64_t{8} << 20;
    int max_chunks_in_flight = 4;
    // How long a pull waits for room in the store before it fails.
    absl::Duration create_timeout = absl::Seconds(10);
    // Called (if set) when the store has no room for a pulled object, and again while the pull
    // waits whenever a copy becomes spillable: spills other objects to make room for `size`
    // bytes (see ObjectStore::Create).
    ObjectStore::MakeRoom make_room;
  };
  struct Stats {
    uint64_t started = 0;    // transfers begun
    uint64_t merged = 0;     // pulls that joined a transfer in flight
    uint64_t completed = 0;  // transfers sealed
    uint64_t failed = 0;
    uint64_t bytes = 0;  // bytes received
  };
  using Done = std::function<void(const absl::Status&)>;
  // The store client id that pulled copies are created under.
  static constexpr uint64_t kPullClient = 1;

  PullManager(ObjectStore& store, ChunkSource& source, Options options);
  PullManager(const PullManager&) = delete;
  PullManager& operator=(const PullManager&) = delete;

  // Makes object `id` (`size` bytes, held by `source`) present in the store, then calls `done`.
  // Calls it at once with OK if the store has it already. May block for up to
  // Options::create_timeout while the store makes room. `done` gets RESOURCE_EXHAUSTED or
  // INVALID_ARGUMENT if the store cannot hold it, NOT_FOUND if the source lost it, UNAVAILABLE
  // if the source went away.
  void Pull(const std::string& id, uint64_t size, const std::string& source, Done done);

  // The source's answers. An answer of `length` bytes at `offset`: where in the store's memory
  // they go, or nullptr to drop them (a late answer for a transfer that ended, or one that no
  // request asked for, which fails the transfer with DATA_LOSS). Once they are all there,
  // OnChunkWritten.
  char* ChunkDestination(const std::string& id, uint64_t offset, uint64_t length);
  void OnChunkWritten(const std::string& id, uint64_t offset, uint64_t length);
  void OnChunkError(const std::string& id, const absl::Status& status);
  // Fails every transfer from `source`.
  void OnSourceLost(const std::string& source, const std::string& reason);
  // Fails every transfer (the node is stopping).
  void FailAll(const std::string& reason);

  Stats stats() const;
  // Transfers in flight now.
  size_t in_flight() const;

 private:
  struct Chunk {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  struct Transfer {
    std::string source;
    uint64_t size = 0;
    bool created = false;  // the store has reserved its bytes
    uint64_t store_offset = 0;
    uint64_t next_offset = 0;  // first byte not requested yet
    uint64_t received = 0;
    std::map<uint64_t, uint64_t> outstanding;  // requested chunks: offset -> length
    std::vector<Done> waiters;
  };
  using Transfers = std::map<std::string, Transfer>;

  // Chunks to request now for `transfer`, within the in-flight bound.
  std::vector<Chunk> NextChunksLocked(Transfer& transfer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a transfer: frees its reservation on failure, and returns its waiters.
  std::vector<Done> FinishLocked(Transfers::iterator it, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Request(const std::string& source, const std::string& id, const std::vector<Chunk>& chunks);
  // Fails every transfer that `match` selects.
  void FailWhere(const std::function<bool(const Transfer&)>& match, const std::string& reason);
  static void Notify(const std::vector<Done>& waiters, const absl::Status& status);

  // Set at construction.
  ObjectStore& store_;
  ChunkSource& source_;
  const Options options_;

  mutable absl::Mutex mu_;
  Transfers transfers_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::objectstore
