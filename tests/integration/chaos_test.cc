// A bounded chaos run: a mixed workload while a killer ends random workers and whole nodes
// (and starts nodes again). LUMEN_CHAOS_SECONDS sets its length (default 60 s of workload).
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::CommandResult;
using lumen::testing::DaemonPid;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

namespace {

int ChaosSeconds() {
  const char* value = std::getenv("LUMEN_CHAOS_SECONDS");
  const int seconds = value != nullptr ? std::atoi(value) : 0;
  return seconds > 0 ? seconds : 60;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Pids of the processes whose parent is `parent`.
std::vector<int> Children(int parent) {
  std::vector<int> out;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const int pid = std::atoi(entry.path().filename().string().c_str());
    if (pid <= 0) continue;
    const std::string stat = ReadFile(entry.path() / "stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    char state = 0;
    int ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent) out.push_back(pid);
  }
  return out;
}

// Processes (other than this test) whose environment names a session under `temp_dirs`.
std::vector<int> ProcessesOf(const std::vector<std::string>& temp_dirs) {
  std::vector<int> out;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const int pid = std::atoi(entry.path().filename().string().c_str());
    if (pid <= 0 || pid == getpid()) continue;
    const std::string environ = ReadFile(entry.path() / "environ");
    for (const auto& dir : temp_dirs) {
      if (environ.find("LUMEN_SESSION_DIR=" + dir) != std::string::npos) out.push_back(pid);
    }
  }
  return out;
}

// A node on its own loopback address that the killer ends and starts again.
struct ChaosNode {
  ChaosNode(const TestCluster& cluster, std::string ip) : ip(std::move(ip)) { Start(cluster); }
  ~ChaosNode() { Stop(); }
  void Start(const TestCluster& cluster) {
    temp_dir = MakeTempDir();
    temp_dirs.push_back(temp_dir);
    const CommandResult started = Run(
        {"lumen", "start", "--address=" + cluster.address(), "--token=" + cluster.Token(),
         "--ip=" + ip, "--num-cpus=1", "--object-store-memory=67108864", "--temp-dir=" + temp_dir},
        60);
    pid = started.exit_code == 0 ? DaemonPid(temp_dir) : -1;
    if (pid > 0) daemon_pids.push_back(pid);
  }
  void Stop() const { Run({"lumen", "stop", "--temp-dir=" + temp_dir}, 60); }

  std::string ip;
  std::string temp_dir;
  int pid = -1;
  std::vector<std::string> temp_dirs;
  std::vector<int> daemon_pids;
};

}  // namespace

TEST_CASE("under random kills of workers and nodes every result is right or a documented error",
          "[integration][chaos]") {
  auto cluster = std::make_unique<TestCluster>(
      2, 256ll << 20, std::vector<std::string>{"--heartbeat-timeout-ms=2000"});
  REQUIRE(cluster->start_result().exit_code == 0);
  std::vector<std::string> temp_dirs = {cluster->temp_dir()};
  std::vector<int> daemon_pids = {DaemonPid(cluster->temp_dir())};
  std::vector<std::unique_ptr<ChaosNode>> nodes;
  for (const char* ip : {"127.0.0.2", "127.0.0.3"}) {
    nodes.push_back(std::make_unique<ChaosNode>(*cluster, ip));
    REQUIRE(nodes.back()->pid > 0);
  }
  const int seconds = ChaosSeconds();
  Child workload(
      {"lumen_lifecycle_driver", "chaos", std::to_string(seconds), cluster->TempDirFlag()});
  REQUIRE(workload.WaitForOutput("chaos started", 60));

  std::mt19937 rng(7);
  int worker_kills = 0;
  int node_kills = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the killer's pace
    ChaosNode& node = *nodes[rng() % nodes.size()];
    if (rng() % 5 == 0) {
      // A whole node: its daemon and (through it) its workers; then a new one in its place.
      if (node.pid > 0 && kill(node.pid, SIGKILL) == 0) ++node_kills;
      node.Stop();
      node.Start(*cluster);
      continue;
    }
    const int daemon = rng() % 2 == 0 ? daemon_pids[0] : node.pid;
    const std::vector<int> workers = Children(daemon);
    if (!workers.empty() && kill(workers[rng() % workers.size()], SIGKILL) == 0) {
      ++worker_kills;
    }
  }
  INFO("worker kills " << worker_kills << ", node kills " << node_kills);
  REQUIRE(workload.Wait(120) == 0);
  INFO(workload.Output());
  CHECK_THAT(workload.Output(), Contains(" unexpected 0"));

  // Once idle, every live node has all of its resources back.
  bool settled = false;
  const auto idle_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  nlohmann::json status;
  while (!settled && std::chrono::steady_clock::now() < idle_deadline) {
    status = nlohmann::json::parse(cluster->RunProgram({"lumen", "status", "--json"}, 30).output,
                                   nullptr, false);
    settled = status.is_object();
    for (const auto& n : settled ? status["nodes"] : nlohmann::json::array()) {
      if (n["alive"].get<bool>() && n["available"] != n["total"]) settled = false;
    }
    if (!settled) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  INFO(status.dump());
  CHECK(settled);

  for (auto& node : nodes) {
    temp_dirs.insert(temp_dirs.end(), node->temp_dirs.begin(), node->temp_dirs.end());
    daemon_pids.insert(daemon_pids.end(), node->daemon_pids.begin(), node->daemon_pids.end());
  }
  nodes.clear();
  cluster.reset();
  // Nothing is left: no process of these sessions, no shared memory of their daemons.
  std::vector<int> left = ProcessesOf(temp_dirs);
  for (int i = 0; i < 100 && !left.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    left = ProcessesOf(temp_dirs);
  }
  CHECK(left.empty());
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", error)) {
    const std::string name = entry.path().filename().string();
    for (int pid : daemon_pids) {
      CHECK_FALSE(name.rfind("lumen-" + std::to_string(pid) + "-", 0) == 0);
    }
  }
}
