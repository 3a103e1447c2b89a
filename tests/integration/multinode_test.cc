// Multi-node behaviour on real hosts: each host is a network namespace (netns_cluster.h) with
// its own address, its own lumen daemons started by the CLI, and drivers run inside it.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "tests/integration/netns_cluster.h"

namespace lumen::testing {
namespace {

std::set<std::string> ShmSegments() {
  std::set<std::string> names;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ignored)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// The value after `key ` on its line of `output`, or "".
std::string ValueOf(const std::string& output, const std::string& key) {
  const size_t at = output.find(key + " ");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 1;
  return output.substr(start, output.find('\n', start) - start);
}

nlohmann::json StatusJson(const NetnsCluster& cluster, int host) {
  const CommandResult status =
      cluster.Run(host, {"lumen", "status", "--json", "--address=" + cluster.HeadAddress()}, 20);
  INFO(status.output);
  REQUIRE(status.exit_code == 0);
  return nlohmann::json::parse(status.output);
}

// The id of the node at `ip`.
std::string NodeIdAt(const NetnsCluster& cluster, const std::string& ip) {
  const nlohmann::json status = StatusJson(cluster, 0);
  for (const auto& node : status.at("nodes")) {
    if (node.at("ip") == ip) return node.at("node_id");
  }
  return "";
}

// Polls `lumen status --json` on host 0 until `ready` holds or `timeout_seconds` pass.
template <typename Pred>
bool WaitForStatus(const NetnsCluster& cluster, Pred ready, double timeout_seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready(StatusJson(cluster, 0))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

}  // namespace

TEST_CASE("a node given a wrong address or token fails within seconds and leaves nothing behind",
          "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=1", "--object-store-memory=67108864"}).exit_code == 0);
  const std::set<std::string> shm_before = ShmSegments();

  SECTION("a wrong token") {
    const auto start = std::chrono::steady_clock::now();
    const CommandResult joined = cluster.Run(
        1,
        {"lumen", "start", "--address=" + cluster.HeadAddress(), "--token=not-the-token",
         "--ip=" + cluster.host(1).ip, "--object-store-memory=67108864"},
        30);
    INFO(joined.output);
    CHECK(joined.exit_code == 1);
    CHECK(joined.output.find("wrong cluster token") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  }
  SECTION("an address where no head runs") {
    const auto start = std::chrono::steady_clock::now();
    const CommandResult joined =
        cluster.Run(1,
                    {"lumen", "start", "--address=" + cluster.host(1).ip + ":6399",
                     "--token=" + cluster.Token(), "--ip=" + cluster.host(1).ip,
                     "--object-store-memory=67108864"},
                    30);
    INFO(joined.output);
    CHECK(joined.exit_code == 1);
    CHECK(joined.output.find("cannot join the cluster") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  }
  CHECK(cluster.Pids(1).empty());
  CHECK(ShmSegments() == shm_before);
  CHECK(StatusJson(cluster, 0).at("nodes").size() == 1);
}

TEST_CASE("a task that needs a custom resource runs on the node that has it", "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=2", "--object-store-memory=67108864"}).exit_code == 0);
  const CommandResult node = cluster.StartNode(
      1, {"--num-cpus=2", "--resources={\"special\": 1}", "--object-store-memory=67108864"});
  INFO(node.output);
  REQUIRE(node.exit_code == 0);
  const std::string second = NodeIdAt(cluster, cluster.host(1).ip);
  REQUIRE(!second.empty());

  const CommandResult run = cluster.Run(
      0, {"lumen_multinode_driver", "special", "--address=" + cluster.HeadAddress()}, 60);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(ValueOf(run.output, "special-node") == second);
  CHECK(ValueOf(run.output, "driver-node") != second);

  // Every host sees both nodes with their addresses and resources.
  for (int host = 0; host < 2; ++host) {
    const nlohmann::json status = StatusJson(cluster, host);
    REQUIRE(status.at("nodes").size() == 2);
    std::set<std::string> ips;
    for (const auto& n : status.at("nodes")) ips.insert(n.at("ip").get<std::string>());
    CHECK(ips == std::set<std::string>{cluster.host(0).ip, cluster.host(1).ip});
  }
  const CommandResult text = cluster.Run(1, {"lumen", "status"}, 20);
  INFO(text.output);
  CHECK(text.output.find("special 0/1") != std::string::npos);

  // `lumen stop` on the second host stops only that host's node, which leaves the cluster.
  REQUIRE(cluster.Run(1, {"lumen", "stop"}, 30).exit_code == 0);
  CHECK(WaitUntil([&] { return cluster.Pids(1).empty(); }, 10));
  CHECK(!cluster.Pids(0).empty());
  CHECK(WaitForStatus(
      cluster,
      [&](const nlohmann::json& status) {
        for (const auto& n : status.at("nodes")) {
          if (n.at("ip") == cluster.host(1).ip && !n.at("alive").get<bool>()) return true;
        }
        return false;
      },
      3));  // it leaves at once: sooner than the 5 s heartbeat timeout
}

