#include "dfs/metadata_log.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lumen::dfs {
namespace {

constexpr char kLogPrefix[] = "log/";
constexpr char kCheckpointKey[] = "checkpoint";

// The checkpoint value: 8 bytes of the last included sequence number, then the snapshot.
std::string EncodeCheckpoint(uint64_t last_seq, const std::string& snapshot) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &last_seq, 8);
  return out + snapshot;
}

}  // namespace

std::string LogKey(uint64_t seq) { return absl::StrFormat("%s%020d", kLogPrefix, seq); }

MetadataLog::MetadataLog(KvStore* kv, uint64_t checkpoint_every)
    : kv_(kv), checkpoint_every_(checkpoint_every) {}

absl::StatusOr<Metadata> MetadataLog::Recover(bool read_only) {
  Metadata metadata;
  uint64_t last_seq = 0;
  auto checkpoint = kv_->Get(kCheckpointKey);
  if (!checkpoint.ok()) return checkpoint.status();
  if (checkpoint->has_value()) {
    const std::string& bytes = **checkpoint;
    if (bytes.size() < 8) return absl::DataLossError("the DFS checkpoint is truncated");
    std::memcpy(&last_seq, bytes.data(), 8);
    auto restored = Metadata::FromSnapshot(bytes.substr(8));
    if (!restored.ok()) return restored.status();
    metadata = *std::move(restored);
  }
  auto keys = kv_->List(kLogPrefix);
  if (!keys.ok()) return keys.status();
  next_seq_ = last_seq + 1;
  since_checkpoint_ = 0;
  for (const std::string& key : *keys) {
    uint64_t seq = 0;
    if (!absl::SimpleAtoi(key.substr(std::strlen(kLogPrefix)), &seq)) {
      return absl::DataLossError(absl::StrCat("the DFS log has a stray key '", key, "'"));
    }
    if (seq <= last_seq) {
      // Covered by the checkpoint; its deletion was interrupted.
      if (read_only) continue;
      if (auto status = kv_->Delete(key); !status.ok()) return status;
      continue;
    }
    auto value = kv_->Get(key);
    if (!value.ok()) return value.status();
    if (!value->has_value()) continue;
    auto record = DecodeRecord(**value);
    if (!record.ok()) {
      return absl::DataLossError(
          absl::StrCat("DFS log record ", key, ": ", record.status().message()));
    }
    metadata.Apply(*record);
    next_seq_ = seq + 1;
    ++since_checkpoint_;
  }
  return metadata;
}

absl::Status MetadataLog::Append(const LogRecord& record) {
  if (auto status = kv_->Put(LogKey(next_seq_), Encode(record)); !status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot write the DFS log to the KV store: ", status.message()));
  }
  ++next_seq_;
  ++since_checkpoint_;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MetadataLog::MaybeCheckpoint(const Metadata& metadata) {
  if (since_checkpoint_ < checkpoint_every_) return 0;
  return Checkpoint(metadata);
}

absl::StatusOr<uint64_t> MetadataLog::Checkpoint(const Metadata& metadata) {
  const uint64_t last_seq = next_seq_ - 1;
  if (auto status = kv_->Put(kCheckpointKey, EncodeCheckpoint(last_seq, metadata.Snapshot()));
      !status.ok()) {
    return status;
  }
  since_checkpoint_ = 0;
  return last_seq;
}

absl::Status MetadataLog::Truncate(uint64_t last_seq) const {
  if (last_seq == 0) return absl::OkStatus();
  auto keys = kv_->List(kLogPrefix);
  if (!keys.ok()) return keys.status();
  for (const std::string& key : *keys) {
    if (key > LogKey(last_seq)) break;
    if (auto status = kv_->Delete(key); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status MetadataLog::Clear() {
  auto keys = kv_->List(kLogPrefix);
  if (!keys.ok()) return keys.status();
  for (const std::string& key : *keys) {
    if (auto status = kv_->Delete(key); !status.ok()) return status;
  }
  next_seq_ = 1;
  since_checkpoint_ = 0;
  return kv_->Delete(kCheckpointKey);
}

}  // namespace lumen::dfs
