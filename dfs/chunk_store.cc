#include "dfs/chunk_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dfs/checksum.h"
#include "dfs/chunk_file.h"

namespace lumen::dfs {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'L', 'U', 'M', 'E', 'N', 'C', 'H', 'K'};
constexpr size_t kHeaderSize = 32;
constexpr char kSuffix[] = ".chunk";
constexpr char kTempSuffix[] = ".tmp";

// magic, size, checksum of the data, checksum of the first 24 header bytes.
struct Header {
  uint64_t size = 0;
  uint64_t checksum = 0;
};

std::string EncodeHeader(const Header& header) {
  std::string out(kHeaderSize, '\0');
  std::memcpy(out.data(), kMagic, 8);
  std::memcpy(out.data() + 8, &header.size, 8);
  std::memcpy(out.data() + 16, &header.checksum, 8);
  const uint64_t own = Checksum(out.data(), 24);
  std::memcpy(out.data() + 24, &own, 8);
  return out;
}

bool DecodeHeader(const char* data, Header* header) {
  if (std::memcmp(data, kMagic, 8) != 0) return false;
  uint64_t own = 0;
  std::memcpy(&own, data + 24, 8);
  if (own != Checksum(data, 24)) return false;
  std::memcpy(&header->size, data + 8, 8);
  std::memcpy(&header->checksum, data + 16, 8);
  return true;
}

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::ErrnoToStatus(errno, absl::StrCat(what, " ", path));
}

// Reads exactly `size` bytes at `offset`; false on a short file.
absl::StatusOr<bool> ReadAt(int fd, char* out, size_t size, off_t offset, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, out + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read", path);
    if (n == 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChunkStore>> ChunkStore::Open(const std::string& dir,
                                                             uint64_t cache_bytes) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the chunk folder ", dir, ": ", error.message()));
  }
  std::unique_ptr<ChunkStore> store(new ChunkStore(dir, cache_bytes));
  fs::directory_iterator it(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list the chunk folder ", dir, ": ", error.message()));
  }
  absl::MutexLock lock(&store->mu_);
  for (const fs::directory_entry& entry : it) {
    const std::string file = entry.path().filename().string();
    if (absl::EndsWith(file, kTempSuffix)) {
      fs::remove(entry.path(), error);  // an interrupted write
      continue;
    }
    if (!absl::EndsWith(file, kSuffix)) continue;
    const std::string id = file.substr(0, file.size() - std::strlen(kSuffix));
    uint64_t write_id = 0;
    uint64_t index = 0;
    if (!ParseChunkId(id, &write_id, &index)) continue;
    char raw[kHeaderSize];
    Header header;
    bool valid = false;
    const int fd = open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      auto read = ReadAt(fd, raw, kHeaderSize, 0, entry.path().string());
      valid = read.ok() && *read && DecodeHeader(raw, &header) &&
              IsChunkFileSize(entry.file_size(error), kHeaderSize, header.size);
      close(fd);
    }
    if (!valid) {
      // A damaged header: the replica is unusable.
      fs::remove(entry.path(), error);
      store->corrupt_.push_back(id);
      continue;
    }
    store->index_[id] = Entry{header.size, header.checksum};
    store->total_bytes_ += header.size;
  }
  return store;
}

std::string ChunkStore::PathOf(const std::string& id) const {
  return absl::StrCat(dir_, "/", id, kSuffix);
}

absl::Status ChunkStore::Write(const std::string& id, uint64_t checksum, std::string_view data) {
  uint64_t write_id = 0;
  uint64_t index = 0;
  if (!ParseChunkId(id, &write_id, &index)) {
    return absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a chunk id"));
  }
  static std::atomic<uint64_t> counter{0};
  const std::string path = PathOf(id);
  const std::string temp =
      absl::StrCat(dir_, "/.", id, ".", getpid(), ".", counter.fetch_add(1), kTempSuffix);
  // The bytes are checked in the pass that writes them; a damaged chunk's file goes again.
  auto written = WriteChunkFile(temp, EncodeHeader(Header{data.size(), checksum}), data);
  absl::Status status = written.status();
  if (status.ok() && *written != checksum) {
    status =
        absl::DataLossError(absl::StrCat("chunk ", id, " arrived damaged: its checksum is ",
                                         ChecksumHex(*written), ", not ", ChecksumHex(checksum)));
  }
  if (status.ok() && rename(temp.c_str(), path.c_str()) != 0) {
    status = ErrnoError("cannot rename to", path);
  }
  if (!status.ok()) {
    unlink(temp.c_str());
    return status;
  }
  absl::MutexLock lock(&mu_);
  auto [it, added] = index_.try_emplace(id, Entry{data.size(), checksum});
  if (!added) {
    total_bytes_ -= it->second.size;
    it->second = Entry{data.size(), checksum};
    UncacheLocked(id);
  }
  total_bytes_ += data.size();
  return absl::OkStatus();
}

