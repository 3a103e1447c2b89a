#include "dfs/messages.h"

#include <cereal/archives/binary.hpp>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace lumen::dfs {
namespace {

constexpr char kConfigFormat = 1;

}  // namespace

std::string StorageActorName(int index) { return absl::StrCat("dfs.storage.", index); }

std::string StorageDisplayName(int index) { return absl::StrCat("storage.", index); }

std::string ChunkId(uint64_t write_id, uint64_t index) {
  return absl::StrFormat("%016x-%d", write_id, index);
}

bool ParseChunkId(const std::string& id, uint64_t* write_id, uint64_t* index) {
  if (id.size() < 18 || id.size() > 40 || id[16] != '-') return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool ok = i == 16 || (c >= '0' && c <= '9') || (i < 16 && c >= 'a' && c <= 'f');
    if (!ok) return false;
  }
  return absl::SimpleHexAtoi(id.substr(0, 16), write_id) && absl::SimpleAtoi(id.substr(17), index);
}

std::string ChecksumHex(uint64_t checksum) { return absl::StrFormat("%016x", checksum); }

void ThrowStatus(const absl::Status& status) {
  throw std::runtime_error(absl::StrCat(static_cast<int>(status.code()), ":", status.message()));
}

absl::Status StatusFromRemote(const std::string& remote_message) {
  const size_t colon = remote_message.find(':');
  int code = 0;
  if (colon != std::string::npos && colon <= 2 &&
      absl::SimpleAtoi(remote_message.substr(0, colon), &code) && code > 0 && code <= 16) {
    return absl::Status(static_cast<absl::StatusCode>(code), remote_message.substr(colon + 1));
  }
  return absl::UnknownError(remote_message);
}

void LogLine(const std::string& who, const std::string& message) {
  const std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone()), " ",
                   who, ": ", message, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::string Encode(const StoreConfig& config) {
  std::ostringstream out;
  out.put(kConfigFormat);
  {
    cereal::BinaryOutputArchive archive(out);
    archive(config);
  }
  return out.str();
}

absl::StatusOr<StoreConfig> DecodeConfig(const std::string& bytes) {
  if (bytes.empty() || bytes[0] != kConfigFormat) {
    return absl::DataLossError("the DFS configuration in the KV store has an unknown format");
  }
  StoreConfig config;
  try {
    std::istringstream in(bytes.substr(1));
    cereal::BinaryInputArchive archive(in);
    archive(config);
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("the DFS configuration in the KV store is damaged: ", e.what()));
  }
  return config;
}

}  // namespace lumen::dfs
