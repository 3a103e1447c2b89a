#include "objectstore/pull_manager.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::objectstore {
namespace {

std::string ShortId(const std::string& id) { return absl::BytesToHexString(id.substr(0, 8)); }

}  // namespace

PullManager::PullManager(ObjectStore& store, ChunkSource& source, Options options)
    : store_(store), source_(source), options_(std::move(options)) {
  if (options_.chunk_bytes == 0 || options_.max_chunks_in_flight <= 0) {
    LUMEN_LOG(ERROR) << "PullManager needs a positive chunk size and in-flight bound";
    std::abort();
  }
}

void PullManager::Pull(const std::string& id, uint64_t size, const std::string& source, Done done) {
  {
    absl::MutexLock lock(&mu_);
    auto it = transfers_.find(id);
    if (it != transfers_.end()) {
      ++stats_.merged;
      it->second.waiters.push_back(std::move(done));
      return;
    }
  }
  // Here already (pulled before, or made here): nothing to move. An unsealed one is waited for.
  auto present = store_.Get(id, absl::ZeroDuration());
  if (present.ok() || absl::IsDeadlineExceeded(present.status())) {
    if (!present.ok()) present = store_.Get(id, options_.create_timeout);
    done(present.ok() ? absl::OkStatus() : present.status());
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = transfers_.try_emplace(id);
    it->second.waiters.push_back(std::move(done));
    if (!inserted) {
      ++stats_.merged;
      return;
    }
    ++stats_.started;
    it->second.source = source;
    it->second.size = size;
  }
  // Reserving may wait for room; merged pulls wait with this one meanwhile.
  auto location = store_.Create(id, size, kPullClient, /*owner=*/0, options_.create_timeout,
                                CopyKind::kSecondary, options_.make_room);
  std::vector<Chunk> chunks;
  std::vector<Done> failed;
  absl::Status failure;
  {
    absl::MutexLock lock(&mu_);
    auto it = transfers_.find(id);
    if (it == transfers_.end()) {
      // Failed meanwhile (its source went away): give the room back.
      if (location.ok()) store_.Release(id).IgnoreError();
      return;
    }
    if (!location.ok()) {
      failure = absl::Status(
          location.status().code(),
          absl::StrCat("cannot make room for object ", ShortId(id), " (", size,
                       " bytes) pulled from ", source, ": ", location.status().message()));
      failed = FinishLocked(it, failure);
    } else {
      it->second.created = true;
      it->second.store_offset = location->offset;
      if (size == 0) {
        failed = FinishLocked(it, absl::OkStatus());
      } else {
        chunks = NextChunksLocked(it->second);
      }
    }
  }
  Notify(failed, failure);
  Request(source, id, chunks);
}

std::vector<PullManager::Chunk> PullManager::NextChunksLocked(Transfer& transfer) {
  std::vector<Chunk> chunks;
  while (transfer.next_offset < transfer.size &&
         transfer.outstanding.size() < static_cast<size_t>(options_.max_chunks_in_flight)) {
    const uint64_t length = std::min(options_.chunk_bytes, transfer.size - transfer.next_offset);
    chunks.push_back({transfer.next_offset, length});
    transfer.outstanding.emplace(transfer.next_offset, length);
    transfer.next_offset += length;
  }
  return chunks;
}

void PullManager::Request(const std::string& source, const std::string& id,
                          const std::vector<Chunk>& chunks) {
  for (const Chunk& chunk : chunks) source_.RequestChunk(source, id, chunk.offset, chunk.length);
}

char* PullManager::ChunkDestination(const std::string& id, uint64_t offset, uint64_t length) {
  std::vector<Done> waiters;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return nullptr;  // failed already; a late answer
    Transfer& transfer = it->second;
    auto chunk = transfer.outstanding.find(offset);
    if (chunk != transfer.outstanding.end() && chunk->second == length) {
      return reinterpret_cast<char*>(store_.region().data() + transfer.store_offset + offset);
    }
    status = absl::DataLossError(absl::StrCat("object ", ShortId(id), " from ", transfer.source,
                                              ": got ", length, " bytes at offset ", offset,
                                              ", which no request of this transfer asked for"));
    waiters = FinishLocked(it, status);
  }
  Notify(waiters, status);
  return nullptr;
}

void PullManager::OnChunkWritten(const std::string& id, uint64_t offset, uint64_t length) {
  std::vector<Chunk> chunks;
  std::vector<Done> waiters;
  std::string source;
  {
    absl::MutexLock lock(&mu_);
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    Transfer& transfer = it->second;
    auto chunk = transfer.outstanding.find(offset);
    if (chunk == transfer.outstanding.end() || chunk->second != length) return;
    transfer.outstanding.erase(chunk);
    transfer.received += length;
    stats_.bytes += length;
    if (transfer.received == transfer.size) {
      waiters = FinishLocked(it, absl::OkStatus());
    } else {
      source = transfer.source;
      chunks = NextChunksLocked(transfer);
    }
  }
  Notify(waiters, absl::OkStatus());
  Request(source, id, chunks);
}

void PullManager::OnChunkError(const std::string& id, const absl::Status& status) {
  std::vector<Done> waiters;
  {
    absl::MutexLock lock(&mu_);
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    waiters = FinishLocked(it, status);
  }
  Notify(waiters, status);
}

void PullManager::OnSourceLost(const std::string& source, const std::string& reason) {
  FailWhere([&source](const Transfer& transfer) { return transfer.source == source; }, reason);
}

void PullManager::FailAll(const std::string& reason) {
  FailWhere([](const Transfer&) { return true; }, reason);
}

void PullManager::FailWhere(const std::function<bool(const Transfer&)>& match,
                            const std::string& reason) {
  std::vector<std::pair<std::vector<Done>, absl::Status>> failed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = transfers_.begin(); it != transfers_.end();) {
      if (!match(it->second)) {
        ++it;
        continue;
      }
      absl::Status status = absl::UnavailableError(
          absl::StrCat("lost the connection to ", it->second.source, " while pulling object ",
                       ShortId(it->first), ": ", reason));
      auto next = std::next(it);
      failed.emplace_back(FinishLocked(it, status), status);
      it = next;
    }
  }
  for (const auto& [waiters, status] : failed) Notify(waiters, status);
}

std::vector<PullManager::Done> PullManager::FinishLocked(Transfers::iterator it,
                                                         const absl::Status& status) {
  Transfer& transfer = it->second;
  if (transfer.created) {
    absl::Status done = status.ok() ? store_.Seal(it->first) : store_.Release(it->first);
    if (!done.ok())
      LUMEN_LOG(WARNING) << "finishing the pull of " << ShortId(it->first) << ": " << done;
  }
  if (status.ok()) {
    ++stats_.completed;
  } else {
    ++stats_.failed;
    LUMEN_LOG(WARNING) << status;
  }
  std::vector<Done> waiters = std::move(transfer.waiters);
  transfers_.erase(it);
  return waiters;
}

void PullManager::Notify(const std::vector<Done>& waiters, const absl::Status& status) {
  for (const Done& done : waiters) done(status);
}

PullManager::Stats PullManager::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

size_t PullManager::in_flight() const {
  absl::MutexLock lock(&mu_);
  return transfers_.size();
}

}  // namespace lumen::objectstore
