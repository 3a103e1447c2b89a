#include "objectstore/object_store.h"

#include <algorithm>
#include <cstdlib>
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
                                                   absl::Duration timeout) {
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
  std::optional<size_t> offset = allocator_.Allocate(size);
  if (!offset.has_value()) {
    // Wait for space, or for a concurrent Create of the same id to make ours pointless.
    const size_t block = Allocator::BlockSize(size);
    auto fits_or_exists = [this, &id, block]() {
      mu_.AssertReaderHeld();
      return allocator_.largest_free() >= block || objects_.count(id) > 0;
    };
    ++waiting_creates_;
    mu_.AwaitWithTimeout(absl::Condition(&fits_or_exists), timeout);
    --waiting_creates_;
    if (objects_.count(id) > 0) {
      return AlreadyExists(id);
    }
    offset = allocator_.Allocate(size);
  }
  if (!offset.has_value()) {
    std::string message = absl::StrCat(
        "object store is full: cannot create object ", DescribeId(id), " of ", size,
        " bytes after waiting ", absl::FormatDuration(timeout), " (capacity ",
        allocator_.capacity(), " bytes, used ", allocator_.used(), " bytes, largest free block ",
        allocator_.largest_free(), " bytes); release objects sooner or start the node with a ",
        "larger --object-store-memory");
    LUMEN_LOG(WARNING) << message;
    return absl::ResourceExhaustedError(message);
  }
  ObjectLocation location{*offset, size};
  objects_.emplace(id, Entry{location, creator, owner, /*sealed=*/false});
  return location;
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
  return absl::OkStatus();
}

absl::StatusOr<ObjectLocation> ObjectStore::Get(const std::string& id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
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

absl::Status ObjectStore::Release(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("cannot release unknown object ", DescribeId(id)));
  }
  if (!allocator_.Free(it->second.location.offset)) {
    LUMEN_LOG(ERROR) << "object " << DescribeId(id) << " at offset " << it->second.location.offset
                     << " had no allocation";
  }
  objects_.erase(it);
  return absl::OkStatus();
}

int ObjectStore::ReleaseClient(uint64_t client) {
  absl::MutexLock lock(&mu_);
  int freed = 0;
  for (auto it = objects_.begin(); it != objects_.end();) {
    const Entry& entry = it->second;
    if (entry.owner == client || (!entry.sealed && entry.creator == client)) {
      if (!allocator_.Free(entry.location.offset)) {
        LUMEN_LOG(ERROR) << "object " << DescribeId(it->first) << " at offset "
                         << entry.location.offset << " had no allocation";
      }
      it = objects_.erase(it);
      ++freed;
    } else {
      ++it;
    }
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
  return stats;
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
