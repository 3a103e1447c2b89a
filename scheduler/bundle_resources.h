// How a placement group's bundles show as resources on their nodes, named as Ray names them.
// A bundle {CPU: 2} that is bundle 0 of group G, reserved on a node, moves 2 CPUs out of the
// node's free pool and adds "CPU_group_0_<G>" (this bundle) and "CPU_group_<G>" (any bundle of
// G on this node), 2 of each, plus the markers "bundle_group_0_<G>" and "bundle_group_<G>".
// A task or actor placed in a bundle asks for those names instead of the plain ones, so the
// node's ordinary resource accounting enforces the bundle:
//
//   ResourceShape shape = ShapeInBundle({{"CPU", 1}}, group_id, 0);
//   // {CPU_group_0_<G>: 1, CPU_group_<G>: 1, bundle_group_0_<G>: 0.001}
//
// <G> is the group id in hex. Pure functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "scheduler/placement_policy.h"

namespace lumen::scheduler {

// "CPU_group_0_<hex>" for bundle `index`, "CPU_group_<hex>" for index -1 (any bundle).
std::string BundleResourceName(const std::string& resource, const std::string& group_id, int index);
// True for a name BundleResourceName made (of any group).
bool IsBundleResource(const std::string& name);
// True for a name BundleResourceName made for `group_id`.
bool IsResourceOfGroup(const std::string& name, const std::string& group_id);
// The bundles a node's `total` says it holds, as (group id, index), one per bundle marker.
std::vector<std::pair<std::string, int>> HeldBundles(const ResourceShape& total);
// What bundle `index` of `group_id` adds to its node's total when it is reserved there.
ResourceShape BundleNodeResources(const std::string& group_id, int index,
                                  const ResourceShape& bundle);
// What a task or actor of `shape` takes from its node when it runs in bundle `index` (-1: any
// bundle) of `group_id`. A shape that already names bundle resources is returned unchanged.
ResourceShape ShapeInBundle(const ResourceShape& shape, const std::string& group_id, int index);
// With a PLACEMENT_GROUP strategy, rewrites the request's resources with ShapeInBundle.
void PlaceLeaseInBundle(proto::LeaseRequest* request);

}  // namespace lumen::scheduler
