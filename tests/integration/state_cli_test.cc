// lumen list, summary, memory, logs and job against real clusters, as a user types them.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Bin;
using lumen::testing::Child;
using lumen::testing::CommandResult;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

namespace {

nlohmann::json ParseOrNull(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// Runs argv (with the cluster's --temp-dir) until its JSON output satisfies `done`, for up to
// `timeout_seconds`; returns the last JSON seen.
nlohmann::json WaitForJson(const TestCluster& cluster, const std::vector<std::string>& argv,
                           const std::function<bool(const nlohmann::json&)>& done,
                           double timeout_seconds = 30) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  nlohmann::json json;
  while (true) {
    const CommandResult result = cluster.RunProgram(argv, 30);
    json = ParseOrNull(result.output);
    if (!json.is_discarded() && done(json)) return json;
    if (std::chrono::steady_clock::now() > deadline) return json;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int Count(const nlohmann::json& rows, const std::function<bool(const nlohmann::json&)>& match) {
  int n = 0;
  if (!rows.is_array()) return 0;
  for (const auto& row : rows) n += match(row) ? 1 : 0;
  return n;
}

const nlohmann::json* Find(const nlohmann::json& rows,
                           const std::function<bool(const nlohmann::json&)>& match) {
  if (!rows.is_array()) return nullptr;
  for (const auto& row : rows) {
    if (match(row)) return &row;
  }
  return nullptr;
}

// `lumen job submit [flags] -- command...` on this cluster (its --temp-dir before the --).
CommandResult Submit(const TestCluster& cluster, const std::vector<std::string>& flags,
                     const std::vector<std::string>& command, double timeout_seconds = 120) {
  std::vector<std::string> argv = {"lumen", "job", "submit", cluster.TempDirFlag()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.emplace_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return Run(argv, timeout_seconds);
}

}  // namespace

TEST_CASE("lumen list, summary, logs and memory show a workload's tasks, actors and objects",
          "[integration][state]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  CHECK_THAT(cluster.start_result().output, Contains("Dashboard: http://127.0.0.1:"));
  const std::string marker = MakeTempDir() + "/crashed";
  Child driver({Bin("lumen_state_driver"), marker, cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("DONE", 90));
  CHECK_THAT(driver.Output(), Contains("sum 2470 shouted 5 crashed 7 total 16"));

  // Tasks: every one recorded with its final state, the crashed one as retried.
  const nlohmann::json tasks = WaitForJson(
      cluster, {"lumen", "list", "tasks", "--json", "--limit=1000"},
      [](const nlohmann::json& rows) {
        return Count(rows,
                     [](const nlohmann::json& r) {
                       return r["function"] == "Square" && r["state"] == "FINISHED";
                     }) == 20 &&
               Count(rows,
                     [](const nlohmann::json& r) {
                       return r["function"] == "Counter::Add" && r["state"] == "FINISHED" &&
                              !r["node_id"].get<std::string>().empty();
                     }) == 3 &&
               Count(rows, [](const nlohmann::json& r) {
                 return r["function"] == "Shout" && r["worker_pid"].get<int>() > 0;
               }) == 1;
      });
  INFO(tasks.dump(1));
  const nlohmann::json* crashed =
      Find(tasks, [](const nlohmann::json& r) { return r["function"] == "CrashOnce"; });
  REQUIRE(crashed != nullptr);
  CHECK((*crashed)["state"] == "FINISHED");
  CHECK((*crashed)["attempt"] == 1);
  CHECK_THAT((*crashed)["last_error"].get<std::string>(), Contains("died"));
  const nlohmann::json* failed =
      Find(tasks, [](const nlohmann::json& r) { return r["function"] == "Fail"; });
  REQUIRE(failed != nullptr);
  CHECK((*failed)["state"] == "FAILED");
  CHECK_THAT((*failed)["error"].get<std::string>(), Contains("failing on purpose 3"));
  const nlohmann::json* shout =
      Find(tasks, [](const nlohmann::json& r) { return r["function"] == "Shout"; });
  REQUIRE(shout != nullptr);

  // The table form, filtered.
  const CommandResult table =
      cluster.RunProgram({"lumen", "list", "tasks", "--filter", "function=Square"});
  REQUIRE(table.exit_code == 0);
  CHECK_THAT(table.output, Contains("Total: 20"));
  CHECK_THAT(table.output, Contains("FINISHED"));
  CHECK_THAT(table.output, !Contains("CrashOnce"));

  const CommandResult summary = cluster.RunProgram({"lumen", "summary", "tasks"});
  REQUIRE(summary.exit_code == 0);
  CHECK_THAT(summary.output, Contains("Square"));
  CHECK_THAT(summary.output, Contains("FINISHED: 20"));
  const nlohmann::json summary_json =
      ParseOrNull(cluster.RunProgram({"lumen", "summary", "tasks", "--json"}).output);
  const nlohmann::json* fail_summary = Find(
      summary_json["functions"], [](const nlohmann::json& f) { return f["function"] == "Fail"; });
  REQUIRE(fail_summary != nullptr);
  CHECK((*fail_summary)["state_counts"]["FAILED"] == 1);

  // Actors.
  const nlohmann::json actors = ParseOrNull(
      cluster.RunProgram({"lumen", "list", "actors", "--json", "--filter", "state=ALIVE"}).output);
  REQUIRE(actors.size() == 1);
  const nlohmann::json& counter = actors[0];
  CHECK(counter["class_name"] == "Counter");
  CHECK(counter["name"] == "state-counter");
  CHECK(counter["pid"].get<int>() > 0);
  CHECK(counter["ip"] == "127.0.0.1");
  CHECK_FALSE(counter["node_id"].get<std::string>().empty());
  const CommandResult actor_table = cluster.RunProgram({"lumen", "list", "actors"});
  CHECK_THAT(actor_table.output, Contains("CLASS_NAME"));
  CHECK_THAT(actor_table.output, Contains("state-counter"));
  const CommandResult actor_summary = cluster.RunProgram({"lumen", "summary", "actors"});
  CHECK_THAT(actor_summary.output, Contains("ALIVE: 1"));

  // Logs by actor and by task.
  const CommandResult actor_log =
      cluster.RunProgram({"lumen", "logs", "--actor", counter["actor_id"].get<std::string>()});
  REQUIRE(actor_log.exit_code == 0);
  CHECK_THAT(actor_log.output, Contains("counter starting at 10"));
  const CommandResult task_log =
      cluster.RunProgram({"lumen", "logs", "--task", (*shout)["task_id"].get<std::string>()});
  REQUIRE(task_log.exit_code == 0);
  CHECK_THAT(task_log.output, Contains("shout 5 from a task"));
  const CommandResult worker_log =
      cluster.RunProgram({"lumen", "logs", "--worker", (*shout)["worker_id"].get<std::string>()});
  CHECK_THAT(worker_log.output, Contains("shout 5 from a task"));
  const CommandResult node_log =
      cluster.RunProgram({"lumen", "logs", "--node", counter["node_id"].get<std::string>()});
  CHECK_THAT(node_log.output, Contains("listening on"));
  const CommandResult listing = cluster.RunProgram({"lumen", "logs"});
  CHECK_THAT(listing.output, Contains("WORKER_ID"));

  // Memory and objects: the driver's 8 MiB Put is in the store.
  const CommandResult memory = cluster.RunProgram({"lumen", "memory"});
  REQUIRE(memory.exit_code == 0);
  CHECK_THAT(memory.output, Contains("8.0 MiB"));
  CHECK_THAT(memory.output, Contains("driver pid " + std::to_string(driver.pid())));
  const nlohmann::json objects =
      ParseOrNull(cluster.RunProgram({"lumen", "list", "objects", "--json"}).output);
  const nlohmann::json* big =
      Find(objects, [](const nlohmann::json& o) { return o["size"].get<int64_t>() >= (8 << 20); });
  REQUIRE(big != nullptr);
  CHECK((*big)["owner_pid"] == driver.pid());
  CHECK((*big)["state"] == "SEALED");
  const nlohmann::json nodes =
      ParseOrNull(cluster.RunProgram({"lumen", "list", "nodes", "--json"}).output);
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0]["state"] == "ALIVE");
  const CommandResult groups = cluster.RunProgram({"lumen", "list", "placement-groups"});
  CHECK(groups.exit_code == 0);
  CHECK_THAT(groups.output, Contains("Total: 0"));

  // The driver leaves: its actor ends with it.
  driver.WriteLine("");
  CHECK(driver.Wait(60) == 0);
  const nlohmann::json after = WaitForJson(
      cluster, {"lumen", "list", "actors", "--json"},
      [](const nlohmann::json& rows) { return rows.size() == 1 && rows[0]["state"] == "DEAD"; });
  REQUIRE(after.size() == 1);
  CHECK(after[0]["state"] == "DEAD");
  CHECK_THAT(after[0]["death_cause"].get<std::string>(), Contains("owner"));
}

TEST_CASE("state commands refuse bad input with a message and a non-zero exit",
          "[integration][state]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"lumen", "list", "actors", "--filter", "colour=red"}, "cannot filter actors on 'colour'"},
      {{"lumen", "list", "actors", "--filter", "novalue"}, "KEY=VALUE"},
      {{"lumen", "list", "widgets"}, "widgets"},
      {{"lumen", "summary", "objects"}, "objects"},
      {{"lumen", "logs", "--actor", "../../etc/passwd"}, "32 hex digits"},
      {{"lumen", "logs", "--task", "%2e%2e%2f"}, "32 hex digits"},
      {{"lumen", "logs", "--worker", "/etc/passwd"}, "16 hex digits"},
      {{"lumen", "logs", "--node", "../../../../etc"}, "16 hex digits"},
      {{"lumen", "logs", "--job", "../job-1"}, "job id"},
      {{"lumen", "logs", "--actor", std::string(32, '0')}, "no actor"},
      {{"lumen", "job", "status", "job-77"}, "no job 'job-77'"},
      {{"lumen", "job", "stop", "job-77"}, "no job 'job-77'"},
  };
  for (const auto& [argv, message] : cases) {
    INFO(argv[1] + " " + argv[2]);
    const CommandResult result = cluster.RunProgram(argv);
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, Contains(message));
    CHECK_THAT(result.output, !Contains("root:"));
  }
  const CommandResult no_cluster = Run({"lumen", "list", "nodes", "--temp-dir=" + MakeTempDir()});
  CHECK(no_cluster.exit_code != 0);
  CHECK_THAT(no_cluster.output, Contains("No Lumen cluster is running"));
}

