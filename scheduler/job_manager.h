// Jobs: drivers that the head runs on its own machine for `lumen job submit`. Each job is a
// process of its own process group, started in the working directory it names, with
// LUMEN_ADDRESS and LUMEN_TOKEN set so that it joins this cluster; its stdout and stderr go to
// <session>/logs/job-<id>.log. It runs under the head, so the terminal that submitted it can
// go away.
//
//   JobManager jobs({.head_address = "127.0.0.1:6379", .token = token, .session_dir = dir});
//   absl::StatusOr<std::string> id = jobs.Submit({"python3", "run.py"}, "/home/me/project");
//   jobs.Stop(*id);  // SIGTERM to its process group, SIGKILL after the grace period
//
// States: PENDING (not started yet), RUNNING, SUCCEEDED (exit code 0), FAILED (another exit
// code, a signal, or it could not start) and STOPPED (ended by Stop). The last
// `max_finished_jobs` finished jobs are kept; their log files stay in the session folder.
//
// Thread-safe. A monitor thread starts the processes (their parent-death signal follows that
// thread, which lives as long as the manager), reaps them, and kills stopped ones that outlive
// the grace period. The destructor stops every job that still runs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace lumen::scheduler {

class JobManager {
 public:
  struct Options {
    std::string head_address{};
    std::string token{};
    std::string session_dir{};
    absl::Duration stop_grace = absl::Seconds(3);
    size_t max_finished_jobs = 1000;
  };

  explicit JobManager(Options options);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Queues a job; argv[0] is looked up in PATH. INVALID_ARGUMENT for an empty or oversized
  // command, or a working directory that is not an absolute path of a directory.
  absl::StatusOr<std::string> Submit(const std::vector<std::string>& argv,
                                     const std::string& working_dir);
  // NOT_FOUND for an unknown job; FAILED_PRECONDITION if it already ended.
  absl::Status Stop(const std::string& job_id);
  // Ends every job that runs (SIGTERM, the grace period, SIGKILL) and waits for them.
  void StopAll();

  // Jobs, newest first, as JSON objects.
  nlohmann::json List() const;
  absl::StatusOr<nlohmann::json> Get(const std::string& job_id) const;
  // The job's log file (a path this manager chose, never one from a request).
  absl::StatusOr<std::string> LogPath(const std::string& job_id) const;
  int NumRunning() const;

 private:
  enum class State { kPending, kRunning, kSucceeded, kFailed, kStopped };
  struct Job {
    std::string id;
    std::vector<std::string> argv;
    std::string working_dir;
    std::string log_path;
    State state = State::kPending;
    int pid = 0;
    int64_t submit_ms = 0;
    int64_t start_ms = 0;
    int64_t end_ms = 0;
    int exit_code = 0;
    std::string message;
    bool stop_requested = false;
    absl::Time kill_at = absl::InfiniteFuture();
  };

  void Loop();
  void StartLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnExitLocked(Job& job, int status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Job* FindLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Job* FindLocked(const std::string& job_id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  static nlohmann::json ToJson(const Job& job);

  const Options options_;

  mutable absl::Mutex mu_;
  std::map<uint64_t, Job> jobs_ ABSL_GUARDED_BY(mu_);  // by submission order
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // a job was submitted, or StopAll was called
  std::thread monitor_;
};

}  // namespace lumen::scheduler
