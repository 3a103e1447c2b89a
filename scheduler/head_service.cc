#include "scheduler/head_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/kv_limits.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "scheduler/bundle_resources.h"

namespace lumen::scheduler {

using internal::CheckToken;

namespace {

// Keys a KvList reply carries at most; the client asks for the next page.
constexpr uint32_t kKvListPage = 10000;

// The monitor checks liveness every kMonitorPeriod; checks further apart than kStallThreshold
// mean the head itself stalled, and that time is not held against the nodes.
constexpr absl::Duration kMonitorPeriod = absl::Milliseconds(200);
constexpr absl::Duration kStallThreshold = absl::Seconds(1);

}  // namespace

bool Fits(const google::protobuf::Map<std::string, double>& available,
          const google::protobuf::Map<std::string, double>& shape) {
  for (const auto& [name, amount] : shape) {
    if (amount <= 0) continue;
    auto it = available.find(name);
    if (it == available.end() || it->second + 1e-9 < amount) return false;
  }
  return true;
}

HeadService::HeadService(std::string token, std::string session_dir,
                         absl::Duration heartbeat_timeout, HeadStore* store,
                         NodeLiveness::Clock clock)
    : token_(std::move(token)),
      session_dir_(std::move(session_dir)),
      heartbeat_timeout_(heartbeat_timeout),
      store_(store),
      jobs_(store),
      node_table_(store),
      liveness_(heartbeat_timeout, kStallThreshold, std::move(clock)) {
  actors_ = std::make_unique<ActorDirectory>(
      token_, [this](const proto::ActorSpec& spec) { return PickActorNode(spec); }, 10'000, store_);
  // A previous head's actors: their nodes get two heartbeat timeouts to re-register.
  if (auto status = actors_->Recover(2 * heartbeat_timeout); !status.ok()) {
    LUMEN_LOG(WARNING) << "cannot read the actor table of a previous head: " << status;
  }
  if (auto status = jobs_.Load(); !status.ok()) {
    LUMEN_LOG(WARNING) << "cannot read the job table of a previous head: " << status;
  }
  StartPlacementGroups();
  RecoverNodes();
  monitor_ = std::thread([this] { MonitorLoop(); });
}

HeadService::~HeadService() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  monitor_.join();
}

void HeadService::MonitorLoop() {
  while (true) {
    std::vector<std::string> dead;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), kMonitorPeriod)) return;
      UpdateLivenessLocked();
      dead.swap(newly_dead_);
    }
    for (const auto& address : dead) actors_->NodeDied(address);
    actors_->CheckRecovery();
    groups_->PlacePending();
  }
}

std::vector<NodeView> HeadService::NodeViewsLocked() {
  std::vector<NodeView> views;
  for (const auto& [id, node] : nodes_) {
    views.push_back(NodeView{.node_id = id,
                             .total = ToShape(node.info.total()),
                             .available = ToShape(node.info.available()),

                             .alive = liveness_.IsAlive(id)});
  }
  groups_->AdjustViews(&views);
  return views;
}

ActorDirectory::NodePick HeadService::PickActorNode(const proto::ActorSpec& spec) {
  const std::vector<proto::ActorInfo> actors = actors_->List();
  std::vector<NodeView> views;
  std::string owner_node_id;
  std::map<std::string, std::string> addresses;
  {
    absl::MutexLock lock(&mu_);
    UpdateLivenessLocked();
    views = NodeViewsLocked();
    for (const auto& [id, node] : nodes_) {
      addresses[id] = node.info.address();
      if (liveness_.IsAlive(id) && node.info.address() == spec.owner_node_address())
        owner_node_id = id;
    }
  }
  const Placement placement = placer_.Place(spec, owner_node_id, views, actors);
  ActorDirectory::NodePick pick;
  if (!placement.node_id.empty()) {
    pick.address = addresses[placement.node_id];
  } else if (!placement.unschedulable.empty()) {
    pick.why = placement.unschedulable;
    pick.never = true;
  } else {
    pick.why = placement.reason;
  }
  return pick;
}