TEST_CASE(
    "lumen job runs drivers on the head, streams them, stops them, and outlives the submitter",
    "[integration][jobs]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string work = MakeTempDir();

  SECTION("a pi job streams its output and succeeds") {
    const CommandResult pi = Submit(cluster, {}, {Bin("lumen"), "pi", "--samples=50000000"});
    CHECK(pi.exit_code == 0);
    CHECK_THAT(pi.output, Contains("pi is about 3.14"));
    CHECK_THAT(pi.output, Contains("SUCCEEDED"));
    const nlohmann::json jobs =
        ParseOrNull(cluster.RunProgram({"lumen", "job", "list", "--json"}).output);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0]["state"] == "SUCCEEDED");
    // The job was a driver of this cluster: its actors are recorded.
    const nlohmann::json actors =
        WaitForJson(cluster, {"lumen", "list", "actors", "--json"},
                    [](const nlohmann::json& rows) { return rows.size() == 3; });
    CHECK(Count(actors, [](const nlohmann::json& a) { return a["class_name"] == "PiWorker"; }) ==
          2);
  }
  SECTION("a failing job and a missing command fail, with a non-zero exit") {
    const CommandResult failing = Submit(cluster, {}, {"sh", "-c", "echo oops; exit 4"});
    CHECK(failing.exit_code != 0);
    CHECK_THAT(failing.output, Contains("oops"));
    CHECK_THAT(failing.output, Contains("FAILED"));
    const CommandResult missing = Submit(cluster, {}, {"no-such-program-anywhere"});
    CHECK(missing.exit_code != 0);
    CHECK_THAT(missing.output, Contains("not found"));
  }
  SECTION("--no-wait, status, logs, stop, and the working directory") {
    const CommandResult submitted = Submit(
        cluster, {"--no-wait", "--working-dir=" + work},
        {"sh", "-c",
         "pwd; echo started; trap 'echo got TERM; exit 9' TERM; while true; do sleep 0.1; done"});
    REQUIRE(submitted.exit_code == 0);
    const std::string id = "job-1";
    CHECK_THAT(submitted.output, Contains(id));
    const nlohmann::json running =
        WaitForJson(cluster, {"lumen", "job", "status", id, "--json"},
                    [](const nlohmann::json& job) { return job.value("state", "") == "RUNNING"; });
    CHECK(running["state"] == "RUNNING");
    CHECK(running["working_dir"] == work);
    const auto logged = [&] { return cluster.RunProgram({"lumen", "job", "logs", id}).output; };
    for (int i = 0; i < 100 && logged().find("started") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK_THAT(logged(), Contains(work + "\nstarted"));
    const CommandResult stop = cluster.RunProgram({"lumen", "job", "stop", id});
    CHECK(stop.exit_code == 0);
    CHECK_THAT(stop.output, Contains("STOPPED"));
    CHECK_THAT(logged(), Contains("got TERM"));
    CHECK_THAT(cluster.RunProgram({"lumen", "job", "list"}).output, Contains("STOPPED"));
  }
  SECTION("closing the submitting terminal does not affect the job") {
    Child submitter({Bin("lumen"), "job", "submit", cluster.TempDirFlag(), "--", "sh", "-c",
                     "echo first; sleep 2; echo second"});
    REQUIRE(submitter.WaitForOutput("first", 60));
    kill(-submitter.pid(), SIGKILL);  // the terminal and everything in it
    submitter.Wait(10);
    const nlohmann::json done = WaitForJson(
        cluster, {"lumen", "job", "status", "job-1", "--json"},
        [](const nlohmann::json& job) { return job.value("state", "") == "SUCCEEDED"; });
    CHECK(done["state"] == "SUCCEEDED");
    const CommandResult log = cluster.RunProgram({"lumen", "job", "logs", "job-1", "--follow"});
    CHECK(log.exit_code == 0);
    CHECK_THAT(log.output, Contains("first\nsecond"));
  }
  SECTION("stopping the cluster ends its jobs") {
    const CommandResult submitted = Submit(cluster, {"--no-wait"}, {"sleep", "300"});
    REQUIRE(submitted.exit_code == 0);
    const nlohmann::json job =
        WaitForJson(cluster, {"lumen", "job", "status", "job-1", "--json"},
                    [](const nlohmann::json& j) { return j.value("state", "") == "RUNNING"; });
    const int pid = job["pid"].get<int>();
    REQUIRE(pid > 0);
    REQUIRE(kill(pid, 0) == 0);
    REQUIRE(cluster.RunProgram({"lumen", "stop"}).exit_code == 0);
    CHECK(kill(pid, 0) != 0);
  }
}
