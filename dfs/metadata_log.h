// The name node's write-ahead log in the KV store: every metadata change is written there
// before the name node applies and acknowledges it, and a restarted name node (on any cluster
// node) replays it. A checkpoint of the whole state is written every so many records, after
// which the records it covers are deleted.
//
// Keys (namespace "dfs"): "log/<20-digit sequence number>" one record each, "checkpoint" the
// state with the last sequence number it includes.
//
//   MetadataLog log(kv.get());
//   absl::StatusOr<Metadata> meta = log.Recover();
//   if (log.Append(record).ok()) meta->Apply(record);
//   absl::StatusOr<uint64_t> covered = log.MaybeCheckpoint(*meta);
//   ... later, without holding the name node's lock:  log.Truncate(*covered);
//
// Not thread-safe, except Truncate: the name node calls the rest under its mutex, so that log
// order is apply order.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dfs/kv_store.h"
#include "dfs/metadata.h"

namespace lumen::dfs {

class MetadataLog {
 public:
  // `kv` must outlive the log. A checkpoint is taken after `checkpoint_every` records.
  explicit MetadataLog(KvStore* kv, uint64_t checkpoint_every = 256);

  // The state the checkpoint and the records after it describe (empty if there are none).
  // DATA_LOSS naming the key if a record cannot be read; the KV error if the KV fails. Unless
  // `read_only` (a client reading while the name node restarts), records a checkpoint covers
  // are deleted.
  [[nodiscard]] absl::StatusOr<Metadata> Recover(bool read_only = false);
  // Writes `record` durably with the next sequence number.
  [[nodiscard]] absl::Status Append(const LogRecord& record);
  // Checkpoints `metadata` (with every appended record applied) if enough records accumulated;
  // returns the last sequence number the checkpoint covers, or 0 if none was taken.
  [[nodiscard]] absl::StatusOr<uint64_t> MaybeCheckpoint(const Metadata& metadata);
  [[nodiscard]] absl::StatusOr<uint64_t> Checkpoint(const Metadata& metadata);
  // Deletes the records up to `last_seq` (covered by a checkpoint). Thread-safe.
  [[nodiscard]] absl::Status Truncate(uint64_t last_seq) const;
  // Deletes the log and its checkpoint.
  [[nodiscard]] absl::Status Clear();

  uint64_t next_seq() const { return next_seq_; }

 private:
  KvStore* const kv_;
  const uint64_t checkpoint_every_;
  uint64_t next_seq_ = 1;
  uint64_t since_checkpoint_ = 0;
};

// "log/<seq>", zero-padded so that keys sort by sequence number.
std::string LogKey(uint64_t seq);

}  // namespace lumen::dfs
