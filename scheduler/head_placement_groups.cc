// The head's placement-group calls: the table lives in PlacementGroupManager; this wires it to
// the nodes (reservations over gRPC), the actor directory (actors in bundles) and the head's
// node views.
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "scheduler/bundle_resources.h"
#include "scheduler/head_service.h"

namespace lumen::scheduler {

using internal::CheckToken;

namespace {

// How long one GetPlacementGroup call waits at most; clients call again to wait longer.
constexpr int kMaxWaitMs = 10'000;

}  // namespace

void HeadService::StartPlacementGroups() {
  bundle_nodes_ = std::make_unique<GrpcBundleNodes>(token_, [this](const std::string& node_id) {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(node_id);
    return it == nodes_.end() ? std::string() : it->second.info.address();
  });
  PlacementGroupManager::Hooks hooks;
  hooks.free_views = [this] { return BundleViews(); };
  hooks.placed = [this] { actors_->RetryPlacements(); };
  hooks.removed = [this](const std::string& group_id) {
    for (const proto::ActorInfo& actor : actors_->List()) {
      if (actor.state() == proto::ActorInfo::DEAD) continue;
      for (const auto& [name, amount] : actor.resources()) {
        if (!IsResourceOfGroup(name, group_id)) continue;
        if (auto status = actors_->Kill(actor.actor_id(), /*no_restart=*/true,
                                        "its placement group was removed");
            !status.ok()) {
          LUMEN_LOG(WARNING) << "cannot end an actor of a removed placement group: "
                             << status.error_message();
        }
        break;
      }
    }
  };
  groups_ = std::make_unique<PlacementGroupManager>(bundle_nodes_.get(), store_, std::move(hooks));
  if (auto status = groups_->Recover(); !status.ok()) {
    LUMEN_LOG(WARNING) << "cannot read the placement groups of a previous head: " << status;
  }
}

std::vector<NodeView> HeadService::BundleViews() {
  const std::vector<proto::ActorInfo> actors = actors_->List();
  std::vector<NodeView> views;
  {
    absl::MutexLock lock(&mu_);
    UpdateLivenessLocked();
    views = NodeViewsLocked();
  }
  std::vector<NodeView> free = placer_.Unreserved(views, actors);
  for (size_t i = 0; i < free.size(); ++i) {
    for (auto& [name, amount] : free[i].available) {
      auto reported = views[i].available.find(name);
      amount = std::min(amount, reported == views[i].available.end() ? 0.0 : reported->second);
    }
  }
  return free;
}

grpc::Status HeadService::CreateActorInBundle(proto::ActorSpec spec) {
  auto shape = groups_->ShapeFor(spec.strategy(), ToShape(spec.resources()));
  if (!shape.ok()) return internal::ToGrpc(shape.status());
  spec.mutable_resources()->clear();
  for (const auto& [name, amount] : *shape) (*spec.mutable_resources())[name] = amount;
  return actors_->Create(spec);
}

bool HeadService::ShapeInPlacementGroup(const proto::SchedulingStrategy& strategy,
                                        ResourceShape* shape, proto::FindNodeReply* reply) {
  bool placed = false;
  auto in_bundle = groups_->ShapeFor(strategy, *shape, &placed);
  if (!in_bundle.ok()) {
    reply->set_unschedulable(std::string(in_bundle.status().message()));
    return false;
  }
  *shape = *std::move(in_bundle);
  return placed;  // not placed yet: the lease waits
}

grpc::Status HeadService::CreatePlacementGroup(grpc::ServerContext* context,
                                               const proto::CreatePlacementGroupRequest* request,
                                               proto::CreatePlacementGroupReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  return internal::ToGrpc(groups_->Create(request->group()));
}

grpc::Status HeadService::GetPlacementGroup(grpc::ServerContext* context,
                                            const proto::GetPlacementGroupRequest* request,
                                            proto::PlacementGroupInfo* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  const int wait_ms = std::clamp(request->wait_ms(), 0, kMaxWaitMs);
  auto group =
      groups_->Get(request->placement_group_id(), request->name(), absl::Milliseconds(wait_ms));
  if (!group.ok()) return internal::ToGrpc(group.status());
  *reply = *std::move(group);
  return grpc::Status::OK;
}

grpc::Status HeadService::RemovePlacementGroup(grpc::ServerContext* context,
                                               const proto::RemovePlacementGroupRequest* request,
                                               proto::RemovePlacementGroupReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  return internal::ToGrpc(groups_->Remove(request->placement_group_id()));
}

grpc::Status HeadService::ListPlacementGroups(grpc::ServerContext* context,
                                              const proto::ListPlacementGroupsRequest* request,
                                              proto::ListPlacementGroupsReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  for (auto& group : groups_->List()) *reply->add_groups() = std::move(group);
  return grpc::Status::OK;
}

}  // namespace lumen::scheduler
