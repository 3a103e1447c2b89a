#include "scheduler/actor_placer.h"

#include <algorithm>

namespace lumen::scheduler {
namespace {

const proto::ActorInfo* FindActor(const std::vector<proto::ActorInfo>& actors,
                                  const std::string& id) {
  for (const proto::ActorInfo& actor : actors) {
    if (actor.actor_id() == id) return &actor;
  }
  return nullptr;
}

}  // namespace

void ActorPlacer::ReconcileLocked(const std::vector<proto::ActorInfo>& actors) {
  for (auto it = reserved_.begin(); it != reserved_.end();) {
    const proto::ActorInfo* actor = FindActor(actors, it->first);
    const bool keep =
        actor != nullptr &&
        (actor->state() == proto::ActorInfo::PENDING ||
         actor->state() == proto::ActorInfo::RESTARTING ||
         (actor->state() == proto::ActorInfo::ALIVE && actor->node_id() == it->second.node_id));
    it = keep ? std::next(it) : reserved_.erase(it);
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    const proto::ActorInfo* actor = FindActor(actors, it->first);
    const bool waiting = actor != nullptr && (actor->state() == proto::ActorInfo::PENDING ||
                                              actor->state() == proto::ActorInfo::RESTARTING);
    it = waiting ? std::next(it) : queue_.erase(it);
  }
}

std::vector<NodeView> ActorPlacer::UnreservedLocked(const std::vector<NodeView>& nodes,
                                                    const std::string& except_actor) {
  std::vector<NodeView> out = nodes;
  for (NodeView& node : out) {
    node.available = node.total;
    for (const auto& [actor_id, reservation] : reserved_) {
      if (reservation.node_id != node.node_id || actor_id == except_actor) continue;
      for (const auto& [name, amount] : reservation.shape) node.available[name] -= amount;
    }
  }
  return out;
}

Placement ActorPlacer::Place(const proto::ActorSpec& spec, const std::string& owner_node_id,
                             const std::vector<NodeView>& nodes,
                             const std::vector<proto::ActorInfo>& actors) {
  absl::MutexLock lock(&mu_);
  ReconcileLocked(actors);
  PlacementRequest request{.shape = ToShape(spec.resources()),
                           .strategy = spec.strategy(),
                           .preferred_node_id = owner_node_id};
  Placement placement = PickNode(UnreservedLocked(nodes, spec.actor_id()), request, &spread_last_);
  if (!placement.node_id.empty()) {
    reserved_[spec.actor_id()] = Reservation{placement.node_id, request.shape};
    queue_.erase(spec.actor_id());
    return placement;
  }
  reserved_.erase(spec.actor_id());
  auto& [arrival, pending] = queue_[spec.actor_id()];
  if (pending.actor_id().empty()) arrival = next_arrival_++;
  pending.set_actor_id(spec.actor_id());
  pending.set_class_name(spec.factory());
  pending.set_name(spec.name());
  *pending.mutable_resources() = spec.resources();
  pending.set_reason(placement.unschedulable.empty() ? placement.reason : placement.unschedulable);
  return placement;
}

std::vector<proto::PendingActor> ActorPlacer::Queue(const std::vector<proto::ActorInfo>& actors) {
  absl::MutexLock lock(&mu_);
  ReconcileLocked(actors);
  std::vector<std::pair<uint64_t, proto::PendingActor>> entries;
  for (const auto& [id, entry] : queue_) entries.push_back(entry);
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<proto::PendingActor> out;
  out.reserve(entries.size());
  for (auto& [arrival, pending] : entries) out.push_back(std::move(pending));
  return out;
}

std::vector<NodeView> ActorPlacer::Unreserved(const std::vector<NodeView>& nodes,
                                              const std::vector<proto::ActorInfo>& actors) {
  absl::MutexLock lock(&mu_);
  ReconcileLocked(actors);
  return UnreservedLocked(nodes, "");
}

}  // namespace lumen::scheduler
