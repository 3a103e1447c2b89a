// Placement groups on real hosts: each host a network namespace (netns_cluster.h) with its own
// lumen daemons; the driver (programs/lumen_placement_group_driver.cc) creates groups and
// places tasks and actors in their bundles.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "tests/integration/netns_cluster.h"

namespace lumen::testing {
namespace {

constexpr char kStore[] = "--object-store-memory=67108864";

// The value after `key ` on its line of `output`, or "".
std::string ValueOf(const std::string& output, const std::string& key) {
  const size_t at = output.find(key + " ");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 1;
  return output.substr(start, output.find('\n', start) - start);
}

nlohmann::json Json(const NetnsCluster& cluster, std::vector<std::string> argv) {
  argv.emplace_back("--json");
  argv.emplace_back("--address=" + cluster.HeadAddress());
  const CommandResult result = cluster.Run(0, argv, 20);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  return nlohmann::json::parse(result.output);
}

// Node id by ip.
std::map<std::string, std::string> NodeIds(const NetnsCluster& cluster) {
  std::map<std::string, std::string> ids;
  const nlohmann::json status = Json(cluster, {"lumen", "status"});
  for (const auto& node : status.at("nodes")) {
    ids[node.at("ip")] = node.at("node_id");
  }
  return ids;
}

// The group's row of `lumen list placement-groups`.
nlohmann::json GroupRow(const NetnsCluster& cluster, const std::string& id) {
  const nlohmann::json rows = Json(cluster, {"lumen", "list", "placement-groups"});
  for (const auto& row : rows) {
    if (row.at("placement_group_id") == id) return row;
  }
  return nullptr;
}

// True once every live node's CPUs are all free, within `timeout_seconds`.
bool AllCpusFree(const NetnsCluster& cluster, double timeout_seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    bool free = true;
    const nlohmann::json status = Json(cluster, {"lumen", "status"});
    for (const auto& node : status.at("nodes")) {
      if (!node.at("alive").get<bool>()) continue;
      free = free && node.at("available").value("CPU", -1.0) == node.at("total").value("CPU", 0.0);
      for (const auto& [name, amount] : node.at("total").items()) {
        free = free && name.find("_group_") == std::string::npos;
      }
    }
    if (free) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

}  // namespace

TEST_CASE("a STRICT_SPREAD group puts its bundles on distinct hosts and runs work in each",
          "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=2", kStore}).exit_code == 0);
  REQUIRE(cluster.StartNode(1, {"--num-cpus=2", kStore}).exit_code == 0);
  const std::map<std::string, std::string> ids = NodeIds(cluster);
  REQUIRE(ids.size() == 2);

  auto driver = cluster.Start(
      0, {"lumen_placement_group_driver", "strict-spread", "--address=" + cluster.HeadAddress()});
  REQUIRE(driver->WaitForOutput("actor-node-1 ", 90));
  const std::string out = driver->Output();
  INFO(out);
  CHECK(ValueOf(out, "ready") == "true");
  const nlohmann::json row = GroupRow(cluster, ValueOf(out, "group"));
  REQUIRE(row.is_object());  // CREATED, or REMOVED already: the driver goes on at once
  CHECK(row.at("strategy") == "STRICT_SPREAD");
  CHECK(row.at("name") == "two");
  const std::string node0 = row.at("bundles").at(0).at("node_id");
  const std::string node1 = row.at("bundles").at(1).at("node_id");
  CHECK(std::set<std::string>{node0, node1} ==
        std::set<std::string>{ids.at(cluster.host(0).ip), ids.at(cluster.host(1).ip)});
  CHECK(ValueOf(out, "task-node-0") == node0);
  CHECK(ValueOf(out, "task-node-1") == node1);
  CHECK(ValueOf(out, "actor-node-0") == node0);
  CHECK(ValueOf(out, "actor-node-1") == node1);

  REQUIRE(driver->Wait(90) == 0);
  const std::string done = driver->Output();
  INFO(done);
  CHECK(std::set<std::string>{node0, node1}.count(ValueOf(done, "any-bundle-node")) == 1);
  CHECK(ValueOf(done, "actor-after-remove").find("placement group was removed") !=
        std::string::npos);
  CHECK(ValueOf(done, "task-after-remove").find("was removed") != std::string::npos);
  CHECK(GroupRow(cluster, ValueOf(done, "group")).at("state") == "REMOVED");
  CHECK(AllCpusFree(cluster, 20));
}

