// The head's placement-group table (placement_group_manager.h) against a fake cluster: nodes
// whose free CPUs are their totals less the bundles the fake has reserved on them.
#include "scheduler/placement_group_manager.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <set>

#include "scheduler/bundle_resources.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

// Nodes that reserve bundles as a node manager would, and can be told to refuse.
class FakeNodes final : public BundleNodes {
 public:
  absl::Status Reserve(const std::string& node_id,
                       const proto::ReserveBundlesRequest& request) override {
    if (refuse.count(node_id) > 0) return absl::ResourceExhaustedError("refused");
    for (int i = 0; i < request.indexes_size(); ++i) {
      held[node_id][request.placement_group_id()][request.indexes(i)] =
          request.bundles(i).resources().at("CPU");
    }
    return absl::OkStatus();
  }
  void Release(const std::string& node_id, const std::string& group_id,
               const std::vector<int>& indexes) override {
    ++releases;
    auto& bundles = held[node_id][group_id];
    if (indexes.empty()) bundles.clear();
    for (int index : indexes) bundles.erase(index);
  }
  double Reserved(const std::string& node_id) {
    double sum = 0;
    for (const auto& [group, bundles] : held[node_id]) {
      for (const auto& [index, cpus] : bundles) sum += cpus;
    }
    return sum;
  }
  std::vector<NodeView> Views() {
    std::vector<NodeView> views;
    for (const auto& [id, cpus] : cpus_by_node) {
      views.push_back({.node_id = id,
                       .total = {{"CPU", cpus}},
                       .available = {{"CPU", cpus - Reserved(id)}},
                       .alive = dead.count(id) == 0});
    }
    return views;
  }

  std::map<std::string, double> cpus_by_node;
  std::set<std::string> refuse;
  std::set<std::string> dead;
  // node -> group -> bundle index -> CPUs
  std::map<std::string, std::map<std::string, std::map<int, double>>> held;
  int releases = 0;
};

proto::PlacementGroupInfo Group(const std::string& id, proto::PlacementGroupInfo::Strategy strategy,
                                int bundles, const std::string& name = "", uint64_t job = 1) {
  proto::PlacementGroupInfo group;
  group.set_placement_group_id(id);
  group.set_strategy(strategy);
  group.set_name(name);
  group.set_creator_job(job);
  for (int i = 0; i < bundles; ++i) (*group.add_bundles()->mutable_resources())["CPU"] = 1;
  return group;
}

struct Fixture {
  explicit Fixture(HeadStore* store = nullptr)
      : manager(&nodes, store,
                {.free_views = [this] { return nodes.Views(); },
                 .placed = [this] { ++placed; },
                 .removed = [this](const std::string& id) { removed.push_back(id); }}) {}

  proto::PlacementGroupInfo Get(const std::string& id) {
    auto group = manager.Get(id, "", absl::ZeroDuration());
    REQUIRE(group.ok());
    return *group;
  }

  FakeNodes nodes;
  int placed = 0;
  std::vector<std::string> removed;
  PlacementGroupManager manager;
};

std::set<std::string> NodesOf(const proto::PlacementGroupInfo& group) {
  std::set<std::string> out;
  for (const auto& bundle : group.bundles()) out.insert(bundle.node_id());
  return out;
}

}  // namespace

TEST_CASE("a group that fits is placed when it is created, each bundle reserved on its node") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 2}, {"b", 2}};
  REQUIRE(f.manager.Create(Group("g1", proto::PlacementGroupInfo::STRICT_SPREAD, 2)).ok());
  const proto::PlacementGroupInfo group = f.Get("g1");
  CHECK(group.state() == proto::PlacementGroupInfo::CREATED);
  CHECK(NodesOf(group) == std::set<std::string>{"a", "b"});
  CHECK(f.nodes.Reserved("a") == 1);
  CHECK(f.nodes.Reserved("b") == 1);
  CHECK(f.placed == 1);
  CHECK(f.manager.Pending().empty());
}

