// Judges which nodes are alive from when the head last heard from them, on a monotonic clock.
// A node is declared dead once the head has not heard from it for `timeout` of the head's own
// running time: when the head itself stalls (two checks further apart than `stall_threshold`,
// say a SIGSTOP or a swapped-out process), the stall is not held against the nodes, so one
// stall never declares every node dead.
//
//   NodeLiveness liveness(absl::Seconds(5), absl::Seconds(1), NodeLiveness::SteadyClock());
//   liveness.Heard("n1");                        // on registration and on each heartbeat
//   for (const auto& id : liveness.Check()) ...  // newly dead nodes, each reported once
//
// Not thread-safe: its owner (HeadService) calls it under its own mutex.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace lumen::scheduler {

class NodeLiveness {
 public:
  // Monotonic time since an arbitrary origin.
  using Clock = std::function<absl::Duration()>;
  static Clock SteadyClock();

  NodeLiveness(absl::Duration timeout, absl::Duration stall_threshold, Clock clock);

  // The node spoke (registration or heartbeat): alive again, and its silence starts now.
  void Heard(const std::string& node_id);
  // Nodes silent for longer than the timeout that were alive until now, each once.
  std::vector<std::string> Check();
  // Declared dead by other means (it left the cluster): dead until heard again, never reported
  // by Check.
  void MarkDead(const std::string& node_id);
  // False for a node declared dead (or never heard of) until it is heard again.
  bool IsAlive(const std::string& node_id) const;
  bool Knows(const std::string& node_id) const { return nodes_.contains(node_id); }
  // How long the node has been silent, not counting stalls of the head.
  absl::Duration Silence(const std::string& node_id) const;
  absl::Duration timeout() const { return timeout_; }

 private:
  struct Entry {
    absl::Duration last_heard;
    bool dead = false;
  };

  // Set at construction.
  const absl::Duration timeout_;
  const absl::Duration stall_threshold_;
  const Clock clock_;

  std::map<std::string, Entry> nodes_;
  absl::Duration last_check_;
};

}  // namespace lumen::scheduler
