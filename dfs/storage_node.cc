#include "dfs/storage_node.h"

#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lumen/lumen.h"

namespace lumen::dfs {
namespace {

std::string RandomId() {
  std::random_device device;
  return absl::StrFormat("%08x%08x", device(), device());
}

}  // namespace

StorageNode* StorageNode::Create(int index, std::string data_root, uint64_t cache_bytes,
                                 int64_t scrub_interval_ms) {
  if (data_root.empty()) data_root = GetRuntimeContext().session_dir + "/dfs";
  auto store = ChunkStore::Open(absl::StrCat(data_root, "/", StorageActorName(index)), cache_bytes);
  if (!store.ok()) ThrowStatus(store.status());
  return new StorageNode(index, std::move(*store), scrub_interval_ms);
}

StorageNode::StorageNode(int index, std::unique_ptr<ChunkStore> store, int64_t scrub_interval_ms)
    : index_(index),
      boot_id_(RandomId()),
      cluster_node_(GetRuntimeContext().node_id),
      store_(std::move(store)),
      scrub_interval_ms_(scrub_interval_ms) {
  if (scrub_interval_ms_ > 0) scrubber_ = std::thread([this] { ScrubLoop(); });
}

StorageNode::~StorageNode() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (scrubber_.joinable()) scrubber_.join();
}

void StorageNode::ScrubLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               absl::Milliseconds(scrub_interval_ms_))) {
        return;
      }
    }
    store_->Scrub();
  }
}

bool StorageNode::WriteChunk(const std::string& id, uint64_t checksum, const ChunkBytes& data) {
  if (auto status = store_->Write(id, checksum, data.view()); !status.ok()) {
    ThrowStatus(absl::Status(status.code(),
                             absl::StrCat(StorageDisplayName(index_), ": ", status.message())));
  }
  return true;
}

std::vector<std::string> StorageNode::WriteChunks(const std::vector<ChunkSlice>& slices,
                                                  const ChunkBytes& data) {
  std::vector<std::string> errors(slices.size());
  for (size_t i = 0; i < slices.size(); ++i) {
    const ChunkSlice& slice = slices[i];
    absl::Status status;
    if (slice.offset > data.size() || slice.size > data.size() - slice.offset) {
      status = absl::InvalidArgumentError(absl::StrCat("chunk ", slice.id, " lies outside the ",
                                                       data.size(), " bytes it came with"));
    } else {
      status =
          store_->Write(slice.id, slice.checksum, data.view().substr(slice.offset, slice.size));
    }
    if (!status.ok()) {
      errors[i] = absl::StrCat(static_cast<int>(status.code()), ":", StorageDisplayName(index_),
                               ": ", status.message());
    }
  }
  return errors;
}

ChunkBytes StorageNode::ReadChunk(const std::string& id) {
  auto data = store_->Read(id);
  if (!data.ok()) {
    ThrowStatus(absl::Status(data.status().code(), absl::StrCat(StorageDisplayName(index_), ": ",
                                                                data.status().message())));
  }
  return *std::move(data);
}

ChunkBatch StorageNode::ReadChunks(const std::vector<std::string>& ids) {
  std::vector<ChunkBytes> parts;
  parts.reserve(ids.size());
  for (const std::string& id : ids) parts.push_back(ReadChunk(id));
  return ChunkBatch(std::move(parts));
}

StorageReport StorageNode::Ping() {
  StorageReport report;
  report.boot_id = boot_id_;
  report.cluster_node = cluster_node_;
  report.pid = getpid();
  report.chunks = store_->chunks();
  report.bytes = store_->bytes();
  report.corrupt = store_->TakeCorrupt();
  return report;
}

std::vector<ChunkSummary> StorageNode::Inventory() { return store_->Inventory(); }

int64_t StorageNode::DeleteChunks(const std::vector<std::string>& ids) {
  int64_t deleted = 0;
  for (const std::string& id : ids) deleted += store_->Delete(id) ? 1 : 0;
  return deleted;
}

int64_t StorageNode::Scrub() { return static_cast<int64_t>(store_->Scrub().size()); }

bool StorageNode::Purge() {
  if (auto status = store_->Purge(); !status.ok()) ThrowStatus(status);
  return true;
}

LUMEN_REMOTE(StorageNode::Create, &StorageNode::WriteChunk, &StorageNode::WriteChunks,
             &StorageNode::ReadChunk, &StorageNode::ReadChunks, &StorageNode::Ping,
             &StorageNode::Inventory, &StorageNode::DeleteChunks, &StorageNode::Scrub,
             &StorageNode::Purge);

}  // namespace lumen::dfs
