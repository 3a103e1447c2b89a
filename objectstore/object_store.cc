#include "objectstore/object_store.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::objectstore {
namespace {

// Object ids are binary: show them as hex, shortened for messages.
std::string DescribeId(const std::string& id) {
  constexpr size_t kMaxBytes = 16;
  if (id.size() <= kMaxBytes) return absl::BytesToHexString(id);
  return absl::StrCat(absl::BytesToHexString(id.substr(0, kMaxBytes)), "...");
}

// A create request that arrived (or waited for room) after its creator's cleanup: nothing would
// ever free the block.
absl::Status Departed(const std::string& id, uint64_t creator) {
  return absl::FailedPreconditionError(absl::StrCat("cannot create object ", DescribeId(id),
                                                    ": its creator (client ", creator,
                                                    ") has already left this node"));
}

absl::Status AlreadyExists(const std::string& id) {
  return absl::AlreadyExistsError(absl::StrCat("object ", DescribeId(id), " already exists"));
}

size_t RegionSize(const std::unique_ptr<ShmRegion>& region) {
  if (region == nullptr) {
    LUMEN_LOG(ERROR) << "ObjectStore constructed without a shared memory region";
    std::abort();
  }
  return region->size();
}

}  // namespace

ObjectStore::ObjectStore(std::unique_ptr<ShmRegion> region)
    : region_(std::move(region)), allocator_(RegionSize(region_)) {}

absl::StatusOr<ObjectLocation> ObjectStore::Create(const std::string& id, uint64_t size,
                                                   uint64_t creator, uint64_t owner,
                                                   absl::Duration timeout, CopyKind kind,
                                                   const MakeRoom& make_room) {
  absl::MutexLock lock(&mu_);
  if (size > allocator_.capacity()) {
    return absl::InvalidArgumentError(
        absl::StrCat("object ", DescribeId(id), " of ", size,
                     " bytes is larger than the object store's capacity of ", allocator_.capacity(),
                     " bytes; start the node with a larger --object-store-memory"));
  }
  if (objects_.count(id) > 0) {
    return AlreadyExists(id);
  }
  if (departed_.contains(creator)) return Departed(id, creator);
  std::optional<size_t> offset = AllocateLocked(size);
  if (!offset.has_value()) {
    // Wait for space, for a copy to become evictable (or spillable, when this call spills), or
    // for a concurrent Create of the same id to make ours pointless.
    const size_t block = Allocator::BlockSize(size);
    // The spillable copies make_room last saw; it runs again when there are new ones.
    std::optional<uint64_t> spill_seen;
    auto wake = [&]() {
      mu_.AssertReaderHeld();
      return allocator_.largest_free() >= block || !evictable_.empty() || objects_.count(id) > 0 ||
             departed_.contains(creator) || (make_room && spill_seen != spillable_events_);
    };
    auto settled = [&]() {
      mu_.AssertReaderHeld();
      return offset.has_value() || objects_.count(id) > 0 || departed_.contains(creator);
    };
    const absl::Time deadline = absl::Now() + timeout;
    ++waiting_creates_;
    do {
      if (make_room && spill_seen != spillable_events_) {
        spill_seen = spillable_events_;
        mu_.Unlock();  // the spill pins and frees objects of this store
        make_room(size);
        mu_.Lock();
      } else if (!mu_.AwaitWithDeadline(absl::Condition(&wake), deadline)) {
        break;
      }
      if (objects_.count(id) == 0 && !departed_.contains(creator)) offset = AllocateLocked(size);
    } while (!settled());
    --waiting_creates_;
    if (objects_.count(id) > 0) {
      return AlreadyExists(id);
    }
    // The creator went away while this request waited for room: its cleanup is over.
    if (departed_.contains(creator)) {
      if (offset.has_value()) (void)allocator_.Free(*offset);
      return Departed(id, creator);
    }
  }
  if (!offset.has_value()) {
    std::string message = absl::StrCat(
        "object store is full: cannot create object ", DescribeId(id), " of ", size,
        " bytes after waiting ", absl::FormatDuration(timeout), " (capacity ",
        allocator_.capacity(), " bytes, used ", allocator_.used(), " bytes, largest free block ",
        allocator_.largest_free(), " bytes, pinned ", pinned_bytes_,
        " bytes); release objects sooner or start the node with a larger --object-store-memory");
    LUMEN_LOG(WARNING) << message;
    return absl::ResourceExhaustedError(message);
  }
  Entry entry;
  entry.location = ObjectLocation{*offset, size};
  entry.creator = creator;
  entry.owner = owner;
  entry.kind = kind;
  objects_.emplace(id, std::move(entry));
  return ObjectLocation{*offset, size};
}

