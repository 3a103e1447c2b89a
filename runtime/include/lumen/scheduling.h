// Where a task or an actor runs: Lumen's scheduling strategies, set per call with
// SetSchedulingStrategy on lumen::Task(...) and lumen::Actor(...).
//
//   auto ref = lumen::Task(Work).SetSchedulingStrategy(lumen::SchedulingStrategy::Spread())
//                  .Remote(x);
//   auto a = lumen::Actor(Counter::Create)
//                .SetSchedulingStrategy(lumen::SchedulingStrategy::NodeAffinity(node_id))
//                .Remote(0);
#pragma once

#include <string>
#include <utility>

namespace lumen {

struct SchedulingStrategy {
  enum class Kind {
    kDefault,       // the submitter's node until it is busy, then the least-loaded node
    kSpread,        // round robin over the nodes that have the resources free
    kNodeAffinity,  // the node `node_id`
  };
  Kind kind = Kind::kDefault;
  // kNodeAffinity: a node id as lumen::GetRuntimeContext().node_id and `lumen status` show it.
  std::string node_id;
  // kNodeAffinity: run elsewhere (default policy) when that node cannot take it now or is gone.
  // Hard affinity (false) fails the task, or the actor's creation, if that node is dead.
  bool soft = false;

  static SchedulingStrategy Default() { return {}; }
  static SchedulingStrategy Spread() {
    return {.kind = Kind::kSpread, .node_id = {}, .soft = false};
  }
  static SchedulingStrategy NodeAffinity(std::string node_id, bool soft = false) {
    return {.kind = Kind::kNodeAffinity, .node_id = std::move(node_id), .soft = soft};
  }
};

}  // namespace lumen
