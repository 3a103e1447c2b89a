// Where the bundles of a placement group go, as a pure function of the nodes' free resources:
// every bundle gets a node or none does (all or nothing).
//
//   BundlePlacement p = PlaceBundles(bundles, proto::PlacementGroupInfo::STRICT_SPREAD,
//                                    /*fixed=*/{}, nodes);
//   if (p.placed) reserve p.node_ids[i] for bundle i;  else p.reason says why
//
// Strategies (Ray's):
//  - STRICT_PACK: all bundles on one node.
//  - PACK: on one node if one can hold them all, else on as few nodes as possible.
//  - STRICT_SPREAD: every bundle on a different node.
//  - SPREAD: on distinct nodes where possible, else wherever they fit.
// Among equal choices the least-loaded node wins, then the lower node id.
// `fixed` (empty, or one entry per bundle) names the node of bundles that stay where they are
// (those of a group being rescheduled after a node died); "" entries are placed, and the fixed
// ones count for the strategy. Only `alive` nodes are used; `available` is what they have free
// for bundles, `total` decides whether a group could ever be placed. Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "proto/control.pb.h"
#include "scheduler/placement_policy.h"

namespace lumen::scheduler {

struct BundlePlacement {
  bool placed = false;
  std::vector<std::string> node_ids;  // one per bundle when placed
  // No set of live nodes could hold the group even when all were free.
  bool infeasible = false;
  std::string reason;  // why it is not placed
};

BundlePlacement PlaceBundles(const std::vector<ResourceShape>& bundles,
                             proto::PlacementGroupInfo::Strategy strategy,
                             const std::vector<std::string>& fixed,
                             const std::vector<NodeView>& nodes);

}  // namespace lumen::scheduler
