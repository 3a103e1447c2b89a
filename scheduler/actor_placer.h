// The head's placement of actors: picks a node with the placement policy over the head's own
// reservations (each placed actor holds its resources on its node from the moment it is
// placed, so two actors are never committed to one free CPU while heartbeats lag), and keeps
// the queue of actors that no node can take yet, which `lumen status` shows.
//
//   ActorPlacer placer;
//   Placement p = placer.Place(spec, owner_node_id, nodes, actors.List());
//   if (p.node_id.empty()) { /* queued: ask again when nodes or actors change */ }
//
// Reservations follow the actor table passed in: an actor keeps its reservation while it is
// PENDING or RESTARTING (being started) or ALIVE on that node, and loses it otherwise.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/control.pb.h"
#include "scheduler/placement_policy.h"

namespace lumen::scheduler {

class ActorPlacer {
 public:
  // Picks a node for `spec` and reserves its resources there. With no node now, the actor is
  // queued (or its queue entry updated) and the placement says why.
  Placement Place(const proto::ActorSpec& spec, const std::string& owner_node_id,
                  const std::vector<NodeView>& nodes, const std::vector<proto::ActorInfo>& actors);
  // Actors waiting for a node, oldest first.
  std::vector<proto::PendingActor> Queue(const std::vector<proto::ActorInfo>& actors);
  // `nodes` with `available` set to what the actors' reservations leave of each total.
  std::vector<NodeView> Unreserved(const std::vector<NodeView>& nodes,
                                   const std::vector<proto::ActorInfo>& actors);

 private:
  struct Reservation {
    std::string node_id;
    ResourceShape shape;
  };
  void ReconcileLocked(const std::vector<proto::ActorInfo>& actors)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the reservations of every actor but `except_actor` leave free on each node.
  std::vector<NodeView> UnreservedLocked(const std::vector<NodeView>& nodes,
                                         const std::string& except_actor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, Reservation> reserved_ ABSL_GUARDED_BY(mu_);  // by actor id
  // Queued actors by arrival, and their entries by actor id.
  uint64_t next_arrival_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::pair<uint64_t, proto::PendingActor>> queue_ ABSL_GUARDED_BY(mu_);
  std::string spread_last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::scheduler