absl::StatusOr<ChunkBytes> ChunkStore::ReadFile(const std::string& id, const Entry& entry) const {
  auto read = ReadChunkFile(PathOf(id), kHeaderSize, entry.size);
  if (absl::IsNotFound(read.status())) {
    return absl::NotFoundError(absl::StrCat("no replica of chunk ", id));
  }
  if (!read.ok()) return read.status();
  Header header;
  if (read->header.size() < kHeaderSize || !DecodeHeader(read->header.data(), &header) ||
      header.size != entry.size || header.checksum != entry.checksum) {
    return absl::DataLossError(absl::StrCat("replica of chunk ", id, " has a damaged header"));
  }
  if (!read->complete) {
    return absl::DataLossError(absl::StrCat("replica of chunk ", id, " is truncated"));
  }
  if (read->checksum != header.checksum) {
    return absl::DataLossError(
        absl::StrCat("replica of chunk ", id, " failed its checksum: its bytes are damaged"));
  }
  return std::move(read->data);
}

absl::StatusOr<ChunkBytes> ChunkStore::Read(const std::string& id) {
  Entry entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return absl::NotFoundError(absl::StrCat("no replica of chunk ", id));
    entry = it->second;
    auto cached = cached_.find(id);
    if (cached != cached_.end()) {
      lru_.splice(lru_.begin(), lru_, cached->second);
      const ChunkBytes& data = cached->second->second;
      // A damaged copy in memory is dropped; the file is read instead.
      if (Checksum(data.data(), data.size()) == entry.checksum) return data;
      UncacheLocked(id);
    }
  }
  auto data = ReadFile(id, entry);
  if (absl::IsDataLoss(data.status()) || absl::IsNotFound(data.status())) {
    DropCorrupt(id, entry);
    return data.status();
  }
  if (!data.ok()) return data.status();
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it != index_.end() && it->second.checksum == entry.checksum) CacheLocked(id, *data);
  return data;
}

void ChunkStore::DropCorrupt(const std::string& id, const Entry& seen) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  // Replaced by a good copy meanwhile: nothing to drop.
  if (it == index_.end() || it->second.checksum != seen.checksum) return;
  total_bytes_ -= it->second.size;
  index_.erase(it);
  UncacheLocked(id);
  unlink(PathOf(id).c_str());
  corrupt_.push_back(id);
}

bool ChunkStore::Delete(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  total_bytes_ -= it->second.size;
  index_.erase(it);
  UncacheLocked(id);
  unlink(PathOf(id).c_str());
  return true;
}

std::vector<ChunkSummary> ChunkStore::Inventory() {
  absl::MutexLock lock(&mu_);
  std::vector<ChunkSummary> out;
  out.reserve(index_.size());
  for (const auto& [id, entry] : index_)
    out.push_back(ChunkSummary{id, entry.size, entry.checksum});
  return out;
}

uint64_t ChunkStore::chunks() {
  absl::MutexLock lock(&mu_);
  return index_.size();
}

uint64_t ChunkStore::bytes() {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

std::vector<std::string> ChunkStore::Scrub() {
  std::vector<std::pair<std::string, Entry>> all;
  {
    absl::MutexLock lock(&mu_);
    all.assign(index_.begin(), index_.end());
  }
  std::vector<std::string> corrupt;
  for (const auto& [id, entry] : all) {
    auto data = ReadFile(id, entry);
    if (absl::IsDataLoss(data.status())) {
      DropCorrupt(id, entry);
      corrupt.push_back(id);
    }
  }
  return corrupt;
}

std::vector<std::string> ChunkStore::TakeCorrupt() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.swap(corrupt_);
  return out;
}

absl::Status ChunkStore::Purge() {
  absl::MutexLock lock(&mu_);
  index_.clear();
  lru_.clear();
  cached_.clear();
  cached_bytes_ = 0;
  total_bytes_ = 0;
  std::error_code error;
  fs::remove_all(dir_, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot remove ", dir_, ": ", error.message()));
  }
  return absl::OkStatus();
}

void ChunkStore::CacheLocked(const std::string& id, const ChunkBytes& data) {
  if (data.size() > cache_bytes_ || cached_.contains(id)) return;
  cached_bytes_ += data.size();
  lru_.emplace_front(id, data);
  cached_[id] = lru_.begin();
  while (cached_bytes_ > cache_bytes_ && !lru_.empty()) {
    const std::string victim = lru_.back().first;
    UncacheLocked(victim);
  }
}

void ChunkStore::UncacheLocked(const std::string& id) {
  auto it = cached_.find(id);
  if (it == cached_.end()) return;
  cached_bytes_ -= it->second->second.size();
  lru_.erase(it->second);
  cached_.erase(it);
}

}  // namespace lumen::dfs
