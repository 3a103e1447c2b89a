#include "objectstore/spill_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::objectstore {
namespace {

std::string ShortId(const std::string& id) { return absl::BytesToHexString(id.substr(0, 8)); }

// mkdir -p for the spill folder.
absl::Status MakeDirs(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string prefix = dir.substr(0, slash);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create ", prefix, ": ", strerror(errno)));
    }
    if (slash == std::string::npos) return absl::OkStatus();
  }
}

absl::Status WriteAll(const std::string& path, const uint8_t* data, uint64_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = strerror(errno);
      close(fd);
      unlink(path.c_str());
      return absl::ResourceExhaustedError(absl::StrCat("cannot write ", path, ": ", why));
    }
    done += static_cast<uint64_t>(n);
  }
  if (close(fd) != 0) return absl::InternalError(absl::StrCat("cannot close ", path));
  return absl::OkStatus();
}

absl::Status ReadAll(const std::string& path, uint8_t* data, uint64_t size) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = read(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::DataLossError(
          absl::StrCat("spill file ", path, " is shorter than ", size, " bytes"));
    }
    done += static_cast<uint64_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

}  // namespace

SpillManager::SpillManager(ObjectStore& store, std::string dir)
    : store_(store), dir_(std::move(dir)) {}

SpillManager::~SpillManager() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, record] : spilled_) unlink(record.path.c_str());
  spilled_.clear();
  rmdir(dir_.c_str());
}

std::string SpillManager::PathFor(const std::string& id) const {
  return absl::StrCat(dir_, "/", absl::BytesToHexString(id));
}

uint64_t SpillManager::MakeRoom(uint64_t size) {
  absl::MutexLock spill_lock(&spill_mu_);
  return MakeRoomLocked(size);
}

uint64_t SpillManager::MakeRoomLocked(uint64_t size) {
  uint64_t spilled = 0;
  while (store_.Stats().largest_free < Allocator::BlockSize(size)) {
    std::vector<SpillCandidate> candidates = store_.SpillCandidates(1);
    if (candidates.empty() || !SpillOne(candidates.front())) break;
    spilled += candidates.front().location.size;
  }
  return spilled;
}

bool SpillManager::SpillOne(const SpillCandidate& candidate) {
  const std::string& id = candidate.id;
  auto location = store_.Pin(id, kSpillClient);
  if (!location.ok()) return false;  // released or pinned meanwhile
  if (auto made = MakeDirs(dir_); !made.ok()) {
    LUMEN_LOG(WARNING) << "cannot spill: " << made;
    store_.Unpin(id, kSpillClient).IgnoreError();
    return false;
  }
  const std::string path = PathFor(id);
  {
    absl::MutexLock lock(&mu_);
    spilled_[id] = Record{location->size, candidate.owner, path};
    bytes_ += location->size;
  }
  auto forget = [&] {
    absl::MutexLock lock(&mu_);
    if (spilled_.erase(id) > 0) bytes_ -= location->size;
    unlink(path.c_str());
  };
  if (auto written = WriteAll(path, store_.region().data() + location->offset, location->size);
      !written.ok()) {
    LUMEN_LOG(WARNING) << "cannot spill object " << ShortId(id) << ": " << written;
    store_.Unpin(id, kSpillClient).IgnoreError();
    forget();
    return false;
  }
  if (auto freed = store_.FreeSpilled(id, kSpillClient); !freed.ok()) {
    forget();  // a reader pinned it meanwhile: it stays in memory
    return false;
  }
  bool released = false;
  {
    absl::MutexLock lock(&mu_);
    released = spilled_.count(id) == 0;
    if (!released) ++spilled_total_;
  }
  if (released) unlink(path.c_str());  // its owner let go while it was written
  LUMEN_LOG(INFO) << "spilled object " << ShortId(id) << " (" << location->size << " bytes) to "
                  << path;
  return true;
}

absl::Status SpillManager::Restore(const std::string& id, absl::Duration timeout) {
  absl::MutexLock spill_lock(&spill_mu_);
  Record record;
  {
    absl::MutexLock lock(&mu_);
    auto it = spilled_.find(id);
    if (it == spilled_.end()) {
      return absl::NotFoundError(absl::StrCat("object ", ShortId(id), " is not spilled"));
    }
    it->second.restoring = true;
    record = it->second;
  }
  auto location = store_.Create(id, record.size, kSpillClient, record.owner, timeout,
                                CopyKind::kPrimary, [this](uint64_t size) {
                                  spill_mu_.AssertHeld();  // this thread waits in Create
                                  MakeRoomLocked(size);
                                });
  absl::Status status = location.status();
  if (location.ok()) {
    status = ReadAll(record.path, store_.region().data() + location->offset, record.size);
    if (status.ok()) status = store_.Seal(id);
    if (!status.ok()) store_.Release(id).IgnoreError();
  }
  bool released = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = spilled_.find(id);
    released = it != spilled_.end() && it->second.deleted;
    if (status.ok() || released) {
      if (it != spilled_.end()) {
        bytes_ -= it->second.size;
        spilled_.erase(it);
      }
      if (status.ok()) ++restored_total_;
    } else if (it != spilled_.end()) {
      it->second.restoring = false;
    }
  }
  if (status.ok() || released) unlink(record.path.c_str());
  if (status.ok() && released) store_.Release(id).IgnoreError();
  if (status.ok()) {
    LUMEN_LOG(INFO) << "restored spilled object " << ShortId(id) << " (" << record.size
                    << " bytes)";
  }
  return status;
}

bool SpillManager::IsSpilled(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return spilled_.count(id) > 0;
}

bool SpillManager::Delete(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = spilled_.find(id);
  if (it == spilled_.end()) return false;
  if (it->second.restoring) {
    it->second.deleted = true;  // Restore removes it when it is done
    return true;
  }
  unlink(it->second.path.c_str());
  bytes_ -= it->second.size;
  spilled_.erase(it);
  return true;
}

int SpillManager::DeleteOwnedBy(uint64_t owner) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, record] : spilled_) {
      if (record.owner == owner) ids.push_back(id);
    }
  }
  int deleted = 0;
  for (const auto& id : ids) deleted += Delete(id) ? 1 : 0;
  return deleted;
}

SpillManager::Stats SpillManager::stats() const {
  absl::MutexLock lock(&mu_);
  return Stats{spilled_.size(), bytes_, spilled_total_, restored_total_};
}

std::vector<ObjectSummary> SpillManager::List(size_t limit) const {
  std::vector<ObjectSummary> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, record] : spilled_) out.push_back({id, record.size, record.owner, true});
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectSummary& a, const ObjectSummary& b) { return a.size > b.size; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace lumen::objectstore
