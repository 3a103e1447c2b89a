// Objects between real hosts: each host is a network namespace (netns_cluster.h) with its own
// node manager, store and data plane; objects cross the bridge over TCP. Tasks reach the second
// host through its custom resource {"b": 1} (tests/integration/programs/lumen_objects_driver.cc).
#include <catch2/catch.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/netns_cluster.h"

using Catch::Matchers::Contains;

namespace lumen::testing {
namespace {

constexpr long long kMiB = 1 << 20;

// A head on host 0 and a node with {"b": 1} on host 1, with these store sizes.
void StartTwoHosts(NetnsCluster& cluster, long long head_store, long long node_store) {
  const CommandResult head =
      cluster.StartHead({"--num-cpus=2", "--object-store-memory=" + std::to_string(head_store)});
  INFO(head.output);
  REQUIRE(head.exit_code == 0);
  const CommandResult node =
      cluster.StartNode(1, {"--num-cpus=1", "--resources={\"b\": 1}",
                            "--object-store-memory=" + std::to_string(node_store)});
  INFO(node.output);
  REQUIRE(node.exit_code == 0);
}

// `lumen status --json`'s nodes, asked on host 0; empty if it cannot be read.
nlohmann::json Nodes(const NetnsCluster& cluster) {
  const CommandResult status =
      cluster.Run(0, {"lumen", "status", "--json", "--address=" + cluster.HeadAddress()}, 20);
  try {
    return nlohmann::json::parse(status.output).at("nodes");
  } catch (const std::exception& e) {
    UNSCOPED_INFO("cannot read `lumen status --json`: " << e.what() << "\n" << status.output);
    return nlohmann::json::array();
  }
}

// `field` of the node on `ip`; -1 if there is none.
long long FieldAt(const nlohmann::json& nodes, const std::string& ip, const std::string& field) {
  for (const auto& node : nodes) {
    if (node.value("ip", "") == ip) return node.value(field, 0LL);
  }
  return -1;
}

// Polls `lumen status` (refreshed by heartbeats) until `condition` holds; false after 30 s.
bool WaitForNodes(const NetnsCluster& cluster,
                  const std::function<bool(const nlohmann::json&)>& condition) {
  return WaitUntil(
      [&] {
        const nlohmann::json nodes = Nodes(cluster);
        return nodes.size() >= 2 && condition(nodes);
      },
      30);
}

// The text after `key ` on its line of `output`, or "".
std::string ValueOf(const std::string& output, const std::string& key) {
  const size_t at = output.find(key + " ");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 1;
  return output.substr(start, output.find('\n', start) - start);
}

// "<node> <sum> expected <node> <sum>": true when both halves agree.
bool HalvesAgree(const std::string& line) {
  const size_t split = line.find(" expected ");
  return split != std::string::npos && split > 0 &&
         line.substr(0, split) == line.substr(split + 10);
}

}  // namespace

TEST_CASE(
    "a large result made on another host is read there and back and freeing it removes the "
    "copies on both hosts",
    "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  StartTwoHosts(cluster, 512 * kMiB, 512 * kMiB);
  // 8 Mi doubles: 64 MiB per object.
  constexpr long long kDoubles = 8 * kMiB;
  auto driver = cluster.Start(0, {"lumen_objects_driver", "cross", std::to_string(kDoubles),
                                  "--address=" + cluster.HeadAddress()});
  const bool dropped = driver->WaitForOutput("dropped", 180);
  INFO(driver->Output());
  REQUIRE(dropped);
  const std::string out = driver->Output();
  CHECK_THAT(out, Contains("nodes distinct 1"));
  const std::string expected = std::to_string(kDoubles * (kDoubles - 1) / 2);
  CHECK_THAT(out, Contains("remote-get sum " + expected + " expected " + expected));
  CHECK_THAT(out, Contains("concurrent-get equal 1"));
  // The task given a ref made on host 0 ran on host 1, and the other way round.
  CHECK(HalvesAgree(ValueOf(out, "ref-arg")));
  CHECK(HalvesAgree(ValueOf(out, "back-arg")));

  // Bytes crossed the bridge both ways (the counts reach the head with the nodes' heartbeats).
  const bool pulled = WaitForNodes(cluster, [&](const nlohmann::json& n) {
    return FieldAt(n, cluster.host(0).ip, "bytes_pulled") >= 2LL * 64 * kMiB &&
           FieldAt(n, cluster.host(1).ip, "bytes_pulled") >= 64 * kMiB;
  });
  INFO(Nodes(cluster).dump(2));
  CHECK(pulled);
  // The driver still runs but holds no ref: every copy on both hosts is gone.
  const bool freed = WaitForNodes(cluster, [&](const nlohmann::json& n) {
    return FieldAt(n, cluster.host(0).ip, "store_used") == 0 &&
           FieldAt(n, cluster.host(1).ip, "store_used") == 0;
  });
  INFO(Nodes(cluster).dump(2));
  CHECK(freed);
  driver->WriteLine("");
  CHECK(driver->Wait(60) == 0);
}

TEST_CASE(
    "an object larger than the free space of the receiving host's store is spilled there "
    "to make room",
    "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  StartTwoHosts(cluster, 256 * kMiB, 64 * kMiB);
  // Three 16 MiB objects fill host 1's 64 MiB store; then a 32 MiB argument must go there.
  const CommandResult run =
      cluster.Run(0,
                  {"lumen_objects_driver", "full-pull", std::to_string(2 * kMiB),
                   "--address=" + cluster.HeadAddress()},
                  180);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(HalvesAgree(ValueOf(run.output, "full-pull")));
  CHECK_THAT(run.output, Contains("fill-restored equal 1"));
}

TEST_CASE(
    "an object larger than the receiving host's whole store fails its task with a clear "
    "error",
    "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  StartTwoHosts(cluster, 256 * kMiB, 32 * kMiB);
  // 8 Mi doubles: 64 MiB, twice host 1's store.
  const CommandResult run =
      cluster.Run(0,
                  {"lumen_objects_driver", "too-large", std::to_string(8 * kMiB),
                   "--address=" + cluster.HeadAddress()},
                  120);
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK_THAT(run.output, Contains("too-large error:"));
  CHECK_THAT(run.output, Contains("larger than the object store's capacity"));
  // The host is still there and runs tasks.
  CHECK_THAT(run.output, Contains("after "));
}

}  // namespace lumen::testing
