// Where a task or an actor runs: Lumen's scheduling strategies, set per call with
// SetSchedulingStrategy on lumen::Task(...) and lumen::Actor(...).
//
//   auto ref = lumen::Task(Work).SetSchedulingStrategy(lumen::SchedulingStrategy::Spread())
//                  .Remote(x);
//   auto a = lumen::Actor(Counter::Create)
//                .SetSchedulingStrategy(lumen::SchedulingStrategy::NodeAffinity(node_id))
//                .Remote(0);
//   auto in_bundle = lumen::Task(Work)
//                        .SetSchedulingStrategy(lumen::SchedulingStrategy::PlacementGroup(pg, 0))
//                        .Remote(x);   // pg from lumen::CreatePlacementGroup (placement_group.h)
#pragma once

#include <string>
#include <utility>

namespace lumen {

class PlacementGroup;

struct SchedulingStrategy {
  enum class Kind {
    kDefault,       // the submitter's node until it is busy, then the least-loaded node
    kSpread,        // round robin over the nodes that have the resources free
    kNodeAffinity,  // the node `node_id`
    // a bundle of a placement group: takes the bundle's reserved resources, on its node
    kPlacementGroup,
  };
  Kind kind = Kind::kDefault;
  // kNodeAffinity: a node id as lumen::GetRuntimeContext().node_id and `lumen status` show it.
  std::string node_id;
  // kNodeAffinity: run elsewhere (default policy) when that node cannot take it now or is gone.
  // Hard affinity (false) fails the task, or the actor's creation, if that node is dead.
  bool soft = false;
  // kPlacementGroup: the group's id (PlacementGroup::id()) and the bundle, -1 for any bundle.
  std::string placement_group_id;
  int bundle_index = -1;

  static SchedulingStrategy Default() { return {}; }
  static SchedulingStrategy Spread() {
    SchedulingStrategy strategy;
    strategy.kind = Kind::kSpread;
    return strategy;
  }
  static SchedulingStrategy NodeAffinity(std::string node_id, bool soft = false) {
    SchedulingStrategy strategy;
    strategy.kind = Kind::kNodeAffinity;
    strategy.node_id = std::move(node_id);
    strategy.soft = soft;
    return strategy;
  }
  // Bundle `bundle_index` of `group` (-1: whichever bundle has room). Throws
  // std::invalid_argument for an empty handle or an index out of range. The task or actor waits
  // while the group is pending, and fails once the group is removed.
  static SchedulingStrategy PlacementGroup(const lumen::PlacementGroup& group,
                                           int bundle_index = -1);
};

}  // namespace lumen
