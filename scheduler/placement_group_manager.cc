#include "scheduler/placement_group_manager.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "scheduler/bundle_placement.h"
#include "scheduler/bundle_resources.h"

namespace lumen::scheduler {
namespace {

constexpr char kTable[] = "placement_groups";
constexpr size_t kMaxBundles = 1000;
constexpr size_t kMaxNameBytes = 256;

bool Waiting(const proto::PlacementGroupInfo& info) {
  return info.state() == proto::PlacementGroupInfo::PENDING ||
         info.state() == proto::PlacementGroupInfo::RESCHEDULING;
}

absl::Status CheckGroup(const proto::PlacementGroupInfo& group) {
  if (group.placement_group_id().empty()) {
    return absl::InvalidArgumentError("a placement group needs an id");
  }
  if (group.bundles().empty()) {
    return absl::InvalidArgumentError("a placement group needs at least one bundle");
  }
  if (static_cast<size_t>(group.bundles_size()) > kMaxBundles) {
    return absl::InvalidArgumentError(
        absl::StrCat("a placement group has at most ", kMaxBundles, " bundles"));
  }
  if (group.name().size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a placement group's name has at most ", kMaxNameBytes, " bytes"));
  }
  if (!proto::PlacementGroupInfo::Strategy_IsValid(group.strategy())) {
    return absl::InvalidArgumentError("unknown placement strategy");
  }
  for (int i = 0; i < group.bundles_size(); ++i) {
    bool any = false;
    for (const auto& [name, amount] : group.bundles(i).resources()) {
      if (!std::isfinite(amount) || amount < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bundle ", i, ": resource ", name, " has an invalid amount ", amount));
      }
      if (name.empty() || IsBundleResource(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("bundle ", i, ": '", name, "' cannot be a resource name"));
      }
      any = any || amount > 0;
    }
    if (!any) {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle ", i, " is empty: a bundle needs some resource above zero"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

PlacementGroupManager::PlacementGroupManager(BundleNodes* nodes, HeadStore* store, Hooks hooks)
    : nodes_(nodes), store_(store), hooks_(std::move(hooks)) {}

absl::Status PlacementGroupManager::Recover() {
  if (store_ == nullptr) return absl::OkStatus();
  auto records = store_->Scan(kTable, "");
  if (!records.ok()) return records.status();
  std::vector<proto::PlacementGroupInfo> groups;
  for (const HeadStore::Record& record : *records) {
    proto::PlacementGroupInfo info;
    if (!info.ParseFromString(record.value)) {
      LUMEN_LOG(WARNING) << "skipping an unreadable placement group record";
      continue;
    }
    groups.push_back(std::move(info));
  }
  std::sort(groups.begin(), groups.end(),
            [](const auto& a, const auto& b) { return a.create_time_ms() < b.create_time_ms(); });
  absl::MutexLock lock(&mu_);
  for (proto::PlacementGroupInfo& info : groups) {
    Group& group = groups_[info.placement_group_id()];
    group.seq = next_seq_++;
    if (info.state() == proto::PlacementGroupInfo::REMOVED) {
      removed_.push_back(info.placement_group_id());
    } else if (!info.name().empty()) {
      names_[info.name()] = info.placement_group_id();
    }
    group.info = std::move(info);
  }
  if (!groups.empty()) LUMEN_LOG(INFO) << "recovered " << groups.size() << " placement groups";
  return absl::OkStatus();
}

void PlacementGroupManager::PersistLocked(const Group& group) {
  if (store_ == nullptr) return;
  if (auto status =
          store_->Put(kTable, group.info.placement_group_id(), group.info.SerializeAsString());
      !status.ok()) {
    LUMEN_LOG(ERROR) << "cannot store placement group "
                     << internal::Hex(group.info.placement_group_id()) << ": " << status;
  }
}

absl::Status PlacementGroupManager::Create(proto::PlacementGroupInfo group) {
  if (auto status = CheckGroup(group); !status.ok()) return status;
  const std::string id = group.placement_group_id();
  {
    absl::MutexLock lock(&mu_);
    if (groups_.count(group.placement_group_id()) > 0) return absl::OkStatus();
    if (!group.name().empty() && names_.count(group.name()) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("a placement group named '", group.name(), "' exists already"));
    }
    group.set_state(proto::PlacementGroupInfo::PENDING);
    group.set_create_time_ms(absl::ToUnixMillis(absl::Now()));
    group.set_ready_time_ms(0);
    for (auto& bundle : *group.mutable_bundles()) bundle.clear_node_id();
    Group& entry = groups_[group.placement_group_id()];
    entry.seq = next_seq_++;
    if (!group.name().empty()) names_[group.name()] = group.placement_group_id();
    entry.info = std::move(group);
  }
  // Placed first, then stored once before the reply: a placed group is stored by PlaceOne,
  // one that waits is stored here.
  PlacePending();
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(id);
  if (it != groups_.end() && Waiting(it->second.info)) PersistLocked(it->second);
  return absl::OkStatus();
}

absl::StatusOr<proto::PlacementGroupInfo> PlacementGroupManager::Get(const std::string& id,
                                                                     const std::string& name,
                                                                     absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  absl::MutexLock lock(&mu_);
  while (true) {
    std::string key = id;
    if (key.empty()) {
      auto named = names_.find(name);
      if (named != names_.end()) key = named->second;
    }
    auto it = groups_.find(key);
    if (it == groups_.end()) {
      return absl::NotFoundError(
          id.empty() ? absl::StrCat("no placement group is named '", name, "'")
                     : absl::StrCat("no placement group has id ", internal::Hex(id)));
    }
    if (!Waiting(it->second.info) || absl::Now() >= deadline) return it->second.info;
    changed_.WaitWithDeadline(&mu_, deadline);
  }
}

std::vector<std::string> PlacementGroupManager::RemoveLocked(Group& group, const std::string& why) {
  std::set<std::string> nodes;
  for (const auto& bundle : group.info.bundles()) {
    if (!bundle.node_id().empty()) nodes.insert(bundle.node_id());
  }
  group.info.set_state(proto::PlacementGroupInfo::REMOVED);
  group.info.set_reason(why);
  if (auto named = names_.find(group.info.name());
      named != names_.end() && named->second == group.info.placement_group_id()) {
    names_.erase(named);
  }
  // One transaction: this group's new state, and the oldest removed groups beyond
  // kMaxRemoved forgotten.
  std::vector<HeadStore::Mutation> batch;
  batch.push_back({kTable, group.info.placement_group_id(), group.info.SerializeAsString()});
  removed_.push_back(group.info.placement_group_id());
  while (removed_.size() > kMaxRemoved) {
    batch.push_back({kTable, removed_.front(), std::nullopt});
    groups_.erase(removed_.front());
    removed_.pop_front();
  }
  if (store_ != nullptr) {
    if (auto status = store_->Write(batch); !status.ok()) {
      LUMEN_LOG(ERROR) << "cannot store the removal of placement group "
                       << internal::Hex(batch.front().key) << ": " << status;
    }
  }
  changed_.SignalAll();
  return {nodes.begin(), nodes.end()};
}

void PlacementGroupManager::ReleaseAll(const std::string& id,
                                       const std::vector<std::string>& nodes) {
  for (const std::string& node : nodes) nodes_->Release(node, id, {});
  if (hooks_.removed) hooks_.removed(id);
}

absl::Status PlacementGroupManager::Remove(const std::string& id) {
  std::vector<std::string> nodes;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(id);
    if (it == groups_.end()) {
      return absl::NotFoundError(absl::StrCat("no placement group has id ", internal::Hex(id)));
    }
    if (it->second.info.state() == proto::PlacementGroupInfo::REMOVED) return absl::OkStatus();
    nodes = RemoveLocked(it->second, "removed by the user");
  }
  ReleaseAll(id, nodes);
  return absl::OkStatus();
}

void PlacementGroupManager::JobFinished(uint64_t job_id) {
  std::vector<std::pair<std::string, std::vector<std::string>>> removed;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const auto& [id, group] : groups_) {
      if (group.info.creator_job() == job_id && !group.info.detached() &&
          group.info.state() != proto::PlacementGroupInfo::REMOVED) {
        ids.push_back(id);
      }
    }
    for (const std::string& id : ids) {
      removed.emplace_back(id, RemoveLocked(groups_[id], "its creator's job ended"));
    }
  }
  for (const auto& [id, nodes] : removed) ReleaseAll(id, nodes);
}

std::vector<proto::PlacementGroupInfo> PlacementGroupManager::SortedLocked(bool waiting_only) {
  std::vector<const Group*> sorted;
  for (const auto& [id, group] : groups_) {
    if (!waiting_only || Waiting(group.info)) sorted.push_back(&group);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const Group* a, const Group* b) { return a->seq < b->seq; });
  std::vector<proto::PlacementGroupInfo> out;
  out.reserve(sorted.size());
  for (const Group* group : sorted) out.push_back(group->info);
  return out;
}