TEST_CASE(
    "tasks spill to the other node when the local one is busy, and SPREAD and affinity "
    "place them where asked",
    "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=2", "--object-store-memory=67108864"}).exit_code == 0);
  REQUIRE(cluster.StartNode(1, {"--num-cpus=2", "--object-store-memory=67108864"}).exit_code == 0);
  const std::string head_node = NodeIdAt(cluster, cluster.host(0).ip);
  const std::string second = NodeIdAt(cluster, cluster.host(1).ip);
  REQUIRE(!second.empty());
  const std::string address = "--address=" + cluster.HeadAddress();

  SECTION("four long tasks on a busy two-CPU node use both nodes") {
    const CommandResult run = cluster.Run(0, {"lumen_multinode_driver", "load", "4", address}, 60);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK(ValueOf(run.output, "distinct-nodes") == "2");
  }
  SECTION("SPREAD puts short tasks on both nodes") {
    const CommandResult run =
        cluster.Run(0, {"lumen_multinode_driver", "spread", "4", address}, 60);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK(ValueOf(run.output, "distinct-nodes") == "2");
  }
  SECTION("hard affinity runs a task and an actor on the named node") {
    const CommandResult run =
        cluster.Run(0, {"lumen_multinode_driver", "affinity", second, "hard", address}, 60);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK(ValueOf(run.output, "ran-on") == second);
    CHECK(ValueOf(run.output, "actor-on") == second);
  }
  SECTION("hard affinity to a node that does not exist fails at once, soft runs anyway") {
    const CommandResult hard = cluster.Run(
        0, {"lumen_multinode_driver", "affinity", "0123456789abcdef", "hard", address}, 60);
    INFO(hard.output);
    CHECK(hard.output.find("failed: ") != std::string::npos);
    CHECK(hard.output.find("actor-failed: ") != std::string::npos);
    const CommandResult soft = cluster.Run(
        0, {"lumen_multinode_driver", "affinity", "0123456789abcdef", "soft", address}, 60);
    INFO(soft.output);
    CHECK(ValueOf(soft.output, "ran-on") == head_node);
    CHECK(!ValueOf(soft.output, "actor-on").empty());
  }
  SECTION("a task no node can run is reported, and Get with a timeout gives up") {
    const CommandResult run =
        cluster.Run(1, {"lumen_multinode_driver", "infeasible-get", address}, 30);
    INFO(run.output);
    CHECK(run.output.find("get-timed-out") != std::string::npos);
  }
}

TEST_CASE("trivial SPREAD tasks run on every node of five in a burst and one by one",
          "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  constexpr int kHosts = 5;
  NetnsCluster cluster(kHosts);
  REQUIRE(cluster.StartHead({"--num-cpus=1", "--object-store-memory=67108864"}).exit_code == 0);
  for (int host = 1; host < kHosts; ++host) {
    const CommandResult node =
        cluster.StartNode(host, {"--num-cpus=1", "--object-store-memory=67108864"});
    INFO(node.output);
    REQUIRE(node.exit_code == 0);
  }
  // Each task takes microseconds: the first lease granted could run them all.
  const CommandResult run = cluster.Run(
      0, {"lumen_multinode_driver", "spread", "2000", "0", "--address=" + cluster.HeadAddress()},
      60);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(ValueOf(run.output, "distinct-nodes") == std::to_string(kHosts));
  // Tasks submitted one at a time, each waited for, go round the free nodes too: once the last
  // job's leases are back on every node (the head hears it with each node's next heartbeat).
  REQUIRE(WaitForStatus(
      cluster,
      [](const nlohmann::json& status) {
        for (const auto& n : status.at("nodes")) {
          if (n.at("alive").get<bool>() && n.at("available").value("CPU", 0.0) < 1) return false;
        }
        return true;
      },
      30));
  const CommandResult one_by_one =
      cluster.Run(0,
                  {"lumen_multinode_driver", "spread-one-by-one", std::to_string(2 * kHosts),
                   "--address=" + cluster.HeadAddress()},
                  60);
  INFO(one_by_one.output);
  REQUIRE(one_by_one.exit_code == 0);
  CHECK(ValueOf(one_by_one.output, "distinct-nodes") == std::to_string(kHosts));
}

