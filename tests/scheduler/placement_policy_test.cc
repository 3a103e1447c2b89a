// The placement decision (placement_policy.h), the lease routing of a node manager
// (lease_routing.h) and the head's actor reservations (actor_placer.h), on hand-made views.
#include "scheduler/placement_policy.h"

#include <catch2/catch.hpp>
#include <set>

#include "scheduler/actor_placer.h"
#include "scheduler/lease_routing.h"

namespace lumen::scheduler {
namespace {

NodeView Node(const std::string& id, double cpus, double free_cpus, ResourceShape extra = {}) {
  NodeView node{.node_id = id, .total = extra, .available = extra, .alive = true};
  node.total["CPU"] = cpus;
  node.available["CPU"] = free_cpus;
  return node;
}

proto::SchedulingStrategy Strategy(proto::SchedulingStrategy::Kind kind,
                                   const std::string& node_id = "", bool soft = false) {
  proto::SchedulingStrategy strategy;
  strategy.set_kind(kind);
  strategy.set_node_id(node_id);
  strategy.set_soft(soft);
  return strategy;
}

proto::ActorSpec Actor(const std::string& id, double cpus) {
  proto::ActorSpec spec;
  spec.set_actor_id(id);
  spec.set_factory("A::Create");
  (*spec.mutable_resources())["CPU"] = cpus;
  return spec;
}

proto::ActorInfo Info(const std::string& id, proto::ActorInfo::State state,
                      const std::string& node_id = "") {
  proto::ActorInfo info;
  info.set_actor_id(id);
  info.set_state(state);
  info.set_node_id(node_id);
  return info;
}

}  // namespace

TEST_CASE("the default policy keeps work on the preferred node until it is busy") {
  std::string cursor;
  const std::vector<NodeView> nodes = {Node("a", 2, 1), Node("b", 4, 4), Node("c", 4, 1)};
  const ResourceShape one_cpu = {{"CPU", 1}};
  CHECK(PickNode(nodes, {.shape = one_cpu, .strategy = {}, .preferred_node_id = "a"}, &cursor)
            .node_id == "a");

  SECTION("a busy preferred node spills to the least-loaded node that has the shape free") {
    std::vector<NodeView> busy = nodes;
    busy[0].available["CPU"] = 0;
    CHECK(PickNode(busy, {.shape = one_cpu, .strategy = {}, .preferred_node_id = "a"}, &cursor)
              .node_id == "b");
  }
  SECTION("a dead node is never picked") {
    std::vector<NodeView> dead = nodes;
    dead[0].alive = false;
    dead[1].alive = false;
    CHECK(PickNode(dead, {.shape = one_cpu, .strategy = {}, .preferred_node_id = "a"}, &cursor)
              .node_id == "c");
  }
  SECTION("with every node busy none is picked, and the shape is not infeasible") {
    const std::vector<NodeView> full = {Node("a", 2, 0), Node("b", 2, 0)};
    const Placement p =
        PickNode(full, {.shape = one_cpu, .strategy = {}, .preferred_node_id = "a"}, &cursor);
    CHECK(p.node_id.empty());
    CHECK_FALSE(p.infeasible);
    CHECK(p.reason.find("busy") != std::string::npos);
  }
  SECTION("a custom resource goes to the only node that has it") {
    const std::vector<NodeView> custom = {Node("a", 2, 2), Node("b", 2, 2, {{"special", 1}})};
    CHECK(PickNode(custom, {.shape = {{"special", 1}}, .strategy = {}, .preferred_node_id = "a"},
                   &cursor)
              .node_id == "b");
    const Placement none = PickNode(
        custom, {.shape = {{"GPU", 1}}, .strategy = {}, .preferred_node_id = "a"}, &cursor);
    CHECK(none.node_id.empty());
    CHECK(none.infeasible);
  }
}

TEST_CASE("SPREAD visits every node that has the shape free in turn") {
  std::string cursor;
  const std::vector<NodeView> nodes = {Node("a", 2, 2), Node("b", 2, 2), Node("c", 2, 0)};
  const PlacementRequest spread{.shape = {{"CPU", 1}},
                                .strategy = Strategy(proto::SchedulingStrategy::SPREAD),
                                .preferred_node_id = "a"};
  std::multiset<std::string> picked;
  for (int i = 0; i < 4; ++i) picked.insert(PickNode(nodes, spread, &cursor).node_id);
  CHECK(picked.count("a") == 2);
  CHECK(picked.count("b") == 2);
}

TEST_CASE("SPREAD keeps its turns when a node is busy at its turn") {
  std::string last;
  const PlacementRequest spread{.shape = {{"CPU", 1}},
                                .strategy = Strategy(proto::SchedulingStrategy::SPREAD),
                                .preferred_node_id = "a"};
  const std::vector<NodeView> all = {Node("a", 1, 1), Node("b", 1, 1), Node("c", 1, 1),
                                     Node("d", 1, 1)};
  const std::vector<NodeView> b_busy = {Node("a", 1, 1), Node("b", 1, 0), Node("c", 1, 1),
                                        Node("d", 1, 1)};
  CHECK(PickNode(all, spread, &last).node_id == "a");
  CHECK(PickNode(b_busy, spread, &last).node_id == "c");
  // Not c again: the turn after c is d, then the round starts over with a and b.
  CHECK(PickNode(all, spread, &last).node_id == "d");
  CHECK(PickNode(all, spread, &last).node_id == "a");
  CHECK(PickNode(all, spread, &last).node_id == "b");
}

TEST_CASE("node affinity places on the named node, hard fails for good, soft falls back") {
  std::string cursor;
  std::vector<NodeView> nodes = {Node("a", 2, 2), Node("b", 2, 0)};
  nodes.push_back(Node("dead", 2, 2));
  nodes.back().alive = false;
  const ResourceShape one_cpu = {{"CPU", 1}};
  auto pick = [&](const std::string& node, bool soft) {
    return PickNode(nodes,
                    {.shape = one_cpu,
                     .strategy = Strategy(proto::SchedulingStrategy::NODE_AFFINITY, node, soft),
                     .preferred_node_id = "a"},
                    &cursor);
  };
  CHECK(pick("b", false).node_id == "b");  // busy: waits there
  CHECK(pick("b", true).node_id == "a");   // busy: elsewhere
  CHECK(pick("dead", false).unschedulable.find("dead") != std::string::npos);
  CHECK(pick("nowhere", false).unschedulable.find("not part") != std::string::npos);
  CHECK(pick("dead", true).node_id == "a");
}

TEST_CASE("a node manager serves a lease itself only while it has the shape free") {
  proto::LeaseRequest request;
  CHECK_FALSE(RouteLease(request, "self", true, true).ask_head);
  const LeaseRouting busy = RouteLease(request, "self", true, false);
  CHECK(busy.ask_head);
  CHECK(busy.exclude_self);
  CHECK(RouteLease(request, "self", false, false).exclude_self);

  SECTION("a request spilled here is served here") {
    request.set_spilled(true);
    CHECK_FALSE(RouteLease(request, "self", true, false).ask_head);
  }
  SECTION("SPREAD and affinity to another node ask the head, affinity here does not") {
    *request.mutable_strategy() = Strategy(proto::SchedulingStrategy::SPREAD);
    CHECK(RouteLease(request, "self", true, true).ask_head);
    CHECK_FALSE(RouteLease(request, "self", true, true).exclude_self);
    *request.mutable_strategy() = Strategy(proto::SchedulingStrategy::NODE_AFFINITY, "other");
    CHECK(RouteLease(request, "self", true, true).ask_head);
    *request.mutable_strategy() = Strategy(proto::SchedulingStrategy::NODE_AFFINITY, "self");
    CHECK_FALSE(RouteLease(request, "self", true, false).ask_head);
  }
}

TEST_CASE("the head reserves an actor's resources when it places it") {
  ActorPlacer placer;
  const std::vector<NodeView> nodes = {Node("a", 2, 2), Node("b", 2, 2)};
  std::vector<proto::ActorInfo> actors;
  std::map<std::string, int> per_node;
  for (int i = 0; i < 4; ++i) {
    const std::string id = "actor" + std::to_string(i);
    actors.push_back(Info(id, proto::ActorInfo::PENDING));
    const Placement p = placer.Place(Actor(id, 1), "a", nodes, actors);
    REQUIRE(!p.node_id.empty());
    ++per_node[p.node_id];
  }
  // Heartbeats still say both nodes are idle; reservations alone fill them two and two.
  CHECK(per_node == std::map<std::string, int>{{"a", 2}, {"b", 2}});

  SECTION("a fifth actor waits in the queue until one dies") {
    actors.push_back(Info("actor4", proto::ActorInfo::PENDING));
    CHECK(placer.Place(Actor("actor4", 1), "a", nodes, actors).node_id.empty());
    REQUIRE(placer.Queue(actors).size() == 1);
    CHECK(placer.Queue(actors)[0].reason().find("busy") != std::string::npos);
    actors[0].set_state(proto::ActorInfo::DEAD);
    CHECK(!placer.Place(Actor("actor4", 1), "a", nodes, actors).node_id.empty());
    CHECK(placer.Queue(actors).empty());
  }
  SECTION("an actor that needs more than any node has waits, marked infeasible") {
    actors.push_back(Info("big", proto::ActorInfo::PENDING));
    const Placement p = placer.Place(Actor("big", 3), "a", nodes, actors);
    CHECK(p.node_id.empty());
    CHECK(p.infeasible);
    CHECK(placer.Queue(actors).size() == 1);
  }
}

}  // namespace lumen::scheduler
