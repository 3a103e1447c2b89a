// The node's table of objects in its shared-memory region, kept by the node manager.
//
//   ObjectStore store(std::move(region));
//   auto loc = store.Create(id, size, /*creator=*/client, /*owner=*/owner, absl::Seconds(10));
//   // ... the client writes `size` bytes at region().data() + loc->offset, then:
//   store.Seal(id);
//   auto sealed = store.Get(id, absl::Seconds(1));  // readers map the same bytes
//
// An object is created (space reserved, writable by its creator), then sealed (complete and
// immutable) and finally released when its owner drops the last reference. Object ids are opaque
// binary strings; clients are identified by uint64 ids chosen by the caller. All calls come from
// other processes' requests, so every failure is a status, never a crash.
//
// Pins: a client that reads an object in place pins it first (Pin) and unpins it when its last
// view is gone. Pins are counted per client. A pinned object is never freed or evicted: its
// owner's Release only marks it released, and the last Unpin frees it; ReleaseClient drops
// every pin of a client that went away.
//
// Copies: a primary copy (the one its creator wrote for the owner) lives until it is released. A
// secondary copy (pulled from another node) may be evicted, least recently unpinned first, when
// a Create needs room and the copy is sealed and unpinned.
//
// Thread-safe: every method may be called from any thread; Create and Get block the calling thread
// for at most their timeout.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "objectstore/allocator.h"
#include "objectstore/shm_region.h"

namespace lumen::objectstore {

// Where an object's bytes live: [offset, offset + size) of the store's region.
struct ObjectLocation {
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Whether a copy is the object's primary copy or a secondary one that may be evicted.
enum class CopyKind { kPrimary, kSecondary };

struct StoreStats {
  uint64_t capacity = 0;  // usable bytes of the region
  uint64_t used = 0;      // bytes reserved by objects, including 64-byte rounding
  uint64_t num_objects = 0;
  uint64_t waiting_creates = 0;          // Create calls blocked on space right now
  uint64_t waiting_gets = 0;             // Get calls blocked on a seal right now
  uint64_t pinned_objects = 0;           // objects with at least one pin
  uint64_t pinned_bytes = 0;             // their bytes, including 64-byte rounding
  uint64_t released_pinned_objects = 0;  // released by their owner, kept for their readers
  uint64_t evictable_objects = 0;        // sealed, unpinned secondary copies
  uint64_t evicted_objects = 0;          // secondary copies evicted since the store started
  uint64_t largest_free = 0;             // the largest object that fits without evicting
};

// A primary copy that could be written to disk to make room (see SpillCandidates).
struct SpillCandidate {
  std::string id;
  ObjectLocation location;
  uint64_t owner = 0;
};

// One object as the dashboard lists it.
struct ObjectSummary {
  std::string id;
  uint64_t size = 0;
  uint64_t owner = 0;
  bool sealed = false;
};

class ObjectStore {
 public:
  // `region` must be non-null; the store manages all of it.
  explicit ObjectStore(std::unique_ptr<ShmRegion> region);
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

  // Frees room for `size` bytes from outside the store (a spill to disk); called without the
  // store's lock.
  using MakeRoom = std::function<void(uint64_t size)>;

  // Reserves `size` bytes for object `id`, written by client `creator` and owned by client
  // `owner`. If the region is full, evicts secondary copies nobody pins, then waits up to
  // `timeout` for Release/ReleaseClient/Unpin to free enough space, then returns
  // RESOURCE_EXHAUSTED naming the object size, capacity, used bytes and largest free block.
  // With `make_room`, calls it when the region is full and again whenever a primary copy
  // becomes spillable (sealed and unpinned) during the wait.
  // ALREADY_EXISTS if `id` exists; INVALID_ARGUMENT if `size` exceeds the capacity.
  [[nodiscard]] absl::StatusOr<ObjectLocation> Create(const std::string& id, uint64_t size,
                                                      uint64_t creator, uint64_t owner,
                                                      absl::Duration timeout,
                                                      CopyKind kind = CopyKind::kPrimary,
                                                      const MakeRoom& make_room = nullptr);

  // Marks a created object complete and immutable and wakes its Get waiters. NOT_FOUND if unknown,
  // FAILED_PRECONDITION if already sealed.
  [[nodiscard]] absl::Status Seal(const std::string& id);

