// Lifecycles against real clusters: worker and actor deaths during a job, incarnations, jobs,
// liveness and restarts of the head.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::CommandResult;
using lumen::testing::DaemonPid;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;
using lumen::testing::WaitUntil;

namespace {

nlohmann::json ParseOrNull(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// The first row of `lumen list actors --json` that `match` accepts, polled for up to
// `timeout_seconds`; null if none appeared.
nlohmann::json WaitForActor(const TestCluster& cluster,
                            const std::function<bool(const nlohmann::json&)>& match,
                            double timeout_seconds = 30) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    const CommandResult listed = cluster.RunProgram({"lumen", "list", "actors", "--json"}, 30);
    const nlohmann::json rows = ParseOrNull(listed.output);
    if (rows.is_array()) {
      for (const auto& row : rows) {
        if (match(row)) return row;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return nullptr;
}

bool IsAlive(const nlohmann::json& row, const std::string& class_name) {
  return row.value("class_name", "").find(class_name) != std::string::npos &&
         row.value("state", "") == "ALIVE" && row.value("pid", 0) > 0;
}

bool ProcessGone(int pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

// The pid of the daemon `lumen start` recorded in the session under `temp_dir`.
std::string HeadLog(const TestCluster& cluster) {
  std::ifstream in(std::filesystem::path(cluster.temp_dir()) / "session_latest" / "logs" /
                   "head.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A node joined to `cluster` on its own loopback address and temp dir; stopped at the end.
class TestNode {
 public:
  TestNode(const TestCluster& cluster, const std::string& ip,
           const std::vector<std::string>& extra_flags = {})
      : temp_dir_(MakeTempDir()) {
    std::vector<std::string> argv = {"lumen",
                                     "start",
                                     "--address=" + cluster.address(),
                                     "--token=" + cluster.Token(),
                                     "--ip=" + ip,
                                     "--num-cpus=1",
                                     "--object-store-memory=67108864",
                                     "--temp-dir=" + temp_dir_};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    start_ = Run(argv, 60);
    pid_ = DaemonPid(temp_dir_);
  }
  ~TestNode() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    Run({"lumen", "stop", "--temp-dir=" + temp_dir_}, 60);
  }
  const CommandResult& start_result() const { return start_; }
  int pid() const { return pid_; }
  CommandResult Stop() { return Run({"lumen", "stop", "--temp-dir=" + temp_dir_}, 60); }

 private:
  std::string temp_dir_;
  CommandResult start_;
  int pid_ = -1;
};

// `lumen list nodes --json` rows.
nlohmann::json Nodes(const TestCluster& cluster) {
  return ParseOrNull(cluster.RunProgram({"lumen", "list", "nodes", "--json"}, 30).output);
}

int CountNodes(const TestCluster& cluster, const std::string& state) {
  const nlohmann::json rows = Nodes(cluster);
  int n = 0;
  if (rows.is_array()) {
    for (const auto& row : rows) n += row.value("state", "") == state ? 1 : 0;
  }
  return n;
}

std::string Field(const std::string& text, const std::string& word) {
  const size_t at = text.find(word + " ");
  if (at == std::string::npos) return "";
  const size_t start = at + word.size() + 1;
  return text.substr(start, text.find_first_of(" \n", start) - start);
}

// Kills the head of `cluster` with SIGKILL and waits until it is gone; returns its session
// folder, to start it again on.
std::string KillHead(const TestCluster& cluster) {
  std::string session =
      std::filesystem::canonical(std::filesystem::path(cluster.temp_dir()) / "session_latest");
  const int head = DaemonPid(cluster.temp_dir());
  REQUIRE(head > 0);
  REQUIRE(kill(head, SIGKILL) == 0);
  REQUIRE(WaitUntil([&] { return ProcessGone(head); }, 10));
  return session;
}

// Starts the head of `cluster` again on `session`.
CommandResult RestartHead(const TestCluster& cluster, const std::string& session,
                          int heartbeat_timeout_ms) {
  return Run({"lumen", "start", "--head", "--session-dir=" + session,
              "--heartbeat-timeout-ms=" + std::to_string(heartbeat_timeout_ms), "--num-cpus=1",
              "--object-store-memory=268435456", "--dashboard-port=0", cluster.TempDirFlag()},
             60);
}

}  // namespace

TEST_CASE("lumen pi survives a worker actor killed with SIGKILL and gives the same estimate",
          "[integration][lifecycle]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::vector<std::string> pi = {"lumen",     "pi",          "--samples=1000000000",
                                       "--seed=11", "--workers=2", "--json"};
  const CommandResult undisturbed = cluster.RunProgram(pi, 120);
  INFO(undisturbed.output);
  REQUIRE(undisturbed.exit_code == 0);
  const nlohmann::json expected = ParseOrNull(undisturbed.output);
  REQUIRE(expected.is_object());
  CHECK(expected["restarts"] == 0);

  auto job = cluster.StartProgram(pi);
  const nlohmann::json worker =
      WaitForActor(cluster, [](const nlohmann::json& row) { return IsAlive(row, "PiWorker"); });
  REQUIRE(worker.is_object());
  REQUIRE(kill(worker["pid"].get<int>(), SIGKILL) == 0);
  REQUIRE(job->Wait(120) == 0);
  INFO(job->Output());
  const nlohmann::json result = ParseOrNull(job->Output());
  REQUIRE(result.is_object());
  CHECK(result["restarts"].get<int>() >= 1);
  CHECK(result["estimate"] == expected["estimate"]);
  CHECK(result["samples"] == expected["samples"]);
}

TEST_CASE("a late death report about an old incarnation does not kill the actor's new one",
          "[integration][lifecycle]") {
  // The actor runs on node 2, whose node manager is stopped until the head declares it dead:
  // the actor restarts on node 3, and node 2, back again, is fenced and ends its old copy.
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2", {"--resources={\"special\": 1}"});
  INFO(node.start_result().output);
  REQUIRE(node.start_result().exit_code == 0);
  const CommandResult created =
      cluster.RunProgram({"lumen_lifecycle_driver", "create-named", "fenced", "special"});
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  const int old_pid = std::atoi(Field(created.output, "pid").c_str());
  REQUIRE(old_pid > 0);
  TestNode spare(cluster, "127.0.0.3", {"--resources={\"special\": 1}"});
  REQUIRE(spare.start_result().exit_code == 0);

  REQUIRE(kill(node.pid(), SIGSTOP) == 0);
  REQUIRE(WaitUntil([&] { return CountNodes(cluster, "DEAD") == 1; }, 30));
  // Restarted on node 3 while the old process still runs on the stopped node.
  REQUIRE(WaitForActor(cluster, [](const nlohmann::json& row) {
            return row.value("name", "") == "fenced" && row.value("restarts", 0) == 1 &&
                   row.value("state", "") == "ALIVE";
          }).is_object());
  const CommandResult moved =
      cluster.RunProgram({"lumen_lifecycle_driver", "call-named", "fenced"});
  INFO(moved.output);
  REQUIRE(moved.exit_code == 0);
  const int new_pid = std::atoi(Field(moved.output, "pid").c_str());
  CHECK(new_pid != old_pid);
  CHECK(!ProcessGone(old_pid));

  REQUIRE(kill(node.pid(), SIGCONT) == 0);
  // Fenced: the old copy ends, and node 2 registers again under a new id.
  CHECK(WaitUntil([&] { return ProcessGone(old_pid); }, 30));
  CHECK(WaitUntil([&] { return CountNodes(cluster, "ALIVE") == 3; }, 30));
  CHECK(WaitUntil(
      [&] { return HeadLog(cluster).find("dropping a stale death report") != std::string::npos; },
      30));
  const CommandResult after =
      cluster.RunProgram({"lumen_lifecycle_driver", "call-named", "fenced"});
  INFO(after.output);
  REQUIRE(after.exit_code == 0);
  CHECK(std::atoi(Field(after.output, "pid").c_str()) == new_pid);
  const nlohmann::json actor = WaitForActor(
      cluster, [](const nlohmann::json& row) { return row.value("name", "") == "fenced"; });
  REQUIRE(actor.is_object());
  CHECK(actor["state"] == "ALIVE");
  CHECK(actor["restarts"] == 1);
}

TEST_CASE("a head stopped for a few seconds does not declare its nodes dead",
          "[integration][lifecycle]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode second(cluster, "127.0.0.2");
  TestNode third(cluster, "127.0.0.3");
  REQUIRE(second.start_result().exit_code == 0);
  REQUIRE(third.start_result().exit_code == 0);
  REQUIRE(WaitUntil([&] { return CountNodes(cluster, "ALIVE") == 3; }, 30));
  const int head = DaemonPid(cluster.temp_dir());
  REQUIRE(head > 0);
  REQUIRE(kill(head, SIGSTOP) == 0);
  // The fault itself: a stall longer than the heartbeat timeout.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  REQUIRE(kill(head, SIGCONT) == 0);
  // Every node stays alive, under its first id, through a few heartbeat timeouts.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (std::chrono::steady_clock::now() < until) {
    const nlohmann::json nodes = Nodes(cluster);
    REQUIRE(nodes.is_array());
    CHECK(nodes.size() == 3);
    for (const auto& row : nodes) CHECK(row["state"] == "ALIVE");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK(HeadLog(cluster).find("declaring it dead") == std::string::npos);
}

TEST_CASE("when a driver exits its actors on other nodes end too", "[integration][lifecycle]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2", {"--resources={\"special\": 1}"});
  REQUIRE(node.start_result().exit_code == 0);
  const CommandResult job = cluster.RunProgram({"lumen_lifecycle_driver", "job-actor", "special"});
  INFO(job.output);
  REQUIRE(job.exit_code == 0);
  const int pid = std::atoi(Field(job.output, "actor-pid").c_str());
  REQUIRE(pid > 0);
  CHECK(WaitUntil([&] { return ProcessGone(pid); }, 30));
  const nlohmann::json actor = WaitForActor(cluster, [](const nlohmann::json& row) {
    return row.value("class_name", "").find("Counter") != std::string::npos &&
           row.value("state", "") == "DEAD";
  });
  REQUIRE(actor.is_object());
  CHECK_THAT(actor.dump(), Contains("job ended"));
}

TEST_CASE("actors and blocked workers do not count against the soft worker cap",
          "[integration][lifecycle]") {
  TestCluster cluster(2, 256ll << 20, {"--max-workers=6"});
  REQUIRE(cluster.start_result().exit_code == 0);
  const CommandResult crowd = cluster.RunProgram({"lumen_lifecycle_driver", "crowd", "20", "12"});
  INFO(crowd.output);
  REQUIRE(crowd.exit_code == 0);
  CHECK_THAT(crowd.output, Contains("actors 20"));
  CHECK_THAT(crowd.output, Contains("squares 2470"));
  CHECK_THAT(crowd.output, Contains("chain 78"));
  CHECK_THAT(cluster.StatusText(), Contains("of soft cap 6"));
}

TEST_CASE("a node at its worker cap stops an idle worker of another program to run a task",
          "[integration][lifecycle]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  // The node keeps one idle worker of the lumen program itself (one per CPU): with a cap of
  // one, the driver's program gets a worker there only if that one makes room.
  TestNode node(cluster, "127.0.0.2", {"--max-workers=1", "--resources={\"special\": 1}"});
  REQUIRE(node.start_result().exit_code == 0);
  const CommandResult special = cluster.RunProgram({"lumen_multinode_driver", "special"}, 60);
  INFO(special.output);
  REQUIRE(special.exit_code == 0);
  CHECK_THAT(special.output, Contains("special-node "));
}

TEST_CASE("a node that cannot reach the head for its timeout stops its workers and exits",
          "[integration][lifecycle]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2", {"--head-lost-timeout-ms=2000"});
  REQUIRE(node.start_result().exit_code == 0);
  REQUIRE(node.pid() > 0);
  const int head = DaemonPid(cluster.temp_dir());
  REQUIRE(head > 0);
  REQUIRE(kill(head, SIGSTOP) == 0);
  const bool exited = WaitUntil([&] { return ProcessGone(node.pid()); }, 20);
  kill(head, SIGCONT);
  CHECK(exited);
}