std::vector<proto::PlacementGroupInfo> PlacementGroupManager::List() {
  absl::MutexLock lock(&mu_);
  return SortedLocked(/*waiting_only=*/false);
}

std::vector<proto::PlacementGroupInfo> PlacementGroupManager::Pending() {
  absl::MutexLock lock(&mu_);
  return SortedLocked(/*waiting_only=*/true);
}

void PlacementGroupManager::UnplaceDeadNodes(const std::vector<NodeView>& views) {
  std::set<std::string> dead;
  for (const NodeView& view : views) {
    if (!view.alive) dead.insert(view.node_id);
  }
  if (dead.empty()) return;
  absl::MutexLock lock(&mu_);
  for (auto& [id, group] : groups_) {
    if (group.info.state() == proto::PlacementGroupInfo::REMOVED) continue;
    bool lost = false;
    for (auto& bundle : *group.info.mutable_bundles()) {
      if (dead.count(bundle.node_id()) == 0) continue;
      bundle.clear_node_id();
      lost = true;
    }
    if (!lost) continue;
    LUMEN_LOG(WARNING) << "placement group " << internal::Hex(id)
                       << " lost bundles with a dead node: placing them again";
    group.info.set_state(proto::PlacementGroupInfo::RESCHEDULING);
    group.info.set_reason("a node that held bundles died");
    PersistLocked(group);
  }
}

