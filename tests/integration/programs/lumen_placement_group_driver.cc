// A driver for the placement-group tests (tests/integration/placement_group_test.cc): creates a
// group, places tasks and actors in its bundles and prints where they ran. Modes by argv[1];
// cluster flags (--address=, --temp-dir=, --token=) go to lumen::Init. Lines read from stdin
// step the "pending" mode on.
#include <iostream>
#include <string>
#include <vector>

#include "lumen/lumen.h"

namespace {

constexpr int64_t kTimeoutMs = 60000;

std::string NodeOf() { return lumen::GetRuntimeContext().node_id; }

class Where {
 public:
  static Where* Create() { return new Where(); }
  std::string Node() { return lumen::GetRuntimeContext().node_id; }
};

LUMEN_REMOTE(NodeOf);
LUMEN_REMOTE(Where::Create, &Where::Node);

std::string TaskNode(const lumen::PlacementGroup& group, int bundle) {
  auto ref = lumen::Task(NodeOf)
                 .SetSchedulingStrategy(lumen::SchedulingStrategy::PlacementGroup(group, bundle))
                 .Remote();
  return *lumen::Get(ref, kTimeoutMs);
}

lumen::ActorHandle<Where> ActorIn(const lumen::PlacementGroup& group, int bundle) {
  return lumen::Actor(Where::Create)
      .SetSchedulingStrategy(lumen::SchedulingStrategy::PlacementGroup(group, bundle))
      .Remote();
}

void WaitForLine(const std::string& wanted) {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == wanted) return;
  }
}

// Two bundles of one CPU each: where the tasks and the actors of each bundle run, then what
// becomes of an actor once the group is removed.
int TwoBundles(lumen::PlacementStrategy strategy) {
  lumen::PlacementGroup group =
      lumen::CreatePlacementGroup({{{"CPU", 1}}, {{"CPU", 1}}}, strategy, "two");
  std::cout << "group " << group.id() << std::endl;
  std::cout << "ready " << (group.Wait(30000) ? "true" : "false") << std::endl;
  std::vector<lumen::ActorHandle<Where>> actors;
  for (int bundle = 0; bundle < 2; ++bundle) {
    std::cout << "task-node-" << bundle << " " << TaskNode(group, bundle) << std::endl;
    actors.push_back(ActorIn(group, bundle));
    std::cout << "actor-node-" << bundle << " "
              << *lumen::Get(actors.back().Task(&Where::Node).Remote(), kTimeoutMs) << std::endl;
  }
  std::cout << "any-bundle-node " << TaskNode(group, -1) << std::endl;
  lumen::RemovePlacementGroup(group);
  std::cout << "removed" << std::endl;
  try {
    lumen::Get(actors[0].Task(&Where::Node).Remote(), kTimeoutMs);
    std::cout << "actor-after-remove alive" << std::endl;
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "actor-after-remove died: " << e.what() << std::endl;
  }
  try {
    TaskNode(group, 0);
    std::cout << "task-after-remove ran" << std::endl;
  } catch (const lumen::Error& e) {
    std::cout << "task-after-remove failed: " << e.what() << std::endl;
  }
  return 0;
}

int Run(const std::string& mode) {
  std::cout << "driver-node " << lumen::GetRuntimeContext().node_id << std::endl;
  if (mode == "strict-spread") return TwoBundles(lumen::PlacementStrategy::kStrictSpread);
  if (mode == "strict-pack") return TwoBundles(lumen::PlacementStrategy::kStrictPack);
  if (mode == "pending") {
    // Three bundles over distinct nodes: pending until a third node joins.
    lumen::PlacementGroup group =
        lumen::CreatePlacementGroup({{{"CPU", 1}}, {{"CPU", 1}}, {{"CPU", 1}}},
                                    lumen::PlacementStrategy::kStrictSpread, "three");
    std::cout << "group " << group.id() << std::endl;
    std::cout << "first-wait " << (group.Wait(2000) ? "true" : "false") << std::endl;
    std::cout << "second-wait " << (group.Wait(kTimeoutMs) ? "true" : "false") << std::endl;
    for (int bundle = 0; bundle < 3; ++bundle) {
      std::cout << "task-node-" << bundle << " " << TaskNode(group, bundle) << std::endl;
    }
    WaitForLine("remove");
    lumen::RemovePlacementGroup(group);
    std::cout << "removed" << std::endl;
    WaitForLine("exit");
    return 0;
  }
  if (mode == "detached-special") {
    // One detached bundle on the node with {"special": 1}; it outlives this driver.
    lumen::PlacementGroup group = lumen::CreatePlacementGroup(
        {{{"CPU", 1}, {"special", 1}}}, lumen::PlacementStrategy::kPack, "kept", true);
    std::cout << "ready " << (group.Wait(kTimeoutMs) ? "true" : "false") << std::endl;
    return 0;
  }
  if (mode == "bad-input") {
    try {
      lumen::CreatePlacementGroup({}, lumen::PlacementStrategy::kPack);
    } catch (const std::invalid_argument& e) {
      std::cout << "no-bundles: " << e.what() << std::endl;
    }
    lumen::PlacementGroup one = lumen::CreatePlacementGroup({{{"CPU", 1}}});
    try {
      lumen::SchedulingStrategy::PlacementGroup(one, 1);
    } catch (const std::invalid_argument& e) {
      std::cout << "bad-index: " << e.what() << std::endl;
    }
    try {
      lumen::CreatePlacementGroup({{{"CPU", 1}}}, lumen::PlacementStrategy::kPack, "dup");
      lumen::CreatePlacementGroup({{{"CPU", 1}}}, lumen::PlacementStrategy::kPack, "dup");
    } catch (const lumen::Error& e) {
      std::cout << "duplicate-name: " << e.what() << std::endl;
    }
    return 0;
  }
  std::cout << "unknown mode " << mode << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 1;
  try {
    rc = Run(mode);
  } catch (const std::exception& e) {
    std::cout << "uncaught " << e.what() << std::endl;
  }
  lumen::Shutdown();
  return rc;
}
