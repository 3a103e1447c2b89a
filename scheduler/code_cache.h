// Makes each job's executable runnable on this node, so that a job runs on hosts its binary was
// never copied to (design.md, "Code on workers").
//
// On the driver's node, RegisterDriver makes what the driver really runs (/proc/<pid>/exe)
// runnable here: the driver's path when it is that same file on this host, else a copy in the
// cache. It returns before reading a byte: a large binary on a slow disk takes seconds to read,
// and the driver's registration waits on it (with a deadline). Hashing it, and the copy, go on in
// the background; the node manager reports the job's start at once with its hash pending, and
// again with the hash when it is known. The head's job table keeps the hash and the node's
// address. Any node asked to run the job's workers or actors calls Prepare: it asks the head for
// the job's row (waiting while its hash is pending) and uses, in order, a cache file named by the
// hash, the driver's path if it holds the same bytes here, or the bytes fetched from the node
// that registered them (CodeService.FetchExecutable), checked against the hash and written
// atomically (temp file, then rename) with mode 0755. Content hashes are XXH3-128 (xxHash), in
// hex.
//
//   CodeCache code({.dir = session + "/code/node-" + id, ...});
//   code.RegisterDriver(job, pid, path, [](uint64_t job) { report code.HashOf(job); });
//   absl::StatusOr<bool> ready = code.Prepare(job, path, deadline);  // false: still fetching
//   spawn code.RunnablePath(job, path);
//
// Thread-safe. Each job's preparation runs on a thread of its own; Stop() cancels fetches and
// joins those threads (the destructor calls it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace lumen::scheduler {

class CodeCache {
 public:
  struct Options {
    std::string dir;             // the cache folder, created on first use
    std::string own_executable;  // this node's own binary: always runnable as it is
    std::string head_address;
    std::string token;
    // How long Prepare keeps asking the head about a job it does not know yet (its driver's
    // node reports the job asynchronously).
    absl::Duration job_lookup_timeout = absl::Seconds(10);
    // A fetch that takes longer fails; so does a wait for a hash pending for longer.
    absl::Duration fetch_timeout = absl::Minutes(5);
    // A job whose preparation failed fails at once for this long, then is prepared again.
    absl::Duration retry_after = absl::Seconds(10);
  };

  explicit CodeCache(Options options);
  ~CodeCache();
  CodeCache(const CodeCache&) = delete;
  CodeCache& operator=(const CodeCache&) = delete;

  // Local driver `pid` started `job`, naming its executable `path`. Returns at once, without
  // reading the executable: true if the job is runnable here already (`path` is the file the
  // driver runs), false if a copy must be made first (Prepare waits for it). Hashing, and the
  // copy, run on a thread of the job's; `hashed(job)` is called there once HashOf(job) is final
  // (not when Stop cut it short). An error if /proc/<pid>/exe cannot be opened.
  [[nodiscard]] absl::StatusOr<bool> RegisterDriver(uint64_t job, int pid, const std::string& path,
                                                    std::function<void(uint64_t job)> hashed);
  struct JobHash {
    std::string hash;      // "" if unknown
    bool pending = false;  // RegisterDriver is still hashing it
  };
  // The hash of `job`'s executable as RegisterDriver or Prepare found it.
  JobHash HashOf(uint64_t job) const;

  // Makes `job`'s executable (named `path` by whoever asks) runnable here, waiting up to
  // `deadline`: true once it is, false while it is still being prepared (ask again), an error
  // naming the job, the hash and the source if it cannot be (kept for options.retry_after:
  // calls meanwhile fail the same way at once).
  [[nodiscard]] absl::StatusOr<bool> Prepare(uint64_t job, const std::string& path,
                                             absl::Time deadline);
  // The file to start for `job` (never blocks): what Prepare made ready, else `path` itself.
  std::string RunnablePath(uint64_t job, const std::string& path) const;
  // A readable file on this node whose content hash is `hash` right now; "" if none.
  std::string FileWithHash(const std::string& hash);
  // The cache file a fetched executable with `hash` is kept in.
  std::string CachePath(const std::string& hash) const;

  void Stop();

  // The content hash of the file open at `fd` (read from its start), in hex.
  // Cancelled if `stopped` (when given) answers true between reads.
  static absl::StatusOr<std::string> HashFd(int fd, const std::function<bool()>& stopped = {});

 private:
  enum class State { kPreparing, kReady, kFailed };
  struct Job {
    State state = State::kPreparing;
    std::string hash;
    std::string path;   // kReady: the file to start
    std::string error;  // kFailed
    absl::Time failed_at;
    bool hashing = false;  // RegisterDriver's thread has not finished
  };
  static Job Ready(std::string hash, std::string path);
  static Job Failed(std::string hash, std::string error);
  // A file as stat sees it: (device, inode, size, mtime ns). Its hash is remembered under it.
  using FileKey = std::tuple<dev_t, ino_t, off_t, int64_t>;

  // Runs on a thread of its own: decides where `job`'s executable comes from, fetches it if it
  // must, and records the outcome.
  void PrepareJob(uint64_t job, const std::string& path);
  // Runs on a thread of its own: hashes the executable a driver runs (open at `fd`, which it
  // closes) and returns where `job` runs it from: `same_path` if the driver's path is that
  // file, else a copy in the cache.
  Job HashDriver(uint64_t job, int fd, const std::string& same_path);
  // The hash of the file at `path`, or open at `fd` (remembered per FileKey); an error if it
  // cannot be read, or Stop was called meanwhile.
  absl::StatusOr<std::string> HashFile(const std::string& path);
  absl::StatusOr<std::string> HashOpenFile(int fd);
  // Joins the threads of jobs whose preparation has finished.
  void JoinFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copies the file open at `fd` into the cache as `hash` (checked), atomically.
  absl::Status CopyToCache(int fd, const std::string& hash);
  // Fetches `hash` from the node manager at `source` into the cache.
  absl::Status Fetch(const std::string& source, const std::string& hash);
  // Writes what `fill` passes to its sink into a temp file, checks it against `hash`, and
  // renames it into place as CachePath(hash), mode 0755.
  using Sink = std::function<absl::Status(const char* data, size_t size)>;
  absl::Status WriteCacheFile(const std::string& hash,
                              const std::function<absl::Status(const Sink&)>& fill);
  // Makes `outcome` `job`'s state; false if Stop was called.
  bool Record(uint64_t job, Job outcome);
  // Records the outcome of the thread of `job` (PrepareJob), which then ends.
  void Finish(uint64_t job, Job outcome);

  // Set at construction.
  const Options options_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // a job's state changed, or Stop
  std::map<uint64_t, Job> jobs_ ABSL_GUARDED_BY(mu_);
  // Files that held a hash when last seen (re-checked before they are served or run).
  std::map<std::string, std::vector<std::string>> files_ ABSL_GUARDED_BY(mu_);
  std::map<FileKey, std::string> hashes_ ABSL_GUARDED_BY(mu_);
  std::vector<grpc::ClientContext*> fetching_ ABSL_GUARDED_BY(mu_);  // cancelled by Stop
  std::map<uint64_t, std::thread> threads_ ABSL_GUARDED_BY(mu_);     // by job
  std::vector<uint64_t> finished_ ABSL_GUARDED_BY(mu_);              // jobs whose thread is done
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::scheduler