TEST_CASE("a STRICT_PACK group puts every bundle on one host", "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=1", kStore}).exit_code == 0);
  REQUIRE(cluster.StartNode(1, {"--num-cpus=3", kStore}).exit_code == 0);
  const std::map<std::string, std::string> ids = NodeIds(cluster);

  const CommandResult run = cluster.Run(
      0, {"lumen_placement_group_driver", "strict-pack", "--address=" + cluster.HeadAddress()},
      120);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(ValueOf(run.output, "ready") == "true");
  // Only the second host has room for both bundles.
  const std::string& big = ids.at(cluster.host(1).ip);
  for (const char* key : {"task-node-0", "task-node-1", "actor-node-0", "actor-node-1"}) {
    CHECK(ValueOf(run.output, key) == big);
  }
  CHECK(ValueOf(run.output, "actor-after-remove").find("died: ") == 0);
  CHECK(AllCpusFree(cluster, 20));
}

TEST_CASE("a group that needs a third host is pending until one joins, and removal frees it",
          "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(3);
  REQUIRE(cluster.StartHead({"--num-cpus=2", kStore}).exit_code == 0);
  REQUIRE(cluster.StartNode(1, {"--num-cpus=2", kStore}).exit_code == 0);

  auto driver = cluster.Start(
      0, {"lumen_placement_group_driver", "pending", "--address=" + cluster.HeadAddress()});
  REQUIRE(driver->WaitForOutput("first-wait ", 60));
  INFO(driver->Output());
  CHECK(ValueOf(driver->Output(), "first-wait") == "false");
  const std::string id = ValueOf(driver->Output(), "group");
  CHECK(GroupRow(cluster, id).at("state") == "PENDING");
  const nlohmann::json status = Json(cluster, {"lumen", "status"});
  REQUIRE(status.at("pending_placement_groups").size() == 1);
  CHECK(status.at("pending_placement_groups")
            .at(0)
            .at("reason")
            .get<std::string>()
            .find("needs 3 nodes") != std::string::npos);
  const CommandResult text = cluster.Run(0, {"lumen", "status"}, 20);
  CHECK(text.output.find("'three' STRICT_SPREAD 3 bundles") != std::string::npos);
  const CommandResult table = cluster.Run(0, {"lumen", "list", "placement-groups"}, 20);
  INFO(table.output);
  CHECK(table.output.find("PENDING") != std::string::npos);

  REQUIRE(cluster.StartNode(2, {"--num-cpus=1", kStore}).exit_code == 0);
  REQUIRE(driver->WaitForOutput("task-node-2 ", 60));
  const std::string out = driver->Output();
  INFO(out);
  CHECK(ValueOf(out, "second-wait") == "true");
  const std::map<std::string, std::string> ids = NodeIds(cluster);
  std::set<std::string> ran;
  for (const char* key : {"task-node-0", "task-node-1", "task-node-2"}) {
    ran.insert(ValueOf(out, key));
  }
  CHECK(ran.size() == 3);
  const nlohmann::json row = GroupRow(cluster, id);
  CHECK(row.at("state") == "CREATED");
  CHECK(Json(cluster, {"lumen", "status"}).at("pending_placement_groups").empty());

  driver->WriteLine("remove");
  REQUIRE(driver->WaitForOutput("removed", 30));
  CHECK(AllCpusFree(cluster, 20));
  driver->WriteLine("exit");
  CHECK(driver->Wait(30) == 0);
}

TEST_CASE("placement group misuse gets clear errors", "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(1);
  REQUIRE(cluster.StartHead({"--num-cpus=1", kStore}).exit_code == 0);
  const CommandResult run = cluster.Run(
      0, {"lumen_placement_group_driver", "bad-input", "--address=" + cluster.HeadAddress()}, 60);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(ValueOf(run.output, "no-bundles:").find("at least one bundle") != std::string::npos);
  CHECK(ValueOf(run.output, "bad-index:").find("out of range") != std::string::npos);
  CHECK(ValueOf(run.output, "duplicate-name:").find("exists already") != std::string::npos);
}

}  // namespace lumen::testing
