// Objects across nodes: a head on 127.0.0.1 and a second node on 127.0.0.2 in one session, each
// with its own node manager, store and data plane, real TCP between them. Tasks reach the second
// node through its custom resource {"b": 1}.
#include <signal.h>

#include <catch2/catch.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::Run;
using lumen::testing::TestCluster;

namespace {

constexpr long long kMiB = 1 << 20;

// Joins a node on `ip` to `cluster`, with {"b": 1} and a store of `store_bytes`.
void JoinNode(const TestCluster& cluster, const std::string& ip, long long store_bytes) {
  const auto result = cluster.RunProgram(
      {"lumen", "start", "--address=" + cluster.address(), "--ip=" + ip, "--num-cpus=1",
       "--resources={\"b\": 1}", "--object-store-memory=" + std::to_string(store_bytes)},
      60);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
}

// `lumen status --json`'s nodes; empty if it cannot be read.
nlohmann::json Nodes(const TestCluster& cluster) {
  const auto result = cluster.RunProgram({"lumen", "status", "--json"}, 30);
  try {
    return nlohmann::json::parse(result.output).at("nodes");
  } catch (const std::exception& e) {
    UNSCOPED_INFO("cannot read `lumen status --json`: " << e.what() << "\n" << result.output);
    return nlohmann::json::array();
  }
}

// Sum of `field` over the nodes; `head` selects the head (true) or the other nodes (false).
long long Field(const nlohmann::json& nodes, const std::string& field, bool head) {
  long long total = 0;
  for (const auto& node : nodes) {
    if (node.value("is_head", false) == head) total += node.value(field, 0LL);
  }
  return total;
}

// Polls `lumen status` (refreshed by heartbeats) until `condition` holds; false after 30 s.
bool WaitForNodes(const TestCluster& cluster,
                  const std::function<bool(const nlohmann::json&)>& condition) {
  return lumen::testing::WaitUntil(
      [&] {
        const nlohmann::json nodes = Nodes(cluster);
        return nodes.size() >= 2 && condition(nodes);
      },
      30);
}

}  // namespace

TEST_CASE("objects made on one node are read, passed and freed on another",
          "[integration][multinode]") {
  TestCluster cluster(2, 512 * kMiB);
  REQUIRE(cluster.start_result().exit_code == 0);
  JoinNode(cluster, "127.0.0.2", 512 * kMiB);
  // 16 Mi doubles: 128 MiB per object, 16 chunks.
  Child driver({"lumen_objects_driver", "cross", std::to_string(16 * kMiB), cluster.TempDirFlag()});
  const bool dropped = driver.WaitForOutput("dropped", 120);
  INFO(driver.Output());
  REQUIRE(dropped);
  const std::string out = driver.Output();
  CHECK_THAT(out, Contains("nodes distinct 1"));
  const std::string expected = std::to_string(16 * kMiB * (16 * kMiB - 1) / 2);
  CHECK_THAT(out, Contains("remote-get sum " + expected + " expected " + expected));
  CHECK_THAT(out, Contains("concurrent-get equal 1"));
  // "ref-arg <node> <sum> expected <node> <sum>": the task ran on the other node.
  const auto ref_arg = out.find("ref-arg ");
  REQUIRE(ref_arg != std::string::npos);
  const std::string line = out.substr(ref_arg + 8, out.find('\n', ref_arg) - ref_arg - 8);
  const auto split = line.find(" expected ");
  REQUIRE(split != std::string::npos);
  CHECK(line.substr(0, split) == line.substr(split + 10));
  const auto back_arg = out.find("back-arg ");
  REQUIRE(back_arg != std::string::npos);
  const std::string back = out.substr(back_arg + 9, out.find('\n', back_arg) - back_arg - 9);
  const auto back_split = back.find(" expected ");
  REQUIRE(back_split != std::string::npos);
  CHECK(back.substr(0, back_split) == back.substr(back_split + 10));

  // Both directions moved bytes; the four concurrent readers caused one transfer (the counts
  // reach the head with the nodes' heartbeats).
  // Whether a reader's request overlapped the first one's transfer (merged) or came after the
  // copy had arrived (read locally) depends on timing; either way the head pulled each of its
  // two objects once (merging itself has unit tests: pull_manager_test.cc).
  const bool counted = WaitForNodes(cluster, [](const nlohmann::json& n) {
    return Field(n, "pulls_started", /*head=*/true) == 2 &&
           Field(n, "pulls_started", /*head=*/false) >= 1 &&
           Field(n, "bytes_pulled", /*head=*/true) >= 2LL * 128 * kMiB &&
           Field(n, "bytes_pulled", /*head=*/true) < 3LL * 128 * kMiB;
  });
  INFO(Nodes(cluster).dump(2));
  CHECK(counted);

  // The driver still runs but holds no ref: every copy on every node is gone.
  const bool freed = WaitForNodes(cluster, [](const nlohmann::json& n) {
    return Field(n, "store_used", true) == 0 && Field(n, "store_used", false) == 0;
  });
  INFO(Nodes(cluster).dump(2));
  CHECK(freed);
  driver.WriteLine("");
  CHECK(driver.Wait(60) == 0);
}

