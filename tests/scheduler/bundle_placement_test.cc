// Where a placement group's bundles go (bundle_placement.h) and how bundles show as resources
// (bundle_resources.h), on hand-made node views.
#include "scheduler/bundle_placement.h"

#include <catch2/catch.hpp>
#include <set>

#include "scheduler/bundle_resources.h"

namespace lumen::scheduler {
namespace {

using Strategy = proto::PlacementGroupInfo;

NodeView Node(const std::string& id, double cpus, double free_cpus) {
  return NodeView{
      .node_id = id, .total = {{"CPU", cpus}}, .available = {{"CPU", free_cpus}}, .alive = true};
}

std::vector<ResourceShape> Cpus(std::vector<double> amounts) {
  std::vector<ResourceShape> bundles;
  for (double amount : amounts) bundles.push_back({{"CPU", amount}});
  return bundles;
}

size_t Distinct(const std::vector<std::string>& ids) {
  return std::set<std::string>(ids.begin(), ids.end()).size();
}

}  // namespace

TEST_CASE("STRICT_PACK puts every bundle on one node that can hold them all") {
  const std::vector<NodeView> nodes = {Node("a", 2, 2), Node("b", 4, 4)};
  const BundlePlacement p = PlaceBundles(Cpus({1, 1, 1}), Strategy::STRICT_PACK, {}, nodes);
  REQUIRE(p.placed);
  CHECK(p.node_ids == std::vector<std::string>{"b", "b", "b"});

  SECTION("no node that can hold all of them leaves the group unplaced, infeasible") {
    const BundlePlacement none = PlaceBundles(Cpus({3, 3}), Strategy::STRICT_PACK, {}, nodes);
    CHECK_FALSE(none.placed);
    CHECK(none.node_ids.empty());
    CHECK(none.infeasible);
    CHECK_THAT(none.reason, Catch::Contains("no live node has {CPU: 6}"));
  }
}

TEST_CASE("PACK prefers one node and falls back to as few nodes as possible") {
  const std::vector<NodeView> nodes = {Node("a", 2, 2), Node("b", 2, 2), Node("c", 2, 2)};
  const BundlePlacement one = PlaceBundles(Cpus({1, 1}), Strategy::PACK, {}, nodes);
  REQUIRE(one.placed);
  CHECK(Distinct(one.node_ids) == 1);
  const BundlePlacement two = PlaceBundles(Cpus({1, 1, 1, 1}), Strategy::PACK, {}, nodes);
  REQUIRE(two.placed);
  CHECK(Distinct(two.node_ids) == 2);
}

TEST_CASE("STRICT_SPREAD puts each bundle on a different node") {
  const std::vector<NodeView> nodes = {Node("a", 4, 4), Node("b", 1, 1), Node("c", 2, 2)};
  const BundlePlacement p = PlaceBundles(Cpus({2, 1, 1}), Strategy::STRICT_SPREAD, {}, nodes);
  REQUIRE(p.placed);
  CHECK(Distinct(p.node_ids) == 3);
  // The 2-CPU bundle cannot go to b, so the search must give a or c to it.
  CHECK(p.node_ids[0] != "b");

  SECTION("more bundles than live nodes stay unplaced and say so") {
    const BundlePlacement none =
        PlaceBundles(Cpus({1, 1, 1, 1}), Strategy::STRICT_SPREAD, {}, nodes);
    CHECK_FALSE(none.placed);
    CHECK(none.infeasible);
    CHECK_THAT(none.reason, Catch::Contains("needs 4 nodes and the cluster has 3 live"));
  }
  SECTION("a dead node does not count") {
    std::vector<NodeView> one_dead = nodes;
    one_dead[1].alive = false;
    CHECK_FALSE(PlaceBundles(Cpus({1, 1, 1}), Strategy::STRICT_SPREAD, {}, one_dead).placed);
  }
}

TEST_CASE("SPREAD uses distinct nodes where it can and doubles up where it must") {
  const std::vector<NodeView> nodes = {Node("a", 2, 2), Node("b", 2, 2)};
  const BundlePlacement two = PlaceBundles(Cpus({1, 1}), Strategy::SPREAD, {}, nodes);
  REQUIRE(two.placed);
  CHECK(Distinct(two.node_ids) == 2);
  const BundlePlacement three = PlaceBundles(Cpus({1, 1, 1}), Strategy::SPREAD, {}, nodes);
  REQUIRE(three.placed);
  CHECK(Distinct(three.node_ids) == 2);
}

TEST_CASE("a group is placed all or nothing") {
  // Enough in total, but busy now: no bundle is placed, and the group is not infeasible.
  const std::vector<NodeView> nodes = {Node("a", 2, 1), Node("b", 2, 0)};
  const BundlePlacement p = PlaceBundles(Cpus({1, 1}), Strategy::SPREAD, {}, nodes);
  CHECK_FALSE(p.placed);
  CHECK(p.node_ids.empty());
  CHECK_FALSE(p.infeasible);
  CHECK_THAT(p.reason, Catch::Contains("waiting for resources"));
}

TEST_CASE("bundles that stay where they are count for the strategy") {
  const std::vector<NodeView> nodes = {Node("a", 2, 1), Node("b", 2, 2), Node("c", 2, 2)};
  SECTION("STRICT_SPREAD places the lost bundle away from the kept one") {
    const BundlePlacement p = PlaceBundles(Cpus({1, 1}), Strategy::STRICT_SPREAD, {"b", ""}, nodes);
    REQUIRE(p.placed);
    CHECK(p.node_ids[0] == "b");
    CHECK(p.node_ids[1] != "b");
  }
  SECTION("STRICT_PACK places the lost bundle beside the kept one") {
    const BundlePlacement p = PlaceBundles(Cpus({1, 1}), Strategy::STRICT_PACK, {"", "c"}, nodes);
    REQUIRE(p.placed);
    CHECK(p.node_ids == std::vector<std::string>{"c", "c"});
  }
  SECTION("a kept bundle on a node that is gone fails the placement") {
    const BundlePlacement p = PlaceBundles(Cpus({1, 1}), Strategy::PACK, {"z", ""}, nodes);
    CHECK_FALSE(p.placed);
    CHECK_THAT(p.reason, Catch::Contains("node z"));
  }
}

TEST_CASE("a bundle's resources on its node carry the group and the bundle index") {
  const std::string group = "\x01\xab";
  const ResourceShape on_node = BundleNodeResources(group, 1, {{"CPU", 2}});
  CHECK(on_node.at("CPU_group_1_01ab") == 2);
  CHECK(on_node.at("CPU_group_01ab") == 2);
  CHECK(on_node.at("bundle_group_1_01ab") == 1000);
  CHECK(IsBundleResource("CPU_group_1_01ab"));
  CHECK(IsResourceOfGroup("CPU_group_01ab", group));
  CHECK_FALSE(IsResourceOfGroup("CPU_group_01ac", group));
  CHECK_FALSE(IsBundleResource("CPU"));

  SECTION("a shape in bundle 1 asks for that bundle and the group's wildcard") {
    const ResourceShape shape = ShapeInBundle({{"CPU", 1}}, group, 1);
    CHECK(shape == ResourceShape{{"CPU_group_1_01ab", 1},
                                 {"CPU_group_01ab", 1},
                                 {"bundle_group_1_01ab", 0.001}});
    CHECK(ShapeInBundle(shape, group, 1) == shape);  // rewriting twice changes nothing
  }
  SECTION("a shape in any bundle asks for the wildcard only") {
    CHECK(ShapeInBundle({{"CPU", 1}}, group, -1) ==
          ResourceShape{{"CPU_group_01ab", 1}, {"bundle_group_01ab", 0.001}});
  }
  SECTION("an empty shape still needs the bundle's node") {
    CHECK(ShapeInBundle({}, group, 0) == ResourceShape{{"bundle_group_0_01ab", 0.001}});
  }
}

}  // namespace lumen::scheduler
