#include "scheduler/node_table.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/logging.h"

namespace lumen::scheduler {
namespace {

// What a node is, without what changes at every heartbeat.
proto::NodeInfo Lasting(const proto::NodeInfo& node) {
  proto::NodeInfo out = node;
  out.clear_processes();
  out.clear_demands();
  out.clear_alive();
  out.clear_last_heartbeat_ms();
  return out;
}

}  // namespace

NodeTable::NodeTable(HeadStore* store, size_t max_dead) : store_(store), max_dead_(max_dead) {}

absl::StatusOr<std::vector<proto::NodeRecord>> NodeTable::Load() {
  std::vector<proto::NodeRecord> records;
  if (store_ == nullptr) return records;
  auto rows = store_->Scan(kTable, "");
  if (!rows.ok()) return rows.status();
  for (const auto& row : *rows) {
    proto::NodeRecord record;
    if (!record.ParseFromString(row.value) || record.node().node_id() != row.key) {
      LUMEN_LOG(WARNING) << "skipping a malformed node record " << row.key;
      continue;
    }
    records.push_back(std::move(record));
  }
  std::sort(records.begin(), records.end(),
            [](const proto::NodeRecord& a, const proto::NodeRecord& b) {
              return a.sequence() < b.sequence();
            });
  std::vector<HeadStore::Mutation> dropped;
  {
    absl::MutexLock lock(&mu_);
    for (const proto::NodeRecord& record : records) {
      next_sequence_ = std::max(next_sequence_, record.sequence() + 1);
      if (record.state() != proto::NodeRecord::DEAD) continue;
      dead_by_sequence_[record.sequence()] = record.node().node_id();
      dead_sequence_[record.node().node_id()] = record.sequence();
    }
    while (dead_by_sequence_.size() > max_dead_) {
      auto oldest = dead_by_sequence_.begin();
      dropped.push_back({.table = kTable, .key = oldest->second, .value = std::nullopt});
      dead_sequence_.erase(oldest->second);
      dead_by_sequence_.erase(oldest);
    }
  }
  if (dropped.empty()) return records;
  if (auto status = store_->Write(dropped); !status.ok()) return status;
  std::erase_if(records, [&](const proto::NodeRecord& record) {
    return std::any_of(dropped.begin(), dropped.end(), [&](const HeadStore::Mutation& m) {
      return m.key == record.node().node_id();
    });
  });
  return records;
}

absl::Status NodeTable::Alive(const proto::NodeInfo& node) {
  proto::NodeRecord record;
  *record.mutable_node() = Lasting(node);
  record.set_state(proto::NodeRecord::ALIVE);
  return Write(std::move(record));
}

absl::Status NodeTable::Dead(const proto::NodeInfo& node, std::string_view reason) {
  proto::NodeRecord record;
  *record.mutable_node() = Lasting(node);
  record.set_state(proto::NodeRecord::DEAD);
  record.set_death_reason(std::string(reason));
  return Write(std::move(record));
}

size_t NodeTable::dead_count() const {
  absl::MutexLock lock(&mu_);
  return dead_by_sequence_.size();
}

absl::Status NodeTable::Write(proto::NodeRecord record) {
  const std::string id = record.node().node_id();
  if (id.empty()) return absl::InvalidArgumentError("a node record needs a node id");
  record.set_time_ms(absl::ToUnixMillis(absl::Now()));
  absl::MutexLock lock(&mu_);
  record.set_sequence(next_sequence_);
  // The table in memory as it will be after the write, and what the write drops.
  std::map<uint64_t, std::string> dead_by_sequence = dead_by_sequence_;
  std::map<std::string, uint64_t> dead_sequence = dead_sequence_;
  if (auto it = dead_sequence.find(id); it != dead_sequence.end()) {
    dead_by_sequence.erase(it->second);
    dead_sequence.erase(it);
  }
  if (record.state() == proto::NodeRecord::DEAD) {
    dead_by_sequence[record.sequence()] = id;
    dead_sequence[id] = record.sequence();
  }
  std::vector<HeadStore::Mutation> batch;
  batch.push_back({.table = kTable, .key = id, .value = record.SerializeAsString()});
  while (dead_by_sequence.size() > max_dead_) {
    auto oldest = dead_by_sequence.begin();
    batch.push_back({.table = kTable, .key = oldest->second, .value = std::nullopt});
    dead_sequence.erase(oldest->second);
    dead_by_sequence.erase(oldest);
  }
  if (store_ != nullptr) {
    if (auto status = store_->Write(batch); !status.ok()) return status;
  }
  ++next_sequence_;
  dead_by_sequence_ = std::move(dead_by_sequence);
  dead_sequence_ = std::move(dead_sequence);
  return absl::OkStatus();
}

}  // namespace lumen::scheduler
