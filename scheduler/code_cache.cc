#include "scheduler/code_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "proto/code.grpc.pb.h"

namespace lumen::scheduler {

namespace {

constexpr size_t kReadChunk = 1 << 20;

absl::Status ErrnoError(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

std::string HexDigest(const XXH128_hash_t& hash) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  return internal::Hex(
      std::string(reinterpret_cast<const char*>(canonical.digest), sizeof(canonical.digest)));
}

// XXH3-128 over bytes given piece by piece.
class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) { XXH3_128bits_reset(state_); }
  ~Hasher() { XXH3_freeState(state_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void Update(const char* data, size_t size) { XXH3_128bits_update(state_, data, size); }
  std::string Digest() const { return HexDigest(XXH3_128bits_digest(state_)); }

 private:
  XXH3_state_t* state_;
};

// Calls `each` with the file's bytes from its start, in chunks.
absl::Status ReadAll(int fd, const std::function<absl::Status(const char*, size_t)>& each) {
  std::string buffer(kReadChunk, '\0');
  off_t offset = 0;
  while (true) {
    const ssize_t n = pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read the executable");
    if (n == 0) return absl::OkStatus();
    if (auto status = each(buffer.data(), static_cast<size_t>(n)); !status.ok()) return status;
    offset += n;
  }
}

absl::Status WriteFully(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot write to the code cache");
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

CodeCache::Job CodeCache::Ready(std::string hash, std::string path) {
  Job job;
  job.state = State::kReady;
  job.hash = std::move(hash);
  job.path = std::move(path);
  return job;
}

CodeCache::Job CodeCache::Failed(std::string hash, std::string error) {
  Job job;
  job.state = State::kFailed;
  job.hash = std::move(hash);
  job.error = std::move(error);
  job.failed_at = absl::Now();
  return job;
}

CodeCache::CodeCache(Options options) : options_(std::move(options)) {}

CodeCache::~CodeCache() { Stop(); }

void CodeCache::Stop() {
  std::map<uint64_t, std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* context : fetching_) context->TryCancel();
    threads.swap(threads_);
    changed_.SignalAll();
  }
  for (auto& [job, thread] : threads) thread.join();
}

absl::StatusOr<std::string> CodeCache::HashFd(int fd, const std::function<bool()>& stopped) {
  Hasher hasher;
  auto status = ReadAll(fd, [&hasher, &stopped](const char* data, size_t size) {
    hasher.Update(data, size);
    return stopped && stopped() ? absl::CancelledError("the node manager is stopping")
                                : absl::OkStatus();
  });
  if (!status.ok()) return status;
  return hasher.Digest();
}

absl::StatusOr<std::string> CodeCache::HashFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot open ", path));
  absl::Cleanup close_fd = [fd] { close(fd); };
  return HashOpenFile(fd);
}

absl::StatusOr<std::string> CodeCache::HashOpenFile(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoError("cannot stat the executable");
  const FileKey key{st.st_dev, st.st_ino, st.st_size,
                    static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  {
    absl::MutexLock lock(&mu_);
    if (auto it = hashes_.find(key); it != hashes_.end()) return it->second;
  }
  auto hash = HashFd(fd, [this] {
    absl::MutexLock lock(&mu_);
    return stopping_;
  });
  if (!hash.ok()) return hash.status();
  absl::MutexLock lock(&mu_);
  hashes_[key] = *hash;
  return hash;
}

std::string CodeCache::CachePath(const std::string& hash) const {
  return absl::StrCat(options_.dir, "/", hash);
}

absl::StatusOr<bool> CodeCache::RegisterDriver(uint64_t job, int pid, const std::string& path,
                                               std::function<void(uint64_t job)> hashed) {
  const std::string exe = absl::StrCat("/proc/", pid, "/exe");
  const int fd = open(exe.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot open ", exe));
  struct stat running {};
  struct stat named {};
  const bool same_file = fstat(fd, &running) == 0 && stat(path.c_str(), &named) == 0 &&
                         running.st_dev == named.st_dev && running.st_ino == named.st_ino;
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    close(fd);
    return absl::UnavailableError("the node manager is stopping");
  }
  JoinFinishedLocked();
  // Where the driver's path is what it runs, the job runs from it at once; otherwise (another
  // mount namespace, or the file was replaced) from the copy, once it is made.
  Job entry = same_file ? Ready("", path) : Job{};
  entry.hashing = true;
  jobs_[job] = std::move(entry);
  threads_[job] =
      std::thread([this, job, fd, same_path = same_file ? path : "", hashed = std::move(hashed)] {
        // Listed as finished only after `hashed` returned: Stop joins it, and a caller of
        // RegisterDriver that holds the node manager's lock (which `hashed` takes) never does.
        if (Record(job, HashDriver(job, fd, same_path))) hashed(job);
        absl::MutexLock lock(&mu_);
        finished_.push_back(job);
      });
  return same_file;
}

CodeCache::Job CodeCache::HashDriver(uint64_t job, int fd, const std::string& same_path) {
  absl::Cleanup close_fd = [fd] { close(fd); };
  auto hash = HashOpenFile(fd);
  if (!hash.ok()) {
    if (!same_path.empty()) return Ready("", same_path);
    return Failed(
        "", absl::StrCat("cannot read the executable of job ", job, ": ", hash.status().message()));
  }
  if (!same_path.empty()) {
    {
      absl::MutexLock lock(&mu_);
      auto& files = files_[*hash];
      if (std::find(files.begin(), files.end(), same_path) == files.end()) {
        files.push_back(same_path);
      }
    }
    return Ready(*hash, same_path);
  }
  std::string file = FileWithHash(*hash);
  if (file.empty()) {
    if (auto status = CopyToCache(fd, *hash); !status.ok()) {
      return Failed(*hash, absl::StrCat("cannot keep a copy of the executable of job ", job, ": ",
                                        status.message()));
    }
    file = CachePath(*hash);
  }
  return Ready(*hash, std::move(file));
}

CodeCache::JobHash CodeCache::HashOf(uint64_t job) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return {};
  return {.hash = it->second.hash, .pending = it->second.hashing};
}