void PlacementGroupManager::PlacePending() {
  absl::MutexLock place_lock(&place_mu_);
  {
    absl::MutexLock lock(&mu_);
    const bool any_live = std::any_of(groups_.begin(), groups_.end(), [](const auto& entry) {
      return entry.second.info.state() != proto::PlacementGroupInfo::REMOVED;
    });
    if (!any_live) return;
  }
  UnplaceDeadNodes(hooks_.free_views());
  std::vector<std::string> waiting;
  {
    absl::MutexLock lock(&mu_);
    for (const proto::PlacementGroupInfo& info : SortedLocked(/*waiting_only=*/true)) {
      waiting.push_back(info.placement_group_id());
    }
  }
  for (const std::string& id : waiting) PlaceOne(id);
}

void PlacementGroupManager::PlaceOne(const std::string& id) {
  std::vector<ResourceShape> bundles;
  std::vector<std::string> fixed;
  proto::PlacementGroupInfo::Strategy strategy = proto::PlacementGroupInfo::PACK;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(id);
    if (it == groups_.end() || !Waiting(it->second.info)) return;
    strategy = it->second.info.strategy();
    for (const auto& bundle : it->second.info.bundles()) {
      bundles.push_back(ToShape(bundle.resources()));
      fixed.push_back(bundle.node_id());
    }
  }
  const BundlePlacement placement = PlaceBundles(bundles, strategy, fixed, hooks_.free_views());
  if (!placement.placed) {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(id);
    if (it != groups_.end() && Waiting(it->second.info))
      it->second.info.set_reason(placement.reason);
    return;
  }
  // The new bundles, by node; marked in the table first so that actors placed meanwhile do not
  // count on the same resources.
  std::map<std::string, proto::ReserveBundlesRequest> requests;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(id);
    if (it == groups_.end() || !Waiting(it->second.info)) return;
    for (size_t i = 0; i < bundles.size(); ++i) {
      if (!fixed[i].empty()) continue;
      const std::string& node = placement.node_ids[i];
      proto::ReserveBundlesRequest& request = requests[node];
      request.set_placement_group_id(id);
      request.add_indexes(static_cast<int>(i));
      *request.add_bundles() = it->second.info.bundles(static_cast<int>(i));
      it->second.info.mutable_bundles(static_cast<int>(i))->set_node_id(node);
    }
  }
  std::vector<std::pair<std::string, std::vector<int>>> done;
  std::string failure;
  for (const auto& [node, request] : requests) {
    if (auto status = nodes_->Reserve(node, request); !status.ok()) {
      failure = absl::StrCat("node ", node, " could not reserve its bundles: ", status.message());
      break;
    }
    done.emplace_back(node, std::vector<int>(request.indexes().begin(), request.indexes().end()));
  }
  bool removed = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(id);
    removed = it == groups_.end() || it->second.info.state() == proto::PlacementGroupInfo::REMOVED;
    if (!removed && failure.empty()) {
      it->second.info.set_state(proto::PlacementGroupInfo::CREATED);
      it->second.info.clear_reason();
      it->second.info.set_ready_time_ms(absl::ToUnixMillis(absl::Now()));
      PersistLocked(it->second);
      changed_.SignalAll();
    } else if (!removed) {
      for (size_t i = 0; i < bundles.size(); ++i) {
        if (fixed[i].empty()) it->second.info.mutable_bundles(static_cast<int>(i))->clear_node_id();
      }
      it->second.info.set_reason(failure);
    }
  }
  if (removed || !failure.empty()) {
    if (!failure.empty())
      LUMEN_LOG(INFO) << "placement group " << internal::Hex(id) << ": " << failure;
    for (const auto& [node, indexes] : done) nodes_->Release(node, id, indexes);
    return;
  }
  LUMEN_LOG(INFO) << "placement group " << internal::Hex(id) << " placed";
  if (hooks_.placed) hooks_.placed();
}

