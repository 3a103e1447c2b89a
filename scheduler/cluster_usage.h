// What a cluster's live nodes hold in total and in use: resources and object store, summed from
// the nodes' reports (proto::NodeInfo). `lumen status`, the state API's overview and its usage
// samples all show these sums.
//
//   ClusterUsage usage = SumUsage(status.nodes());
//   double cpus_in_use = usage.resources["CPU"].used;
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "proto/control.pb.h"
#include "scheduler/node_state_name.h"

namespace lumen::scheduler {

struct ClusterUsage {
  struct Amount {
    double used = 0;
    double total = 0;
  };
  std::map<std::string, Amount> resources;  // by name
  uint64_t store_used = 0;
  uint64_t store_capacity = 0;
  uint64_t store_objects = 0;
  uint64_t store_pinned_objects = 0;  // read in place by some process
  int alive = 0;
  int unconfirmed = 0;  // not heard from since the head restarted: not summed
  int dead = 0;
};

// Sums over any range of proto::NodeInfo (a vector, or a repeated field); dead and unconfirmed
// nodes (node_state_name.h) are only counted: their figures are not current.
template <typename Nodes>
ClusterUsage SumUsage(const Nodes& nodes) {
  ClusterUsage usage;
  for (const proto::NodeInfo& node : nodes) {
    if (!node.alive()) {
      ++usage.dead;
      continue;
    }
    if (!HeardFrom(node)) {
      ++usage.unconfirmed;
      continue;
    }
    ++usage.alive;
    for (const auto& [name, total] : node.total()) {
      auto available = node.available().find(name);
      const double free = available == node.available().end() ? 0 : available->second;
      usage.resources[name].used += total - free;
      usage.resources[name].total += total;
    }
    usage.store_used += node.store_used();
    usage.store_capacity += node.store_capacity();
    usage.store_objects += node.store_objects();
    usage.store_pinned_objects += node.store_pinned_objects();
  }
  return usage;
}

}  // namespace lumen::scheduler
