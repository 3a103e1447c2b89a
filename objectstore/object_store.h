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
// Thread-safe: every method may be called from any thread; Create and Get block the calling thread
// for at most their timeout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
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

struct StoreStats {
  uint64_t capacity = 0;  // usable bytes of the region
  uint64_t used = 0;      // bytes reserved by objects, including 64-byte rounding
  uint64_t num_objects = 0;
  uint64_t waiting_creates = 0;  // Create calls blocked on space right now
  uint64_t waiting_gets = 0;     // Get calls blocked on a seal right now
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

  // Reserves `size` bytes for object `id`, written by client `creator` and owned by client
  // `owner`. If the region is full, waits up to `timeout` for Release/ReleaseClient to free
  // enough space, then returns RESOURCE_EXHAUSTED naming the object size, capacity, used bytes and
  // largest free block. ALREADY_EXISTS if `id` exists; INVALID_ARGUMENT if `size` exceeds the
  // capacity.
  [[nodiscard]] absl::StatusOr<ObjectLocation> Create(const std::string& id, uint64_t size,
                                                      uint64_t creator, uint64_t owner,
                                                      absl::Duration timeout);

  // Marks a created object complete and immutable and wakes its Get waiters. NOT_FOUND if unknown,
  // FAILED_PRECONDITION if already sealed.
  [[nodiscard]] absl::Status Seal(const std::string& id);

  // Location of a sealed object. Waits up to `timeout` for an existing but unsealed object to be
  // sealed, then returns DEADLINE_EXCEEDED. NOT_FOUND if unknown, or released while waiting.
  [[nodiscard]] absl::StatusOr<ObjectLocation> Get(const std::string& id, absl::Duration timeout);

  // Frees the object, sealed or not: its owner dropped the last reference. NOT_FOUND if unknown.
  [[nodiscard]] absl::Status Release(const std::string& id);

  // Client `client` went away: frees every object it owns and every unsealed object it was
  // creating. Returns how many objects were freed.
  int ReleaseClient(uint64_t client);

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
    bool sealed = false;
  };

  // Set at construction.
  const std::unique_ptr<ShmRegion> region_;

  // Guarded by mu_.
  mutable absl::Mutex mu_;
  Allocator allocator_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, Entry> objects_ ABSL_GUARDED_BY(mu_);
  uint64_t waiting_creates_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t waiting_gets_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lumen::objectstore
