#include "scheduler/lease_routing.h"

namespace lumen::scheduler {

LeaseRouting RouteLease(const proto::LeaseRequest& request, const std::string& self_node_id,
                        bool feasible_here, bool available_here) {
  if (request.spilled()) return {};
  const proto::SchedulingStrategy& strategy = request.strategy();
  switch (strategy.kind()) {
    case proto::SchedulingStrategy::SPREAD:
      return {.ask_head = true, .exclude_self = false};
    case proto::SchedulingStrategy::NODE_AFFINITY:
      if (strategy.node_id() == self_node_id && feasible_here &&
          (!strategy.soft() || available_here)) {
        return {};
      }
      return {.ask_head = true, .exclude_self = false};
    default:
      if (feasible_here && available_here) return {};
      return {.ask_head = true, .exclude_self = true};
  }
}

}  // namespace lumen::scheduler