TEST_CASE("a Get with a timeout ends at its timeout while the node holding the object is silent",
          "[integration][multinode]") {
  // A long heartbeat timeout: the stopped node stays alive for the head, so only the Get's own
  // timeout can end the Get (the data plane's peer timeout is 10 s).
  TestCluster cluster(1, 256 * kMiB, {"--heartbeat-timeout-ms=30000"});
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string node_dir = lumen::testing::MakeTempDir();
  const auto joined =
      Run({"lumen", "start", "--address=" + cluster.address(), "--token=" + cluster.Token(),
           "--ip=127.0.0.2", "--num-cpus=1", "--resources={\"b\": 1}",
           "--object-store-memory=" + std::to_string(128 * kMiB), "--temp-dir=" + node_dir},
          60);
  INFO(joined.output);
  REQUIRE(joined.exit_code == 0);
  const int node_pid = lumen::testing::DaemonPid(node_dir);
  REQUIRE(node_pid > 0);
  // 4 Mi doubles: 32 MiB in the other node's store.
  Child driver(
      {"lumen_objects_driver", "silent-holder", std::to_string(4 * kMiB), cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("READY", 60));
  REQUIRE(kill(node_pid, SIGSTOP) == 0);
  driver.WriteLine("");
  const bool ended = driver.WaitForOutput("seconds ", 60);
  kill(node_pid, SIGCONT);
  driver.WriteLine("");
  const int rc = driver.Wait(90);
  Run({"lumen", "stop", "--temp-dir=" + node_dir}, 60);
  const std::string out = driver.Output();
  INFO(out);
  REQUIRE(ended);
  CHECK_THAT(out, Contains("silent-get GetTimeoutError: lumen::Get timed out after 1500 ms"));
  const auto seconds = out.find("\nseconds ");
  REQUIRE(seconds != std::string::npos);
  CHECK(std::stod(out.substr(seconds + 9)) < 5);
  // Nothing was lost: once the node goes on, the same Get returns the whole value.
  const std::string expected = std::to_string(4 * kMiB * (4 * kMiB - 1) / 2);
  CHECK_THAT(out, Contains("after sum " + expected + " expected " + expected));
  CHECK(rc == 0);
}

TEST_CASE("an object larger than the receiving node's store fails its task with a clear error",
          "[integration][multinode]") {
  TestCluster cluster(2, 256 * kMiB);
  REQUIRE(cluster.start_result().exit_code == 0);
  JoinNode(cluster, "127.0.0.2", 32 * kMiB);
  // 8 Mi doubles: 64 MiB, twice the other node's store.
  const auto result =
      cluster.RunProgram({"lumen_objects_driver", "too-large", std::to_string(8 * kMiB)});
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK_THAT(result.output, Contains("too-large error:"));
  CHECK_THAT(result.output, Contains("larger than the object store's capacity"));
  // The node is still there and runs tasks.
  CHECK_THAT(result.output, Contains("after "));
  CHECK_THAT(cluster.StatusText(), Contains("127.0.0.2"));
}
