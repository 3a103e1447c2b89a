// Placement, liveness, repair planning and trimming of the name node's replica map.
#include "dfs/replica_map.h"

#include <catch2/catch.hpp>

namespace lumen::dfs {
namespace {

// A map with `nodes` live storage nodes, all on one cluster node unless given.
ReplicaMap LiveMap(int nodes, int replication, std::vector<std::string> cluster_nodes = {}) {
  ReplicaMap map(nodes, replication);
  for (int n = 0; n < nodes; ++n) {
    map.SetAlive(n, true);
    map.SetClusterNode(n, cluster_nodes.empty() ? "host" : cluster_nodes[n]);
  }
  return map;
}

void AddChunkOn(ReplicaMap& map, const std::string& id, uint64_t size, std::vector<int> nodes) {
  map.AddChunk(id, size, 42);
  for (int n : nodes) REQUIRE(map.AddReplica(id, n));
}

}  // namespace

TEST_CASE("placement picks distinct live nodes, least loaded first, lower index on ties",
          "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 3);
  CHECK(map.Place(3, {}) == std::vector<int>{0, 1, 2});
  AddChunkOn(map, "c0", 100, {0, 1, 2});
  CHECK(map.Place(3, {}) == std::vector<int>{3, 0, 1});
  map.SetAlive(0, false);
  CHECK(map.Place(3, {}) == std::vector<int>{3, 1, 2});
  CHECK(map.Place(3, {3}) == std::vector<int>{1, 2});  // only two are left
  CHECK(map.Place(1, {1, 2, 3}).empty());
}

TEST_CASE("reservations spread the chunks of one large write evenly", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 3);
  std::vector<int> per_node(4);
  for (int chunk = 0; chunk < 400; ++chunk) {
    const std::vector<int> nodes = map.Place(3, {});
    REQUIRE(nodes.size() == 3);
    for (int n : nodes) {
      map.Reserve(n, 1000);
      ++per_node[n];
    }
  }
  for (int count : per_node) CHECK(count == 300);
}

TEST_CASE("replicas go to distinct cluster nodes where there are enough", "[dfs][replica_map]") {
  // Storage nodes 0 and 1 share host a; 2 is on b; 3 on c.
  ReplicaMap map = LiveMap(4, 3, {"a", "a", "b", "c"});
  CHECK(map.Place(3, {}) == std::vector<int>{0, 2, 3});
  // With one host down to one storage node, the rest still spread.
  map.SetAlive(3, false);
  CHECK(map.Place(3, {}) == std::vector<int>{0, 2, 1});
}

TEST_CASE("repair copies the chunks with the fewest live replicas first", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(5, 3);
  AddChunkOn(map, "two-left", 10, {0, 1, 2});
  AddChunkOn(map, "one-left", 10, {1, 2, 3});
  AddChunkOn(map, "healthy", 10, {0, 3, 4});
  map.SetAlive(1, false);
  map.SetAlive(2, false);
  CHECK(map.UnderReplicated() == 2);
  CHECK(map.Lost() == 0);
  CHECK(map.LiveReplicas("two-left") == std::vector<int>{0});
  const auto plan = map.PlanRepairs(1, 4);
  REQUIRE(plan.size() == 1);
  // Both have one live replica; ties go by id.
  CHECK(plan[0].chunk == "one-left");
  CHECK(plan[0].source == 3);
  CHECK(plan[0].target == 4);  // holds 10 bytes; node 0 holds 20
}

TEST_CASE("a copy in flight is planned once and its replica counts when it succeeds",
          "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 3);
  AddChunkOn(map, "c", 10, {0, 1, 2});
  map.SetAlive(2, false);
  auto plan = map.PlanRepairs(16, 4);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].target == 3);
  map.StartRepair(plan[0]);
  CHECK(map.RepairsInFlight() == 1);
  CHECK(map.PlanRepairs(16, 4).empty());
  map.FinishRepair(plan[0], /*succeeded=*/true);
  CHECK(map.LiveReplicas("c") == std::vector<int>{0, 1, 3});
  CHECK(map.UnderReplicated() == 0);
}

TEST_CASE("a failed copy is planned again", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 3);
  AddChunkOn(map, "c", 10, {0, 1});
  auto plan = map.PlanRepairs(16, 4);
  REQUIRE(plan.size() == 1);
  map.StartRepair(plan[0]);
  map.FinishRepair(plan[0], /*succeeded=*/false);
  CHECK(map.RepairsInFlight() == 0);
  CHECK(map.LiveReplicas("c") == std::vector<int>{0, 1});
  CHECK(map.PlanRepairs(16, 4).size() == 1);
}

TEST_CASE("repair respects its limits and the number of live nodes", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 3);
  for (int i = 0; i < 10; ++i) AddChunkOn(map, "c" + std::to_string(i), 10, {0, 1, 2});
  map.SetAlive(0, false);
  // Only node 3 can take copies: at most two at once into it.
  CHECK(map.PlanRepairs(16, 2).size() == 2);
  CHECK(map.PlanRepairs(1, 2).size() == 1);
  // With two live nodes and R = 3, two replicas are as close as it gets.
  map.SetAlive(3, false);
  CHECK(map.PlanRepairs(16, 4).empty());
  CHECK(map.UnderReplicated() == 10);
}

TEST_CASE("a chunk whose replicas are all dead is lost until one returns", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 2);
  AddChunkOn(map, "c", 10, {0, 1});
  map.SetAlive(0, false);
  map.SetAlive(1, false);
  CHECK(map.Lost() == 1);
  CHECK(map.PlanRepairs(16, 4).empty());
  map.SetAlive(1, true);
  CHECK(map.Lost() == 0);
  CHECK(map.PlanRepairs(16, 4).size() == 1);
}

TEST_CASE("replicas over R are trimmed from the most loaded node", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(4, 2);
  AddChunkOn(map, "big", 1000, {1});
  AddChunkOn(map, "c", 10, {0, 1, 2});
  const auto trims = map.PlanTrims(10);
  REQUIRE(trims.size() == 1);
  CHECK(trims[0] == std::make_pair(std::string("c"), 1));
  map.SetAlive(2, false);
  CHECK(map.PlanTrims(10).empty());  // only two live replicas
}

TEST_CASE("a node's report replaces what the map thought it held", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(3, 2);
  AddChunkOn(map, "kept", 10, {0});
  AddChunkOn(map, "lost", 10, {0});
  map.AddChunk("found", 10, 1);
  const auto unknown = map.SetHeldBy(0, {"kept", "found", "stale"});
  CHECK(unknown == std::vector<std::string>{"stale"});
  CHECK(map.Replicas("kept") == std::vector<int>{0});
  CHECK(map.Replicas("lost").empty());
  CHECK(map.Replicas("found") == std::vector<int>{0});
  CHECK(map.NodeChunks(0) == 2);
  CHECK(map.NodeBytes(0) == 20);
}

TEST_CASE("a node can be lost only if every chunk keeps a live replica", "[dfs][replica_map]") {
  ReplicaMap map = LiveMap(3, 2);
  AddChunkOn(map, "c", 10, {0, 1});
  CHECK(map.CanLose(0));
  CHECK(map.CanLose(2));
  map.SetAlive(1, false);
  CHECK_FALSE(map.CanLose(0));
  CHECK(map.CanLose(2));
  const auto removed = map.RemoveChunk("c");
  CHECK(removed == std::vector<int>{0, 1});
  CHECK(map.CanLose(0));
  CHECK(map.NodeChunks(0) == 0);
}

}  // namespace lumen::dfs
