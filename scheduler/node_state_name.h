// How a node's state reads for users (`lumen status`, `lumen list nodes`, the dashboard), from
// the head's report of it (proto::NodeInfo):
//   ALIVE        the head hears its heartbeats; its resources are its own last report.
//   UNCONFIRMED  read back from a previous head's store and not heard from since the head
//                restarted: not declared dead yet, but its resources are as it registered
//                with the previous head, not current.
//   DEAD         declared dead (silent for the heartbeat timeout, or left the cluster).
//
//   if (!HeardFrom(node)) ...  // its resources are not current
//   std::cout << NodeStateName(node);
//
// Pure functions of their argument: thread-safe.
#pragma once

#include "proto/control.pb.h"

namespace lumen::scheduler {

// Alive, and its figures are its own report to this head.
inline bool HeardFrom(const proto::NodeInfo& node) { return node.alive() && !node.unconfirmed(); }

inline const char* NodeStateName(const proto::NodeInfo& node) {
  if (!node.alive()) return "DEAD";
  return node.unconfirmed() ? "UNCONFIRMED" : "ALIVE";
}

}  // namespace lumen::scheduler
