// The head's side of the nodes' durable records (node_table.h): written when a node registers
// or is declared dead, read back by a restarted head.
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "scheduler/head_service.h"

namespace lumen::scheduler {

void HeadService::RecoverNodes() {
  auto records = node_table_.Load();
  if (!records.ok()) {
    LUMEN_LOG(WARNING) << "cannot read the node table of a previous head: " << records.status();
    return;
  }
  absl::MutexLock lock(&mu_);
  size_t alive = 0;
  for (const proto::NodeRecord& record : *records) {
    const std::string& id = record.node().node_id();
    Node& node = nodes_[id];
    node.info = record.node();
    // Its silence starts now: it has the heartbeat timeout to register again.
    liveness_.Heard(id);
    if (record.state() == proto::NodeRecord::DEAD) {
      liveness_.MarkDead(id);
    } else {
      node.recovered = true;
      ++alive;
    }
  }
  if (!records->empty()) {
    LUMEN_LOG(INFO) << "read " << records->size() << " nodes of a previous head (" << alive
                    << " alive then); they have " << absl::FormatDuration(heartbeat_timeout_)
                    << " to register again";
  }
}

absl::Status HeadService::RecordRegistrationLocked(const proto::NodeInfo& info) {
  if (auto status = node_table_.Alive(info); !status.ok()) return status;
  for (auto& [id, node] : nodes_) {
    if (id == info.node_id()) {
      node.recovered = false;
    } else if (node.recovered && node.info.address() == info.address()) {
      // The same node manager address under a new id: the old process is gone. Its actors are
      // settled by the actor directory when the new node registers, so this is no node death
      // to broadcast.
      liveness_.MarkDead(id);
      RecordDeathLocked(node, absl::StrCat("node ", info.node_id(), " took its address"));
    }
  }
  return absl::OkStatus();
}

void HeadService::RecordDeathLocked(Node& node, const std::string& reason) {
  // A node declared dead that speaks again is fenced, as any node declared dead.
  node.recovered = false;
  if (auto status = node_table_.Dead(node.info, reason); !status.ok()) {
    LUMEN_LOG(WARNING) << "cannot record the death of node " << node.info.node_id() << ": "
                       << status;
  }
}

void HeadService::MarkUnconfirmed(proto::NodeInfo* info) const {
  info->set_unconfirmed(true);
  info->set_state_reason(
      absl::StrCat("recovered from the head's store, not yet heard from since the head "
                   "restarted; its resources are as it registered with the previous head, and "
                   "it is declared dead if it stays silent for ",
                   absl::FormatDuration(heartbeat_timeout_)));
}

}  // namespace lumen::scheduler
