// The head's placement-group table: creates groups, reserves their bundles on nodes all at
// once or not at all, keeps the groups that cannot be placed yet PENDING and places them when
// nodes or resources change, places the bundles of a dead node again (RESCHEDULING), and
// removes groups (on request, or when the creator's job ends unless the group is detached),
// which returns their resources and ends what runs in them.
//
//   PlacementGroupManager groups(&bundle_nodes, store, hooks);
//   groups.Create(info);              // placed at once if it can be
//   groups.PlacePending();            // the head's monitor calls it periodically
//   groups.Get(id, "", absl::Seconds(5));  // waits while PENDING
//
// Every change of a group's state is written to the head store (table "placement_groups")
// before it is acknowledged; Recover reads the table back in a restarted head. The nodes keep
// their reservations across a head restart.
//
// Thread-safe. Placement (which calls the nodes) runs one at a time; the table has its own
// lock, never held while calling the nodes or the hooks.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/control.pb.h"
#include "scheduler/head_store.h"
#include "scheduler/placement_policy.h"

namespace lumen::scheduler {

// The nodes' side of bundles (the NodeService calls ReserveBundles and ReleaseBundles), behind
// an interface so that tests can use a fake.
class BundleNodes {
 public:
  virtual ~BundleNodes() = default;
  // Reserves the request's bundles on the node, all of them or none.
  [[nodiscard]] virtual absl::Status Reserve(const std::string& node_id,
                                             const proto::ReserveBundlesRequest& request) = 0;
  // Returns bundles `indexes` (empty: all) of the group on the node; failures are logged.
  virtual void Release(const std::string& node_id, const std::string& group_id,
                       const std::vector<int>& indexes) = 0;
};

class PlacementGroupManager {
 public:
  struct Hooks {
    // Every node with what it has free for new bundles, and whether it is alive.
    std::function<std::vector<NodeView>()> free_views;
    // A group was placed: actors waiting for its bundles may start now.
    std::function<void()> placed;
    // A group was removed: its actors end.
    std::function<void(const std::string& group_id)> removed;
  };

  // `nodes` and `store` (may be null) must outlive the manager.
  PlacementGroupManager(BundleNodes* nodes, HeadStore* store, Hooks hooks);

  // Reads the groups a previous head kept.
  [[nodiscard]] absl::Status Recover();
  // Adds a group (its id, bundles, strategy, name, creator job and detached flag set by the
  // caller) and tries to place it at once. Creating an existing id again is a no-op.
  // INVALID_ARGUMENT for bad bundles, ALREADY_EXISTS for a name in use.
  [[nodiscard]] absl::Status Create(proto::PlacementGroupInfo group);
  // The group with `id` (or, if id is empty, the live group named `name`), after waiting up to
  // `wait` while it is not placed yet. NOT_FOUND if there is none.
  [[nodiscard]] absl::StatusOr<proto::PlacementGroupInfo> Get(const std::string& id,
                                                              const std::string& name,
                                                              absl::Duration wait);
  // Removes the group: its bundles are returned and what runs in them ends. NOT_FOUND for an
  // unknown id; removing a removed group is a no-op.
  [[nodiscard]] absl::Status Remove(const std::string& id);
  // The job ended: its groups that are not detached are removed.
  void JobFinished(uint64_t job_id);
  // Every group, oldest first (removed ones too, the most recent kMaxRemoved of them).
  std::vector<proto::PlacementGroupInfo> List();
  // Groups not placed yet (PENDING or RESCHEDULING), oldest first.
  std::vector<proto::PlacementGroupInfo> Pending();
  // Tries to place every group that waits, oldest first; bundles on nodes that died are placed
  // again. Returns at once when nothing waits.
  void PlacePending();

  // A node registered (joined, or came back to a restarted head) holding `held` bundles
  // (HeldBundles of its total). Those the table does not place on that node are released
  // there: a group it does not know or removed, a bundle it places elsewhere or nowhere. That
  // is what a head leaves behind when it dies between reserving bundles and storing the group.
  void NodeRegistered(const std::string& node_id,
                      const std::vector<std::pair<std::string, int>>& held);

  // Rewrites nodes' views (as they report them) for the bundles reserved on them: the plain
  // resources a bundle holds leave the node's total, the bundle's own resources join it.
  void AdjustViews(std::vector<NodeView>* views);
  // What a task or actor of `shape` asks for under a PLACEMENT_GROUP `strategy`
  // (bundle_resources.h). FAILED_PRECONDITION for an unknown or removed group,
  // INVALID_ARGUMENT for a bundle index out of range. `placed` tells whether the group's
  // bundles are all reserved now.
  [[nodiscard]] absl::StatusOr<ResourceShape> ShapeFor(const proto::SchedulingStrategy& strategy,
                                                       const ResourceShape& shape,
                                                       bool* placed = nullptr);

  static constexpr size_t kMaxRemoved = 1000;

 private:
  struct Group {
    proto::PlacementGroupInfo info;
    uint64_t seq = 0;  // creation order
  };
  // Places one waiting group (the caller holds place_mu_).
  void PlaceOne(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(place_mu_);
  // Bundles on nodes that are dead now go back to placement.
  void UnplaceDeadNodes(const std::vector<NodeView>& views) ABSL_LOCKS_EXCLUDED(mu_);
  void PersistLocked(const Group& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the group removed (forgetting the oldest removed groups beyond kMaxRemoved, which
  // may include this one); returns the nodes that hold its bundles.
  std::vector<std::string> RemoveLocked(Group& group, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseAll(const std::string& id, const std::vector<std::string>& nodes);
  std::vector<proto::PlacementGroupInfo> SortedLocked(bool waiting_only)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Set at construction.
  BundleNodes* const nodes_;
  HeadStore* const store_;
  const Hooks hooks_;

  absl::Mutex place_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);       // by id
  std::map<std::string, std::string> names_ ABSL_GUARDED_BY(mu_);  // live groups: name -> id
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::string> removed_ ABSL_GUARDED_BY(mu_);  // removed groups' ids, oldest first
};

}  // namespace lumen::scheduler
