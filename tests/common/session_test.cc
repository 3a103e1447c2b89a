#include "common/session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "tests/temp_dir.h"

namespace lumen::internal {
namespace {

namespace fs = std::filesystem;

// True if `text` has the shape of `pattern`, where '#' stands for any decimal digit and 'x' for
// any lowercase hex digit.
bool HasShape(const std::string& text, const std::string& pattern) {
  if (text.size() != pattern.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    std::string_view allowed(&pattern[i], 1);
    if (pattern[i] == '#') allowed = "0123456789";
    if (pattern[i] == 'x') allowed = "0123456789abcdef";
    if (allowed.find(text[i]) == std::string_view::npos) return false;
  }
  return true;
}

// The pid of a child that has exited and been reaped, so no process has it (until it is reused).
int DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  REQUIRE(pid > 0);
  REQUIRE(waitpid(pid, nullptr, 0) == pid);
  return pid;
}

// A `sleep 60` in its own session, as `lumen start` would leave a daemon.
ProcessRecord StartSleeper(const std::string& role) {
  absl::StatusOr<int> pid = StartProcess({.argv = {"/bin/sleep", "60"}, .detach = true});
  REQUIRE(pid.ok());
  return {.role = role, .pid = *pid, .start_ticks = ProcessStartTicks(*pid)};
}

// Reaps the child `pid` and returns its wait status.
int WaitStatus(int pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

TEST_CASE("a new session has a private token and session_latest points at it") {
  testing::TempDir temp("session");
  const std::string root = temp.path() + "/not/yet/there";

  absl::StatusOr<Session> first = Session::Create(root);
  REQUIRE(first.ok());
  CHECK(fs::is_directory(first->dir() + "/logs"));
  CHECK(fs::is_directory(first->dir() + "/processes"));
  CHECK(HasShape(fs::path(first->dir()).filename().string(),
                 absl::StrCat("session_####-##-##_##-##-##_######_", getpid())));
  CHECK(first->LogPath("head.out") == first->dir() + "/logs/head.out");

  absl::StatusOr<std::string> token = first->Token();
  REQUIRE(token.ok());
  CHECK(HasShape(*token, std::string(64, 'x')));
  struct stat st = {};
  REQUIRE(stat((first->dir() + "/token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  absl::StatusOr<Session> latest = Session::OpenLatest(root);
  REQUIRE(latest.ok());
  CHECK(latest->dir() == first->dir());

  absl::StatusOr<Session> second = Session::Create(root);
  REQUIRE(second.ok());
  CHECK(second->dir() != first->dir());
  CHECK(*second->Token() != *token);
  CHECK(fs::is_symlink(root + "/session_latest"));
  CHECK(Session::OpenLatest(root)->dir() == second->dir());
  CHECK(Session::Open(first->dir())->dir() == first->dir());
}

TEST_CASE("opening the latest session of a temp dir without one is NOT_FOUND naming the dir") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> latest = Session::OpenLatest(temp.path());
  CHECK(latest.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(latest.status().message()), Catch::Contains(temp.path()));

  absl::StatusOr<Session> not_a_session = Session::Open(temp.path());
  CHECK(not_a_session.status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("process records round-trip through the session folder, sorted by pid") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> session = Session::Create(temp.path());
  REQUIRE(session.ok());
  CHECK(session->Processes().empty());

  const ProcessRecord node{.role = "node",
                           .pid = 4000001,
                           .start_ticks = 123,
                           .address = "127.0.0.1:7001",
                           .shm_name = "/lumen_node"};
  const ProcessRecord head{.role = "head", .pid = 4000000, .start_ticks = 77};
  REQUIRE(session->AddProcess(node).ok());
  REQUIRE(session->AddProcess(head).ok());
  CHECK(Session::Open(session->dir())->Processes() == std::vector<ProcessRecord>{head, node});

  ProcessRecord moved = node;
  moved.address = "127.0.0.1:7002";
  REQUIRE(session->AddProcess(moved).ok());
  CHECK(session->Processes() == std::vector<ProcessRecord>{head, moved});

  REQUIRE(session->RemoveProcess(head.pid).ok());
  CHECK(session->RemoveProcess(head.pid).ok());
  CHECK(session->Processes() == std::vector<ProcessRecord>{moved});

  CHECK(session->AddProcess({.role = "head", .pid = 0}).code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("process records that cannot be parsed are skipped") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> session = Session::Create(temp.path());
  REQUIRE(session.ok());
  const ProcessRecord good{.role = "node", .pid = 4000002, .start_ticks = 5};
  REQUIRE(session->AddProcess(good).ok());
  std::ofstream(session->dir() + "/processes/4000003.json") << "{ not json";
  std::ofstream(session->dir() + "/processes/4000004.json") << R"({"role": "node", "pid": 1})";
  std::ofstream(session->dir() + "/processes/4000005.json")
      << R"({"role": "node", "pid": 4000006, "start_ticks": 5})";
  std::ofstream(session->dir() + "/processes/notes.txt") << "hello";

  CHECK(session->Processes() == std::vector<ProcessRecord>{good});
}

TEST_CASE("start ticks tell a live process from a dead, zombie or reused one") {
  const int64_t own_ticks = ProcessStartTicks(getpid());
  CHECK(own_ticks > 0);
  CHECK(IsAlive({.role = "head", .pid = getpid(), .start_ticks = own_ticks}));
  CHECK_FALSE(IsAlive({.role = "head", .pid = getpid(), .start_ticks = own_ticks + 1}));

  const int dead = DeadPid();
  CHECK(ProcessStartTicks(dead) == -1);
  CHECK_FALSE(IsAlive({.role = "node", .pid = dead, .start_ticks = 0}));

  pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  REQUIRE(zombie > 0);
  siginfo_t info = {};
  REQUIRE(waitid(P_PID, zombie, &info, WEXITED | WNOWAIT) == 0);  // exited, not reaped
  const int64_t zombie_ticks = ProcessStartTicks(zombie);
  CHECK(zombie_ticks > 0);
  CHECK_FALSE(IsAlive({.role = "node", .pid = zombie, .start_ticks = zombie_ticks}));
  WaitStatus(zombie);
}

TEST_CASE("StopAll stops a live daemon, unlinks its shared memory, and a second call stops none") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> session = Session::Create(temp.path());
  REQUIRE(session.ok());
  ProcessRecord head = StartSleeper("head");
  head.address = "127.0.0.1:6379";
  head.shm_name = absl::StrCat("/lumen_session_test_", getpid(), "_", head.pid);
  int shm = shm_open(head.shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  REQUIRE(shm >= 0);
  close(shm);
  REQUIRE(session->AddProcess(head).ok());
  CHECK(session->LiveHead() == head);

  absl::StatusOr<int> stopped = session->StopAll(absl::Seconds(10));
  REQUIRE(stopped.ok());
  CHECK(*stopped == 1);
  int status = WaitStatus(head.pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  errno = 0;
  CHECK(shm_open(head.shm_name.c_str(), O_RDONLY, 0) == -1);
  CHECK(errno == ENOENT);
  CHECK(session->Processes().empty());
  CHECK_FALSE(session->LiveHead().has_value());

  absl::StatusOr<int> again = Session::OpenLatest(temp.path())->StopAll(absl::Seconds(10));
  REQUIRE(again.ok());
  CHECK(*again == 0);
}

TEST_CASE("StopAll kills a daemon that ignores SIGTERM once the grace period is over") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> session = Session::Create(temp.path());
  REQUIRE(session.ok());
  int pid = 0;
  // Reports ready only once SIGTERM is ignored, so the signal cannot arrive before the trap.
  absl::StatusOr<std::string> ready = StartDaemon(
      {.argv = {"/bin/sh", "-c", R"(trap '' TERM; echo OK >&"$LUMEN_READY_FD"; exec sleep 60)"},
       .detach = true},
      absl::Seconds(30), &pid);
  REQUIRE(ready.ok());
  REQUIRE(session->AddProcess({.role = "node", .pid = pid, .start_ticks = ProcessStartTicks(pid)})
              .ok());

  absl::StatusOr<int> stopped = session->StopAll(absl::Milliseconds(100));
  REQUIRE(stopped.ok());
  CHECK(*stopped == 1);
  int status = WaitStatus(pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(session->Processes().empty());
}

TEST_CASE("StopAll only removes the records of processes that are gone or were replaced") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> session = Session::Create(temp.path());
  REQUIRE(session.ok());
  const ProcessRecord dead{.role = "head", .pid = DeadPid(), .start_ticks = 42};
  // A live process whose pid matches but whose start time does not: a reused pid.
  ProcessRecord reused = StartSleeper("node");
  const int64_t real_ticks = reused.start_ticks;
  reused.start_ticks = real_ticks - 1;
  REQUIRE(session->AddProcess(dead).ok());
  REQUIRE(session->AddProcess(reused).ok());
  CHECK_FALSE(session->LiveHead().has_value());

  absl::StatusOr<int> stopped = session->StopAll(absl::Seconds(10));
  REQUIRE(stopped.ok());
  CHECK(*stopped == 0);
  CHECK(session->Processes().empty());
  CHECK(IsAlive({.role = "node", .pid = reused.pid, .start_ticks = real_ticks}));

  REQUIRE(kill(reused.pid, SIGKILL) == 0);
  WaitStatus(reused.pid);
}

TEST_CASE("RemoveDeadRecords cleans up after a killed head and keeps the live processes") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> session = Session::Create(temp.path());
  REQUIRE(session.ok());
  ProcessRecord dead{.role = "head", .pid = DeadPid(), .start_ticks = 42};
  dead.address = "127.0.0.1:7000";
  dead.shm_name = absl::StrCat("/lumen_session_test_dead_", getpid());
  int shm = shm_open(dead.shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  REQUIRE(shm >= 0);
  close(shm);
  const ProcessRecord node = StartSleeper("node");
  REQUIRE(session->AddProcess(dead).ok());
  REQUIRE(session->AddProcess(node).ok());

  absl::StatusOr<std::vector<ProcessRecord>> removed = session->RemoveDeadRecords();
  REQUIRE(removed.ok());
  CHECK(*removed == std::vector<ProcessRecord>{dead});
  CHECK(session->Processes() == std::vector<ProcessRecord>{node});
  errno = 0;
  CHECK(shm_open(dead.shm_name.c_str(), O_RDONLY, 0) == -1);
  CHECK(errno == ENOENT);

  REQUIRE(kill(node.pid, SIGKILL) == 0);
  WaitStatus(node.pid);
}

TEST_CASE("MakeLatest points session_latest back at an older session") {
  testing::TempDir temp("session");
  absl::StatusOr<Session> first = Session::Create(temp.path());
  REQUIRE(first.ok());
  absl::StatusOr<Session> second = Session::Create(temp.path());
  REQUIRE(second.ok());
  CHECK(Session::OpenLatest(temp.path())->dir() == second->dir());
  REQUIRE(first->MakeLatest().ok());
  CHECK(Session::OpenLatest(temp.path())->dir() == first->dir());
}

}  // namespace
}  // namespace lumen::internal
