// NodeManager::PullObjects and the data plane's status: objects that move between nodes.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "scheduler/node_manager.h"
#include "scheduler/node_objects.h"

namespace lumen::scheduler {
namespace {

constexpr int64_t kDefaultPullTimeoutMs = 60'000;
constexpr int64_t kMaxPullTimeoutMs = 600'000;
constexpr absl::Duration kCreateTimeout = absl::Seconds(10);

}  // namespace

void AddDataPlaneInfo(const objectstore::ObjectDataPlane& plane,
                      const objectstore::SpillManager* spill, proto::NodeInfo* info) {
  const objectstore::ObjectDataPlane::Stats stats = plane.stats();
  info->set_data_address(plane.address());
  info->set_pulls_started(stats.pulls.started);
  info->set_pulls_merged(stats.pulls.merged);
  info->set_bytes_pulled(stats.pulls.bytes);
  info->set_chunks_served(stats.chunks_served);
  if (spill != nullptr) {
    const objectstore::SpillManager::Stats spilled = spill->stats();
    info->set_store_spilled_objects(spilled.objects);
    info->set_store_spilled_bytes(spilled.bytes);
  }
}

std::vector<objectstore::ObjectSummary> NodeManager::SpilledObjects(size_t limit) const {
  if (spill_ == nullptr) return {};
  return spill_->List(limit);
}

absl::StatusOr<objectstore::ObjectLocation> NodeManager::CreateInStore(
    const proto::CreateObjectRequest& r) {
  // Full of objects someone still needs: spill some to disk, and wait for room if that is not
  // enough.
  return store_->Create(r.object_id(), r.size(), r.creator_client_id(), r.owner_client_id(),
                        kCreateTimeout, objectstore::CopyKind::kPrimary,
                        [this](uint64_t size) { spill_->MakeRoom(size); });
}

void NodeManager::RestoreSpilled(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  for (const auto& id : ids) {
    if (!spill_->IsSpilled(id)) continue;
    if (auto restored = spill_->Restore(id, kCreateTimeout); !restored.ok()) {
      LUMEN_LOG(WARNING) << "cannot restore a spilled object: " << restored;
    }
  }
}

grpc::Status NodeManager::PullObjects(grpc::ServerContext* context,
                                      const proto::PullObjectsRequest* request,
                                      proto::PullObjectsReply* reply) {
  if (auto status = internal::CheckToken(context, config_.token); !status.ok()) return status;
  // Every pull starts at once; the reply waits for all of them.
  struct Pending {
    absl::Mutex mu;
    int remaining = 0;
    std::vector<absl::Status> results;
  };
  auto pending = std::make_shared<Pending>();
  const int n = request->objects_size();
  pending->remaining = n;
  pending->results.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const proto::StoreLocation& location = request->objects(i);
    if (location.object_id().empty() || location.data_address().empty()) {
      absl::MutexLock lock(&pending->mu);
      pending->results[static_cast<size_t>(i)] = absl::InvalidArgumentError(
          "a pull needs the object's id and the data address of the node holding it");
      --pending->remaining;
      continue;
    }
    data_plane_->Pull(location.object_id(), location.size(), location.data_address(),
                      [pending, i](const absl::Status& status) {
                        absl::MutexLock lock(&pending->mu);
                        pending->results[static_cast<size_t>(i)] = status;
                        --pending->remaining;
                      });
  }
  int64_t timeout_ms = request->timeout_ms() > 0 ? request->timeout_ms() : kDefaultPullTimeoutMs;
  timeout_ms = std::min(timeout_ms, kMaxPullTimeoutMs);
  auto done = [&pending] {
    pending->mu.AssertReaderHeld();
    return pending->remaining == 0;
  };
  absl::MutexLock lock(&pending->mu);
  pending->mu.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(timeout_ms));
  for (int i = 0; i < n; ++i) {
    const absl::Status& status = pending->results[static_cast<size_t>(i)];
    proto::PullResult* result = reply->add_results();
    if (!status.ok()) {
      result->set_error(std::string(status.message()));
      result->set_lost(absl::IsNotFound(status));
      result->set_too_large(absl::IsResourceExhausted(status) || absl::IsInvalidArgument(status));
    }
  }
  if (pending->remaining > 0) {
    return grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        "pulling objects from other nodes took longer than " + std::to_string(timeout_ms) + " ms");
  }
  return grpc::Status::OK;
}

}  // namespace lumen::scheduler
