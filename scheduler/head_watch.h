// Tracks how long a node has been unable to reach the head, on a monotonic clock.
//
//   HeadWatch watch(absl::Seconds(60));
//   if (heartbeat_ok) watch.Reached(); else if (watch.Lost()) ShutDown();
//
// Not thread-safe: one heartbeat thread owns it.
#pragma once

#include "scheduler/node_liveness.h"

namespace lumen::scheduler {

class HeadWatch {
 public:
  explicit HeadWatch(absl::Duration timeout,
                     NodeLiveness::Clock clock = NodeLiveness::SteadyClock());

  // The head answered.
  void Reached();
  // The head has not answered for longer than the timeout since the last Reached (or since
  // construction).
  bool Lost() const;
  absl::Duration Unreachable() const;
  absl::Duration timeout() const { return timeout_; }

 private:
  const absl::Duration timeout_;
  const NodeLiveness::Clock clock_;
  absl::Duration last_reached_;
};

}  // namespace lumen::scheduler
