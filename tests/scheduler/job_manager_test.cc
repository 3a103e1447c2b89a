// Jobs the head runs: real processes under a JobManager, in a temporary session folder.
#include "scheduler/job_manager.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/clock.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

// A session folder with its logs/ folder, removed at the end of the test.
class Session {
 public:
  Session() { REQUIRE(mkdir(dir_.Sub("logs").c_str(), 0700) == 0); }
  const std::string& path() const { return dir_.path(); }

 private:
  testing::TempDir dir_{"jobs"};
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Waits up to `timeout` for the job to reach `state`; returns its JSON.
nlohmann::json WaitForState(const JobManager& jobs, const std::string& id, const std::string& state,
                            absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<nlohmann::json> job = jobs.Get(id);
    REQUIRE(job.ok());
    if ((*job)["state"] == state || absl::Now() > deadline) return *job;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

JobManager::Options Options(const std::string& session) {
  return {.head_address = "127.0.0.1:7777",
          .token = "job-token",
          .session_dir = session,
          .stop_grace = absl::Milliseconds(300)};
}

}  // namespace

TEST_CASE("a job runs in its directory with the cluster's address and token, output to its log",
          "[scheduler][jobs]") {
  const Session session_dir;
  const std::string& session = session_dir.path();
  JobManager jobs(Options(session));
  absl::StatusOr<std::string> id = jobs.Submit(
      {"sh", "-c", "pwd; echo \"$LUMEN_ADDRESS $LUMEN_TOKEN $LUMEN_JOB_ID [$LUMEN_ROLE]\""},
      "/usr");
  REQUIRE(id.ok());
  CHECK(*id == "job-1");
  const nlohmann::json job = WaitForState(jobs, *id, "SUCCEEDED");
  CHECK(job["state"] == "SUCCEEDED");
  CHECK(job["exit_code"] == 0);
  CHECK(job["entrypoint"] ==
        "sh -c 'pwd; echo \"$LUMEN_ADDRESS $LUMEN_TOKEN $LUMEN_JOB_ID [$LUMEN_ROLE]\"'");
  absl::StatusOr<std::string> log = jobs.LogPath(*id);
  REQUIRE(log.ok());
  CHECK(*log == session + "/logs/job-1.log");
  CHECK(ReadFile(*log) == "/usr\n127.0.0.1:7777 job-token job-1 []\n");
}

TEST_CASE("a job that fails or cannot be found ends FAILED with its exit code",
          "[scheduler][jobs]") {
  const Session session;
  JobManager jobs(Options(session.path()));
  absl::StatusOr<std::string> failing = jobs.Submit({"sh", "-c", "exit 3"}, "/");
  absl::StatusOr<std::string> missing = jobs.Submit({"no-such-command-here"}, "/");
  REQUIRE(failing.ok());
  REQUIRE(missing.ok());
  const nlohmann::json failed = WaitForState(jobs, *failing, "FAILED");
  CHECK(failed["state"] == "FAILED");
  CHECK(failed["exit_code"] == 3);
  const nlohmann::json not_found = WaitForState(jobs, *missing, "FAILED");
  CHECK(not_found["exit_code"] == 127);
  CHECK_THAT(not_found["message"].get<std::string>(), Catch::Contains("not found"));
  CHECK_THAT(ReadFile(*jobs.LogPath(*missing)), Catch::Contains("no-such-command-here"));
}

TEST_CASE("stopping a job sends SIGTERM to its process group, then SIGKILL after the grace period",
          "[scheduler][jobs]") {
  const Session session_dir;
  const std::string& session = session_dir.path();
  JobManager jobs(Options(session));
  SECTION("a job that exits on SIGTERM") {
    absl::StatusOr<std::string> id = jobs.Submit({"sleep", "60"}, "/");
    REQUIRE(id.ok());
    WaitForState(jobs, *id, "RUNNING");
    REQUIRE(jobs.Stop(*id).ok());
    const nlohmann::json job = WaitForState(jobs, *id, "STOPPED");
    CHECK(job["state"] == "STOPPED");
    CHECK_THAT(job["message"].get<std::string>(), Catch::Contains("signal 15"));
    CHECK(absl::IsFailedPrecondition(jobs.Stop(*id)));
  }
  SECTION("a job that ignores SIGTERM, and its child") {
    // The shell ignores TERM and starts a child in its group that writes its pid.
    absl::StatusOr<std::string> id = jobs.Submit(
        {"sh", "-c", "trap '' TERM; sleep 60 & echo $! > child.pid; wait; sleep 60"}, session);
    REQUIRE(id.ok());
    nlohmann::json job = WaitForState(jobs, *id, "RUNNING");
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (ReadFile(session + "/child.pid").empty() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    const int child = std::atoi(ReadFile(session + "/child.pid").c_str());
    REQUIRE(child > 0);
    REQUIRE(jobs.Stop(*id).ok());
    job = WaitForState(jobs, *id, "STOPPED");
    CHECK(job["state"] == "STOPPED");
    CHECK_THAT(job["message"].get<std::string>(), Catch::Contains("signal 9"));
    // The child got SIGTERM with the group; it is gone or a zombie of the dead shell's reaper.
    const absl::Time gone_deadline = absl::Now() + absl::Seconds(10);
    while (kill(child, 0) == 0 &&
           ReadFile("/proc/" + std::to_string(child) + "/stat").find(" Z ") == std::string::npos &&
           absl::Now() < gone_deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    CHECK((kill(child, 0) != 0 ||
           ReadFile("/proc/" + std::to_string(child) + "/stat").find(" Z ") != std::string::npos));
  }
  CHECK(absl::IsNotFound(jobs.Stop("job-99")));
}

TEST_CASE("stopping the manager ends every running job", "[scheduler][jobs]") {
  const Session session_dir;
  const std::string& session = session_dir.path();
  auto jobs = std::make_unique<JobManager>(Options(session));
  absl::StatusOr<std::string> id = jobs->Submit({"sleep", "60"}, "/");
  REQUIRE(id.ok());
  const int pid = WaitForState(*jobs, *id, "RUNNING")["pid"].get<int>();
  REQUIRE(pid > 0);
  jobs->StopAll();
  CHECK(kill(pid, 0) != 0);  // reaped: the pid no longer exists
  CHECK((*jobs->Get(*id))["state"] == "STOPPED");
  CHECK(absl::IsUnavailable(jobs->Submit({"true"}, "/").status()));
}

TEST_CASE("bad submissions are refused with a reason", "[scheduler][jobs]") {
  const Session session;
  JobManager jobs(Options(session.path()));
  CHECK(absl::IsInvalidArgument(jobs.Submit({}, "/").status()));
  CHECK(absl::IsInvalidArgument(jobs.Submit({""}, "/").status()));
  CHECK(absl::IsInvalidArgument(jobs.Submit({"true"}, "relative/dir").status()));
  CHECK(absl::IsInvalidArgument(jobs.Submit({"true"}, "/no/such/dir").status()));
  CHECK(absl::IsInvalidArgument(jobs.Submit({"true"}, "/etc/passwd").status()));
  CHECK(absl::IsInvalidArgument(jobs.Submit({std::string("a\0b", 3)}, "/").status()));
  CHECK(absl::IsInvalidArgument(jobs.Submit(std::vector<std::string>(5000, "x"), "/").status()));
  CHECK(jobs.List().empty());
}

TEST_CASE("finished jobs beyond the limit are forgotten, oldest first", "[scheduler][jobs]") {
  const Session session;
  JobManager::Options options = Options(session.path());
  options.max_finished_jobs = 2;
  JobManager jobs(options);
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::string> id = jobs.Submit({"true"}, "/");
    REQUIRE(id.ok());
    WaitForState(jobs, *id, "SUCCEEDED");
  }
  const nlohmann::json list = jobs.List();
  REQUIRE(list.size() == 2);
  CHECK(list[0]["job_id"] == "job-4");
  CHECK(list[1]["job_id"] == "job-3");
  CHECK(absl::IsNotFound(jobs.Get("job-1").status()));
}

}  // namespace lumen::scheduler