absl::Status ObjectStore::Seal(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("cannot seal unknown object ", DescribeId(id)));
  }
  if (it->second.sealed) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", DescribeId(id), " is already sealed"));
  }
  it->second.sealed = true;  // Waiters in Get re-check their condition when mu_ is released.
  UpdateEvictableLocked(id, it->second);
  return absl::OkStatus();
}

absl::StatusOr<ObjectLocation> ObjectStore::Get(const std::string& id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end() || it->second.released) {
    return absl::NotFoundError(absl::StrCat("object ", DescribeId(id), " is not in the store"));
  }
  if (!it->second.sealed) {
    auto sealed_or_gone = [this, &id]() {
      mu_.AssertReaderHeld();
      auto found = objects_.find(id);
      return found == objects_.end() || found->second.sealed;
    };
    ++waiting_gets_;
    mu_.AwaitWithTimeout(absl::Condition(&sealed_or_gone), timeout);
    --waiting_gets_;
    it = objects_.find(id);
    if (it == objects_.end()) {
      return absl::NotFoundError(
          absl::StrCat("object ", DescribeId(id), " was released before it was sealed"));
    }
    if (!it->second.sealed) {
      return absl::DeadlineExceededError(absl::StrCat(
          "object ", DescribeId(id), " was not sealed within ", absl::FormatDuration(timeout)));
    }
  }
  return it->second.location;
}

absl::StatusOr<ObjectLocation> ObjectStore::Pin(const std::string& id, uint64_t client) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(
        absl::StrCat("object ", DescribeId(id),
                     " is not in this node's object store (its owner released it or exited)"));
  }
  Entry& entry = it->second;
  if (entry.released) {
    return absl::NotFoundError(
        absl::StrCat("object ", DescribeId(id), " was released by its owner"));
  }
  if (!entry.sealed) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", DescribeId(id), " cannot be pinned before it is sealed"));
  }
  if (entry.pins.empty()) {
    ++pinned_objects_;
    pinned_bytes_ += Allocator::BlockSize(entry.location.size);
  }
  ++entry.pins[client];
  UpdateEvictableLocked(id, entry);
  return entry.location;
}

absl::Status ObjectStore::Unpin(const std::string& id, uint64_t client) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("cannot unpin unknown object ", DescribeId(id)));
  }
  if (it->second.pins.count(client) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("client ", client, " holds no pin on object ", DescribeId(id)));
  }
  bool freed = false;
  DropPinsLocked(it, client, 1, &freed);
  return absl::OkStatus();
}

absl::Status ObjectStore::Release(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end() || it->second.released) {
    return absl::NotFoundError(absl::StrCat("cannot release unknown object ", DescribeId(id)));
  }
  if (it->second.pins.empty()) {
    FreeLocked(it);
  } else {
    it->second.released = true;
    ++released_pinned_objects_;
  }
  return absl::OkStatus();
}

int ObjectStore::ReleaseClient(uint64_t client) {
  absl::MutexLock lock(&mu_);
  departed_.insert(client);
  int freed = 0;
  for (auto it = objects_.begin(); it != objects_.end();) {
    bool dropped_last = false;
    if (it->second.pins.count(client) > 0) {
      auto next = DropPinsLocked(it, client, /*count=*/0, &dropped_last);
      if (dropped_last) {
        ++freed;
        it = next;
        continue;
      }
    }
    Entry& entry = it->second;
    if (!entry.released && (entry.owner == client || (!entry.sealed && entry.creator == client))) {
      if (entry.pins.empty()) {
        it = FreeLocked(it);
        ++freed;
        continue;
      }
      entry.released = true;
      ++released_pinned_objects_;
      UpdateEvictableLocked(it->first, entry);
    }
    ++it;
  }
  if (freed > 0) {
    LUMEN_LOG(INFO) << "freed " << freed << " objects of departed client " << client;
  }
  return freed;
}

StoreStats ObjectStore::Stats() const {
  absl::MutexLock lock(&mu_);
  StoreStats stats;
  stats.capacity = allocator_.capacity();
  stats.used = allocator_.used();
  stats.num_objects = objects_.size();
  stats.waiting_creates = waiting_creates_;
  stats.waiting_gets = waiting_gets_;
  stats.pinned_objects = pinned_objects_;
  stats.pinned_bytes = pinned_bytes_;
  stats.released_pinned_objects = released_pinned_objects_;
  stats.evictable_objects = evictable_.size();
  stats.evicted_objects = evicted_objects_;
  stats.largest_free = allocator_.largest_free();
  return stats;
}