TEST_CASE("lumen pi over two namespace hosts runs a worker on every CPU of both", "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=2", "--object-store-memory=67108864"}).exit_code == 0);
  REQUIRE(cluster
              .StartNode(1, {"--num-cpus=2", "--resources={\"special\": 1}",
                             "--object-store-memory=67108864"})
              .exit_code == 0);
  const CommandResult pi = cluster.Run(
      0, {"lumen", "pi", "--samples=20000000", "--json", "--address=" + cluster.HeadAddress()}, 90);
  INFO(pi.output);
  REQUIRE(pi.exit_code == 0);
  const auto json = nlohmann::json::parse(pi.output.substr(pi.output.find('{')));
  CHECK(json.at("workers") == 4);
  CHECK(json.at("estimate").get<double>() == Approx(3.14159).epsilon(0.01));
  // Its four one-CPU worker actors ran two on each node.
  const CommandResult actors = cluster.Run(
      0, {"lumen", "list", "actors", "--json", "--address=" + cluster.HeadAddress()}, 20);
  INFO(actors.output);
  REQUIRE(actors.exit_code == 0);
  std::map<std::string, int> per_node;
  for (const auto& actor : nlohmann::json::parse(actors.output)) {
    if (actor.at("class_name") == "PiWorker") ++per_node[actor.at("node_id")];
  }
  CHECK(per_node.size() == 2);
  for (const auto& [node, count] : per_node) CHECK(count == 2);
}

TEST_CASE("an actor that fits on no node waits in the head's queue and starts when one joins",
          "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=1", "--object-store-memory=67108864"}).exit_code == 0);
  auto driver = cluster.Start(
      0, {"lumen_multinode_driver", "actor-wait", "--address=" + cluster.HeadAddress()});
  REQUIRE(driver->WaitForOutput("actor-created", 30));
  CHECK(WaitForStatus(
      cluster, [](const nlohmann::json& status) { return status.at("pending_actors").size() == 1; },
      15));
  const CommandResult text = cluster.Run(0, {"lumen", "status"}, 20);
  INFO(text.output);
  CHECK(text.output.find("Where::Create {special: 1}") != std::string::npos);

  REQUIRE(cluster
              .StartNode(1, {"--num-cpus=1", "--resources={\"special\": 1}",
                             "--object-store-memory=67108864"})
              .exit_code == 0);
  REQUIRE(driver->Wait(60) == 0);
  INFO(driver->Output());
  CHECK(ValueOf(driver->Output(), "actor-node") == NodeIdAt(cluster, cluster.host(1).ip));
  CHECK(StatusJson(cluster, 0).at("pending_actors").empty());
}

TEST_CASE("the DFS spreads its storage nodes over the hosts and moves chunks between them",
          "[multinode][dfs]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(3);
  REQUIRE(cluster.StartHead({"--num-cpus=2", "--object-store-memory=134217728"}).exit_code == 0);
  for (int host : {1, 2}) {
    REQUIRE(
        cluster.StartNode(host, {"--num-cpus=1", "--object-store-memory=134217728"}).exit_code ==
        0);
  }
  const std::string address = "--address=" + cluster.HeadAddress();
  const CommandResult started = cluster.Run(
      0, {"lumen", "dfs", "start", "--storage-nodes=3", "--replication=2", address}, 60);
  INFO(started.output);
  REQUIRE(started.exit_code == 0);

  // One storage node on each host.
  const CommandResult actors = cluster.Run(0, {"lumen", "list", "actors", "--json", address}, 20);
  INFO(actors.output);
  REQUIRE(actors.exit_code == 0);
  std::set<std::string> storage_nodes;
  for (const auto& actor : nlohmann::json::parse(actors.output)) {
    if (actor.at("name").get<std::string>().rfind("dfs.storage.", 0) == 0) {
      storage_nodes.insert(actor.at("node_id").get<std::string>());
    }
  }
  CHECK(storage_nodes.size() == 3);

  // A file of several chunks, each larger than an inline value, goes up and comes back.
  const std::string dir = cluster.host(0).temp_dir;
  const std::string input = dir + "/input.bin";
  const std::string output = dir + "/output.bin";
  REQUIRE(Run({"/bin/sh", "-c", "head -c 5000000 /dev/urandom > " + input}).exit_code == 0);
  const CommandResult round_trip = cluster.Run(
      0,
      {"lumen", "dfs", "-c",
       "upload-file data " + input + "; download data " + output + "; list data", address},
      120);
  INFO(round_trip.output);
  REQUIRE(round_trip.exit_code == 0);
  CHECK(Run({"/bin/sh", "-c", "cmp " + input + " " + output}).exit_code == 0);
}

}  // namespace lumen::testing
