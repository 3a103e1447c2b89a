#include "scheduler/bundle_resources.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace lumen::scheduler {
namespace {

constexpr char kMarker[] = "bundle";
// How much of its marker one bundle holds, and what a task or actor in it asks for: any
// number of them fit in a bundle, and a shape without resources still lands on its node.
constexpr double kMarkerTotal = 1000;
constexpr double kMarkerDemand = 0.001;

// The "_<hex>" suffix of a bundle resource name, or npos.
size_t GroupSuffix(const std::string& name) {
  const size_t sep = name.rfind('_');
  if (sep == std::string::npos || sep + 1 == name.size()) return std::string::npos;
  const bool hex = std::all_of(name.begin() + static_cast<std::ptrdiff_t>(sep) + 1, name.end(),
                               [](char c) { return absl::ascii_isxdigit(c); });
  return hex && absl::StrContains(name.substr(0, sep), "_group") ? sep : std::string::npos;
}

}  // namespace

std::string BundleResourceName(const std::string& resource, const std::string& group_id,
                               int index) {
  if (index < 0) return absl::StrCat(resource, "_group_", internal::Hex(group_id));
  return absl::StrCat(resource, "_group_", index, "_", internal::Hex(group_id));
}

bool IsBundleResource(const std::string& name) { return GroupSuffix(name) != std::string::npos; }

bool IsResourceOfGroup(const std::string& name, const std::string& group_id) {
  const size_t sep = GroupSuffix(name);
  return sep != std::string::npos && name.substr(sep + 1) == internal::Hex(group_id);
}

std::vector<std::pair<std::string, int>> HeldBundles(const ResourceShape& total) {
  const std::string prefix = absl::StrCat(kMarker, "_group_");
  std::vector<std::pair<std::string, int>> held;
  for (const auto& [name, amount] : total) {
    // "bundle_group_<index>_<hex>"; "bundle_group_<hex>" (any bundle) has no index.
    const size_t sep = GroupSuffix(name);
    if (sep == std::string::npos || !absl::StartsWith(name, prefix) || sep <= prefix.size()) {
      continue;
    }
    int index = -1;
    std::string group;
    if (!absl::SimpleAtoi(name.substr(prefix.size(), sep - prefix.size()), &index) || index < 0 ||
        !internal::Unhex(name.substr(sep + 1), &group)) {
      continue;
    }
    held.emplace_back(std::move(group), index);
  }
  return held;
}

ResourceShape BundleNodeResources(const std::string& group_id, int index,
                                  const ResourceShape& bundle) {
  ResourceShape out;
  for (const auto& [name, amount] : bundle) {
    if (amount <= 0) continue;
    out[BundleResourceName(name, group_id, index)] += amount;
    out[BundleResourceName(name, group_id, -1)] += amount;
  }
  out[BundleResourceName(kMarker, group_id, index)] += kMarkerTotal;
  out[BundleResourceName(kMarker, group_id, -1)] += kMarkerTotal;
  return out;
}

ResourceShape ShapeInBundle(const ResourceShape& shape, const std::string& group_id, int index) {
  if (std::any_of(shape.begin(), shape.end(),
                  [](const auto& entry) { return IsBundleResource(entry.first); })) {
    return shape;
  }
  ResourceShape out;
  for (const auto& [name, amount] : shape) {
    if (amount <= 0) continue;
    out[BundleResourceName(name, group_id, index)] += amount;
    if (index >= 0) out[BundleResourceName(name, group_id, -1)] += amount;
  }
  out[BundleResourceName(kMarker, group_id, index)] += kMarkerDemand;
  return out;
}

void PlaceLeaseInBundle(proto::LeaseRequest* request) {
  const proto::SchedulingStrategy& strategy = request->strategy();
  if (strategy.kind() != proto::SchedulingStrategy::PLACEMENT_GROUP) return;
  const ResourceShape shape = ShapeInBundle(ToShape(request->resources()),
                                            strategy.placement_group_id(), strategy.bundle_index());
  request->mutable_resources()->clear();
  for (const auto& [name, amount] : shape) (*request->mutable_resources())[name] = amount;
}

}  // namespace lumen::scheduler