TEST_CASE("a head killed with SIGKILL restarts on its session and finds its actors again",
          "[integration][lifecycle]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2", {"--resources={\"special\": 1}"});
  REQUIRE(node.start_result().exit_code == 0);
  const CommandResult created =
      cluster.RunProgram({"lumen_lifecycle_driver", "create-named", "keeper", "special"});
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  CHECK_THAT(created.output, Contains("created 101"));
  const int actor_pid = std::atoi(Field(created.output, "pid").c_str());
  // A driver keeps calling the actor through the head's outage.
  lumen::testing::Child caller(
      {"lumen_lifecycle_driver", "call-loop", "keeper", "8", cluster.TempDirFlag()});
  REQUIRE(caller.WaitForOutput("calling", 60));

  const std::string session = KillHead(cluster);
  const CommandResult restarted = RestartHead(cluster, session, 1500);
  INFO(restarted.output);
  REQUIRE(restarted.exit_code == 0);

  REQUIRE(caller.Wait(60) == 0);
  INFO(caller.Output());
  CHECK_THAT(caller.Output(), Contains("failures 0"));
  // Node 2 comes back on its own, and the detached actor is found with its state.
  CHECK(WaitUntil([&] { return CountNodes(cluster, "ALIVE") == 2; }, 30));
  const CommandResult found =
      cluster.RunProgram({"lumen_lifecycle_driver", "call-named", "keeper"});
  INFO(found.output);
  REQUIRE(found.exit_code == 0);
  CHECK(std::atoi(Field(found.output, "pid").c_str()) == actor_pid);
  CHECK(std::atoi(Field(found.output, "value").c_str()) > 102);
  const nlohmann::json actor = WaitForActor(
      cluster, [](const nlohmann::json& row) { return row.value("name", "") == "keeper"; });
  REQUIRE(actor.is_object());
  CHECK(actor["state"] == "ALIVE");
  CHECK(actor["restarts"] == 0);
}

