// The node manager's part of ending leases whose holders are gone (lease_holders.h): a holder
// that died without returning its lease (on this node or another), a holder whose node died,
// and a lease granted just as its holder went (its grant never arrived). Also the task workers
// a job left behind here after its end (started for a request that arrived after it).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "scheduler/node_manager.h"

namespace lumen::scheduler {
namespace {

// How often the holders of this node's leases are checked, and how long a holder's node
// manager has to answer.
constexpr absl::Duration kHolderCheckPeriod = absl::Seconds(2);
constexpr absl::Duration kHolderCheckTimeout = absl::Seconds(2);
constexpr size_t kMaxEndedJobs = 1000;

}  // namespace

// Asks this node manager's own client table, or another node manager over gRPC.
class NodeManager::HolderLookup final : public HolderDirectory {
 public:
  explicit HolderLookup(NodeManager& nm) : nm_(nm) {}

  absl::StatusOr<std::vector<uint64_t>> GoneClients(const std::string& node_address,
                                                    const std::vector<uint64_t>& clients) override {
    if (node_address.empty()) {
      absl::MutexLock lock(&nm_.mu_);
      std::vector<uint64_t> gone;
      for (uint64_t client : clients) {
        if (!nm_.clients_.contains(client)) gone.push_back(client);
      }
      return gone;
    }
    auto& stub = stubs_[node_address];
    if (stub == nullptr) stub = proto::NodeService::NewStub(internal::MakeChannel(node_address));
    proto::LeaseHoldersRequest request;
    for (uint64_t client : clients) request.add_client_ids(client);
    proto::LeaseHoldersReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, nm_.config_.token, kHolderCheckTimeout);
    auto status = stub->CheckLeaseHolders(&context, request, &reply);
    if (!status.ok()) return internal::FromGrpc(status, "asking " + node_address);
    return std::vector<uint64_t>(reply.gone_client_ids().begin(), reply.gone_client_ids().end());
  }

 private:
  NodeManager& nm_;
  std::map<std::string, std::unique_ptr<proto::NodeService::Stub>> stubs_;
};

grpc::Status NodeManager::CheckLeaseHolders(grpc::ServerContext* context,
                                            const proto::LeaseHoldersRequest* request,
                                            proto::LeaseHoldersReply* reply) {
  if (auto status = internal::CheckToken(context, config_.token); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  // Only ids this node manager gave out (they carry its random prefix, below next_id_) are
  // known to be gone when unregistered; another incarnation's ids are not ours to judge.
  const uint64_t prefix = next_id_ >> 32;
  for (uint64_t client : request->client_ids()) {
    if ((client >> 32) == prefix && client < next_id_ && !clients_.contains(client)) {
      reply->add_gone_client_ids(client);
    }
  }
  return grpc::Status::OK;
}

void NodeManager::TrackLeaseHolderLocked(uint64_t lease_id, const proto::LeaseRequest& request) {
  const std::string& address = request.holder_node_address();
  if (!request.spilled() || address == config_.address) {
    holders_.Granted(lease_id, request.client_id(), {});
  } else if (!address.empty()) {
    holders_.Granted(lease_id, request.client_id(), {address, request.holder_node_id()});
  }
  // A spilled request that does not say where its holder is ends with its job only.
}

void NodeManager::ReleaseLeasesOfDeadNodes(
    const google::protobuf::RepeatedPtrField<proto::NodeDeath>& deaths) {
  for (const auto& death : deaths) {
    const std::vector<uint64_t> orphans = holders_.NodeDied(death.node_id());
    if (orphans.empty()) continue;
    absl::MutexLock lock(&mu_);
    for (uint64_t lease_id : orphans) ReleaseLeaseLocked(lease_id, /*kill_worker=*/true);
    LUMEN_LOG(INFO) << "released " << orphans.size() << " leases held by clients of dead node "
                    << death.node_id();
  }
}

void NodeManager::HolderCheckLoop() {
  HolderLookup directory(*this);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), kHolderCheckPeriod);
      if (stopping_) return;
    }
    ReleaseOrphanedLeases(directory);
  }
}

void NodeManager::ReleaseOrphanedLeases(HolderDirectory& directory) {
  const std::vector<uint64_t> orphans = holders_.FindOrphans(directory);
  absl::MutexLock lock(&mu_);
  for (uint64_t lease_id : orphans) {
    auto lease = leases_.find(lease_id);
    if (lease == leases_.end()) continue;
    LUMEN_LOG(INFO) << "lease " << lease_id << " (worker "
                    << internal::ShortHex(lease->second.worker_id) << ") lost its holder, client "
                    << lease->second.holder << "; releasing it";
    ReleaseLeaseLocked(lease_id, /*kill_worker=*/true);
  }
  // A task worker of a job that ended here, started or freed after that end, has nothing to do.
  for (auto& [id, worker] : workers_) {
    if (worker.state == WorkerState::kIdle && !worker.dying && worker.actor_id.empty() &&
        worker.job != 0 && ended_jobs_.contains(worker.job)) {
      KillWorkerLocked(worker);
    }
  }
}

void NodeManager::NoteJobEndedLocked(uint64_t job) {
  if (!ended_jobs_.insert(job).second) return;
  ended_order_.push_back(job);
  if (ended_order_.size() > kMaxEndedJobs) {
    ended_jobs_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
}

}  // namespace lumen::scheduler
