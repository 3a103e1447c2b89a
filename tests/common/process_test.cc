#include "common/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/session.h"
#include "tests/temp_dir.h"

namespace lumen::internal {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// A detached `/bin/sh -c script`, as a daemon would be started.
SpawnOptions Shell(const std::string& script, const std::string& log_path = "") {
  return {.argv = {"/bin/sh", "-c", script}, .log_path = log_path, .detach = true};
}

// Reaps the child `pid` and returns its wait status.
int WaitStatus(int pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

// True if `pid` is not a child of this process any more (StartDaemon reaped it).
bool NotOurChild(int pid) {
  errno = 0;
  return waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

bool IsRunning(int pid) {
  return IsAlive({.role = "node", .pid = pid, .start_ticks = ProcessStartTicks(pid)});
}

// Waits for `condition` until `timeout` passes; true if it came true.
template <typename Condition>
bool WaitFor(Condition condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

TEST_CASE("a started process gets the extra environment and appends its output to the log") {
  testing::TempDir temp("process");
  const std::string log = temp.path() + "/out.log";
  std::ofstream(log) << "earlier\n";
  // A readiness fd meant for this process must not leak into the ones it starts.
  REQUIRE(setenv(kReadyFdEnv, "7", 1) == 0);
  SpawnOptions options = Shell(
      R"(echo "$LUMEN_TEST_GREETING $HOME ${LUMEN_READY_FD-unset}"; echo oops >&2
         read line; echo "stdin=[$line] $?"; exit 3)",
      log);
  options.env = {{"LUMEN_TEST_GREETING", "hello"}, {"HOME", "/overridden"}};
  options.detach = false;
  absl::StatusOr<int> pid = StartProcess(options);
  unsetenv(kReadyFdEnv);
  REQUIRE(pid.ok());

  int status = WaitStatus(*pid);
  CHECK(DescribeWaitStatus(status) == "exit code 3");
  CHECK(ReadAll(log) == "earlier\nhello /overridden unset\noops\nstdin=[] 1\n");
}

TEST_CASE("a process that cannot be started is an error naming its program") {
  SECTION("missing executable") {
    absl::StatusOr<int> pid = StartProcess({.argv = {"/nonexistent/lumen_node"}});
    CHECK(pid.status().code() == absl::StatusCode::kNotFound);
    CHECK_THAT(std::string(pid.status().message()), Catch::Contains("/nonexistent/lumen_node"));
  }
  SECTION("unwritable log") {
    absl::StatusOr<int> pid =
        StartProcess({.argv = {"/bin/true"}, .log_path = "/nonexistent/dir/out.log"});
    CHECK_FALSE(pid.ok());
    CHECK_THAT(std::string(pid.status().message()), Catch::Contains("/nonexistent/dir/out.log"));
  }
  SECTION("empty argv") {
    CHECK(StartProcess({}).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("a started process inherits no file descriptor above stderr") {
  testing::TempDir temp("process");
  const std::string log = temp.path() + "/out.log";
  int leak[2];
  REQUIRE(pipe(leak) == 0);  // deliberately not close-on-exec
  absl::StatusOr<int> pid = StartProcess(
      Shell(absl::StrCat("for fd in ", leak[0], " ", leak[1],
                         "; do [ -e /proc/self/fd/$fd ] && echo \"fd $fd is open\"; done; exit 0"),
            log));
  close(leak[0]);
  close(leak[1]);
  REQUIRE(pid.ok());
  CHECK(DescribeWaitStatus(WaitStatus(*pid)) == "exit code 0");
  CHECK(ReadAll(log) == "");
}

TEST_CASE("a detached process leads its own session") {
  absl::StatusOr<int> pid = StartProcess(Shell("exec sleep 60"));
  REQUIRE(pid.ok());
  CHECK(getsid(*pid) == *pid);
  REQUIRE(kill(*pid, SIGKILL) == 0);
  CHECK(DescribeWaitStatus(WaitStatus(*pid)) == "killed by signal 9 (Killed)");
}

TEST_CASE("a process that is not detached is killed when its parent exits") {
  // Orphans become our children, so the grandchild can be waited for.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  int report[2];
  REQUIRE(pipe(report) == 0);
  pid_t parent = fork();
  REQUIRE(parent >= 0);
  if (parent == 0) {
    absl::StatusOr<int> child = StartProcess({.argv = {"/bin/sleep", "60"}});
    int pid = child.ok() ? *child : -1;
    _exit(write(report[1], &pid, sizeof(pid)) == sizeof(pid) ? 0 : 1);
  }
  close(report[1]);
  int child = -1;
  CHECK(read(report[0], &child, sizeof(child)) == sizeof(child));
  close(report[0]);
  CHECK(DescribeWaitStatus(WaitStatus(parent)) == "exit code 0");
  REQUIRE(child > 0);

  int status = WaitStatus(child);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  CHECK(DescribeWaitStatus(status) == "killed by signal 9 (Killed)");
}

TEST_CASE("StartDaemon returns what a daemon reports when it is ready") {
  int pid = 0;
  SECTION("and leaves it running") {
    absl::StatusOr<std::string> ready = StartDaemon(
        Shell(R"(echo "OK listening on 127.0.0.1:6379" >&"$LUMEN_READY_FD"; exec sleep 60)"),
        absl::Seconds(30), &pid);
    REQUIRE(ready.ok());
    CHECK(*ready == "listening on 127.0.0.1:6379");
    REQUIRE(pid > 0);
    CHECK(IsRunning(pid));
    CHECK(getsid(pid) == pid);
    REQUIRE(kill(pid, SIGKILL) == 0);
  }
  SECTION("with escaped newlines and backslashes") {
    absl::StatusOr<std::string> ready =
        StartDaemon(Shell(R"(printf 'OK two\\nlines \\\\ here\n' >&"$LUMEN_READY_FD")"),
                    absl::Seconds(30), &pid);
    REQUIRE(ready.ok());
    CHECK(*ready == "two\nlines \\ here");
  }
  REQUIRE(pid > 0);
  WaitStatus(pid);
}

TEST_CASE("NotifyReady writes one escaped line, closes the fd, and ignores later reports") {
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  pid_t daemon = fork();
  REQUIRE(daemon >= 0);
  if (daemon == 0) {
    close(fds[0]);
    setenv(kReadyFdEnv, std::to_string(fds[1]).c_str(), 1);
    NotifyReady("two\nlines \\ here");
    NotifyFailed("too late");
    // If NotifyReady did not close the fd, the reader would not see EOF until this exits.
    sleep(60);
    _exit(0);
  }
  close(fds[1]);
  std::string received;
  char buffer[256];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) received.append(buffer, n);
  close(fds[0]);
  CHECK(received == "OK two\\nlines \\\\ here\n");
  CHECK(waitpid(daemon, nullptr, WNOHANG) == 0);  // the fd was closed before the daemon exited
  REQUIRE(kill(daemon, SIGKILL) == 0);
  WaitStatus(daemon);
}

TEST_CASE("StartDaemon passes on a daemon's reported failure verbatim") {
  int pid = 0;
  SECTION("and the daemon exits") {
    absl::StatusOr<std::string> ready =
        StartDaemon(Shell(R"(echo "ERR port 6379 is already in use" >&"$LUMEN_READY_FD"; exit 1)"),
                    absl::Seconds(30), &pid);
    CHECK(ready.status() == absl::FailedPreconditionError("port 6379 is already in use"));
  }
  SECTION("and the daemon lingers until the deadline") {
    absl::StatusOr<std::string> ready =
        StartDaemon(Shell(R"(echo "ERR bad config" >&"$LUMEN_READY_FD"; exec sleep 60)"),
                    absl::Milliseconds(300), &pid);
    CHECK(ready.status() == absl::FailedPreconditionError("bad config"));
  }
  CHECK(pid > 0);
  CHECK(NotOurChild(pid));
}

TEST_CASE("StartDaemon reports a daemon that exits without a word with its status and log tail") {
  testing::TempDir temp("process");
  const std::string log = temp.path() + "/node.out";
  int pid = 0;
  SECTION("exit code") {
    absl::StatusOr<std::string> ready = StartDaemon(
        Shell(
            R"(for i in $(seq 1 30); do echo "log line $i."; done; echo "bad config" >&2; exit 3)",
            log),
        absl::Seconds(30), &pid);
    REQUIRE_FALSE(ready.ok());
    const std::string message(ready.status().message());
    INFO(message);
    CHECK_THAT(message, Catch::Contains("exit code 3"));
    CHECK_THAT(message, Catch::Contains(log));
    CHECK_THAT(message, Catch::EndsWith("log line 30.\nbad config"));
    // The last 20 lines: 12 to 30 and the error.
    CHECK_THAT(message, Catch::Contains("\nlog line 12.\n"));
    CHECK_THAT(message, !Catch::Contains("log line 11."));
  }
  SECTION("signal") {
    absl::StatusOr<std::string> ready =
        StartDaemon(Shell("echo dying; kill -9 $$", log), absl::Seconds(30), &pid);
    REQUIRE_FALSE(ready.ok());
    CHECK_THAT(std::string(ready.status().message()),
               Catch::Contains("killed by signal 9 (Killed)") && Catch::Contains("dying"));
  }
  SECTION("closed socket, then exit") {
    absl::StatusOr<std::string> ready =
        StartDaemon(Shell(R"(eval "exec $LUMEN_READY_FD>&-"; echo closed; exit 4)", log),
                    absl::Seconds(30), &pid);
    REQUIRE_FALSE(ready.ok());
    CHECK_THAT(std::string(ready.status().message()),
               Catch::Contains("exit code 4") && Catch::Contains("closed"));
  }
  CHECK(pid > 0);
  CHECK(NotOurChild(pid));
}

TEST_CASE("StartDaemon kills a daemon that does not report in time") {
  testing::TempDir temp("process");
  const std::string pid_file = temp.path() + "/grandchild.pid";
  int pid = 0;
  SECTION("silent, with a child of its own") {
    absl::StatusOr<std::string> ready = StartDaemon(
        Shell(absl::StrCat("sleep 60 & echo $! > ", pid_file, "; wait")), absl::Seconds(1), &pid);
    CHECK(ready.status().code() == absl::StatusCode::kDeadlineExceeded);
    // Its process group went with it.
    const int grandchild = std::atoi(ReadAll(pid_file).c_str());
    REQUIRE(grandchild > 0);
    CHECK(WaitFor([&] { return !IsRunning(grandchild); }, absl::Seconds(10)));
  }
  SECTION("closed its socket but kept running") {
    absl::StatusOr<std::string> ready = StartDaemon(
        Shell(R"(eval "exec $LUMEN_READY_FD>&-"; exec sleep 60)"), absl::Milliseconds(300), &pid);
    CHECK(ready.status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK_THAT(std::string(ready.status().message()), Catch::Contains("closed its readiness"));
  }
  CHECK(pid > 0);
  CHECK(NotOurChild(pid));
}

TEST_CASE("ReapChildren returns the status of exited children") {
  absl::StatusOr<int> pid = StartProcess(Shell("exit 4"));
  REQUIRE(pid.ok());
  siginfo_t info = {};
  REQUIRE(waitid(P_PID, *pid, &info, WEXITED | WNOWAIT) == 0);  // exited, not yet reaped
  std::vector<std::pair<int, int>> reaped = ReapChildren();
  auto it = std::find_if(reaped.begin(), reaped.end(),
                         [&](const std::pair<int, int>& child) { return child.first == *pid; });
  REQUIRE(it != reaped.end());
  CHECK(DescribeWaitStatus(it->second) == "exit code 4");
  CHECK(NotOurChild(*pid));
}

}  // namespace
}  // namespace lumen::internal
