#include "objectstore/shm_region.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace lumen::objectstore {
namespace {

// Returns `name` with exactly one leading '/', or an error if it cannot name a region.
absl::StatusOr<std::string> ShmName(const std::string& name) {
  std::string shm_name = (!name.empty() && name[0] == '/') ? name : "/" + name;
  if (shm_name.size() == 1 || shm_name.find('/', 1) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid shared memory name '", name, "': must be non-empty without '/'"));
  }
  return shm_name;
}

absl::Status ErrnoError(int err, const std::string& what, const std::string& name) {
  std::string message = absl::StrCat(what, " ", name, ": ", std::strerror(err));
  switch (err) {
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case ENOSPC:
    case ENOMEM:
    case EFBIG:
    case EFAULT:  // MADV_POPULATE_WRITE reports a SIGBUS (tmpfs full) as EFAULT.
      return absl::ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

size_t PageSize() {
  static const auto page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page_size;
}

// Makes every page of the freshly created region resident and mapped writable here. fallocate
// reserves tmpfs space first so a full /dev/shm is an error instead of a SIGBUS on first touch.
absl::Status Populate(int fd, uint8_t* data, size_t size, const std::string& name) {
  if (fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0 && errno != EOPNOTSUPP &&
      errno != ENOSYS) {
    return ErrnoError(errno, "cannot reserve shared memory for", name);
  }
  int rc;
  do {
    rc = madvise(data, size, MADV_POPULATE_WRITE);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return absl::OkStatus();
  if (errno != EINVAL) return ErrnoError(errno, "cannot populate shared memory", name);
  // Kernels before 5.14 lack MADV_POPULATE_WRITE: write one byte per page instead.
  const size_t page = PageSize();
  for (size_t offset = 0; offset < size; offset += page) {
    reinterpret_cast<volatile uint8_t*>(data)[offset] = 0;
  }
  return absl::OkStatus();
}

}  // namespace

ShmRegion::ShmRegion(std::string name, int fd, uint8_t* data, size_t size)
    : name_(std::move(name)), fd_(fd), data_(data), size_(size) {}

ShmRegion::~ShmRegion() {
  if (munmap(data_, size_) != 0) {
    LUMEN_LOG(WARNING) << "munmap of shared memory " << name_
                       << " failed: " << std::strerror(errno);
  }
  close(fd_);
}

absl::StatusOr<std::unique_ptr<ShmRegion>> ShmRegion::Create(const std::string& name, size_t size) {
  absl::StatusOr<std::string> shm_name = ShmName(name);
  if (!shm_name.ok()) return shm_name.status();
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create shared memory ", *shm_name, " of size 0"));
  }
  int fd = shm_open(shm_name->c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(errno, "cannot create shared memory", *shm_name);
  // Held while this region lives here: RemoveAbandoned in another process leaves it alone.
  // (Blocking: such a sweep holds it only to look, never while this process is alive.)
  while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {
  }

  // Undoes everything on a failure below and returns `status`.
  auto fail = [&](absl::Status status, void* mapping) {
    if (mapping != nullptr) munmap(mapping, size);
    close(fd);
    shm_unlink(shm_name->c_str());
    return status;
  };
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return fail(ErrnoError(errno, "cannot size shared memory", *shm_name), nullptr);
  }
  void* mapping = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) {
    return fail(ErrnoError(errno, "cannot map shared memory", *shm_name), nullptr);
  }
  auto* data = static_cast<uint8_t*>(mapping);
  if (absl::Status status = Populate(fd, data, size, *shm_name); !status.ok()) {
    return fail(std::move(status), mapping);
  }
  LUMEN_LOG(DEBUG) << "created shared memory " << *shm_name << " of " << size << " bytes";
  return std::unique_ptr<ShmRegion>(new ShmRegion(*std::move(shm_name), fd, data, size));
}

absl::StatusOr<std::unique_ptr<ShmRegion>> ShmRegion::Open(const std::string& name) {
  absl::StatusOr<std::string> shm_name = ShmName(name);
  if (!shm_name.ok()) return shm_name.status();
  int fd = shm_open(shm_name->c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "cannot open shared memory", *shm_name);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status status = ErrnoError(errno, "cannot stat shared memory", *shm_name);
    close(fd);
    return status;
  }
  if (st.st_size <= 0) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("shared memory ", *shm_name, " has size 0; it is not initialized yet"));
  }
  const auto size = static_cast<size_t>(st.st_size);
  void* mapping = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) {
    absl::Status status = ErrnoError(errno, "cannot map shared memory", *shm_name);
    close(fd);
    return status;
  }
  return std::unique_ptr<ShmRegion>(
      new ShmRegion(*std::move(shm_name), fd, static_cast<uint8_t*>(mapping), size));
}

absl::Status ShmRegion::Unlink(const std::string& name) {
  absl::StatusOr<std::string> shm_name = ShmName(name);
  if (!shm_name.ok()) return shm_name.status();
  if (shm_unlink(shm_name->c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "cannot unlink shared memory", *shm_name);
  }
  return absl::OkStatus();
}

ShmRegion::Removed ShmRegion::RemoveAbandoned(
    const std::string& prefix, const std::function<bool(const std::string& name)>& creator_gone) {
  Removed removed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !creator_gone(name)) continue;
    const std::string shm_name = "/" + name;
    const int fd = shm_open(shm_name.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) continue;  // gone meanwhile, or not ours to open
    struct stat st {};
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
        shm_unlink(shm_name.c_str()) == 0) {
      ++removed.regions;
      removed.bytes += static_cast<uint64_t>(st.st_size);
    }
    close(fd);
  }
  return removed;
}

void ShmRegion::Prefault(size_t offset, size_t len) const {
  if (offset >= size_ || len == 0) return;
  if (len > size_ - offset) len = size_ - offset;
  constexpr size_t kChunk = size_t{2} << 20;
  const size_t first = offset / kChunk;
  const size_t last = (offset + len - 1) / kChunk;
  absl::MutexLock lock(&prefault_mu_);
  if (prefaulted_.empty()) prefaulted_.resize((size_ + kChunk - 1) / kChunk, false);
  size_t run_start = first;
  // Populates runs of chunks not yet done with one madvise each.
  for (size_t chunk = first; chunk <= last + 1; ++chunk) {
    const bool todo = chunk <= last && !prefaulted_[chunk];
    if (todo) {
      prefaulted_[chunk] = true;
      continue;
    }
    if (chunk > run_start) {
      const size_t begin = run_start * kChunk;
      const size_t end = std::min(size_, chunk * kChunk);
      // Best effort: a failure only means the writer takes the page faults itself.
      (void)madvise(data_ + begin, end - begin, MADV_POPULATE_WRITE);
    }
    run_start = chunk + 1;
  }
}

}  // namespace lumen::objectstore
