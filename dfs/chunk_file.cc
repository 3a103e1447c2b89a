#include "dfs/chunk_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "dfs/checksum.h"

namespace lumen::dfs {
namespace {

// O_DIRECT wants memory, offsets and lengths on multiples of the device's block; a page covers
// every block size in use.
constexpr size_t kAlignment = 4096;
// Bytes moved per system call; each thread's buffer holds that plus a block, so that a chunk of
// kIoBytes goes out with its header in one write.
constexpr size_t kIoBytes = size_t{1} << 20;
constexpr size_t kBufferBytes = kIoBytes + kAlignment;
// Bytes copied, then hashed while still in the cache.
constexpr size_t kBlock = size_t{64} << 10;

size_t RoundUp(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }  // NOLINT(cppcoreguidelines-no-malloc)
};

// This thread's aligned buffer of kBufferBytes.
char* ThreadBuffer() {
  thread_local std::unique_ptr<char, FreeDeleter> buffer(
      static_cast<char*>(std::aligned_alloc(kAlignment, kBufferBytes)));  // NOLINT
  return buffer.get();
}

// Aligned read buffers kept for reuse, so that a read neither allocates nor faults in fresh
// pages; at most kPoolBytes of them wait idle.
class BufferPool {
 public:
  static BufferPool& Get() {
    static auto* pool = new BufferPool();  // never destroyed: buffers may return at exit
    return *pool;
  }

  // A buffer of at least `size` bytes, given back when the last copy of the pointer goes.
  std::shared_ptr<char> Take(size_t size) {
    size = RoundUp(size);
    char* buffer = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto it = idle_.find(size);
      if (it != idle_.end() && !it->second.empty()) {
        buffer = it->second.back();
        it->second.pop_back();
        idle_bytes_ -= size;
      }
    }
    if (buffer == nullptr) buffer = static_cast<char*>(std::aligned_alloc(kAlignment, size));
    if (buffer == nullptr) return nullptr;
    return std::shared_ptr<char>(buffer, [this, size](char* p) { Give(p, size); });
  }

 private:
  static constexpr size_t kPoolBytes = size_t{64} << 20;

  void Give(char* buffer, size_t size) {
    {
      absl::MutexLock lock(&mu_);
      if (idle_bytes_ + size <= kPoolBytes) {
        idle_[size].push_back(buffer);
        idle_bytes_ += size;
        return;
      }
    }
    std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc)
  }

  absl::Mutex mu_;
  absl::flat_hash_map<size_t, std::vector<char*>> idle_ ABSL_GUARDED_BY(mu_);
  size_t idle_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::ErrnoToStatus(errno, absl::StrCat(what, " ", path));
}

// Copies `size` bytes from `from` to `to` and feeds them to `sum`, block by block.
void CopyAndSum(char* to, const char* from, size_t size, ChecksumStream& sum) {
  for (size_t done = 0; done < size; done += kBlock) {
    const size_t n = std::min(kBlock, size - done);
    std::memcpy(to + done, from + done, n);
    sum.Update(to + done, n);
  }
}

// Opens with O_DIRECT, or without where the file system refuses it.
int OpenMaybeDirect(const std::string& path, int flags, bool* direct) {
  int fd = open(path.c_str(), flags | O_DIRECT | O_CLOEXEC, 0600);
  *direct = fd >= 0;
  if (fd < 0 && errno == EINVAL) fd = open(path.c_str(), flags | O_CLOEXEC, 0600);
  return fd;
}

// Drops O_DIRECT from `fd` after the file system refused an aligned transfer.
bool StopDirect(int fd, bool* direct) {
  if (!*direct || errno != EINVAL) return false;
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_DIRECT) != 0) return false;
  *direct = false;
  return true;
}