TEST_CASE("an infeasible STRICT_SPREAD group stays pending until a node joins") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 2}, {"b", 2}};
  REQUIRE(f.manager.Create(Group("g1", proto::PlacementGroupInfo::STRICT_SPREAD, 3)).ok());
  proto::PlacementGroupInfo group = f.Get("g1");
  CHECK(group.state() == proto::PlacementGroupInfo::PENDING);
  CHECK_THAT(group.reason(), Catch::Contains("needs 3 nodes"));
  CHECK(f.nodes.Reserved("a") == 0);  // nothing half-placed
  REQUIRE(f.manager.Pending().size() == 1);

  f.manager.PlacePending();
  CHECK(f.Get("g1").state() == proto::PlacementGroupInfo::PENDING);

  f.nodes.cpus_by_node["c"] = 1;
  f.manager.PlacePending();
  group = f.Get("g1");
  CHECK(group.state() == proto::PlacementGroupInfo::CREATED);
  CHECK(NodesOf(group) == std::set<std::string>{"a", "b", "c"});
  CHECK(f.manager.Pending().empty());
}

TEST_CASE("a node that refuses its bundles leaves none of the group reserved") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 1}, {"b", 1}};
  f.nodes.refuse = {"b"};
  REQUIRE(f.manager.Create(Group("g1", proto::PlacementGroupInfo::SPREAD, 2)).ok());
  const proto::PlacementGroupInfo group = f.Get("g1");
  CHECK(group.state() == proto::PlacementGroupInfo::PENDING);
  CHECK_THAT(group.reason(), Catch::Contains("node b could not reserve"));
  CHECK(f.nodes.Reserved("a") == 0);
  CHECK(f.nodes.Reserved("b") == 0);
  for (const auto& bundle : group.bundles()) CHECK(bundle.node_id().empty());

  f.nodes.refuse.clear();
  f.manager.PlacePending();
  CHECK(f.Get("g1").state() == proto::PlacementGroupInfo::CREATED);
}

TEST_CASE("removing a group releases its bundles and ends what runs in it") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 2}};
  REQUIRE(f.manager.Create(Group("g1", proto::PlacementGroupInfo::STRICT_PACK, 2, "pack")).ok());
  REQUIRE(f.nodes.Reserved("a") == 2);
  REQUIRE(f.manager.Remove("g1").ok());
  CHECK(f.nodes.Reserved("a") == 0);
  CHECK(f.removed == std::vector<std::string>{"g1"});
  CHECK(f.Get("g1").state() == proto::PlacementGroupInfo::REMOVED);
  CHECK(f.manager.Remove("g1").ok());  // again: nothing more happens
  CHECK(f.removed.size() == 1);
  CHECK(f.manager.Remove("nope").code() == absl::StatusCode::kNotFound);

  SECTION("the freed resources place the next group, and the name is free again") {
    REQUIRE(f.manager.Create(Group("g2", proto::PlacementGroupInfo::STRICT_PACK, 2, "pack")).ok());
    CHECK(f.Get("g2").state() == proto::PlacementGroupInfo::CREATED);
  }
  SECTION("a removed group cannot take tasks any more") {
    proto::SchedulingStrategy strategy;
    strategy.set_kind(proto::SchedulingStrategy::PLACEMENT_GROUP);
    strategy.set_placement_group_id("g1");
    auto shape = f.manager.ShapeFor(strategy, {{"CPU", 1}});
    CHECK(shape.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(shape.status().message()), Catch::Contains("was removed"));
  }
}