TEST_CASE("the object store of a node killed with SIGKILL is removed when a node starts",
          "[integration][lifecycle]") {
  TestCluster cluster(1, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode doomed(cluster, "127.0.0.2");
  REQUIRE(doomed.start_result().exit_code == 0);
  std::string store;
  const std::string prefix = "lumen-" + std::to_string(doomed.pid()) + "-";
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) store = entry.path();
  }
  REQUIRE(!store.empty());
  REQUIRE(kill(doomed.pid(), SIGKILL) == 0);
  REQUIRE(WaitUntil([&] { return ProcessGone(doomed.pid()); }, 10));
  // Nothing of that node removed it: its 64 MiB stay in memory.
  REQUIRE(std::filesystem::exists(store));
  TestNode next(cluster, "127.0.0.3");
  REQUIRE(next.start_result().exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(store));
  // The live nodes' stores stay.
  const std::string own = "lumen-" + std::to_string(next.pid()) + "-";
  bool kept = false;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    kept = kept || entry.path().filename().string().rfind(own, 0) == 0;
  }
  CHECK(kept);
  CHECK(cluster.RunProgram({"lumen", "status"}, 30).exit_code == 0);
}

TEST_CASE("a restarted head frees the bundles a node holds for a group it never stored",
          "[integration][lifecycle]") {
  // What a head that dies after reserving a group's bundles and before storing the group leaves
  // behind: a reservation on a node that no stored group accounts for. Made here by deleting
  // the stored group while the head is down.
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2", {"--resources={\"special\": 1}"});
  REQUIRE(node.start_result().exit_code == 0);
  const CommandResult created =
      cluster.RunProgram({"lumen_placement_group_driver", "detached-special"});
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  REQUIRE_THAT(created.output, Contains("ready true"));
  // CPUs free on the second node as the head reports them, and whether it holds any bundle;
  // -1 if it cannot be read.
  auto free_cpus = [&](bool* holds_bundles) {
    const nlohmann::json status =
        ParseOrNull(cluster.RunProgram({"lumen", "status", "--json"}, 30).output);
    if (!status.is_object()) return -1.0;
    for (const auto& n : status.value("nodes", nlohmann::json::array())) {
      if (n.value("ip", "") != "127.0.0.2" || !n.value("alive", false)) continue;
      *holds_bundles = false;
      for (const auto& [name, amount] : n.at("total").items()) {
        *holds_bundles = *holds_bundles || name.rfind("bundle_group_", 0) == 0;
      }
      return n.at("available").value("CPU", 0.0);
    }
    return -1.0;
  };
  bool holds = false;
  REQUIRE(WaitUntil([&] { return free_cpus(&holds) == 0 && holds; }, 30));

  const std::string session = KillHead(cluster);
  const CommandResult deleted = Run({"/usr/bin/sqlite3", session + "/head.db",
                                     "DELETE FROM records WHERE tbl = 'placement_groups';"},
                                    30);
  INFO(deleted.output);
  REQUIRE(deleted.exit_code == 0);
  const CommandResult restarted = RestartHead(cluster, session, 1500);
  INFO(restarted.output);
  REQUIRE(restarted.exit_code == 0);
  // The head's stored view of the node is from before the group; the node's own report comes
  // when it registers again, and then the bundle goes.
  CHECK(WaitUntil(
      [&] {
        return HeadLog(cluster).find("that the head does not place there; releasing them") !=
               std::string::npos;
      },
      30));
  CHECK(WaitUntil([&] { return free_cpus(&holds) == 1 && !holds; }, 30));
}

