// The head's durable table of nodes: each node's last known state (its id, addresses,
// resources, whether it is the head, alive or dead and why), kept in the head's store (table
// "nodes") and written before the head acknowledges the change. A restarted head reads it back
// to show the nodes it knew and to declare dead those that never come back. Dead records are
// bounded: past `max_dead` the oldest are dropped.
//
//   NodeTable table(store);
//   absl::StatusOr<std::vector<proto::NodeRecord>> known = table.Load();
//   table.Alive(info);                 // on registration
//   table.Dead(info, "no heartbeat");  // when declared dead or left
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/control.pb.h"
#include "proto/node_record.pb.h"
#include "scheduler/head_store.h"

namespace lumen::scheduler {

class NodeTable {
 public:
  static constexpr size_t kDefaultMaxDead = 1000;

  // `store` may be null (nothing is kept); it must outlive the table.
  explicit NodeTable(HeadStore* store, size_t max_dead = kDefaultMaxDead);

  // Reads the records a previous head kept, oldest change first, and drops the dead ones past
  // the bound. Records that do not parse are skipped with a log line.
  [[nodiscard]] absl::StatusOr<std::vector<proto::NodeRecord>> Load();
  // The node registered: alive, as `node` describes it.
  [[nodiscard]] absl::Status Alive(const proto::NodeInfo& node);
  // The node was declared dead (no heartbeat, left the cluster, replaced).
  [[nodiscard]] absl::Status Dead(const proto::NodeInfo& node, std::string_view reason);
  // Dead records kept now.
  size_t dead_count() const;

  static constexpr char kTable[] = "nodes";

 private:
  // Writes `record` with the next sequence number and drops the oldest dead records past the
  // bound, in one transaction.
  absl::Status Write(proto::NodeRecord record);

  HeadStore* const store_;
  const size_t max_dead_;

  mutable absl::Mutex mu_;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::string> dead_by_sequence_ ABSL_GUARDED_BY(mu_);  // oldest first
  std::map<std::string, uint64_t> dead_sequence_ ABSL_GUARDED_BY(mu_);     // by node id
};

}  // namespace lumen::scheduler
