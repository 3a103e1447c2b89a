// An actor whose node dies while no other live node can take it: its restart waits in the head's
// queue (shown by `lumen status`) instead of the actor being declared dead, and it starts when a
// node that fits joins. Real hosts (netns_cluster.h), real kills.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/integration/netns_cluster.h"

namespace lumen::testing {
namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json Json(const NetnsCluster& cluster, const std::vector<std::string>& command) {
  std::vector<std::string> argv = {"lumen"};
  argv.insert(argv.end(), command.begin(), command.end());
  argv.emplace_back("--json");
  argv.push_back("--address=" + cluster.HeadAddress());
  return nlohmann::json::parse(cluster.Run(0, argv, 20).output, nullptr, false);
}

// The state of the actor named `name` in `lumen list actors`, and its node.
std::pair<std::string, std::string> ActorState(const NetnsCluster& cluster,
                                               const std::string& name) {
  const nlohmann::json actors = Json(cluster, {"list", "actors"});
  for (const auto& actor : actors.is_array() ? actors : nlohmann::json::array()) {
    if (actor.value("name", "") == name) {
      return {actor.value("state", ""), actor.value("node_id", "")};
    }
  }
  return {"", ""};
}

std::string NodeIdAt(const NetnsCluster& cluster, const std::string& ip) {
  const nlohmann::json status = Json(cluster, {"status"});
  for (const auto& node : status.is_object() ? status["nodes"] : nlohmann::json::array()) {
    if (node["ip"] == ip && node["alive"].get<bool>()) return node["node_id"];
  }
  return "";
}

}  // namespace

TEST_CASE("an actor whose node died waits for a node that fits and restarts there", "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(3);
  REQUIRE(cluster
              .StartHead(
                  {"--num-cpus=1", "--object-store-memory=67108864", "--heartbeat-timeout-ms=2000"})
              .exit_code == 0);
  const std::vector<std::string> special = {"--num-cpus=1", "--resources={\"special\": 1}",
                                            "--object-store-memory=67108864"};
  REQUIRE(cluster.StartNode(1, special).exit_code == 0);
  const std::string address = "--address=" + cluster.HeadAddress();
  const CommandResult created =
      cluster.Run(0, {"lumen_lifecycle_driver", "create-named", "keeper", "special", address}, 60);
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  REQUIRE(ActorState(cluster, "keeper").second == NodeIdAt(cluster, cluster.host(1).ip));

  // Host 1 dies whole; no live node has `special`.
  for (int pid : cluster.Pids(1)) kill(pid, SIGKILL);
  bool queued = false;
  nlohmann::json status;
  const auto queued_by = Clock::now() + std::chrono::seconds(30);
  while (!queued && Clock::now() < queued_by) {
    status = Json(cluster, {"status"});
    queued = status.is_object() && status["pending_actors"].size() == 1 &&
             status["pending_actors"][0]["name"] == "keeper";
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  INFO(status.dump());
  REQUIRE(queued);
  const CommandResult text = cluster.Run(0, {"lumen", "status", address}, 20);
  INFO(text.output);
  CHECK(text.output.find("'keeper' {special: 0.01}") != std::string::npos);
  // It keeps waiting, restarting rather than dead.
  const auto waited = Clock::now() + std::chrono::seconds(4);
  while (Clock::now() < waited) {
    CHECK(ActorState(cluster, "keeper").first == "RESTARTING");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }

  // A node that fits joins on another host: the actor starts there and answers.
  REQUIRE(cluster.StartNode(2, special).exit_code == 0);
  const CommandResult called =
      cluster.Run(0, {"lumen_lifecycle_driver", "call-named", "keeper", address}, 60);
  INFO(called.output);
  REQUIRE(called.exit_code == 0);
  CHECK(called.output.find("value 101") != std::string::npos);
  CHECK(ActorState(cluster, "keeper") ==
        std::make_pair(std::string("ALIVE"), NodeIdAt(cluster, cluster.host(2).ip)));
  CHECK(Json(cluster, {"status"})["pending_actors"].empty());
}

}  // namespace lumen::testing