TEST_CASE("a restarted head shows a node stopped during its outage and declares it dead in time",
          "[integration][lifecycle]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2");
  REQUIRE(node.start_result().exit_code == 0);
  REQUIRE(WaitUntil([&] { return CountNodes(cluster, "ALIVE") == 2; }, 30));
  std::string node_id;
  for (const auto& row : Nodes(cluster)) {
    if (row.value("ip", "") == "127.0.0.2") node_id = row.value("node_id", "");
  }
  REQUIRE(!node_id.empty());
  // The row of that node in `lumen list nodes --json`, or null.
  const auto row_of_node = [&] {
    const nlohmann::json rows = Nodes(cluster);
    if (rows.is_array()) {
      for (const auto& row : rows) {
        if (row.value("node_id", "") == node_id) return row;
      }
    }
    return nlohmann::json();
  };

  const std::string session = KillHead(cluster);
  // The node ends while no head hears about it.
  const CommandResult stopped = node.Stop();
  INFO(stopped.output);
  REQUIRE(WaitUntil([&] { return ProcessGone(node.pid()); }, 30));
  // A timeout long enough to see the node's last known state before it is declared dead.
  const CommandResult restarted = RestartHead(cluster, session, 6000);
  INFO(restarted.output);
  REQUIRE(restarted.exit_code == 0);

  const nlohmann::json before = row_of_node();
  INFO(before.dump());
  REQUIRE(before.is_object());
  CHECK(before["state"] == "UNCONFIRMED");
  CHECK(before["ip"] == "127.0.0.2");
  CHECK_FALSE(before.value("is_head", true));
  // Never registered again: declared dead through the usual path once the timeout passed.
  CHECK(WaitUntil([&] { return row_of_node().value("state", "") == "DEAD"; }, 30));
  CHECK(HeadLog(cluster).find("node " + node_id) != std::string::npos);
  // The previous head's own node was replaced by the restarted head's node at its address.
  CHECK(WaitUntil([&] { return CountNodes(cluster, "ALIVE") == 1; }, 30));
  CHECK(CountNodes(cluster, "DEAD") == 2);
}

