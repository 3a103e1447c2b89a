// A named POSIX shared-memory region (/dev/shm/<name>) mapped into this process.
//
//   auto region = ShmRegion::Create("lumen_node_1", size_t{1} << 30);  // in the node manager
//   auto mapped = ShmRegion::Open("lumen_node_1");                      // in a client
//   if (mapped.ok()) std::memcpy((*mapped)->data() + offset, bytes, n);
//
// The node manager creates the region once and every client on the node maps it read-write to
// write objects in place. A ShmRegion owns its mapping, not the name: destroying it never unlinks,
// so the creator calls Unlink() when the node shuts down. Immutable after construction and
// therefore safe to use from any thread; synchronizing access to the bytes is the caller's job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace lumen::objectstore {

class ShmRegion {
 public:
  // Creates /dev/shm/<name> of `size` bytes (a leading '/' is added if missing), maps it and
  // writes every page once so later writes by any process run at memory speed. ALREADY_EXISTS if
  // the name is taken, RESOURCE_EXHAUSTED if /dev/shm or memory cannot hold `size` bytes,
  // INVALID_ARGUMENT for an empty or nested name or size 0, INTERNAL (with errno text) otherwise.
  // On failure nothing is left behind.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ShmRegion>> Create(const std::string& name,
                                                                         size_t size);

  // Maps an existing region read-write without touching its pages. NOT_FOUND if it does not
  // exist, FAILED_PRECONDITION if it has size 0 (its creator has not sized it yet).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ShmRegion>> Open(const std::string& name);

  // Removes the name; mappings stay valid until unmapped. OK if it does not exist.
  [[nodiscard]] static absl::Status Unlink(const std::string& name);

  // Regions a dead process created and never unlinked (a node killed with SIGKILL keeps its
  // whole store in /dev/shm until reboot otherwise). A region is abandoned when nobody holds its
  // creator's lock (Create takes it for as long as the region lives in the creator, and the
  // kernel drops it when the creator dies, in whatever PID namespace) and `creator_gone(name)`
  // agrees. Removes every abandoned region whose name starts with `prefix`; the others, and
  // names it may not open, are left alone.
  struct Removed {
    int regions = 0;
    uint64_t bytes = 0;
  };
  static Removed RemoveAbandoned(const std::string& prefix,
                                 const std::function<bool(const std::string& name)>& creator_gone);

  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  // Unmaps and closes; never unlinks.
  ~ShmRegion();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // The name as given to Create/Open, with its leading '/'.
  const std::string& name() const { return name_; }

  // Populates this process's page tables for [offset, offset + len), clamped to the region, so
  // that writing a large object does not take one page fault per page. Each 2 MiB chunk is
  // populated once per mapping; later calls on it cost nothing. Best effort: errors and kernels
  // without MADV_POPULATE_WRITE are ignored. Thread-safe.
  void Prefault(size_t offset, size_t len) const;

 private:
  ShmRegion(std::string name, int fd, uint8_t* data, size_t size);

  // Set at construction.
  const std::string name_;
  const int fd_;
  uint8_t* const data_;
  const size_t size_;

  // Which 2 MiB chunks Prefault has populated in this process.
  mutable absl::Mutex prefault_mu_;
  mutable std::vector<bool> prefaulted_ ABSL_GUARDED_BY(prefault_mu_);
};

}  // namespace lumen::objectstore