grpc::Status HeadService::CreateActor(grpc::ServerContext* context,
                                      const proto::CreateActorRequest* request,
                                      proto::CreateActorReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (request->spec().strategy().kind() == proto::SchedulingStrategy::PLACEMENT_GROUP) {
    return CreateActorInBundle(request->spec());
  }
  return actors_->Create(request->spec());
}

grpc::Status HeadService::GetActorInfo(grpc::ServerContext* context,
                                       const proto::GetActorInfoRequest* request,
                                       proto::ActorInfo* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  proto::GetActorInfoRequest bounded = *request;
  bounded.set_wait_ms(std::min(request->wait_ms(), 10000));
  return actors_->Get(bounded, reply);
}

grpc::Status HeadService::KillActor(grpc::ServerContext* context,
                                    const proto::KillActorRequest* request,
                                    proto::KillActorReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  return actors_->Kill(request->actor_id(), request->no_restart());
}

grpc::Status HeadService::ReportActorDeath(grpc::ServerContext* context,
                                           const proto::ReportActorDeathRequest* request,
                                           proto::ReportActorDeathReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  actors_->ReportDeath(request->actor_id(), request->incarnation(), request->cause(),
                       request->restartable());
  return grpc::Status::OK;
}

grpc::Status HeadService::ListActors(grpc::ServerContext* context,
                                     const proto::ListActorsRequest* request,
                                     proto::ListActorsReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  for (auto& info : actors_->List()) *reply->add_actors() = std::move(info);
  return grpc::Status::OK;
}

grpc::Status HeadService::ReportDriverJob(grpc::ServerContext* context,
                                          const proto::DriverJobEvent* request,
                                          proto::DriverJobEventReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  auto ended = jobs_.Apply(*request);
  if (!ended.ok()) return internal::ToGrpc(ended.status());
  if (*ended) {
    LUMEN_LOG(INFO) << "job " << request->job_id() << " (driver pid " << request->driver_pid()
                    << ") finished; ending its actors";
    {
      absl::MutexLock lock(&mu_);
      finished_jobs_.push_back(request->job_id());
    }
    actors_->JobFinished(request->job_id(), absl::StrCat("its owner's job ended (driver pid ",
                                                         request->driver_pid(), " exited)"));
    groups_->JobFinished(request->job_id());
  }
  return grpc::Status::OK;
}

grpc::Status HeadService::GetDriverJob(grpc::ServerContext* context,
                                       const proto::GetDriverJobRequest* request,
                                       proto::DriverJobRecord* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  auto job = jobs_.Get(request->job_id());
  if (!job) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("the head knows no job ", request->job_id()));
  }
  *reply = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status HeadService::KvPut(grpc::ServerContext* context, const proto::KvPutRequest* request,
                                proto::KvPutReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (auto status =
          internal::CheckKvSizes(request->ns(), request->key(), "key", request->value().size());
      !status.ok()) {
    return internal::ToGrpc(status);
  }
  return internal::ToGrpc(
      store_->Put(HeadStore::KvTable(request->ns()), request->key(), request->value()));
}

grpc::Status HeadService::KvGet(grpc::ServerContext* context, const proto::KvGetRequest* request,
                                proto::KvGetReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (auto status = internal::CheckKvSizes(request->ns(), request->key(), "key"); !status.ok()) {
    return internal::ToGrpc(status);
  }
  auto value = store_->Get(HeadStore::KvTable(request->ns()), request->key());
  if (!value.ok()) return internal::ToGrpc(value.status());
  reply->set_found(value->has_value());
  if (value->has_value()) reply->set_value(std::move(**value));
  return grpc::Status::OK;
}