TEST_CASE("a restarted head shows a silent node unconfirmed and then alive with what it has now",
          "[integration][lifecycle]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode node(cluster, "127.0.0.2", {"--resources={\"special\": 1}"});
  REQUIRE(node.start_result().exit_code == 0);
  REQUIRE(node.pid() > 0);
  // A detached actor holds 0.01 of the node's `special`: what it has free now is not what it had
  // when it registered, which is what the head stores.
  const CommandResult created =
      cluster.RunProgram({"lumen_lifecycle_driver", "create-named", "keeper", "special"});
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  // The node's row in `lumen status --json`, or null.
  const auto status_row = [&] {
    const nlohmann::json status =
        ParseOrNull(cluster.RunProgram({"lumen", "status", "--json"}, 30).output);
    if (status.is_object()) {
      for (const auto& row : status.value("nodes", nlohmann::json::array())) {
        if (row.value("ip", "") == "127.0.0.2" && row.value("state", "") != "DEAD") return row;
      }
    }
    return nlohmann::json();
  };
  const auto alive_with_special_held = [&] {
    const nlohmann::json row = status_row();
    return row.is_object() && row.value("alive", false) && row["available"].is_object() &&
           row["available"].value("special", -1.0) == Approx(0.99);
  };
  REQUIRE(WaitUntil(alive_with_special_held, 30));

  const std::string session = KillHead(cluster);
  // The node stays silent while the restarted head is looked at (SIGCONT again below, or by
  // TestNode at the end); the head's timeout outlasts that.
  REQUIRE(kill(node.pid(), SIGSTOP) == 0);
  const CommandResult restarted = RestartHead(cluster, session, 30000);
  INFO(restarted.output);
  REQUIRE(restarted.exit_code == 0);
  const nlohmann::json held = status_row();
  const std::string text = cluster.StatusText();
  const nlohmann::json listed = Nodes(cluster);
  REQUIRE(kill(node.pid(), SIGCONT) == 0);

  INFO(held.dump());
  REQUIRE(held.is_object());
  CHECK(held["state"] == "UNCONFIRMED");
  CHECK(held["alive"] == false);
  // The stored record says `special` is free; that is not shown as current.
  CHECK(held["available"].is_null());
  CHECK(held["total"].value("special", 0.0) == 1.0);
  CHECK_THAT(held.value("state_reason", ""), Contains("not yet heard from"));
  INFO(text);
  CHECK_THAT(text, Contains("UNCONFIRMED"));
  CHECK_THAT(text, Contains("special ?/1"));
  // The dashboard's node list (the state API) says the same.
  bool listed_unconfirmed = false;
  for (const auto& row : listed) {
    listed_unconfirmed = listed_unconfirmed || (row.value("ip", "") == "127.0.0.2" &&
                                                row.value("state", "") == "UNCONFIRMED" &&
                                                row["resources_available"].is_null());
  }
  CHECK(listed_unconfirmed);

  // Heard from again: alive, with what it has free now.
  CHECK(WaitUntil(alive_with_special_held, 30));
  CHECK(status_row().value("state", "") == "ALIVE");
}