TEST_CASE("group names are unique, bad bundles are refused, and job ends remove groups") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 4}};
  REQUIRE(f.manager.Create(Group("g1", proto::PlacementGroupInfo::PACK, 1, "x")).ok());
  CHECK(f.manager.Create(Group("g2", proto::PlacementGroupInfo::PACK, 1, "x")).code() ==
        absl::StatusCode::kAlreadyExists);
  CHECK(f.manager.Create(Group("g3", proto::PlacementGroupInfo::PACK, 0)).code() ==
        absl::StatusCode::kInvalidArgument);
  proto::PlacementGroupInfo zero = Group("g4", proto::PlacementGroupInfo::PACK, 1);
  (*zero.mutable_bundles(0)->mutable_resources())["CPU"] = 0;
  CHECK(f.manager.Create(zero).code() == absl::StatusCode::kInvalidArgument);

  auto named = f.manager.Get("", "x", absl::ZeroDuration());
  REQUIRE(named.ok());
  CHECK(named->placement_group_id() == "g1");

  proto::PlacementGroupInfo detached = Group("g5", proto::PlacementGroupInfo::PACK, 1, "", 7);
  detached.set_detached(true);
  REQUIRE(f.manager.Create(detached).ok());
  REQUIRE(f.manager.Create(Group("g6", proto::PlacementGroupInfo::PACK, 1, "", 7)).ok());
  f.manager.JobFinished(7);
  CHECK(f.Get("g5").state() == proto::PlacementGroupInfo::CREATED);
  CHECK(f.Get("g6").state() == proto::PlacementGroupInfo::REMOVED);
  CHECK(f.Get("g1").state() == proto::PlacementGroupInfo::CREATED);
}

TEST_CASE("bundles of a node that died are placed again on a live node") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 1}, {"b", 1}, {"c", 1}};
  REQUIRE(f.manager.Create(Group("g1", proto::PlacementGroupInfo::STRICT_SPREAD, 2)).ok());
  const std::set<std::string> before = NodesOf(f.Get("g1"));
  REQUIRE(before.size() == 2);
  const std::string lost = *before.begin();
  f.nodes.dead.insert(lost);
  f.nodes.held.erase(lost);
  f.manager.PlacePending();
  const std::set<std::string> after = NodesOf(f.Get("g1"));
  CHECK(f.Get("g1").state() == proto::PlacementGroupInfo::CREATED);
  CHECK(after.size() == 2);
  CHECK(after.count(lost) == 0);
}

