// Spills primary copies from a full store to files on local disk and restores them on demand.
//
//   SpillManager spill(store, session_dir + "/spill/node-1");
//   spill.MakeRoom(size);              // before a Create that found no room
//   spill.Restore(id, timeout);        // before a Pin that found the object gone
//   spill.Delete(id);                  // its owner released it: the file goes
//
// Only sealed primary copies that nobody pins are spilled (largest first); a spilled object is
// pinned by the spiller while its bytes are written, so a reader never sees it half gone. A
// restored object is a primary copy again and its file is removed. Files live in one folder that
// is removed when the manager is destroyed (the node stops).
//
// Thread-safe. Spills and restores run one at a time (they do disk I/O under spill_mu_); the
// record of what is spilled has its own lock, so Delete and List never wait for the disk.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "objectstore/object_store.h"

namespace lumen::objectstore {

class SpillManager {
 public:
  struct Stats {
    uint64_t objects = 0;  // on disk now
    uint64_t bytes = 0;
    uint64_t spilled_total = 0;  // since the node started
    uint64_t restored_total = 0;
  };
  // The store client id spills pin under and restores create under.
  static constexpr uint64_t kSpillClient = 3;

  // Spill files go to `dir` (created on first spill).
  SpillManager(ObjectStore& store, std::string dir);
  // Removes every spill file and the folder.
  ~SpillManager();
  SpillManager(const SpillManager&) = delete;
  SpillManager& operator=(const SpillManager&) = delete;

  // Spills primary copies until an object of `size` bytes fits the store, or nothing more can
  // be spilled. Returns the bytes spilled.
  uint64_t MakeRoom(uint64_t size);
  // If `id` is spilled, puts it back in the store (spilling others as needed, waiting up to
  // `timeout` for room) and removes its file. NOT_FOUND if it is not spilled; the store's error
  // if there is no room.
  [[nodiscard]] absl::Status Restore(const std::string& id, absl::Duration timeout);
  bool IsSpilled(const std::string& id) const;
  // The owner released `id`: removes its file. False if it was not spilled.
  bool Delete(const std::string& id);
  // Client `owner` went away: removes the files of the objects it owned.
  int DeleteOwnedBy(uint64_t owner);

  Stats stats() const;
  // Spilled objects, the largest first, at most `limit`.
  std::vector<ObjectSummary> List(size_t limit) const;
  const std::string& dir() const { return dir_; }

 private:
  struct Record {
    uint64_t size = 0;
    uint64_t owner = 0;
    std::string path;
    bool restoring = false;
    bool deleted = false;  // released while it was being restored
  };

  uint64_t MakeRoomLocked(uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(spill_mu_);
  // Writes one candidate to disk and frees it in the store. False if it could not.
  bool SpillOne(const SpillCandidate& candidate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(spill_mu_);
  std::string PathFor(const std::string& id) const;

  // Set at construction.
  ObjectStore& store_;
  const std::string dir_;

  // Serializes disk work: spills and restores.
  absl::Mutex spill_mu_;

  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(spill_mu_);
  std::map<std::string, Record> spilled_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t spilled_total_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t restored_total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lumen::objectstore