  // Location of a sealed object. Waits up to `timeout` for an existing but unsealed object to be
  // sealed, then returns DEADLINE_EXCEEDED. NOT_FOUND if unknown, or released while waiting.
  [[nodiscard]] absl::StatusOr<ObjectLocation> Get(const std::string& id, absl::Duration timeout);

  // Pins the sealed object `id` for `client` (one more pin; pins are counted) and returns where
  // it is, so that the client can read it in place until it calls Unpin. NOT_FOUND if unknown or
  // already released by its owner, FAILED_PRECONDITION if not sealed yet.
  [[nodiscard]] absl::StatusOr<ObjectLocation> Pin(const std::string& id, uint64_t client);

  // Drops one pin of `client`. The last pin of a released object frees it. NOT_FOUND if unknown,
  // FAILED_PRECONDITION if `client` holds no pin on it.
  [[nodiscard]] absl::Status Unpin(const std::string& id, uint64_t client);

  // The owner dropped the last reference: frees the object, sealed or not, or, while a client
  // pins it, marks it released so that the last Unpin frees it. NOT_FOUND if unknown or already
  // released.
  [[nodiscard]] absl::Status Release(const std::string& id);

  // Client `client` went away: drops its pins, and frees (or, while others pin them, marks
  // released) every object it owns and every unsealed object it was creating. Its later (or
  // still waiting) Creates fail with FAILED_PRECONDITION. Returns how many objects were freed.
  int ReleaseClient(uint64_t client);

  // Spilling (see objectstore/spill_manager.h): sealed, unpinned, unreleased primary copies,
  // largest first, at most `limit`.
  std::vector<SpillCandidate> SpillCandidates(size_t limit) const;
  // Frees `id` once its bytes are safe elsewhere, if `client`'s pin is the only one; drops that
  // pin either way. FAILED_PRECONDITION if another client pinned it meanwhile (it stays here),
  // NOT_FOUND if unknown.
  [[nodiscard]] absl::Status FreeSpilled(const std::string& id, uint64_t client);

  StoreStats Stats() const;
  // Up to `limit` objects, the largest first.
  std::vector<ObjectSummary> List(size_t limit) const;

  // The region holding the objects' bytes; lives as long as the store.
  ShmRegion& region() { return *region_; }

 private:
  struct Entry {
    ObjectLocation location;
    uint64_t creator = 0;
    uint64_t owner = 0;
    CopyKind kind = CopyKind::kPrimary;
    bool sealed = false;
    // The owner let go while clients pinned it: freed when the last pin goes.
    bool released = false;
    // Pins by client id; a client appears only while it holds at least one.
    std::map<uint64_t, uint64_t> pins;
    // While evictable: its key in evictable_.
    uint64_t evictable_since = 0;
  };
  using Objects = std::unordered_map<std::string, Entry>;

  // Allocates `size` bytes, evicting unpinned secondary copies (oldest first) if that makes
  // room. nullopt if it cannot.
  std::optional<size_t> AllocateLocked(size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns the object's block to the allocator and forgets it; returns the next entry.
  Objects::iterator FreeLocked(Objects::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a sealed, unpinned, unreleased secondary copy on the eviction list, or takes any other
  // entry off it; counts a primary copy that became spillable in spillable_events_.
  void UpdateEvictableLocked(const std::string& id, Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops `count` pins of `client` (all of them if `count` is 0) and frees the object if that
  // was the last pin of a released one. Returns the next entry.
  Objects::iterator DropPinsLocked(Objects::iterator it, uint64_t client, uint64_t count,
                                   bool* freed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Set at construction.
  const std::unique_ptr<ShmRegion> region_;

  // Guarded by mu_.
  mutable absl::Mutex mu_;
  Allocator allocator_ ABSL_GUARDED_BY(mu_);
  Objects objects_ ABSL_GUARDED_BY(mu_);
  // Evictable copies by the time they became evictable (a counter), oldest first.
  std::map<uint64_t, std::string> evictable_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t waiting_creates_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t waiting_gets_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pinned_objects_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pinned_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t released_pinned_objects_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evicted_objects_ ABSL_GUARDED_BY(mu_) = 0;
  // Times a primary copy became sealed, unpinned and unreleased: wakes Creates that spill.
  uint64_t spillable_events_ ABSL_GUARDED_BY(mu_) = 0;
  // Clients whose ReleaseClient ran: their later creates are refused.
  absl::flat_hash_set<uint64_t> departed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::objectstore