// Writes `size` bytes of `data` at `offset`; with O_DIRECT the length may be padded up to
// kAlignment with bytes past `size`.
absl::Status WriteAt(int fd, bool* direct, const char* data, size_t size, off_t offset,
                     const std::string& path) {
  size_t done = 0;
  while (done < size) {
    const size_t want = *direct ? RoundUp(size - done) : size - done;
    const ssize_t n = pwrite(fd, data + done, want, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && StopDirect(fd, direct)) continue;
    if (n < 0) return ErrnoError("cannot write", path);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads up to `size` bytes at `offset` (a multiple of kAlignment); fewer only at the end.
absl::StatusOr<size_t> ReadAt(int fd, bool* direct, char* out, size_t size, off_t offset,
                              const std::string& path) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, out + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && StopDirect(fd, direct)) continue;
    if (n < 0) return ErrnoError("cannot read", path);
    if (n == 0) break;
    done += static_cast<size_t>(n);
    // O_DIRECT stops short only at the end of the file (or on an unaligned remainder there).
    if (*direct && done % kAlignment != 0) break;
  }
  return done;
}

}  // namespace

bool IsChunkFileSize(uint64_t file_size, uint64_t header_size, uint64_t data_size) {
  const uint64_t exact = header_size + data_size;
  return file_size == exact || file_size == RoundUp(exact);
}

absl::StatusOr<uint64_t> WriteChunkFile(const std::string& path, std::string_view header,
                                        std::string_view data) {
  if (header.size() > kIoBytes) return absl::InvalidArgumentError("chunk header too large");
  bool direct = false;
  const int fd = OpenMaybeDirect(path, O_WRONLY | O_CREAT | O_TRUNC, &direct);
  if (fd < 0) return ErrnoError("cannot create", path);
  char* buffer = ThreadBuffer();
  ChecksumStream sum;
  absl::Status status;
  std::memcpy(buffer, header.data(), header.size());
  size_t filled = header.size();
  size_t taken = 0;
  off_t offset = 0;
  while (status.ok() && (taken < data.size() || filled > 0)) {
    // Every piece but the last fills the buffer, a whole number of blocks.
    const size_t n = std::min(kBufferBytes - filled, data.size() - taken);
    CopyAndSum(buffer + filled, data.data() + taken, n, sum);
    taken += n;
    filled += n;
    if (direct && filled % kAlignment != 0) {
      // The last piece: padded to a whole block, which stays in the file (see
      // IsChunkFileSize): cutting the file back to size would make the file system read and
      // rewrite its last block.
      std::memset(buffer + filled, 0, RoundUp(filled) - filled);
    }
    status = WriteAt(fd, &direct, buffer, filled, offset, path);
    offset += static_cast<off_t>(filled);
    filled = 0;
  }
  if (close(fd) != 0 && status.ok()) status = ErrnoError("cannot write", path);
  if (!status.ok()) return status;
  return sum.Digest();
}

absl::StatusOr<ChunkFileRead> ReadChunkFile(const std::string& path, size_t header_size,
                                            size_t data_size) {
  bool direct = false;
  const int fd = OpenMaybeDirect(path, O_RDONLY, &direct);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no file ", path));
    return ErrnoError("cannot open", path);
  }
  const size_t total = header_size + data_size;
  std::shared_ptr<char> buffer = BufferPool::Get().Take(total);
  if (buffer == nullptr) {
    close(fd);
    return absl::ResourceExhaustedError(absl::StrCat("no memory to read ", path));
  }
  // Straight into the buffer, in one call (one request to the device for a chunk of the usual
  // size); the length stays aligned, and a padded file's padding comes along.
  auto got_or = ReadAt(fd, &direct, buffer.get(), RoundUp(total), 0, path);
  close(fd);
  if (!got_or.ok()) return got_or.status();
  const size_t got = *got_or;
  ChunkFileRead read;
  read.header.assign(buffer.get(), std::min(got, header_size));
  read.complete = got >= total;
  if (read.complete) {
    const char* data = buffer.get() + header_size;
    read.checksum = Checksum(data, data_size);
    read.data = ChunkBytes(data, data_size, std::move(buffer));
  }
  return read;
}

}  // namespace lumen::dfs