std::string CodeCache::FileWithHash(const std::string& hash) {
  std::vector<std::string> candidates;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = files_.find(hash); it != files_.end()) candidates = it->second;
  }
  candidates.push_back(CachePath(hash));
  for (const std::string& file : candidates) {
    auto actual = HashFile(file);
    if (actual.ok() && *actual == hash) return file;
  }
  return "";
}

std::string CodeCache::RunnablePath(uint64_t job, const std::string& path) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job);
  if (it == jobs_.end() || it->second.state != State::kReady) return path;
  return it->second.path;
}

absl::StatusOr<bool> CodeCache::Prepare(uint64_t job, const std::string& path,
                                        absl::Time deadline) {
  if (path.empty() || path == options_.own_executable) return true;
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the node manager is stopping");
  auto known = jobs_.find(job);
  if (known != jobs_.end() && known->second.state == State::kFailed &&
      absl::Now() - known->second.failed_at >= options_.retry_after) {
    jobs_.erase(known);  // its cause may be gone (a source node that was out of reach)
    known = jobs_.end();
  }
  if (known == jobs_.end()) {
    JoinFinishedLocked();
    jobs_[job] = Job{};
    threads_[job] = std::thread([this, job, path] { PrepareJob(job, path); });
  }
  while (!stopping_ && jobs_[job].state == State::kPreparing) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  const Job& entry = jobs_[job];
  if (entry.state == State::kFailed) return absl::FailedPreconditionError(entry.error);
  return entry.state == State::kReady;
}

void CodeCache::JoinFinishedLocked() {
  // Their threads have finished, or are just returning from Finish.
  for (uint64_t done : finished_) {
    if (auto it = threads_.find(done); it != threads_.end()) {
      it->second.join();
      threads_.erase(it);
    }
  }
  finished_.clear();
}

bool CodeCache::Record(uint64_t job, Job outcome) {
  if (outcome.state == State::kFailed) {
    LUMEN_LOG(WARNING) << outcome.error;
  } else {
    LUMEN_LOG(INFO) << "job " << job << " runs " << outcome.path;
  }
  absl::MutexLock lock(&mu_);
  jobs_[job] = std::move(outcome);
  changed_.SignalAll();
  return !stopping_;
}

void CodeCache::Finish(uint64_t job, Job outcome) {
  Record(job, std::move(outcome));
  absl::MutexLock lock(&mu_);
  finished_.push_back(job);
}

void CodeCache::PrepareJob(uint64_t job, const std::string& path) {
  // Where the job's executable comes from: the head's job table, filled by the driver's node.
  proto::DriverJobRecord record;
  auto head = proto::HeadService::NewStub(internal::MakeChannel(options_.head_address));
  const absl::Time started = absl::Now();
  grpc::Status looked_up;
  while (true) {
    grpc::ClientContext context;
    internal::PrepareContext(&context, options_.token, absl::Seconds(5));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      fetching_.push_back(&context);
    }
    proto::GetDriverJobRequest request;
    request.set_job_id(job);
    looked_up = head->GetDriverJob(&context, request, &record);
    absl::MutexLock lock(&mu_);
    std::erase(fetching_, &context);
    if (stopping_ || (looked_up.ok() && !record.executable_hash_pending())) break;
    // A job the head does not know yet is asked about for job_lookup_timeout; one whose
    // driver's node is still hashing its executable, for as long as a fetch may take.
    const absl::Duration limit =
        looked_up.ok() ? options_.fetch_timeout : options_.job_lookup_timeout;
    if (absl::Now() - started >= limit) break;
    changed_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
  }
  if (!looked_up.ok() || record.executable_hash().empty()) {
    // Nothing to fetch by: the path itself, as before code was distributed.
    if (access(path.c_str(), X_OK) == 0) return Finish(job, Ready("", path));
    return Finish(
        job, Failed("", absl::StrCat("the executable of job ", job, " (", path,
                                     ") is not on this node, and the head knows no copy to fetch",
                                     looked_up.ok() ? "" : ": ", looked_up.error_message())));
  }
  const std::string& hash = record.executable_hash();
  if (std::string file = FileWithHash(hash); !file.empty()) {
    return Finish(job, Ready(hash, file));
  }
  if (auto actual = HashFile(record.executable()); actual.ok() && *actual == hash) {
    return Finish(job, Ready(hash, record.executable()));
  }
  LUMEN_LOG(INFO) << "job " << job << ": fetching its executable " << record.executable()
                  << " (hash " << hash << ") from " << record.code_source();
  if (auto status = Fetch(record.code_source(), hash); !status.ok()) {
    return Finish(
        job, Failed(hash, absl::StrCat("cannot fetch the executable of job ", job, " (",
                                       record.executable(), ", hash ", hash, ") from the node at ",
                                       record.code_source(), ": ", status.message())));
  }
  {
    absl::MutexLock lock(&mu_);
    files_[hash].push_back(CachePath(hash));
  }
  Finish(job, Ready(hash, CachePath(hash)));
}

