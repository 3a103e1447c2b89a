#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"

extern char** environ;

namespace lumen::internal {
namespace {

constexpr int kLogTailLines = 20;
constexpr size_t kLogTailBytes = size_t{64} * 1024;
constexpr size_t kMaxReadyMessage = size_t{64} * 1024;
// Without pidfd_open, StartDaemon checks for the daemon's exit this often.
constexpr int kExitPollMillis = 20;

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` to a close-on-exec descriptor >= 3, so that the child's dup2 onto 0-2 cannot clobber
// it.
absl::StatusOr<UniqueFd> AboveStdio(UniqueFd fd) {
  if (fd.get() >= 3) return fd;
  int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return absl::ErrnoToStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
  return UniqueFd(moved);
}

// The child's environment: the current one without LUMEN_READY_FD, with `overrides` applied (the
// last value of a repeated key wins).
std::vector<std::string> BuildEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  auto overridden = [&](absl::string_view key) {
    return key == kReadyFdEnv || std::any_of(overrides.begin(), overrides.end(),
                                             [&](const auto& entry) { return entry.first == key; });
  };
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text(*entry);
    if (!overridden(text.substr(0, text.find('=')))) env.emplace_back(text);
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    bool repeated_later =
        std::any_of(overrides.begin() + static_cast<std::ptrdiff_t>(i) + 1, overrides.end(),
                    [&](const auto& entry) { return entry.first == overrides[i].first; });
    if (!repeated_later) env.push_back(absl::StrCat(overrides[i].first, "=", overrides[i].second));
  }
  return env;
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Everything the child needs, prepared before fork so that the child only makes
// async-signal-safe calls.
struct ChildPlan {
  char* const* argv;
  char* const* envp;
  int stdin_fd;      // /dev/null
  int log_fd;        // -1: inherit stdout and stderr
  int error_fd;      // close-on-exec pipe: the child writes errno here if it cannot exec
  int keep_fd;       // -1, or an fd that stays open across exec
  int max_fd;        // highest fd to close if close_range is unavailable
  pid_t parent_pid;  // for the parent-death race check
  bool detach;
  int death_signal;
  bool new_process_group;
};

// Runs in the child between fork and execve: async-signal-safe calls only. Returns false, with
// errno set, if a step failed.
bool PrepareChild(const ChildPlan& plan) {
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &default_action, nullptr);
  }
  if (plan.detach) {
    if (setsid() < 0) return false;
  } else if (plan.death_signal != 0) {
    if (prctl(PR_SET_PDEATHSIG, plan.death_signal) != 0) return false;
    // The parent may have died before prctl took effect.
    if (getppid() != plan.parent_pid) _exit(127);
  }
  if (!plan.detach && plan.new_process_group && setpgid(0, 0) != 0) return false;
  if (dup2(plan.stdin_fd, STDIN_FILENO) < 0) return false;
  if (plan.log_fd >= 0 &&
      (dup2(plan.log_fd, STDOUT_FILENO) < 0 || dup2(plan.log_fd, STDERR_FILENO) < 0)) {
    return false;
  }
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd <= plan.max_fd; ++fd) {
      if (fd != plan.error_fd && fd != plan.keep_fd) close(fd);
    }
  }
  if (plan.keep_fd >= 0 && fcntl(plan.keep_fd, F_SETFD, 0) != 0) return false;
  sigset_t none;
  sigemptyset(&none);
  return sigprocmask(SIG_SETMASK, &none, nullptr) == 0;
}

[[noreturn]] void RunChild(const ChildPlan& plan) {
  if (PrepareChild(plan)) execve(plan.argv[0], plan.argv, plan.envp);
  int error = errno;
  ssize_t ignored = write(plan.error_fd, &error, sizeof(error));
  (void)ignored;
  _exit(127);
}

absl::StatusOr<int> Spawn(const SpawnOptions& options, int keep_fd) {
  if (options.argv.empty()) return absl::InvalidArgumentError("cannot start a process: empty argv");
  const std::string& program = options.argv[0];
  std::vector<char*> argv = CStrings(options.argv);
  std::vector<std::string> env_strings = BuildEnvironment(options.env);
  std::vector<char*> envp = CStrings(env_strings);

  UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) return absl::ErrnoToStatus(errno, "cannot open /dev/null");
  absl::StatusOr<UniqueFd> stdin_fd = AboveStdio(std::move(dev_null));
  if (!stdin_fd.ok()) return stdin_fd.status();
  UniqueFd log_fd;
  if (!options.log_path.empty()) {
    UniqueFd opened(
        open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!opened.valid()) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot start ", program, ": cannot open log ", options.log_path));
    }
    absl::StatusOr<UniqueFd> moved = AboveStdio(std::move(opened));
    if (!moved.ok()) return moved.status();
    log_fd = std::move(*moved);
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd error_read(pipe_fds[0]);
  absl::StatusOr<UniqueFd> error_write = AboveStdio(UniqueFd(pipe_fds[1]));
  if (!error_write.ok()) return error_write.status();

  struct rlimit limit = {};
  int max_fd = 1024;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    max_fd = static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20));
  }
  const ChildPlan plan{.argv = argv.data(),
                       .envp = envp.data(),
                       .stdin_fd = stdin_fd->get(),
                       .log_fd = log_fd.get(),
                       .error_fd = error_write->get(),
                       .keep_fd = keep_fd,
                       .max_fd = max_fd,
                       .parent_pid = getpid(),
                       .detach = options.detach,
                       .death_signal = options.death_signal,
                       .new_process_group = options.new_process_group};

  // Block every signal so that no handler of this process runs in the child before it resets them.
  sigset_t all_signals;
  sigset_t old_mask;
  sigfillset(&all_signals);
  pthread_sigmask(SIG_SETMASK, &all_signals, &old_mask);
  pid_t pid = fork();
  if (pid == 0) RunChild(plan);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  error_write->Reset();
  if (pid < 0) {
    return absl::ErrnoToStatus(fork_errno, absl::StrCat("cannot start ", program, ": fork"));
  }

  int child_errno = 0;
  ssize_t n;
  do {
    n = read(error_read.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    waitpid(pid, nullptr, 0);
    return absl::ErrnoToStatus(child_errno, absl::StrCat("cannot execute ", program));
  }
  return pid;
}

// The last kLogTailLines lines of the file at `path`, or a note saying why there are none.
std::string LogTail(const std::string& path) {
  if (path.empty()) return "";
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st = {};
  if (!fd.valid() || fstat(fd.get(), &st) != 0) {
    return absl::StrCat("; cannot read ", path, ": ", strerror(errno));
  }
  off_t start = std::max<off_t>(0, st.st_size - static_cast<off_t>(kLogTailBytes));
  std::string text(static_cast<size_t>(st.st_size - start), '\0');
  ssize_t n = pread(fd.get(), text.data(), text.size(), start);
  text.resize(std::max<ssize_t>(n, 0));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) return absl::StrCat("; ", path, " is empty");
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.size() > kLogTailLines) lines.erase(lines.begin(), lines.end() - kLogTailLines);
  return absl::StrCat("; last lines of ", path, ":\n", absl::StrJoin(lines, "\n"));
}

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Unescape(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == '\\' || text[i + 1] == 'n')) {
      out += text[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// True if `line` is `word` alone or `word` followed by a space; `*text` gets what follows.
bool ParseReport(absl::string_view line, absl::string_view word, std::string* text) {
  if (line == word) {
    text->clear();
    return true;
  }
  if (line.size() > word.size() && line.substr(0, word.size()) == word &&
      line[word.size()] == ' ') {
    *text = Unescape(line.substr(word.size() + 1));
    return true;
  }
  return false;
}

// True once the child `pid` has exited (or was reaped elsewhere); does not reap it.
bool HasExited(int pid) {
  siginfo_t info = {};
  int rc = waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT);
  return (rc == 0 && info.si_pid == pid) || (rc < 0 && errno == ECHILD);
}

// Reaps an exited (or SIGKILLed) child and describes its wait status.
std::string Reap(int pid) {
  int status = 0;
  pid_t rc;
  do {
    rc = waitpid(pid, &status, 0);
  } while (rc < 0 && errno == EINTR);
  return rc == pid ? DescribeWaitStatus(status) : "exit status unknown";
}

void Kill(int pid, bool detached) {
  if (detached) kill(-pid, SIGKILL);  // its process group: whatever it started, too
  kill(pid, SIGKILL);
}

// Waits until the child `pid` exits or `deadline` passes. `pidfd` may be invalid.
bool WaitForExit(int pid, const UniqueFd& pidfd, absl::Time deadline) {
  while (!HasExited(pid)) {
    absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) return false;
    int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(remaining)) + 1;
    if (pidfd.valid()) {
      pollfd fd = {pidfd.get(), POLLIN, 0};
      poll(&fd, 1, timeout_ms);
    } else {
      poll(nullptr, 0, std::min(timeout_ms, kExitPollMillis));
    }
  }
  return true;
}

void Report(absl::string_view word, const std::string& message) {
  static std::atomic<bool> reported{false};
  const char* env = std::getenv(kReadyFdEnv);
  int fd = -1;
  if (env == nullptr || !absl::SimpleAtoi(env, &fd) || fd < 3) return;
  if (reported.exchange(true)) return;
  std::string line = absl::StrCat(word, " ", Escape(message), "\n");
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = write(fd, line.data() + sent, line.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      LUMEN_LOG(WARNING) << "cannot report readiness on fd " << fd << ": " << strerror(errno);
      break;
    }
    sent += static_cast<size_t>(n);
  }
  close(fd);
}

}  // namespace

absl::StatusOr<int> StartProcess(const SpawnOptions& options) { return Spawn(options, -1); }

absl::StatusOr<std::string> StartDaemon(const SpawnOptions& options, absl::Duration timeout,
                                        int* pid_out) {
  if (pid_out != nullptr) *pid_out = 0;
  const absl::Time deadline = absl::Now() + timeout;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair");
  }
  UniqueFd ours(fds[0]);
  absl::StatusOr<UniqueFd> theirs = AboveStdio(UniqueFd(fds[1]));
  if (!theirs.ok()) return theirs.status();
  SpawnOptions with_fd = options;
  with_fd.env.emplace_back(kReadyFdEnv, std::to_string(theirs->get()));
  absl::StatusOr<int> started = Spawn(with_fd, theirs->get());
  theirs->Reset();
  if (!started.ok()) return started.status();
  const int pid = *started;
  if (pid_out != nullptr) *pid_out = pid;
  const std::string& program = options.argv[0];
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));

  // Reads until a full line arrives, the daemon exits, or the deadline passes.
  std::string received;
  bool eof = false;
  bool exited = false;
  while (received.find('\n') == std::string::npos && !(eof && (exited || !received.empty()))) {
    if (received.size() > kMaxReadyMessage) break;
    if (!exited && HasExited(pid)) exited = true;
    if (exited) {
      // Drain what it wrote before it exited; a grandchild may still hold the socket open.
      char buffer[4096];
      ssize_t n = recv(ours.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        received.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        eof = true;
      }
      continue;
    }
    absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      Kill(pid, options.detach);
      Reap(pid);
      return absl::DeadlineExceededError(absl::StrCat(
          program,
          eof ? " closed its readiness socket without reporting and did not exit"
              : " did not report readiness",
          " within ", absl::FormatDuration(timeout), "; killed it", LogTail(options.log_path)));
    }
    pollfd poll_fds[2];
    int count = 0;
    if (!eof) poll_fds[count++] = {ours.get(), POLLIN, 0};
    if (pidfd.valid()) poll_fds[count++] = {pidfd.get(), POLLIN, 0};
    int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(remaining)) + 1;
    if (!pidfd.valid()) timeout_ms = std::min(timeout_ms, kExitPollMillis);
    if (poll(poll_fds, count, timeout_ms) <= 0) continue;
    if (!eof && poll_fds[0].revents != 0) {
      char buffer[4096];
      ssize_t n = recv(ours.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        received.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        eof = true;
      }
    }
  }

  if (received.empty()) {
    return absl::InternalError(absl::StrCat(program, " exited before reporting readiness (",
                                            Reap(pid), ")", LogTail(options.log_path)));
  }
  absl::string_view line(received);
  line = line.substr(0, line.find('\n'));
  std::string text;
  if (line.size() <= kMaxReadyMessage && ParseReport(line, "OK", &text)) return text;
  if (line.size() <= kMaxReadyMessage && ParseReport(line, "ERR", &text)) {
    if (!WaitForExit(pid, pidfd, deadline)) Kill(pid, options.detach);
    Reap(pid);
    return absl::FailedPreconditionError(text);
  }
  if (!exited) Kill(pid, options.detach);
  Reap(pid);
  return absl::InternalError(absl::StrCat(program, " sent an unrecognized readiness report \"",
                                          line.substr(0, 200), "\"; killed it"));
}

void NotifyReady(const std::string& message) { Report("OK", message); }

void NotifyFailed(const std::string& message) { Report("ERR", message); }

std::vector<std::pair<int, int>> ReapChildren() {
  std::vector<std::pair<int, int>> reaped;
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) reaped.emplace_back(pid, status);
  return reaped;
}

std::vector<std::pair<int, int>> ReapChildren(const std::vector<int>& pids) {
  std::vector<std::pair<int, int>> reaped;
  for (const int pid : pids) {
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid) reaped.emplace_back(pid, status);
  }
  return reaped;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* description = sigdescr_np(sig);
    return absl::StrCat("killed by signal ", sig,
                        description != nullptr ? absl::StrCat(" (", description, ")") : "",
                        WCOREDUMP(status) ? ", core dumped" : "");
  }
  if (WIFSTOPPED(status)) return absl::StrCat("stopped by signal ", WSTOPSIG(status));
  return absl::StrCat("wait status ", status);
}

std::string SelfExecutable() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : "";
}

}  // namespace lumen::internal
