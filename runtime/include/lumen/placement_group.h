// Placement groups: resources reserved together on the cluster's nodes ("bundles"), all of
// them or none, for tasks and actors placed into them — Ray's placement groups.
//
//   lumen::PlacementGroup pg = lumen::CreatePlacementGroup(
//       {{{"CPU", 1}}, {{"CPU", 1}}}, lumen::PlacementStrategy::kStrictSpread, "workers");
//   if (!pg.Wait(/*timeout_ms=*/5000)) { /* still pending: `lumen status` says why */ }
//   auto ref = lumen::Task(Work)
//                  .SetSchedulingStrategy(lumen::SchedulingStrategy::PlacementGroup(pg, 1))
//                  .Remote();
//   lumen::RemovePlacementGroup(pg);
//
// Strategies: kPack (as few nodes as possible), kSpread (as many distinct nodes as possible),
// kStrictPack (all bundles on one node), kStrictSpread (each bundle on a different node). A
// group that the cluster cannot hold yet stays pending and is placed when nodes join or
// resources free up. A task or actor in a bundle uses the bundle's resources, not the node's
// free ones. Removing a group returns its resources and ends the actors and tasks running in
// it. A group ends with the job that created it unless it is detached.
//
// Every call goes to the head; failures throw lumen::Error naming the cause, bad arguments
// std::invalid_argument. Thread-safe; needs lumen::Init().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lumen {

enum class PlacementStrategy { kPack, kSpread, kStrictPack, kStrictSpread };

// Resources of one bundle, e.g. {{"CPU", 2}, {"GPU", 1}}.
using Bundle = std::map<std::string, double>;

// A handle to a placement group; a cheap value that may be copied and passed to tasks.
class PlacementGroup {
 public:
  PlacementGroup() = default;
  PlacementGroup(std::string id, std::string name, PlacementStrategy strategy,
                 std::vector<Bundle> bundles);

  // The group's id in hex, as `lumen list placement-groups` shows it; empty for an empty handle.
  const std::string& id() const { return id_; }
  const std::string& name() const { return name_; }
  PlacementStrategy strategy() const { return strategy_; }
  const std::vector<Bundle>& bundles() const { return bundles_; }
  bool empty() const { return id_.empty(); }

  // Waits until every bundle is reserved: true then, false when `timeout_ms` passed first
  // (-1: no limit) or the group was removed.
  bool Wait(int64_t timeout_ms = -1) const;

  template <typename Archive>
  void serialize(Archive& archive) {
    archive(id_, name_, strategy_, bundles_);
  }

 private:
  std::string id_;
  std::string name_;
  PlacementStrategy strategy_ = PlacementStrategy::kPack;
  std::vector<Bundle> bundles_;
};

// Creates a group and starts placing it; returns at once (Wait for it to be placed). A
// non-empty name must be unique among the groups that exist. Throws std::invalid_argument for
// no bundles or a bundle without resources, lumen::Error if the head refuses.
PlacementGroup CreatePlacementGroup(const std::vector<Bundle>& bundles,
                                    PlacementStrategy strategy = PlacementStrategy::kPack,
                                    const std::string& name = "", bool detached = false);
// Removes the group: its resources return to the nodes and what runs in it ends.
void RemovePlacementGroup(const PlacementGroup& group);
// The group named `name`, if one exists (not removed).
std::optional<PlacementGroup> GetPlacementGroup(const std::string& name);

}  // namespace lumen