absl::Status CodeCache::CopyToCache(int fd, const std::string& hash) {
  return WriteCacheFile(hash, [fd](const Sink& sink) { return ReadAll(fd, sink); });
}

absl::Status CodeCache::Fetch(const std::string& source, const std::string& hash) {
  if (source.empty()) return absl::NotFoundError("no node registered it");
  auto stub = proto::CodeService::NewStub(internal::MakeChannel(source));
  grpc::ClientContext context;
  internal::PrepareContext(&context, options_.token, options_.fetch_timeout);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("the node manager is stopping");
    fetching_.push_back(&context);
  }
  absl::Cleanup forget = [this, &context] {
    absl::MutexLock lock(&mu_);
    std::erase(fetching_, &context);
  };
  proto::FetchExecutableRequest request;
  request.set_hash(hash);
  auto reader = stub->FetchExecutable(&context, request);
  uint64_t expected = 0;
  uint64_t received = 0;
  bool finished = false;  // Finish was called (once only)
  auto written = WriteCacheFile(hash, [&](const Sink& sink) -> absl::Status {
    proto::ExecutableChunk chunk;
    while (reader->Read(&chunk)) {
      if (received == 0) expected = chunk.total_size();
      received += chunk.data().size();
      if (received > expected) {
        return absl::DataLossError(absl::StrCat("it sent more than the ", expected, " bytes"));
      }
      if (auto status = sink(chunk.data().data(), chunk.data().size()); !status.ok()) {
        return status;
      }
    }
    finished = true;
    if (auto status = internal::FromGrpc(reader->Finish(), "the transfer failed"); !status.ok()) {
      return status;
    }
    if (received != expected) {
      return absl::DataLossError(
          absl::StrCat("it sent ", received, " of the ", expected, " bytes"));
    }
    return absl::OkStatus();
  });
  if (!finished) {
    context.TryCancel();
    // Drain so the call ends before its context goes.
    proto::ExecutableChunk ignored;
    while (reader->Read(&ignored)) {
    }
    (void)reader->Finish();
  }
  return written;
}

absl::Status CodeCache::WriteCacheFile(const std::string& hash,
                                       const std::function<absl::Status(const Sink&)>& fill) {
  std::error_code error;
  std::filesystem::create_directories(options_.dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create the code cache ", options_.dir, ": ", error.message()));
  }
  const std::string final_path = CachePath(hash);
  const std::string temp_path =
      absl::StrCat(final_path, ".tmp-", internal::Hex(internal::RandomBytes(4)));
  const int fd = open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot create ", temp_path));
  bool done = false;
  absl::Cleanup remove_temp = [&] {
    if (!done) unlink(temp_path.c_str());
  };
  Hasher hasher;
  absl::Status status = fill([fd, &hasher](const char* data, size_t size) {
    hasher.Update(data, size);
    return WriteFully(fd, data, size);
  });
  if (status.ok() && hasher.Digest() != hash) {
    status =
        absl::DataLossError(absl::StrCat("its bytes hash to ", hasher.Digest(), ", not to ", hash));
  }
  // Closed before anyone may exec it (a file open for writing cannot be executed).
  if (status.ok() && (fchmod(fd, 0755) != 0 || fsync(fd) != 0)) {
    status = ErrnoError(absl::StrCat("cannot finish ", temp_path));
  }
  if (close(fd) != 0 && status.ok()) status = ErrnoError(absl::StrCat("cannot close ", temp_path));
  if (status.ok() && rename(temp_path.c_str(), final_path.c_str()) != 0) {
    status = ErrnoError(absl::StrCat("cannot move ", temp_path, " into place"));
  }
  done = status.ok();
  return status;
}

}  // namespace lumen::scheduler
