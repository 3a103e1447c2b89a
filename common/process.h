// Starting Lumen's processes: daemons (head, node) and the workers a node manager runs.
//
//   SpawnOptions options{.argv = {"/usr/bin/lumen_head", "--port=6379"},
//                        .log_path = session.LogPath("head.out"), .detach = true};
//   int pid = 0;
//   absl::StatusOr<std::string> ready = StartDaemon(options, absl::Seconds(30), &pid);
//
// A daemon reports readiness with NotifyReady() (or failure with NotifyFailed()) through a
// connected Unix stream socket (used like a pipe) whose fd number it finds in the environment
// variable LUMEN_READY_FD. The wire format is one line, "OK <text>\n" or "ERR <text>\n", where a
// newline in <text> is written as "\n" (backslash, n) and a backslash as "\\". A shell script
// can report with
//
//   echo "OK listening on 127.0.0.1:6379" >&"$LUMEN_READY_FD"
//
// Thread-safety: every function may be called from any thread. StartProcess and StartDaemon fork;
// the child runs only async-signal-safe calls before execve, so they are safe in multi-threaded
// programs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lumen::internal {

// Name of the environment variable through which StartDaemon passes the readiness fd.
inline constexpr char kReadyFdEnv[] = "LUMEN_READY_FD";

struct SpawnOptions {
  // argv[0] is the path of the executable (PATH is not searched).
  std::vector<std::string> argv{};
  // Added to, or overriding, the current environment. LUMEN_READY_FD is never inherited from the
  // current environment; only StartDaemon sets it.
  std::vector<std::pair<std::string, std::string>> env{};
  // The child's stdout and stderr are appended to this file, created with mode 0644 if needed.
  // "" = the child inherits the caller's stdout and stderr.
  std::string log_path{};
  // true: the child calls setsid() and survives the caller (a daemon). false: the child gets
  // PR_SET_PDEATHSIG(death_signal), so it is signalled when the thread that started it exits;
  // start such children from a long-lived thread, or pass death_signal 0 and have the child
  // watch getppid() itself.
  bool detach = false;
  int death_signal = 9;  // SIGKILL; 0: none
  // With detach false: the child calls setpgid(0, 0), so that it and its children can be
  // signalled as one process group, while it keeps the caller's session and death signal.
  bool new_process_group = false;
};

// Forks and execs options.argv. In the child: stdin is /dev/null, every fd >= 3 is closed, signal
// dispositions are reset to default and no signal is blocked. Returns the pid once execve has
// succeeded; the caller must reap the child (waitpid or ReapChildren). INVALID_ARGUMENT for an
// empty argv; an error naming the program if the log cannot be opened or execve fails.
[[nodiscard]] absl::StatusOr<int> StartProcess(const SpawnOptions& options);

// Starts a daemon with StartProcess and waits up to `timeout` for it to report. `*pid_out` (if not
// null) gets its pid as soon as it is started. Returns the text the daemon passed to NotifyReady;
// the daemon keeps running and the caller owns (and eventually reaps) it. On any error the daemon
// has been stopped and reaped:
//   - it called NotifyFailed: FAILED_PRECONDITION with its message verbatim (if it does not then
//     exit by the deadline, it is killed);
//   - it exited, or closed the socket and exited, without reporting: INTERNAL naming its exit
//     status ("exit code 3") and quoting the last 20 lines of options.log_path;
//   - it said nothing within `timeout`: DEADLINE_EXCEEDED (it is killed with SIGKILL, and its
//     process group too if it is detached);
//   - it wrote something else: INTERNAL.
[[nodiscard]] absl::StatusOr<std::string> StartDaemon(const SpawnOptions& options,
                                                      absl::Duration timeout, int* pid_out);

// In a daemon started by StartDaemon: report readiness (with e.g. the address it serves) or
// failure, then close the socket. Only the first report of the process counts; later calls are
// no-ops, as are calls in a process started without LUMEN_READY_FD. Never raises SIGPIPE.
void NotifyReady(const std::string& message);
void NotifyFailed(const std::string& message);

// Reaps every exited child of this process without blocking: returns (pid, wait status) pairs.
// It takes the status of any child, including ones another part of the process waits for.
std::vector<std::pair<int, int>> ReapChildren();
// Reaps those of `pids` that exited, without blocking; leaves every other child alone.
std::vector<std::pair<int, int>> ReapChildren(const std::vector<int>& pids);

// The absolute path of this process's executable (from /proc/self/exe); "" if unknown.
std::string SelfExecutable();

// Describes a wait status: "exit code 3", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

}  // namespace lumen::internal