grpc::Status HeadService::KvDelete(grpc::ServerContext* context,
                                   const proto::KvDeleteRequest* request,
                                   proto::KvDeleteReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (auto status = internal::CheckKvSizes(request->ns(), request->key(), "key"); !status.ok()) {
    return internal::ToGrpc(status);
  }
  auto deleted = store_->Delete(HeadStore::KvTable(request->ns()), request->key());
  if (!deleted.ok()) return internal::ToGrpc(deleted.status());
  reply->set_deleted(*deleted);
  return grpc::Status::OK;
}

grpc::Status HeadService::KvList(grpc::ServerContext* context, const proto::KvListRequest* request,
                                 proto::KvListReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (auto status = internal::CheckKvSizes(request->ns(), request->prefix(), "prefix");
      !status.ok()) {
    return internal::ToGrpc(status);
  }
  if (auto status = internal::CheckKvSizes(request->ns(), request->start_after(), "start key");
      !status.ok()) {
    return internal::ToGrpc(status);
  }
  const uint32_t page =
      request->limit() == 0 ? kKvListPage : std::min(request->limit(), kKvListPage);
  // One more than the page tells whether more follow.
  auto keys = store_->ScanKeys(HeadStore::KvTable(request->ns()), request->prefix(),
                               request->start_after(), page + 1);
  if (!keys.ok()) return internal::ToGrpc(keys.status());
  reply->set_more(keys->size() > page);
  if (keys->size() > page) keys->resize(page);
  for (std::string& key : *keys) reply->add_keys(std::move(key));
  return grpc::Status::OK;
}

void HeadService::UpdateLivenessLocked() {
  for (const std::string& id : liveness_.Check()) {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) continue;
    DeclareDeadLocked(id, it->second,
                      absl::StrCat("no heartbeat for ", absl::FormatDuration(heartbeat_timeout_)));
  }
}

void HeadService::DeclareDeadLocked(const std::string& id, Node& node, const std::string& reason) {
  liveness_.MarkDead(id);
  newly_dead_.push_back(node.info.address());
  proto::NodeDeath& death = deaths_.emplace_back();
  death.set_node_id(id);
  death.set_address(node.info.address());
  death.set_reason(reason);
  RecordDeathLocked(node, reason);
  LUMEN_LOG(WARNING) << "node " << id << " at " << node.info.address() << " is dead: " << reason;
}

grpc::Status HeadService::LeaveCluster(grpc::ServerContext* context,
                                       const proto::LeaveClusterRequest* request,
                                       proto::LeaveClusterReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(request->node_id());
  if (it != nodes_.end() && liveness_.IsAlive(it->first)) {
    DeclareDeadLocked(it->first, it->second, "it left the cluster (lumen stop)");
  }
  return grpc::Status::OK;
}

grpc::Status HeadService::RegisterNode(grpc::ServerContext* context,
                                       const proto::RegisterNodeRequest* request,
                                       proto::RegisterNodeReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (request->node().node_id().empty() || request->node().address().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node id and address are required");
  }
  {
    absl::MutexLock lock(&mu_);
    if (auto status = RecordRegistrationLocked(request->node()); !status.ok()) {
      return internal::ToGrpc(status);
    }
    Node& node = nodes_[request->node().node_id()];
    const bool is_new = !liveness_.IsAlive(request->node().node_id());
    node.info = request->node();
    liveness_.Heard(node.info.node_id());
    if (is_new) {
      LUMEN_LOG(INFO) << "node " << node.info.node_id() << " registered from "
                      << node.info.address();
    }
  }
  // Bundles reserved there that no group here places there (a head that died between
  // reserving and storing them) go back to the node.
  groups_->NodeRegistered(request->node().node_id(), HeldBundles(ToShape(request->node().total())));
  // Actors a previous head knew there are confirmed, or restarted if their process is gone.
  actors_->NodeRegistered(request->node());
  actors_->RetryPlacements();  // actors waiting for a node may fit on this one
  return grpc::Status::OK;
}

