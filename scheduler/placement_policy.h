// The cluster's placement decision as a pure function: given what every node holds and has
// free, which node a lease request or an actor goes to under a scheduling strategy. The head
// calls it with its view of the nodes (heartbeats for task leases, its own reservations for
// actors); unit tests call it with hand-made views.
//
//   Placement p = PickNode(nodes, {.shape = {{"CPU", 1}}, .preferred_node_id = local}, &cursor);
//   if (!p.node_id.empty()) ...;  else if (p.infeasible) ...;  else wait and ask again
//
// Policies:
//  - DEFAULT: the preferred node (the requester, or an actor's owner) while it has the shape
//    free, else the least-loaded node that has it free (spilling for load, not only for
//    feasibility).
//  - SPREAD: round robin (the cursor) over the nodes that have the shape free.
//  - NODE_AFFINITY: that node; hard fails for good when it is dead, unknown or too small,
//    soft falls back to DEFAULT when it has not the shape free now.
// Thread-compatible: no state beyond the caller's cursor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proto/control.pb.h"

namespace lumen::scheduler {

using ResourceShape = std::map<std::string, double>;

struct NodeView {
  std::string node_id;
  ResourceShape total;
  ResourceShape available;
  bool alive = true;
};

struct PlacementRequest {
  ResourceShape shape;
  proto::SchedulingStrategy strategy;
  std::string preferred_node_id;  // the requester's or the owner's node; may be empty
};

struct Placement {
  std::string node_id;        // empty: no node can take it now
  bool infeasible = false;    // no live node has the shape even in total
  std::string unschedulable;  // it can never be placed: fail it with this message
  std::string reason;         // why no node was picked
};

// `spread_last`: the node SPREAD chose last (updated); SPREAD takes the next free node after it
// in node-id order, so that a node busy at its turn is not skipped for a whole round.
Placement PickNode(const std::vector<NodeView>& nodes, const PlacementRequest& request,
                   std::string* spread_last);

// True if `available` has at least `shape` of every resource (zero amounts always fit).
bool ShapeFits(const ResourceShape& available, const ResourceShape& shape);
// "{CPU: 1, special: 1}".
std::string DescribeShape(const ResourceShape& shape);
// The node's load as the largest used fraction among the resources it has (0: idle).
double NodeLoad(const NodeView& node);
// How many live nodes hold `shape` in total (busy or not).
int CountFeasibleNodes(const std::vector<NodeView>& nodes, const ResourceShape& shape);

template <typename Map>
ResourceShape ToShape(const Map& map) {
  return ResourceShape(map.begin(), map.end());
}

}  // namespace lumen::scheduler
