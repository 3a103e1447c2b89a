#include "dfs/metadata.h"

#include <cereal/archives/binary.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/tuple.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace lumen::dfs {
namespace {

constexpr char kRecordFormat = 1;
constexpr char kSnapshotFormat = 1;
// Replaced versions remembered for retried commits.
constexpr size_t kReplacedWrites = 1024;

template <typename T>
std::string EncodeWithFormat(char format, const T& value) {
  std::ostringstream out;
  out.put(format);
  {
    cereal::BinaryOutputArchive archive(out);
    archive(value);
  }
  return out.str();
}

template <typename T>
absl::Status DecodeWithFormat(char format, const std::string& bytes, const char* what, T* value) {
  if (bytes.empty() || bytes[0] != format) {
    return absl::DataLossError(absl::StrCat("the DFS ", what, " has an unknown format"));
  }
  try {
    std::istringstream in(bytes.substr(1));
    cereal::BinaryInputArchive archive(in);
    archive(*value);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("the DFS ", what, " is damaged: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

LogRecord LogRecord::BeginWrite(uint64_t write_id, std::string name, bool update, uint64_t size,
                                uint64_t chunk_count, int64_t time_ms) {
  LogRecord record;
  record.kind = Kind::kBeginWrite;
  record.write_id = write_id;
  record.name = std::move(name);
  record.update = update;
  record.size = size;
  record.chunk_count = chunk_count;
  record.time_ms = time_ms;
  return record;
}

LogRecord LogRecord::Commit(ArtifactInfo artifact, int64_t time_ms) {
  LogRecord record;
  record.kind = Kind::kCommit;
  record.write_id = artifact.write_id;
  record.name = artifact.name;
  record.time_ms = time_ms;
  record.artifact = std::move(artifact);
  return record;
}

LogRecord LogRecord::Abort(uint64_t write_id, int64_t time_ms) {
  LogRecord record;
  record.kind = Kind::kAbort;
  record.write_id = write_id;
  record.time_ms = time_ms;
  return record;
}

LogRecord LogRecord::Delete(std::string name, int64_t time_ms) {
  LogRecord record;
  record.kind = Kind::kDelete;
  record.name = std::move(name);
  record.time_ms = time_ms;
  return record;
}

std::string Encode(const LogRecord& record) { return EncodeWithFormat(kRecordFormat, record); }

absl::StatusOr<LogRecord> DecodeRecord(const std::string& bytes) {
  LogRecord record;
  if (auto status = DecodeWithFormat(kRecordFormat, bytes, "log record", &record); !status.ok()) {
    return status;
  }
  return record;
}

absl::Status Metadata::Check(const LogRecord& record) const {
  const bool exists = artifacts_.contains(record.name);
  switch (record.kind) {
    case LogRecord::Kind::kBeginWrite:
      if (record.name.empty()) return absl::InvalidArgumentError("an artifact needs a name");
      if (!record.update && exists) {
        return absl::AlreadyExistsError(
            absl::StrCat("artifact '", record.name, "' already exists; use update to replace it"));
      }
      if (record.update && !exists) {
        return absl::NotFoundError(absl::StrCat("artifact '", record.name, "' does not exist"));
      }
      if (pending_.contains(record.write_id) || current_writes_.contains(record.write_id)) {
        return absl::FailedPreconditionError(
            absl::StrCat("write ", record.write_id, " was used already"));
      }
      return absl::OkStatus();
    case LogRecord::Kind::kCommit: {
      auto pending = pending_.find(record.write_id);
      if (pending == pending_.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "write ", record.write_id, " of '", record.name, "' is not in progress (aborted?)"));
      }
      const PendingWrite& write = pending->second;
      if (record.artifact.name != write.name || record.artifact.write_id != write.write_id) {
        return absl::InvalidArgumentError("the commit does not match its write");
      }
      if (!write.update && exists) {
        return absl::AlreadyExistsError(absl::StrCat(
            "artifact '", write.name, "' was created by another upload meanwhile; use update"));
      }
      if (write.update && !exists) {
        return absl::NotFoundError(
            absl::StrCat("artifact '", write.name, "' was deleted while it was being updated"));
      }
      const ArtifactInfo& artifact = record.artifact;
      if (artifact.chunks.size() != write.chunk_count) {
        return absl::InvalidArgumentError(absl::StrCat("the commit has ", artifact.chunks.size(),
                                                       " chunks, not ", write.chunk_count));
      }
      uint64_t total = 0;
      for (size_t i = 0; i < artifact.chunks.size(); ++i) {
        const ChunkInfo& chunk = artifact.chunks[i];
        if (chunk.id != ChunkId(write.write_id, i)) {
          return absl::InvalidArgumentError(absl::StrCat("chunk ", i, " has the id ", chunk.id));
        }
        if (chunk.replicas.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("chunk ", i, " of '", write.name, "' has no replica"));
        }
        total += chunk.size;
      }
      if (total != write.size || artifact.size != write.size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the commit holds ", total, " bytes, but the write announced ", write.size));
      }
      return absl::OkStatus();
    }
    case LogRecord::Kind::kAbort:
      if (!pending_.contains(record.write_id)) {
        return absl::NotFoundError(absl::StrCat("write ", record.write_id, " is not in progress"));
      }
      return absl::OkStatus();
    case LogRecord::Kind::kDelete:
      if (!exists) {
        return absl::NotFoundError(absl::StrCat("artifact '", record.name, "' does not exist"));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown log record kind");
}

std::vector<std::string> Metadata::Apply(const LogRecord& record) {
  std::vector<std::string> garbage;
  // The current version of `name` goes away: its chunks become garbage.
  auto retire = [this, &garbage](const std::string& name) {
    auto it = artifacts_.find(name);
    if (it == artifacts_.end()) return;
    for (const ChunkInfo& chunk : it->second.chunks) garbage.push_back(chunk.id);
    chunk_count_ -= it->second.chunks.size();
    current_writes_.erase(it->second.write_id);
    replaced_writes_[it->second.write_id] = it->second;
    if (replaced_writes_.size() > kReplacedWrites) replaced_writes_.erase(replaced_writes_.begin());
    artifacts_.erase(it);
  };
  switch (record.kind) {
    case LogRecord::Kind::kBeginWrite:
      pending_[record.write_id] = PendingWrite{record.write_id, record.name,        record.update,
                                               record.size,     record.chunk_count, record.time_ms};
      next_write_id_ = std::max(next_write_id_, record.write_id + 1);
      break;
    case LogRecord::Kind::kCommit:
      retire(record.artifact.name);
      pending_.erase(record.write_id);
      artifacts_[record.artifact.name] = record.artifact;
      current_writes_[record.write_id] = record.artifact.name;
      chunk_count_ += record.artifact.chunks.size();
      next_write_id_ = std::max(next_write_id_, record.write_id + 1);
      break;
    case LogRecord::Kind::kAbort: {
      auto it = pending_.find(record.write_id);
      if (it == pending_.end()) break;
      for (uint64_t i = 0; i < it->second.chunk_count; ++i) {
        garbage.push_back(ChunkId(record.write_id, i));
      }
      pending_.erase(it);
      break;
    }
    case LogRecord::Kind::kDelete:
      retire(record.name);
      break;
  }
  return garbage;
}

const ArtifactInfo* Metadata::Find(const std::string& name) const {
  auto it = artifacts_.find(name);
  return it == artifacts_.end() ? nullptr : &it->second;
}

std::optional<ArtifactInfo> Metadata::CommittedWrite(uint64_t write_id) const {
  if (auto it = current_writes_.find(write_id); it != current_writes_.end()) {
    return artifacts_.at(it->second);
  }
  if (auto it = replaced_writes_.find(write_id); it != replaced_writes_.end()) return it->second;
  return std::nullopt;
}

bool Metadata::IsLiveChunk(const std::string& id) const {
  uint64_t write_id = 0;
  uint64_t index = 0;
  if (!ParseChunkId(id, &write_id, &index)) return false;
  if (auto it = pending_.find(write_id); it != pending_.end()) {
    return index < it->second.chunk_count;
  }
  auto it = current_writes_.find(write_id);
  return it != current_writes_.end() && index < artifacts_.at(it->second).chunks.size();
}

std::string Metadata::Snapshot() const {
  return EncodeWithFormat(kSnapshotFormat, std::make_tuple(artifacts_, pending_, next_write_id_));
}

absl::StatusOr<Metadata> Metadata::FromSnapshot(const std::string& bytes) {
  std::tuple<std::map<std::string, ArtifactInfo>, std::map<uint64_t, PendingWrite>, uint64_t> state;
  if (auto status = DecodeWithFormat(kSnapshotFormat, bytes, "checkpoint", &state); !status.ok()) {
    return status;
  }
  Metadata metadata;
  metadata.artifacts_ = std::move(std::get<0>(state));
  metadata.pending_ = std::move(std::get<1>(state));
  metadata.next_write_id_ = std::get<2>(state);
  for (const auto& [name, artifact] : metadata.artifacts_) {
    metadata.current_writes_[artifact.write_id] = name;
    metadata.chunk_count_ += artifact.chunks.size();
  }
  return metadata;
}

}  // namespace lumen::dfs