std::vector<SpillCandidate> ObjectStore::SpillCandidates(size_t limit) const {
  std::vector<SpillCandidate> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : objects_) {
      if (entry.kind == CopyKind::kPrimary && entry.sealed && !entry.released &&
          entry.pins.empty()) {
        out.push_back({id, entry.location, entry.owner});
      }
    }
  }
  const size_t keep = std::min(limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(),
                    [](const SpillCandidate& a, const SpillCandidate& b) {
                      return a.location.size > b.location.size;
                    });
  out.resize(keep);
  return out;
}

absl::Status ObjectStore::FreeSpilled(const std::string& id, uint64_t client) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("cannot spill unknown object ", DescribeId(id)));
  }
  bool freed = false;
  DropPinsLocked(it, client, /*count=*/0, &freed);
  if (freed) return absl::OkStatus();  // released meanwhile: gone with its last pin
  it = objects_.find(id);
  if (it == objects_.end()) return absl::OkStatus();
  if (!it->second.pins.empty() || it->second.released) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", DescribeId(id), " was pinned while it was spilled"));
  }
  FreeLocked(it);
  return absl::OkStatus();
}

std::optional<size_t> ObjectStore::AllocateLocked(size_t size) {
  std::optional<size_t> offset = allocator_.Allocate(size);
  const size_t block = Allocator::BlockSize(size);
  while (!offset.has_value() && !evictable_.empty()) {
    auto oldest = evictable_.begin();
    auto it = objects_.find(oldest->second);
    if (it == objects_.end()) {
      LUMEN_LOG(ERROR) << "evictable object " << DescribeId(oldest->second) << " is unknown";
      evictable_.erase(oldest);
      continue;
    }
    LUMEN_LOG(INFO) << "evicting secondary copy " << DescribeId(it->first) << " ("
                    << it->second.location.size << " bytes) to make room for " << size << " bytes";
    FreeLocked(it);
    ++evicted_objects_;
    if (allocator_.largest_free() >= block) offset = allocator_.Allocate(size);
  }
  return offset;
}

ObjectStore::Objects::iterator ObjectStore::FreeLocked(Objects::iterator it) {
  Entry& entry = it->second;
  if (entry.evictable_since != 0) evictable_.erase(entry.evictable_since);
  if (entry.released) --released_pinned_objects_;
  if (!entry.pins.empty()) {
    // Only eviction and Release call this, and neither touches a pinned object.
    LUMEN_LOG(ERROR) << "freeing pinned object " << DescribeId(it->first);
    --pinned_objects_;
    pinned_bytes_ -= Allocator::BlockSize(entry.location.size);
  }
  if (!allocator_.Free(entry.location.offset)) {
    LUMEN_LOG(ERROR) << "object " << DescribeId(it->first) << " at offset " << entry.location.offset
                     << " had no allocation";
  }
  return objects_.erase(it);
}

void ObjectStore::UpdateEvictableLocked(const std::string& id, Entry& entry) {
  const bool unused = entry.sealed && !entry.released && entry.pins.empty();
  if (unused && entry.kind == CopyKind::kPrimary) ++spillable_events_;
  const bool evictable = unused && entry.kind == CopyKind::kSecondary;
  if (evictable && entry.evictable_since == 0) {
    entry.evictable_since = ++clock_;
    evictable_.emplace(entry.evictable_since, id);
  } else if (!evictable && entry.evictable_since != 0) {
    evictable_.erase(entry.evictable_since);
    entry.evictable_since = 0;
  }
}

ObjectStore::Objects::iterator ObjectStore::DropPinsLocked(Objects::iterator it, uint64_t client,
                                                           uint64_t count, bool* freed) {
  Entry& entry = it->second;
  auto pin = entry.pins.find(client);
  if (pin == entry.pins.end()) return std::next(it);
  if (count == 0 || pin->second <= count) {
    entry.pins.erase(pin);
  } else {
    pin->second -= count;
  }
  if (!entry.pins.empty()) return std::next(it);
  --pinned_objects_;
  pinned_bytes_ -= Allocator::BlockSize(entry.location.size);
  if (entry.released) {
    *freed = true;
    return FreeLocked(it);
  }
  UpdateEvictableLocked(it->first, entry);
  return std::next(it);
}

std::vector<ObjectSummary> ObjectStore::List(size_t limit) const {
  std::vector<ObjectSummary> out;
  {
    absl::MutexLock lock(&mu_);
    out.reserve(objects_.size());
    for (const auto& [id, entry] : objects_) {
      out.push_back({id, entry.location.size, entry.owner, entry.sealed});
    }
  }
  const size_t keep = std::min(limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(),
                    [](const ObjectSummary& a, const ObjectSummary& b) { return a.size > b.size; });
  out.resize(keep);
  return out;
}

}  // namespace lumen::objectstore
