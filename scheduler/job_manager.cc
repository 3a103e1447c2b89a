#include "scheduler/job_manager.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/process.h"

namespace lumen::scheduler {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
constexpr size_t kMaxArgs = 4096;
constexpr size_t kMaxArgvBytes = size_t{256} * 1024;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

const char* StateName(int state) {
  static const char* kNames[] = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"};
  return kNames[state];
}

// How a shell would quote `arg`, for showing the command.
std::string Quote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_./=:,+@%") == std::string::npos) {
    return arg;
  }
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

JobManager::JobManager(Options options) : options_(std::move(options)) {
  monitor_ = std::thread([this] { Loop(); });
}

JobManager::~JobManager() { StopAll(); }

absl::StatusOr<std::string> JobManager::Submit(const std::vector<std::string>& argv,
                                               const std::string& working_dir) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("a job needs a command");
  size_t bytes = 0;
  for (const std::string& arg : argv) {
    bytes += arg.size() + 1;
    if (arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("a job's command may not contain NUL bytes");
    }
  }
  if (argv.size() > kMaxArgs || bytes > kMaxArgvBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a job's command may have at most ", kMaxArgs,
                                                   " words and ", kMaxArgvBytes, " bytes"));
  }
  struct stat st = {};
  if (working_dir.empty() || working_dir[0] != '/' || working_dir.find('\0') != std::string::npos ||
      stat(working_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the working directory '", working_dir,
                     "' is not an absolute path of a directory on the head's machine"));
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the head is shutting down");
  const uint64_t seq = next_id_++;
  Job& job = jobs_[seq];
  job.id = absl::StrCat("job-", seq);
  job.argv = argv;
  job.working_dir = working_dir;
  job.log_path = absl::StrCat(options_.session_dir, "/logs/", job.id, ".log");
  job.submit_ms = NowMs();
  wake_ = true;
  LUMEN_LOG(INFO) << "job " << job.id << " submitted: " << absl::StrJoin(argv, " ");
  return job.id;
}

void JobManager::StartLocked(Job& job) {
  internal::SpawnOptions spawn;
  // The shell changes to the working directory and becomes the command (found in PATH); its
  // errors ("can't cd", "not found") land in the job's log.
  spawn.argv = {"/bin/sh", "-c", R"(cd -- "$1" && shift && exec "$@")", "lumen-job",
                job.working_dir};
  spawn.argv.insert(spawn.argv.end(), job.argv.begin(), job.argv.end());
  spawn.env = {{"LUMEN_ADDRESS", options_.head_address},
               {"LUMEN_TOKEN", options_.token},
               {"LUMEN_JOB_ID", job.id},
               // The head's own role must not leak into its jobs.
               {"LUMEN_ROLE", ""},
               {"LUMEN_DAEMON_CONFIG", ""}};
  spawn.log_path = job.log_path;
  spawn.detach = false;
  spawn.death_signal = SIGKILL;
  spawn.new_process_group = true;
  absl::StatusOr<int> pid = internal::StartProcess(spawn);
  if (!pid.ok()) {
    job.state = State::kFailed;
    job.end_ms = NowMs();
    job.message = absl::StrCat("could not start: ", pid.status().message());
    LUMEN_LOG(WARNING) << "job " << job.id << " " << job.message;
    return;
  }
  job.pid = *pid;
  job.state = State::kRunning;
  job.start_ms = NowMs();
  LUMEN_LOG(INFO) << "job " << job.id << " started (pid " << job.pid << ")";
}

void JobManager::OnExitLocked(Job& job, int status) {
  job.end_ms = NowMs();
  job.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (job.stop_requested) {
    job.state = State::kStopped;
    job.message = absl::StrCat("stopped (", internal::DescribeWaitStatus(status), ")");
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    job.state = State::kSucceeded;
    job.message = "";
  } else {
    job.state = State::kFailed;
    job.message = internal::DescribeWaitStatus(status);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
      absl::StrAppend(&job.message, " (command not found?)");
    }
  }
  LUMEN_LOG(INFO) << "job " << job.id << " ended: " << StateName(static_cast<int>(job.state))
                  << " (" << internal::DescribeWaitStatus(status) << ")";
}

