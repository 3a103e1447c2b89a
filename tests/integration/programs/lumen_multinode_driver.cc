// A driver for the multi-node tests (tests/integration/multinode_test.cc): each mode places
// tasks or actors and prints on which nodes they ran. Modes are chosen by argv[1], their
// arguments follow; cluster flags (--address=, --temp-dir=, --token=) go to lumen::Init.
#include <chrono>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"

namespace {

constexpr int64_t kTimeoutMs = 30000;

std::string NodeOf(int sleep_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  return lumen::GetRuntimeContext().node_id;
}

class Where {
 public:
  static Where* Create() { return new Where(); }
  std::string Node() { return lumen::GetRuntimeContext().node_id; }
};

LUMEN_REMOTE(NodeOf);
LUMEN_REMOTE(Where::Create, &Where::Node);

// Runs `count` tasks of `sleep_ms` each and prints how many ran on each node and on how many
// distinct nodes they ran.
int PrintNodes(const std::map<std::string, int>& per_node) {
  std::cout << "tasks-per-node";
  for (const auto& [node, tasks] : per_node) std::cout << " " << node << ":" << tasks;
  std::cout << "\ndistinct-nodes " << per_node.size() << std::endl;
  return 0;
}

int Distinct(int count, int sleep_ms, const lumen::SchedulingStrategy& strategy) {
  std::vector<lumen::ObjectRef<std::string>> refs;
  for (int i = 0; i < count; ++i) {
    refs.push_back(lumen::Task(NodeOf).SetSchedulingStrategy(strategy).Remote(sleep_ms));
  }
  std::map<std::string, int> per_node;
  for (const auto& node : lumen::Get(refs, kTimeoutMs)) ++per_node[*node];
  return PrintNodes(per_node);
}

// One SPREAD task at a time, each waited for before the next is submitted.
int OneByOne(int count) {
  std::map<std::string, int> per_node;
  for (int i = 0; i < count; ++i) {
    auto ref = lumen::Task(NodeOf).SetSchedulingStrategy(lumen::SchedulingStrategy::Spread());
    ++per_node[*lumen::Get(ref.Remote(0), kTimeoutMs)];
  }
  return PrintNodes(per_node);
}

int Run(const std::string& mode, const std::vector<std::string>& args) {
  std::cout << "driver-node " << lumen::GetRuntimeContext().node_id << std::endl;
  if (mode == "special") {
    auto ref = lumen::Task(NodeOf).SetResources({{"special", 1}}).Remote(0);
    std::cout << "special-node " << *lumen::Get(ref, kTimeoutMs) << std::endl;
    return 0;
  }
  if (mode == "load") return Distinct(std::stoi(args.at(0)), 1500, {});
  if (mode == "spread") {
    const int sleep_ms = args.size() > 1 ? std::stoi(args[1]) : 300;
    return Distinct(std::stoi(args.at(0)), sleep_ms, lumen::SchedulingStrategy::Spread());
  }
  if (mode == "spread-one-by-one") return OneByOne(std::stoi(args.at(0)));
  if (mode == "affinity") {
    const auto strategy = lumen::SchedulingStrategy::NodeAffinity(args.at(0), args.at(1) == "soft");
    try {
      auto ref = lumen::Task(NodeOf).SetSchedulingStrategy(strategy).Remote(0);
      const std::string node = *lumen::Get(ref, kTimeoutMs);
      std::cout << "ran-on " << node << std::endl;
    } catch (const lumen::Error& e) {
      std::cout << "failed: " << e.what() << std::endl;
    }
    auto actor = lumen::Actor(Where::Create).SetSchedulingStrategy(strategy).Remote();
    try {
      const std::string node = *lumen::Get(actor.Task(&Where::Node).Remote(), kTimeoutMs);
      std::cout << "actor-on " << node << std::endl;
    } catch (const lumen::Error& e) {
      std::cout << "actor-failed: " << e.what() << std::endl;
    }
    return 0;
  }
  if (mode == "infeasible-get") {
    auto ref = lumen::Task(NodeOf).SetResources({{"nowhere", 1}}).Remote(0);
    try {
      lumen::Get(ref, 2000);
      std::cout << "unexpectedly ran" << std::endl;
    } catch (const lumen::GetTimeoutError& e) {
      std::cout << "get-timed-out" << std::endl;
    }
    return 0;
  }
  if (mode == "actor-wait") {
    auto actor = lumen::Actor(Where::Create).SetResource("special", 1).Remote();
    std::cout << "actor-created" << std::endl;
    std::cout << "actor-node " << *lumen::Get(actor.Task(&Where::Node).Remote(), 60000)
              << std::endl;
    return 0;
  }
  std::cout << "unknown mode " << mode << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  std::vector<std::string> args;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]).rfind("--", 0) != 0) args.emplace_back(argv[i]);
  }
  int rc = 1;
  try {
    rc = Run(mode, args);
  } catch (const std::exception& e) {
    std::cout << "uncaught " << e.what() << std::endl;
  }
  lumen::Shutdown();
  return rc;
}