TEST_CASE("a lease held from another node ends when its holder's process or node dies",
          "[integration][lifecycle]") {
  // A task on node 2 (`spawn`) holds a lease on node 3 (`held`) for a task that sleeps; the
  // job stays alive throughout, so only the holder's death can end that lease.
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1500"});
  REQUIRE(cluster.start_result().exit_code == 0);
  TestNode holder_node(cluster, "127.0.0.2", {R"(--resources={"spawn": 1})"});
  TestNode leased_node(cluster, "127.0.0.3", {R"(--resources={"held": 1})"});
  REQUIRE(holder_node.start_result().exit_code == 0);
  REQUIRE(leased_node.start_result().exit_code == 0);
  const std::string dir = MakeTempDir();
  auto job = cluster.StartProgram({"lumen_lifecycle_driver", "remote-holder", dir});
  auto pid_in = [&](const std::string& name) {
    std::ifstream in(std::filesystem::path(dir) / name);
    int pid = 0;
    in >> pid;
    return pid;
  };
  REQUIRE(WaitUntil([&] { return pid_in("spawner") > 0 && pid_in("held") > 0; }, 60));
  // `held` available on its node (-1 while that node is not listed alive).
  auto held_available = [&] {
    const nlohmann::json status =
        ParseOrNull(cluster.RunProgram({"lumen", "status", "--json"}, 30).output);
    if (!status.is_object()) return -1.0;
    for (const auto& node : status["nodes"]) {
      if (node.value("alive", false) && node["total"].contains("held")) {
        return node["available"].value("held", -1.0);
      }
    }
    return -1.0;
  };
  // The node reports its resources with its heartbeats.
  REQUIRE(WaitUntil([&] { return held_available() == 0.0; }, 10));

  SECTION("the holder's process is killed") { REQUIRE(kill(pid_in("spawner"), SIGKILL) == 0); }
  SECTION("the holder's whole node is killed") {
    // Its workers follow their node manager; the head declares the node dead.
    REQUIRE(kill(holder_node.pid(), SIGKILL) == 0);
  }
  CHECK(job->WaitForOutput("spawn failed", 30));
  CHECK(WaitUntil([&] { return held_available() == 1.0; }, 20));
  // The leased worker may still run the dead holder's task: it is ended with the lease.
  CHECK(WaitUntil([&] { return ProcessGone(pid_in("held")); }, 20));
  job->WriteLine("");
  CHECK(job->Wait(30) == 0);
  std::filesystem::remove_all(dir);
}