void PlacementGroupManager::NodeRegistered(const std::string& node_id,
                                           const std::vector<std::pair<std::string, int>>& held) {
  std::map<std::string, std::vector<int>> stale;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [group_id, index] : held) {
      auto it = groups_.find(group_id);
      // PlaceOne names a bundle's node in the table before it reserves it: a reservation in
      // flight is never stale.
      const bool placed_here = it != groups_.end() &&
                               it->second.info.state() != proto::PlacementGroupInfo::REMOVED &&
                               index < it->second.info.bundles_size() &&
                               it->second.info.bundles(index).node_id() == node_id;
      if (!placed_here) stale[group_id].push_back(index);
    }
  }
  for (const auto& [group_id, indexes] : stale) {
    LUMEN_LOG(WARNING) << "node " << node_id << " holds " << indexes.size()
                       << " bundle(s) of placement group " << internal::Hex(group_id)
                       << " that the head does not place there; releasing them";
    nodes_->Release(node_id, group_id, indexes);
  }
}

void PlacementGroupManager::AdjustViews(std::vector<NodeView>* views) {
  absl::MutexLock lock(&mu_);
  for (NodeView& view : *views) {
    ResourceShape reported;
    for (auto it = view.total.begin(); it != view.total.end();) {
      it = IsBundleResource(it->first) ? view.total.erase(it) : std::next(it);
    }
    for (auto it = view.available.begin(); it != view.available.end();) {
      if (!IsBundleResource(it->first)) {
        ++it;
        continue;
      }
      reported[it->first] = it->second;
      it = view.available.erase(it);
    }
    ResourceShape added;
    for (const auto& [id, group] : groups_) {
      if (group.info.state() == proto::PlacementGroupInfo::REMOVED) continue;
      for (int i = 0; i < group.info.bundles_size(); ++i) {
        const proto::PlacementGroupBundle& bundle = group.info.bundles(i);
        if (bundle.node_id() != view.node_id) continue;
        for (const auto& [name, amount] : bundle.resources()) view.total[name] -= amount;
        for (const auto& [name, amount] : BundleNodeResources(id, i, ToShape(bundle.resources()))) {
          added[name] += amount;
        }
      }
    }
    for (auto& [name, amount] : view.available) {
      auto total = view.total.find(name);
      if (total != view.total.end()) amount = std::min(amount, total->second);
    }
    for (const auto& [name, amount] : added) {
      view.total[name] = amount;
      auto it = reported.find(name);
      view.available[name] = it == reported.end() ? amount : std::min(amount, it->second);
    }
  }
}

absl::StatusOr<ResourceShape> PlacementGroupManager::ShapeFor(
    const proto::SchedulingStrategy& strategy, const ResourceShape& shape, bool* placed) {
  const std::string& id = strategy.placement_group_id();
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(id);
  if (it == groups_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("placement group ", internal::Hex(id), " does not exist"));
  }
  const proto::PlacementGroupInfo& info = it->second.info;
  if (info.state() == proto::PlacementGroupInfo::REMOVED) {
    return absl::FailedPreconditionError(
        absl::StrCat("placement group ", internal::Hex(id), " was removed"));
  }
  if (strategy.bundle_index() < -1 || strategy.bundle_index() >= info.bundles_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle index ", strategy.bundle_index(), " is out of range: placement group ",
                     internal::Hex(id), " has ", info.bundles_size(), " bundles"));
  }
  if (placed != nullptr) *placed = info.state() == proto::PlacementGroupInfo::CREATED;
  return ShapeInBundle(shape, id, strategy.bundle_index());
}

}  // namespace lumen::scheduler