void JobManager::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.AwaitWithTimeout(absl::Condition(&wake_), kPollInterval);
    wake_ = false;
    const absl::Time now = absl::Now();
    std::vector<int> pids;
    bool running = false;
    for (auto& [seq, job] : jobs_) {
      if (job.state == State::kPending) {
        if (stopping_) {
          job.state = State::kStopped;
          job.end_ms = NowMs();
          job.message = "the head stopped before the job started";
        } else {
          StartLocked(job);
        }
      }
      if (job.state != State::kRunning) continue;
      running = true;
      pids.push_back(job.pid);
      if (stopping_ && !job.stop_requested) {
        job.stop_requested = true;
        job.kill_at = now + options_.stop_grace;
        kill(-job.pid, SIGTERM);
      }
      if (job.stop_requested && now >= job.kill_at) {
        kill(-job.pid, SIGKILL);
        job.kill_at = absl::InfiniteFuture();
      }
    }
    for (const auto& [pid, status] : internal::ReapChildren(pids)) {
      for (auto& [seq, job] : jobs_) {
        if (job.state == State::kRunning && job.pid == pid) OnExitLocked(job, status);
      }
    }
    TrimLocked();
    if (stopping_ && !running) return;
  }
}

absl::Status JobManager::Stop(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  switch (job->state) {
    case State::kPending:
      job->state = State::kStopped;
      job->end_ms = NowMs();
      job->message = "stopped before it started";
      return absl::OkStatus();
    case State::kRunning:
      if (!job->stop_requested) {
        job->stop_requested = true;
        job->kill_at = absl::Now() + options_.stop_grace;
        kill(-job->pid, SIGTERM);
        LUMEN_LOG(INFO) << "stopping job " << job->id << " (pid " << job->pid << ")";
      }
      return absl::OkStatus();
    default:
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " already ended: ", StateName(static_cast<int>(job->state))));
  }
}

void JobManager::StopAll() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    wake_ = true;
  }
  if (monitor_.joinable()) monitor_.join();
}

void JobManager::TrimLocked() {
  size_t finished = 0;
  for (const auto& [seq, job] : jobs_) {
    if (job.state != State::kPending && job.state != State::kRunning) ++finished;
  }
  for (auto it = jobs_.begin(); it != jobs_.end() && finished > options_.max_finished_jobs;) {
    if (it->second.state == State::kPending || it->second.state == State::kRunning) {
      ++it;
      continue;
    }
    it = jobs_.erase(it);
    --finished;
  }
}

JobManager::Job* JobManager::FindLocked(const std::string& job_id) {
  return const_cast<Job*>(static_cast<const JobManager*>(this)->FindLocked(job_id));
}

const JobManager::Job* JobManager::FindLocked(const std::string& job_id) const {
  for (const auto& [seq, job] : jobs_) {
    if (job.id == job_id) return &job;
  }
  return nullptr;
}

nlohmann::json JobManager::ToJson(const Job& job) {
  std::vector<std::string> quoted;
  quoted.reserve(job.argv.size());
  for (const std::string& arg : job.argv) quoted.push_back(Quote(arg));
  return {{"job_id", job.id},
          {"state", StateName(static_cast<int>(job.state))},
          {"entrypoint", absl::StrJoin(quoted, " ")},
          {"working_dir", job.working_dir},
          {"pid", job.pid},
          {"submit_ms", job.submit_ms},
          {"start_ms", job.start_ms},
          {"end_ms", job.end_ms},
          {"exit_code", job.exit_code},
          {"message", job.message}};
}

nlohmann::json JobManager::List() const {
  absl::MutexLock lock(&mu_);
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [seq, job] : jobs_) rows.push_back(ToJson(job));
  std::reverse(rows.begin(), rows.end());  // newest first
  return rows;
}

absl::StatusOr<nlohmann::json> JobManager::Get(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  const Job* job = FindLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return ToJson(*job);
}

absl::StatusOr<std::string> JobManager::LogPath(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  const Job* job = FindLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return job->log_path;
}

int JobManager::NumRunning() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [seq, job] : jobs_) n += job.state == State::kRunning ? 1 : 0;
  return n;
}

}  // namespace lumen::scheduler
