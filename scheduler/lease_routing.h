// Where a node manager sends a lease request it receives: serve it here, or ask the head's
// placement policy (placement_policy.h) and spill it back to the node the head names.
//
//   LeaseRouting route = RouteLease(request, node_id, feasible_here, available_here);
//   if (route.ask_head) FindNode(..., exclude = route.exclude_self ? node_id : "");
//
// Default strategy: served here while this node has the shape free; when it is busy or can
// never hold the shape, the head picks the least-loaded other node that has it free (spilling
// for load as well as for feasibility). SPREAD and node affinity to another node always ask the
// head. A request spilled here is served here (no second hop). Pure function.
#pragma once

#include <string>

#include "proto/control.pb.h"

namespace lumen::scheduler {

struct LeaseRouting {
  bool ask_head = false;
  // The head must not pick this node (it is busy, or cannot hold the shape).
  bool exclude_self = false;
};

LeaseRouting RouteLease(const proto::LeaseRequest& request, const std::string& self_node_id,
                        bool feasible_here, bool available_here);

}  // namespace lumen::scheduler