TEST_CASE("a node's view moves the CPUs of its bundles into the bundles' own resources") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 4}};
  REQUIRE(f.manager.Create(Group("g", proto::PlacementGroupInfo::PACK, 1)).ok());
  // As the node reports itself: the bundle's resources are there, one of them taken by a task.
  std::vector<NodeView> views = {{.node_id = "a",
                                  .total = {{"CPU", 4}, {BundleResourceName("CPU", "g", 0), 1}},
                                  .available = {{"CPU", 3}, {BundleResourceName("CPU", "g", 0), 0}},
                                  .alive = true}};
  f.manager.AdjustViews(&views);
  CHECK(views[0].total.at("CPU") == 3);
  CHECK(views[0].available.at("CPU") == 3);
  CHECK(views[0].total.at(BundleResourceName("CPU", "g", 0)) == 1);
  CHECK(views[0].available.at(BundleResourceName("CPU", "g", 0)) == 0);
  CHECK(views[0].total.at(BundleResourceName("CPU", "g", -1)) == 1);

  proto::SchedulingStrategy strategy;
  strategy.set_kind(proto::SchedulingStrategy::PLACEMENT_GROUP);
  strategy.set_placement_group_id("g");
  strategy.set_bundle_index(1);
  CHECK(f.manager.ShapeFor(strategy, {{"CPU", 1}}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a restarted head reads its placement groups back from the store") {
  testing::TempDir temp("placement_groups");
  const std::string& dir = temp.path();
  {
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    Fixture f(store->get());
    f.nodes.cpus_by_node = {{"a", 1}};
    REQUIRE(f.manager.Create(Group("placed", proto::PlacementGroupInfo::PACK, 1, "p")).ok());
    REQUIRE(f.manager.Create(Group("waiting", proto::PlacementGroupInfo::PACK, 1, "w")).ok());
    REQUIRE(f.manager.Create(Group("gone", proto::PlacementGroupInfo::PACK, 1)).ok());
    REQUIRE(f.manager.Remove("gone").ok());
  }
  {
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    Fixture f(store->get());
    REQUIRE(f.manager.Recover().ok());
    const proto::PlacementGroupInfo placed = f.Get("placed");
    CHECK(placed.state() == proto::PlacementGroupInfo::CREATED);
    CHECK(placed.bundles(0).node_id() == "a");
    CHECK(f.Get("waiting").state() == proto::PlacementGroupInfo::PENDING);
    CHECK(f.Get("gone").state() == proto::PlacementGroupInfo::REMOVED);
    CHECK(f.manager.Get("", "w", absl::ZeroDuration()).ok());
    CHECK(f.manager.List().size() == 3);
  }
}

TEST_CASE("a node's bundle markers name the bundles it holds") {
  ResourceShape total = {{"CPU", 4}, {"bundle", 2}, {"bundle_group_x", 1}};
  for (const auto& [name, amount] : BundleNodeResources("\x01\xab", 3, {{"CPU", 1}})) {
    total[name] += amount;
  }
  for (const auto& [name, amount] : BundleNodeResources("\x02", 0, {{"GPU", 1}})) {
    total[name] += amount;
  }
  const auto held = HeldBundles(total);
  CHECK(std::set<std::pair<std::string, int>>(held.begin(), held.end()) ==
        std::set<std::pair<std::string, int>>{{"\x01\xab", 3}, {"\x02", 0}});
}

TEST_CASE("bundles a node holds that the table does not place there are released there") {
  Fixture f;
  f.nodes.cpus_by_node = {{"a", 2}, {"b", 2}};
  REQUIRE(f.manager.Create(Group("g", proto::PlacementGroupInfo::STRICT_PACK, 2)).ok());
  const std::string home = f.Get("g").bundles(0).node_id();
  const std::string other = home == "a" ? "b" : "a";
  // Reservations left by a head that died before storing them: a group it never stored, and a
  // bundle of "g" on the node the table does not place it on.
  f.nodes.held[other]["lost"][0] = 1;
  f.nodes.held[other]["g"][1] = 1;
  f.manager.NodeRegistered(home, {{"g", 0}, {"g", 1}});
  f.manager.NodeRegistered(other, {{"lost", 0}, {"g", 1}});
  CHECK(f.nodes.Reserved(home) == 2);
  CHECK(f.nodes.Reserved(other) == 0);
  CHECK(f.Get("g").state() == proto::PlacementGroupInfo::CREATED);
  // A removed group's bundles go too.
  REQUIRE(f.manager.Remove("g").ok());
  f.nodes.held[home]["g"][0] = 1;
  f.manager.NodeRegistered(home, {{"g", 0}});
  CHECK(f.nodes.Reserved(home) == 0);
}

TEST_CASE("a head restarted after reserving a group's bundles but before storing them frees them") {
  testing::TempDir temp("placement_groups");
  const std::string& dir = temp.path();
  FakeNodes nodes;
  nodes.cpus_by_node = {{"a", 1}};
  {
    // Stored while it waited for room (PENDING, no node); then placed, and the head died
    // before it stored CREATED: the reservation is on the node, the store does not know it.
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    Fixture f(store->get());
    f.nodes.cpus_by_node = {{"a", 0}};
    REQUIRE(f.manager.Create(Group("w", proto::PlacementGroupInfo::PACK, 1)).ok());
    REQUIRE(f.Get("w").state() == proto::PlacementGroupInfo::PENDING);
  }
  nodes.held["a"]["w"][0] = 1;
  {
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    Fixture f(store->get());
    f.nodes.cpus_by_node = nodes.cpus_by_node;
    f.nodes.held = nodes.held;
    REQUIRE(f.manager.Recover().ok());
    CHECK(f.Get("w").state() == proto::PlacementGroupInfo::PENDING);
    f.manager.NodeRegistered("a", {{"w", 0}});
    CHECK(f.nodes.Reserved("a") == 0);  // freed, so that it can be placed again
    f.manager.PlacePending();
    CHECK(f.Get("w").state() == proto::PlacementGroupInfo::CREATED);
    CHECK(f.nodes.Reserved("a") == 1);
  }
}

}  // namespace lumen::scheduler