grpc::Status HeadService::Heartbeat(grpc::ServerContext* context,
                                    const proto::HeartbeatRequest* request,
                                    proto::HeartbeatReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  // The reporting node first: a check before its refresh could declare it dead for the very
  // silence this heartbeat ends.
  const std::string& id = request->node().node_id();
  auto it = nodes_.find(id);
  // A node a previous head knew registers again before its heartbeats count.
  const bool alive = it != nodes_.end() && liveness_.IsAlive(id) && !it->second.recovered;
  if (alive) {
    it->second.info = request->node();
    liveness_.Heard(id);
  }
  UpdateLivenessLocked();
  for (size_t i = request->deaths_seen(); i < deaths_.size(); ++i)
    *reply->add_deaths() = deaths_[i];
  reply->set_deaths_total(deaths_.size());
  for (size_t i = request->finished_jobs_seen(); i < finished_jobs_.size(); ++i) {
    reply->add_finished_jobs(finished_jobs_[i]);
  }
  reply->set_finished_jobs_total(finished_jobs_.size());
  if (!alive) {
    reply->set_reregister(true);
    // Declared dead: what it still runs was replaced elsewhere, so it must end it.
    reply->set_fenced(it != nodes_.end() && !it->second.recovered);
  }
  return grpc::Status::OK;
}

grpc::Status HeadService::GetClusterStatus(grpc::ServerContext* context,
                                           const proto::GetClusterStatusRequest* request,
                                           proto::ClusterStatus* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  reply->set_session_dir(session_dir_);
  for (auto& info : Nodes()) *reply->add_nodes() = std::move(info);
  for (auto& pending : placer_.Queue(actors_->List())) {
    *reply->add_pending_actors() = std::move(pending);
  }
  for (auto& group : groups_->Pending()) *reply->add_pending_placement_groups() = std::move(group);
  return grpc::Status::OK;
}

std::vector<proto::NodeInfo> HeadService::Nodes() {
  absl::MutexLock lock(&mu_);
  UpdateLivenessLocked();
  std::vector<proto::NodeInfo> out;
  for (const auto& [id, node] : nodes_) {
    proto::NodeInfo& info = out.emplace_back(node.info);
    info.set_alive(liveness_.IsAlive(id));
    info.set_last_heartbeat_ms(absl::ToInt64Milliseconds(liveness_.Silence(id)));
    if (node.recovered && info.alive()) MarkUnconfirmed(&info);
  }
  return out;
}

grpc::Status HeadService::FindNode(grpc::ServerContext* context,
                                   const proto::FindNodeRequest* request,
                                   proto::FindNodeReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  ResourceShape shape = ToShape(request->resources());
  if (request->strategy().kind() == proto::SchedulingStrategy::PLACEMENT_GROUP &&
      !ShapeInPlacementGroup(request->strategy(), &shape, reply)) {
    return grpc::Status::OK;
  }
  absl::MutexLock lock(&mu_);
  UpdateLivenessLocked();
  std::vector<NodeView> views = NodeViewsLocked();
  for (NodeView& view : views) {
    if (view.node_id == request->exclude_node_id()) view.available.clear();
  }
  PlacementRequest placement_request{.shape = shape,
                                     .strategy = request->strategy(),
                                     .preferred_node_id = request->requester_node_id()};
  const Placement placement = PickNode(views, placement_request, &lease_spread_last_);
  reply->set_infeasible(placement.infeasible);
  reply->set_unschedulable(placement.unschedulable);
  if (request->strategy().kind() == proto::SchedulingStrategy::SPREAD) {
    reply->set_feasible_nodes(CountFeasibleNodes(views, shape));
  }
  auto node = nodes_.find(placement.node_id);
  if (node == nodes_.end()) return grpc::Status::OK;
  reply->set_address(node->second.info.address());
  reply->set_node_id(placement.node_id);
  // Until its next heartbeat, count the lease as taken there: requests that follow at once
  // spread over the other free nodes instead of piling onto this one.
  if (placement.node_id != request->requester_node_id()) {
    for (const auto& [name, amount] : shape) {
      (*node->second.info.mutable_available())[name] -= amount;
    }
  }
  return grpc::Status::OK;
}

}  // namespace lumen::scheduler
