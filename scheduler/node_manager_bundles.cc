// The node manager's part of placement groups: bundles the head reserves here leave the free
// pool and become resources of their own (bundle_resources.h), which leases and actors placed
// in the bundle take; releasing a group ends what runs in it and returns its resources.
#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "scheduler/bundle_resources.h"
#include "scheduler/head_service.h"
#include "scheduler/node_manager.h"

namespace lumen::scheduler {
namespace {

// How long a reservation waits for resources that tasks hold before it is refused (the head
// tries again later).
constexpr absl::Duration kReserveWait = absl::Seconds(1);

bool UsesAny(const google::protobuf::Map<std::string, double>& resources,
             const std::set<std::string>& names) {
  for (const auto& [name, amount] : resources) {
    if (names.count(name) > 0) return true;
  }
  return false;
}

}  // namespace

void NodeManager::ReturnBundleLocked(const std::string& group, int index) {
  auto held = bundles_.find(group);
  if (held == bundles_.end()) return;
  auto bundle = held->second.find(index);
  if (bundle == held->second.end()) return;
  for (const auto& [name, amount] : BundleNodeResources(group, index, ToShape(bundle->second))) {
    total_[name] -= amount;
    available_[name] -= amount;
    if (total_[name] <= 1e-9) {
      total_.erase(name);
      available_.erase(name);
    }
  }
  for (const auto& [name, amount] : bundle->second) available_[name] += amount;
  held->second.erase(bundle);
  if (held->second.empty()) bundles_.erase(held);
}

void NodeManager::DropBundlesLocked() {
  while (!bundles_.empty()) {
    const std::string group = bundles_.begin()->first;
    ReturnBundleLocked(group, bundles_.begin()->second.begin()->first);
  }
}

grpc::Status NodeManager::ReserveBundles(grpc::ServerContext* context,
                                         const proto::ReserveBundlesRequest* request,
                                         proto::ReserveBundlesReply* reply) {
  if (auto status = internal::CheckToken(context, config_.token); !status.ok()) return status;
  if (request->indexes_size() != request->bundles_size() || request->placement_group_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a reservation needs a group id and one index per bundle");
  }
  ResourceMap need;
  for (const auto& bundle : request->bundles()) {
    for (const auto& [name, amount] : bundle.resources()) {
      if (!std::isfinite(amount) || amount < 0 || IsBundleResource(name)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("bad bundle resource ", name, ": ", amount));
      }
    }
  }
  const std::string& group = request->placement_group_id();
  absl::MutexLock lock(&mu_);
  std::map<int, ResourceMap> held;
  if (auto it = bundles_.find(group); it != bundles_.end()) held = it->second;
  std::vector<int> fresh;
  for (int i = 0; i < request->indexes_size(); ++i) {
    if (request->indexes(i) < 0 || held.count(request->indexes(i)) > 0) continue;
    fresh.push_back(i);
    for (const auto& [name, amount] : request->bundles(i).resources()) need[name] += amount;
  }
  if (fresh.empty()) return grpc::Status::OK;  // reserved already (a retried call)
  const absl::Time deadline = absl::Now() + kReserveWait;
  while (!Fits(available_, need) && !stopping_ && !context->IsCancelled() &&
         absl::Now() < deadline) {
    cv_.WaitWithTimeout(&mu_, std::min(absl::Milliseconds(100), deadline - absl::Now()));
  }
  if (!Fits(available_, need)) {
    reply->set_error(absl::StrCat("the bundles need ", DescribeShape(ToShape(need)), " and ",
                                  DescribeShape(ToShape(available_)), " is free"));
    return grpc::Status::OK;
  }
  for (int i : fresh) {
    const int index = request->indexes(i);
    const ResourceMap& resources = request->bundles(i).resources();
    for (const auto& [name, amount] : resources) available_[name] -= amount;
    for (const auto& [name, amount] : BundleNodeResources(group, index, ToShape(resources))) {
      total_[name] += amount;
      available_[name] += amount;
    }
    bundles_[group][index] = resources;
  }
  LUMEN_LOG(INFO) << "reserved " << fresh.size() << " bundles of placement group "
                  << internal::Hex(group) << ": " << DescribeShape(ToShape(need));
  cv_.SignalAll();
  return grpc::Status::OK;
}

grpc::Status NodeManager::ReleaseBundles(grpc::ServerContext* context,
                                         const proto::ReleaseBundlesRequest* request,
                                         proto::ReleaseBundlesReply* reply) {
  if (auto status = internal::CheckToken(context, config_.token); !status.ok()) return status;
  const std::string& group = request->placement_group_id();
  absl::MutexLock lock(&mu_);
  auto held = bundles_.find(group);
  if (held == bundles_.end()) return grpc::Status::OK;
  std::vector<int> indexes(request->indexes().begin(), request->indexes().end());
  if (indexes.empty()) {
    for (const auto& [index, resources] : held->second) indexes.push_back(index);
  }
  // The names whose users end: every resource of the group when all of it goes, else those of
  // the released bundles.
  std::set<std::string> names;
  const bool all = indexes.size() == held->second.size();
  for (const auto& [name, amount] : total_) {
    if (all && IsResourceOfGroup(name, group)) names.insert(name);
  }
  for (int index : indexes) {
    auto bundle = held->second.find(index);
    if (bundle == held->second.end()) continue;
    names.insert(BundleResourceName("bundle", group, index));
    for (const auto& [name, amount] : bundle->second) {
      names.insert(BundleResourceName(name, group, index));
    }
  }
  std::vector<uint64_t> leases;
  for (const auto& [id, lease] : leases_) {
    if (UsesAny(lease.resources, names)) leases.push_back(id);
  }
  for (uint64_t id : leases) ReleaseLeaseLocked(id, /*kill_worker=*/true);
  for (auto& [id, worker] : workers_) {
    if (worker.actor_id.empty() || !UsesAny(worker.actor_resources, names)) continue;
    worker.kill_reason = "its placement group was removed";
    worker.owner_gone = true;  // never restarted
    for (const auto& [name, amount] : worker.actor_resources) available_[name] += amount;
    worker.actor_resources.clear();
    KillWorkerLocked(worker);
  }
  for (int index : indexes) ReturnBundleLocked(group, index);
  LUMEN_LOG(INFO) << "released " << indexes.size() << " bundles of placement group "
                  << internal::Hex(group);
  cv_.SignalAll();
  return grpc::Status::OK;
}

}  // namespace lumen::scheduler
