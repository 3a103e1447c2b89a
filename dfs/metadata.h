// The name node's durable state: artifact name -> committed version -> chunks, and the writes
// in progress. It changes only by applying log records, in log order, so that replaying the log
// on a restarted name node rebuilds exactly what was acknowledged. Where the replicas of a chunk
// live is not here: the ReplicaMap learns it from the storage nodes.
//
//   Metadata meta;
//   LogRecord begin = LogRecord::BeginWrite(meta.next_write_id(), "a", false, 5, 1, now_ms);
//   if (meta.Check(begin).ok()) { log.Append(begin); meta.Apply(begin); }
//
// Not thread-safe: the name node guards it with its mutex.
#pragma once

#include <cereal/types/common.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dfs/messages.h"

namespace lumen::dfs {

// One change of the metadata, as the write-ahead log keeps it.
struct LogRecord {
  enum class Kind : uint8_t { kBeginWrite = 1, kCommit = 2, kAbort = 3, kDelete = 4 };
  Kind kind = Kind::kBeginWrite;
  uint64_t write_id = 0;
  std::string name;
  bool update = false;       // kBeginWrite: a new version of an existing artifact
  uint64_t size = 0;         // kBeginWrite: bytes to be written
  uint64_t chunk_count = 0;  // kBeginWrite
  int64_t time_ms = 0;       // wall clock when it was logged
  ArtifactInfo artifact;     // kCommit: the new version, replicas as written

  static LogRecord BeginWrite(uint64_t write_id, std::string name, bool update, uint64_t size,
                              uint64_t chunk_count, int64_t time_ms);
  static LogRecord Commit(ArtifactInfo artifact, int64_t time_ms);
  static LogRecord Abort(uint64_t write_id, int64_t time_ms);
  static LogRecord Delete(std::string name, int64_t time_ms);

  template <class Archive>
  void serialize(Archive& archive) {
    archive(kind, write_id, name, update, size, chunk_count, time_ms, artifact);
  }
};

std::string Encode(const LogRecord& record);
absl::StatusOr<LogRecord> DecodeRecord(const std::string& bytes);

// A write that began and has not been committed or aborted.
struct PendingWrite {
  uint64_t write_id = 0;
  std::string name;
  bool update = false;
  uint64_t size = 0;
  uint64_t chunk_count = 0;
  int64_t started_ms = 0;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(write_id, name, update, size, chunk_count, started_ms);
  }
};

class Metadata {
 public:
  // OK if `record` can be applied now; otherwise why not, as a user should read it
  // (ALREADY_EXISTS, NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT).
  [[nodiscard]] absl::Status Check(const LogRecord& record) const;
  // Applies a record (checked, or replayed from the log). Returns the chunks it made garbage:
  // those of a replaced or deleted version, or of an aborted write.
  std::vector<std::string> Apply(const LogRecord& record);

  const ArtifactInfo* Find(const std::string& name) const;
  const std::map<std::string, ArtifactInfo>& artifacts() const { return artifacts_; }
  const std::map<uint64_t, PendingWrite>& pending() const { return pending_; }
  // The version write `write_id` committed, if this name node saw it (for retried commits).
  std::optional<ArtifactInfo> CommittedWrite(uint64_t write_id) const;
  // True if chunk `id` belongs to a committed current version or to a pending write.
  bool IsLiveChunk(const std::string& id) const;
  uint64_t next_write_id() const { return next_write_id_; }
  // Chunks of every committed version.
  uint64_t chunk_count() const { return chunk_count_; }

  // The whole state, for a checkpoint.
  std::string Snapshot() const;
  [[nodiscard]] static absl::StatusOr<Metadata> FromSnapshot(const std::string& bytes);

 private:
  std::map<std::string, ArtifactInfo> artifacts_;
  std::map<uint64_t, PendingWrite> pending_;
  // Committed versions by write id: the current ones, and those replaced since this process
  // started (bounded), so that a retried commit learns its version.
  std::map<uint64_t, std::string> current_writes_;  // write id -> artifact name
  std::map<uint64_t, ArtifactInfo> replaced_writes_;
  uint64_t next_write_id_ = 1;
  uint64_t chunk_count_ = 0;
};

}  // namespace lumen::dfs
