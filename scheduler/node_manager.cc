#include "scheduler/node_manager.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/rpc.h"
#include "scheduler/actor_directory.h"
#include "scheduler/bundle_resources.h"
#include "scheduler/head_service.h"
#include "scheduler/lease_routing.h"
#include "scheduler/node_objects.h"
#include "scheduler/placement_policy.h"

namespace lumen::scheduler {

using internal::CheckToken;
using ResourceMap = google::protobuf::Map<std::string, double>;

namespace {

// How long a lease request waits for resources before answering "pending".
constexpr absl::Duration kLeaseHold = absl::Seconds(1);
constexpr int kMaxStartupFailures = 5;

// Until when an actor start may take: the caller's deadline (the head's kActorStartDeadline)
// less a margin for the reply, or kActorStartDeadline from now without one.
absl::Time StartDeadline(const grpc::ServerContext& context) {
  constexpr absl::Duration kReplyMargin = absl::Seconds(2);
  const absl::Time own = absl::Now() + kActorStartDeadline;
  const absl::Time callers = absl::FromChrono(context.deadline()) - kReplyMargin;
  return std::min(own, callers);
}

bool SameAmounts(const ResourceMap& a, const ResourceMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, amount] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second != amount) return false;
  }
  return true;
}

bool Valid(const ResourceMap& shape, std::string* why) {
  for (const auto& [name, amount] : shape) {
    if (!std::isfinite(amount) || amount < 0) {
      *why = absl::StrCat("resource ", name, " has an invalid amount ", amount);
      return false;
    }
  }
  return true;
}

}  // namespace

NodeManager::NodeManager(NodeManagerConfig config, std::unique_ptr<objectstore::ObjectStore> store)
    : config_(std::move(config)),
      start_time_ms_(absl::ToUnixMillis(absl::Now())),
      store_(std::move(store)) {
  head_ = proto::HeadService::NewStub(internal::MakeChannel(config_.head_address));
  reporter_ = std::make_unique<HeadReporter>();
  code_ = std::make_unique<CodeCache>(
      CodeCache::Options{.dir = absl::StrCat(config_.session_dir, "/code/node-", config_.node_id),
                         .own_executable = config_.executable,
                         .head_address = config_.head_address,
                         .token = config_.token});
  // Client and lease ids carry a random per-node prefix, so that an id from another node
  // (a spilled lease request) is never mistaken for one of this node's clients.
  uint32_t prefix = 0;
  const std::string random = internal::RandomBytes(sizeof(prefix));
  std::memcpy(&prefix, random.data(), sizeof(prefix));
  absl::MutexLock lock(&mu_);
  node_id_ = config_.node_id;
  next_id_ = (static_cast<uint64_t>(prefix | 1u) << 32) | 1;
  for (const auto& [name, amount] : config_.resources) {
    total_[name] = amount;
    available_[name] = amount;
  }
}

NodeManager::~NodeManager() { Stop(); }

absl::Status NodeManager::Start() {
  spill_ = std::make_unique<objectstore::SpillManager>(
      *store_, absl::StrCat(config_.session_dir, "/spill/node-", config_.node_id));
  auto data_plane = objectstore::ObjectDataPlane::Start(
      *store_, spill_.get(), config_.ip, config_.token, objectstore::PullManager::Options{});
  if (!data_plane.ok()) return data_plane.status();
  data_plane_ = std::move(*data_plane);
  io_ = std::make_unique<net::IoPool>(net::IoPool::ConfiguredThreads(1), "lumen-nm-io");
  auto listener = net::Listener::Start(
      *io_, config_.ip, 0, config_.token, net::ConnectionOptions::FromEnvironment(),
      [this](const std::shared_ptr<net::Connection>& conn, const proto::Hello& hello) {
        return OnClientConnected(conn, hello);
      });
  if (!listener.ok()) return listener.status();
  listener_ = std::move(*listener);
  proto::RegisterNodeRequest request;
  *request.mutable_node() = Info();
  proto::RegisterNodeReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, config_.token, absl::Seconds(10));
  auto status = head_->RegisterNode(&context, request, &reply);
  if (!status.ok()) {
    return internal::FromGrpc(
        status, absl::StrCat("cannot register with the head at ", config_.head_address));
  }
  {
    absl::MutexLock lock(&mu_);
    const int cpus = static_cast<int>(total_.contains("CPU") ? total_["CPU"] : 0);
    for (int i = 0; i < cpus; ++i) StartWorkerLocked(config_.executable, 0);
  }
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  holder_check_ = std::thread([this] { HolderCheckLoop(); });
  return absl::OkStatus();
}

void NodeManager::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, worker] : workers_) KillWorkerLocked(worker);
    cv_.SignalAll();
  }
  code_->Stop();
  if (maintenance_.joinable()) maintenance_.join();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (holder_check_.joinable()) holder_check_.join();
  if (!config_.is_head && head_ != nullptr) {
    // Leave now rather than be declared dead after the heartbeat timeout.
    proto::LeaveClusterRequest request;
    {
      absl::MutexLock lock(&mu_);
      request.set_node_id(node_id_);
    }
    proto::LeaveClusterReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, config_.token, absl::Seconds(2));
    (void)head_->LeaveCluster(&context, request, &reply);
  }
  if (listener_) listener_->Stop();
  if (data_plane_) data_plane_->Stop();
  std::vector<std::shared_ptr<net::Connection>> conns;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, client] : clients_) {
      if (client.conn) conns.push_back(client.conn);
    }
  }
  for (auto& conn : conns) conn->Close("node manager stopping");
  if (io_) io_->Stop();
  internal::ReapChildren();
}

// ---- Workers ----------------------------------------------------------------------------

std::string NodeManager::StartWorkerLocked(const std::string& executable, uint64_t job,
                                           const proto::StartActorRequest* actor) {
  if (stopping_) return "";
  Worker worker;
  worker.id = internal::RandomBytes(8);
  worker.executable = executable;
  worker.job = job;
  const std::string hex = internal::Hex(worker.id);
  internal::SpawnOptions options;
  options.argv = {code_->RunnablePath(job, executable)};
  options.env = {{"LUMEN_ROLE", "worker"},
                 {"LUMEN_NODE_ADDRESS", config_.address},
                 {"LUMEN_WORKER_ID", hex},
                 {"LUMEN_TOKEN", config_.token},
                 {"LUMEN_SESSION_DIR", config_.session_dir}};
  if (actor != nullptr) {
    worker.actor_id = actor->spec().actor_id();
    worker.actor_incarnation = actor->incarnation();
    worker.detached = actor->spec().detached();
    worker.actor_resources = actor->spec().resources();
    worker.actor_spec = actor->spec();
    options.env.emplace_back("LUMEN_ACTOR_RESTARTED", actor->restarted() ? "1" : "0");
  }
  options.log_path = absl::StrCat(config_.session_dir, "/logs/worker-", hex, ".log");
  // Lease handlers run on gRPC's threads, which may exit; PR_SET_PDEATHSIG follows the thread,
  // so workers watch their parent themselves instead.
  options.detach = false;
  options.death_signal = 0;
  // Listed at once (starting, no pid yet), so that concurrent requests count it. Forking and
  // waiting for the exec take long on a busy machine, and without mu_ heartbeats, leases and
  // registrations go on meanwhile: 300 starts under mu_ kept the heartbeat out for seconds.
  std::string id = worker.id;
  workers_[id] = std::move(worker);
  mu_.Unlock();
  absl::StatusOr<int> pid = config_.spawn(options);
  mu_.Lock();
  // Only OnWorkerExitLocked erases workers, by pid: this one is still listed.
  auto it = workers_.find(id);
  if (!pid.ok()) {
    LUMEN_LOG(ERROR) << "cannot start a worker (" << executable << "): " << pid.status();
    workers_.erase(it);
    cv_.SignalAll();
    return "";
  }
  it->second.pid = *pid;
  // Stopped, fenced or killed while it was being started: it goes now that it has a pid.
  if (stopping_ || it->second.dying) KillWorkerLocked(it->second);
  return id;
}

NodeManager::Worker* NodeManager::FindIdleWorkerLocked(const std::string& executable,
                                                       uint64_t job) {
  Worker* unbound = nullptr;
  for (auto& [id, worker] : workers_) {
    if (worker.state != WorkerState::kIdle || worker.dying || worker.executable != executable) {
      continue;
    }
    if (worker.job == job) return &worker;
    if (worker.job == 0 && unbound == nullptr) unbound = &worker;
  }
  return unbound;
}

int NodeManager::CountWorkersLocked(const std::string& executable, uint64_t job,
                                    WorkerState state) {
  int n = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker.state == state && worker.executable == executable &&
        (worker.job == job || worker.job == 0)) {
      ++n;
    }
  }
  return n;
}

void NodeManager::KillWorkerLocked(Worker& worker) {
  worker.dying = true;
  if (worker.pid > 0) kill(worker.pid, SIGKILL);
}

void NodeManager::OnWorkerExitLocked(int pid, int status) {
  for (auto it = workers_.begin(); it != workers_.end(); ++it) {
    Worker& worker = it->second;
    if (worker.pid != pid) continue;
    const bool started = worker.state != WorkerState::kStarting;
    if (started) {
      LUMEN_LOG(INFO) << "worker " << internal::ShortHex(worker.id) << " (pid " << pid
                      << ") exited: " << internal::DescribeWaitStatus(status);
    } else {
      LUMEN_LOG(WARNING) << "worker " << internal::ShortHex(worker.id) << " (pid " << pid
                         << ") exited before it registered: "
                         << internal::DescribeWaitStatus(status) << "; see logs/worker-"
                         << internal::Hex(worker.id) << ".log";
      ++startup_failures_[worker.executable];
    }
    if (worker.lease_id != 0) ReleaseLeaseLocked(worker.lease_id, /*kill_worker=*/false);
    if (!worker.actor_id.empty()) {
      for (const auto& [name, amount] : worker.actor_resources) {
        if (total_.contains(name)) available_[name] += amount;
      }
      // A node that is stopping killed its actors itself: it leaves the cluster next, and the
      // head ends (or restarts) every actor it ran for that one reason.
      if (worker.actor_created && !stopping_) {
        // The head decides about restarts; only an actor whose owner left never comes back.
        proto::ReportActorDeathRequest death;
        death.set_actor_id(worker.actor_id);
        death.set_incarnation(worker.actor_incarnation);
        death.set_cause(!worker.kill_reason.empty()
                            ? worker.kill_reason
                            : absl::StrCat("its process (pid ", pid, ") ",
                                           internal::DescribeWaitStatus(status)));
        death.set_restartable(!worker.owner_gone);
        ReportToHead(std::move(death));
      }
    }
    if (worker.client_id != 0) {
      // Workers it had leased for its own nested tasks are nobody's now.
      std::vector<uint64_t> held;
      for (const auto& [lease_id, lease] : leases_) {
        if (lease.holder == worker.client_id) held.push_back(lease_id);
      }
      for (uint64_t lease_id : held) ReleaseLeaseLocked(lease_id, /*kill_worker=*/true);
      store_->ReleaseClient(worker.client_id);
      clients_.erase(worker.client_id);
    }
    workers_.erase(it);
    cv_.SignalAll();
    return;
  }
}

// ---- Leases -----------------------------------------------------------------------------

NodeManager::Demand& NodeManager::DemandLocked(const ResourceMap& shape) {
  const std::string key = DescribeShape(ToShape(shape));
  Demand& demand = demands_[key];
  if (demand.resources.empty()) demand.resources = shape;
  return demand;
}

proto::FindNodeReply NodeManager::FindOtherNode(const proto::LeaseRequest& lease,
                                                bool exclude_self) {
  proto::FindNodeRequest request;
  *request.mutable_resources() = lease.resources();
  *request.mutable_strategy() = lease.strategy();
  {
    absl::MutexLock lock(&mu_);
    request.set_requester_node_id(node_id_);
    if (exclude_self) request.set_exclude_node_id(node_id_);
  }
  proto::FindNodeReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, config_.token, absl::Seconds(5));
  if (!head_->FindNode(&context, request, &reply).ok()) reply.set_infeasible(false);
  return reply;
}

grpc::Status NodeManager::RequestWorkerLease(grpc::ServerContext* context,
                                             const proto::LeaseRequest* request,
                                             proto::LeaseReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  // A lease in a placement group's bundle takes the bundle's resources (bundle_resources.h).
  proto::LeaseRequest in_bundle;
  if (request->strategy().kind() == proto::SchedulingStrategy::PLACEMENT_GROUP) {
    in_bundle = *request;
    PlaceLeaseInBundle(&in_bundle);
    request = &in_bundle;
  }
  const ResourceMap& shape = request->resources();
  std::string why;
  if (!Valid(shape, &why)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why);

  bool feasible_here = false;
  bool available_here = false;
  std::string self;
  std::string executable = request->executable();
  uint64_t job = request->job_id();
  {
    absl::MutexLock lock(&mu_);
    feasible_here = Fits(total_, shape);
    available_here = Fits(available_, shape);
    self = node_id_;
    if (auto client = clients_.find(request->client_id()); client != clients_.end()) {
      executable = client->second.executable;
      job = client->second.job;
      if (client->second.kind == proto::CLIENT_WORKER) {
        if (auto w = workers_.find(client->second.worker_id); w != workers_.end()) {
          executable = w->second.executable;
          job = w->second.job;
        }
      }
    } else if (!request->spilled() || executable.empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "unknown client: it must register with this node manager first");
    }
  }
  bool infeasible = false;
  const LeaseRouting route = RouteLease(*request, self, feasible_here, available_here);
  if (route.ask_head) {
    proto::FindNodeReply other = FindOtherNode(*request, route.exclude_self);
    reply->set_feasible_nodes(other.feasible_nodes());
    if (!other.unschedulable().empty()) {
      reply->set_unschedulable(other.unschedulable());
      return grpc::Status::OK;
    }
    if (!other.address().empty() && other.node_id() != self) {
      reply->set_spillback_address(other.address());
      reply->set_executable(executable);
      reply->set_job_id(job);
      return grpc::Status::OK;
    }
    infeasible = other.infeasible();
  }

  // A job's executable this node never saw is fetched first (code_cache.h).
  auto code_ready = code_->Prepare(job, executable, absl::Now() + kLeaseHold);
  if (!code_ready.ok()) {
    reply->set_unschedulable(std::string(code_ready.status().message()));
    return grpc::Status::OK;
  }
  if (!*code_ready) {
    reply->set_pending_reason("fetching the job's executable to this node");
    return grpc::Status::OK;
  }

  absl::MutexLock lock(&mu_);
  if (startup_failures_[executable] >= kMaxStartupFailures) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("workers running ", executable, " died at startup ",
                                     startup_failures_[executable],
                                     " times; see logs/worker-*.log in ", config_.session_dir));
  }

  Demand& demand = DemandLocked(shape);
  ++demand.count;
  if (!feasible_here) demand.infeasible = true;
  const absl::Time deadline = absl::Now() + kLeaseHold;
  bool waiting_for_worker = false;
  Worker* granted = nullptr;
  // A request that found this node free but lost the race for it answers at once: asked
  // again, it sees the node busy and may spill to another node instead of waiting here.
  const bool answer_when_busy = !route.ask_head && !request->spilled() &&
                                request->strategy().kind() == proto::SchedulingStrategy::DEFAULT;
  while (!stopping_ && !context->IsCancelled()) {
    if (answer_when_busy && !Fits(available_, shape)) break;
    if (feasible_here && Fits(available_, shape)) {
      granted = FindIdleWorkerLocked(executable, job);
      if (granted != nullptr) break;
      if (!waiting_for_worker) {
        waiting_for_worker = true;
        ++waiting_for_worker_[executable];
      }
      const int starting = CountWorkersLocked(executable, job, WorkerState::kStarting);
      if (starting < waiting_for_worker_[executable] &&
          (CountCappedWorkersLocked() < config_.max_workers ||
           EvictIdleWorkerLocked(executable, job))) {
        StartWorkerLocked(executable, executable == config_.executable ? 0 : job);
      }
    }
    if (absl::Now() >= deadline) break;
    cv_.WaitWithTimeout(&mu_, std::min(absl::Milliseconds(100), deadline - absl::Now()));
  }
  if (waiting_for_worker) --waiting_for_worker_[executable];
  Demand& after = DemandLocked(shape);
  if (--after.count <= 0) demands_.erase(DescribeShape(ToShape(shape)));

  if (granted == nullptr) {
    if (!feasible_here) {
      reply->set_pending_reason(absl::StrCat(
          infeasible ? "infeasible: no node in the cluster has " : "no node has available ",
          DescribeShape(ToShape(shape)), " (this node has ", DescribeShape(ToShape(total_)), ")"));
    } else {
      reply->set_pending_reason(
          absl::StrCat("waiting for ", DescribeShape(ToShape(shape)),
                       "; available now: ", DescribeShape(ToShape(available_))));
    }
    return grpc::Status::OK;
  }
  for (const auto& [name, amount] : shape) available_[name] -= amount;
  Lease lease;
  lease.id = next_id_++;
  lease.worker_id = granted->id;
  lease.resources = shape;
  lease.holder = request->client_id();
  granted->state = WorkerState::kLeased;
  granted->job = job;
  granted->lease_id = lease.id;
  leases_[lease.id] = lease;
  TrackLeaseHolderLocked(lease.id, *request);
  proto::WorkerLease* out = reply->mutable_granted();
  out->set_lease_id(lease.id);
  out->set_worker_id(granted->id);
  out->set_worker_address(granted->address);
  out->set_node_id(node_id_);
  return grpc::Status::OK;
}

void NodeManager::ReleaseLeaseLocked(uint64_t lease_id, bool kill_worker) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  const Lease& lease = it->second;
  for (const auto& [name, amount] : lease.resources) {
    if (name == "CPU" && lease.cpu_lent) continue;
    if (!total_.contains(name)) continue;  // a placement group's bundle that was released
    available_[name] += amount;
  }
  auto worker = workers_.find(lease.worker_id);
  if (worker != workers_.end()) {
    worker->second.lease_id = 0;
    worker->second.state = WorkerState::kIdle;
    if (kill_worker) KillWorkerLocked(worker->second);
  }
  leases_.erase(it);
  holders_.Released(lease_id);
  cv_.SignalAll();
}

grpc::Status NodeManager::ReturnWorkerLease(grpc::ServerContext* context,
                                            const proto::ReturnLeaseRequest* request,
                                            proto::ReturnLeaseReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  ReleaseLeaseLocked(request->lease_id(), request->disconnect_worker());
  return grpc::Status::OK;
}

void NodeManager::SetBlockedLocked(uint64_t client_id, bool blocked) {
  auto client = clients_.find(client_id);
  if (client == clients_.end()) return;
  auto worker = workers_.find(client->second.worker_id);
  if (worker == workers_.end() || worker->second.lease_id == 0) return;
  auto lease_it = leases_.find(worker->second.lease_id);
  if (lease_it == leases_.end()) return;
  Lease& lease = lease_it->second;
  auto cpu = lease.resources.find("CPU");
  if (cpu == lease.resources.end() || lease.cpu_lent == blocked) return;
  // A worker blocked in Get lends its CPU back so that the tasks it waits for can run.
  available_["CPU"] += blocked ? cpu->second : -cpu->second;
  lease.cpu_lent = blocked;
  cv_.SignalAll();
}

net::Connection::Handlers NodeManager::OnClientConnected(
    const std::shared_ptr<net::Connection>& conn, const proto::Hello& hello) {
  const uint64_t client_id = hello.client_id();
  {
    absl::MutexLock lock(&mu_);
    auto client = clients_.find(client_id);
    if (client == clients_.end()) return {};  // not registered: the connection is refused
    client->second.conn = conn;
  }
  std::weak_ptr<net::Connection> weak = conn;
  return {
      .on_frame = [this, client_id](net::Connection&,
                                    proto::Frame& frame) { OnClientFrame(client_id, frame); },
      .on_batch_end = nullptr,
      .on_close = [this, client_id, weak](
                      net::Connection&,
                      const std::string&) { OnClientClosed(client_id, weak.lock()); },
  };
}

void NodeManager::OnClientFrame(uint64_t client_id, proto::Frame& frame) {
  if (frame.has_blocked()) {
    absl::MutexLock lock(&mu_);
    SetBlockedLocked(client_id, frame.blocked().blocked());
  } else if (frame.has_release()) {
    // Each release goes to the node holding the object's primary copy, which frees every copy.
    const proto::ReleaseObjects& release = frame.release();
    for (int i = 0; i < release.object_ids_size(); ++i) {
      data_plane_->Release(release.object_ids(i),
                           i < release.holders_size() ? release.holders(i) : "");
    }
  }
}

void NodeManager::OnClientClosed(uint64_t client_id, const std::shared_ptr<net::Connection>& conn) {
  absl::MutexLock lock(&mu_);
  auto client = clients_.find(client_id);
  if (client == clients_.end() || client->second.conn != conn) return;
  client->second.conn = nullptr;
  // A driver's connection ends when the driver does; workers are reaped by waitpid.
  if (client->second.kind == proto::CLIENT_DRIVER && !stopping_) CleanupJobLocked(client_id);
}

void NodeManager::RelayDeaths(const google::protobuf::RepeatedPtrField<proto::NodeDeath>& deaths) {
  if (deaths.empty()) return;
  std::vector<std::shared_ptr<net::Connection>> conns;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, client] : clients_) {
      if (client.conn) conns.push_back(client.conn);
    }
  }
  for (const auto& death : deaths) {
    LUMEN_LOG(INFO) << "the head declared node " << death.node_id() << " dead: " << death.reason();
    proto::Frame frame;
    *frame.mutable_node_death() = death;
    for (auto& conn : conns) conn->Send(frame, /*flush=*/false);
  }
  for (auto& conn : conns) conn->Flush();
}

// ---- Clients ----------------------------------------------------------------------------

grpc::Status NodeManager::RegisterClient(grpc::ServerContext* context,
                                         const proto::RegisterClientRequest* request,
                                         proto::RegisterClientReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  const uint64_t client_id = next_id_++;
  Client client;
  client.kind = request->kind();
  client.pid = request->pid();
  if (request->kind() == proto::CLIENT_WORKER) {
    auto it = workers_.find(request->worker_id());
    if (it == workers_.end() || it->second.state != WorkerState::kStarting) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "this node manager did not start a worker with that id");
    }
    Worker& worker = it->second;
    worker.client_id = client_id;
    worker.address = absl::StrCat(config_.ip, ":", request->wire_port());
    worker.state = worker.actor_id.empty() ? WorkerState::kIdle : WorkerState::kActor;
    if (!worker.actor_id.empty()) *reply->mutable_actor_spec() = worker.actor_spec;
    client.worker_id = worker.id;
    client.executable = worker.executable;
    client.job = worker.job;
    startup_failures_[worker.executable] = 0;
  } else {
    if (request->executable().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a driver must name its executable");
    }
    client.executable = request->executable();
    client.job = client_id;
    // What the driver runs, for nodes that never saw it (code_cache.h): hashed in the
    // background, and the job's start reported again with the hash.
    auto runnable = code_->RegisterDriver(client_id, client.pid, client.executable,
                                          [this](uint64_t job) { OnDriverHashed(job); });
    if (!runnable.ok()) {
      LUMEN_LOG(WARNING) << "other nodes cannot fetch the executable of driver pid " << client.pid
                         << ": " << runnable.status();
    }
    if (client.executable != config_.executable && (!runnable.ok() || *runnable)) {
      // This job's own executable: pre-start its workers (not while a copy of it is made).
      const int cpus = static_cast<int>(total_.contains("CPU") ? total_["CPU"] : 0);
      for (int i = 0; i < std::max(1, cpus); ++i) StartWorkerLocked(client.executable, client_id);
    }
    LUMEN_LOG(INFO) << "driver pid " << client.pid << " connected (" << client.executable << ")";
    ReportDriverLocked(client_id, client, /*finished=*/false);
  }
  clients_[client_id] = client;
  cv_.SignalAll();
  reply->set_client_id(client_id);
  reply->set_node_id(node_id_);
  reply->set_shm_name(config_.shm_name);
  reply->set_shm_size(store_->Stats().capacity);
  reply->set_node_ip(config_.ip);
  reply->set_head_address(config_.head_address);
  reply->set_wire_port(listener_->port());
  reply->set_session_dir(config_.session_dir);
  reply->set_job_id(client.job);
  return grpc::Status::OK;
}

void NodeManager::CleanupJobLocked(uint64_t job) {
  auto driver = clients_.find(job);
  if (driver == clients_.end()) return;
  LUMEN_LOG(INFO) << "driver pid " << driver->second.pid << " left; releasing its workers";
  NoteJobEndedLocked(job);
  std::vector<uint64_t> leases;
  for (const auto& [id, lease] : leases_) {
    auto holder = clients_.find(lease.holder);
    if (holder != clients_.end() && holder->second.job == job) leases.push_back(id);
  }
  for (uint64_t id : leases) ReleaseLeaseLocked(id, /*kill_worker=*/true);
  for (auto& [id, worker] : workers_) {
    if (worker.job != job || worker.detached) continue;
    if (!worker.actor_id.empty()) {
      worker.kill_reason = absl::StrCat("its owner (driver pid ", driver->second.pid, ") exited");
      worker.owner_gone = true;
    }
    KillWorkerLocked(worker);
  }
  store_->ReleaseClient(job);
  if (spill_) spill_->DeleteOwnedBy(job);
  ReportDriverLocked(job, driver->second, /*finished=*/true);
  clients_.erase(driver);
}

void NodeManager::EndRemoteJobLocked(uint64_t job) {
  NoteJobEndedLocked(job);
  if (clients_.contains(job)) return;  // a driver of this node: its own departure cleans up
  std::vector<uint64_t> leases;
  for (const auto& [id, lease] : leases_) {
    auto worker = workers_.find(lease.worker_id);
    if (worker != workers_.end() && worker->second.job == job) leases.push_back(id);
  }
  for (uint64_t id : leases) ReleaseLeaseLocked(id, /*kill_worker=*/true);
  for (auto& [id, worker] : workers_) {
    // Actors are the head's to end (ActorDirectory::JobFinished).
    if (worker.job == job && !worker.detached && worker.actor_id.empty()) KillWorkerLocked(worker);
  }
  if (!leases.empty()) {
    LUMEN_LOG(INFO) << "job " << job << " ended elsewhere; released its " << leases.size()
                    << " leases here";
  }
}

grpc::Status NodeManager::DisconnectClient(grpc::ServerContext* context,
                                           const proto::DisconnectClientRequest* request,
                                           proto::DisconnectClientReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(request->client_id());
  if (it != clients_.end() && it->second.kind == proto::CLIENT_DRIVER) {
    CleanupJobLocked(request->client_id());
  }
  return grpc::Status::OK;
}

// ---- Object store -----------------------------------------------------------------------

grpc::Status NodeManager::CreateObject(grpc::ServerContext* context,
                                       const proto::CreateObjectRequest* request,
                                       proto::CreateObjectReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  auto location = CreateInStore(*request);
  if (absl::IsAlreadyExists(location.status())) {
    // A retried task whose first attempt stored its result: that result stands once sealed.
    // An unsealed one whose writer died is freed when that death is handled; then create anew.
    auto sealed = store_->Get(request->object_id(), absl::Seconds(10));
    if (sealed.ok() && sealed->size == request->size()) {
      reply->set_offset(sealed->offset);
      reply->set_already_sealed(true);
      reply->set_data_address(data_plane_->address());
      return grpc::Status::OK;
    }
    if (absl::IsNotFound(sealed.status())) location = CreateInStore(*request);
  }
  if (!location.ok()) return internal::ToGrpc(location.status());
  reply->set_offset(location->offset);
  reply->set_data_address(data_plane_->address());
  return grpc::Status::OK;
}

grpc::Status NodeManager::SealObject(grpc::ServerContext* context,
                                     const proto::SealObjectRequest* request,
                                     proto::SealObjectReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  return internal::ToGrpc(store_->Seal(request->object_id()));
}

grpc::Status NodeManager::PinObjects(grpc::ServerContext* context,
                                     const proto::PinObjectsRequest* request,
                                     proto::PinObjectsReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  RestoreSpilled(request->object_ids());
  // Under mu_, so that a client's pins and its departure (ReleaseClient) never interleave.
  absl::MutexLock lock(&mu_);
  if (clients_.count(request->client_id()) == 0) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("client ", request->client_id(), " is not registered with this node manager"));
  }
  for (const auto& id : request->object_ids()) {
    proto::PinnedObject* pinned = reply->add_objects();
    auto location = store_->Pin(id, request->client_id());
    if (location.ok()) {
      pinned->set_offset(location->offset);
      pinned->set_size(location->size);
    } else {
      pinned->set_error(std::string(location.status().message()));
      pinned->set_lost(absl::IsNotFound(location.status()));
    }
  }
  return grpc::Status::OK;
}

grpc::Status NodeManager::UnpinObjects(grpc::ServerContext* context,
                                       const proto::UnpinObjectsRequest* request,
                                       proto::UnpinObjectsReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  for (const auto& id : request->object_ids()) {
    auto status = store_->Unpin(id, request->client_id());
    if (!status.ok()) LUMEN_LOG(WARNING) << "unpin: " << status;
  }
  return grpc::Status::OK;
}

// ---- Actors -----------------------------------------------------------------------------

grpc::Status NodeManager::StartActor(grpc::ServerContext* context,
                                     const proto::StartActorRequest* request,
                                     proto::StartActorReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  const proto::ActorSpec& spec = request->spec();
  std::string why;
  if (!Valid(spec.resources(), &why)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why);
  // A job's executable this node never saw is fetched first (code_cache.h).
  auto code_ready = code_->Prepare(spec.owner_job(), spec.executable(), StartDeadline(*context));
  if (!code_ready.ok() || !*code_ready) {
    reply->set_error(code_ready.ok()
                         ? "the job's executable did not arrive before the start's deadline"
                         : std::string(code_ready.status().message()));
    return grpc::Status::OK;
  }
  absl::MutexLock lock(&mu_);
  if (!Fits(total_, spec.resources())) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("this node can never hold ", DescribeShape(ToShape(spec.resources()))));
  }
  // The head's deadline for the start is this node's too (kActorStartDeadline), less a margin
  // for the reply: a process the head gave up on must not be left running.
  const absl::Time deadline = StartDeadline(*context);
  // The actor holds its resources for its whole life: wait for them.
  while (!Fits(available_, spec.resources()) && !stopping_ && !context->IsCancelled()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (!Fits(available_, spec.resources())) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        absl::StrCat("no room for ", DescribeShape(ToShape(spec.resources())),
                                     " before the start's deadline"));
  }
  for (const auto& [name, amount] : spec.resources()) available_[name] -= amount;
  const std::string executable = spec.executable().empty() ? config_.executable : spec.executable();
  // The actor belongs to its owner's job: it ends with it unless detached.
  uint64_t job = spec.owner_job();
  if (auto owner = clients_.find(spec.owner_client_id()); owner != clients_.end()) {
    job = owner->second.job;
    if (owner->second.kind == proto::CLIENT_WORKER) {
      if (auto w = workers_.find(owner->second.worker_id); w != workers_.end()) job = w->second.job;
    }
  }
  const std::string id = StartWorkerLocked(executable, job, request);
  if (id.empty()) {
    for (const auto& [name, amount] : spec.resources()) available_[name] += amount;
    return grpc::Status(grpc::StatusCode::INTERNAL, "could not start the actor's process");
  }
  auto created = [&] {
    auto it = workers_.find(id);
    return it == workers_.end() || it->second.actor_created || !it->second.actor_error.empty();
  };
  while (!created() && !stopping_ && !context->IsCancelled()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  // Where its log is, whatever happened.
  reply->set_worker_id(id);
  reply->set_node_id(node_id_);
  auto it = workers_.find(id);
  if (it == workers_.end()) {
    // A death of this incarnation (a crash, a kill), not a factory that failed: the head's
    // restart policy decides, as for any other death.
    return grpc::Status(grpc::StatusCode::ABORTED,
                        "the actor's process exited before its factory returned; see "
                        "logs/worker-" +
                            internal::Hex(id) + ".log");
  }
  if (!it->second.actor_error.empty()) {
    reply->set_error(it->second.actor_error);
  } else if (!it->second.actor_created) {
    KillWorkerLocked(it->second);
    reply->set_error(context->IsCancelled()
                         ? "the head gave up on the actor's start"
                         : "the actor's factory did not return before the start's deadline");
  } else {
    reply->set_address(it->second.address);
    reply->set_pid(it->second.pid);
  }
  return grpc::Status::OK;
}

grpc::Status NodeManager::ActorCreated(grpc::ServerContext* context,
                                       const proto::ActorCreatedRequest* request,
                                       proto::ActorCreatedReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  auto client = clients_.find(request->client_id());
  if (client == clients_.end()) return grpc::Status::OK;
  auto worker = workers_.find(client->second.worker_id);
  if (worker == workers_.end()) return grpc::Status::OK;
  if (request->error().empty()) {
    worker->second.actor_created = true;
  } else {
    worker->second.actor_error = request->error();
  }
  cv_.SignalAll();
  return grpc::Status::OK;
}

grpc::Status NodeManager::KillActorWorker(grpc::ServerContext* context,
                                          const proto::KillActorWorkerRequest* request,
                                          proto::KillActorWorkerReply* reply) {
  if (auto status = CheckToken(context, config_.token); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  for (auto& [id, worker] : workers_) {
    if (worker.actor_id == request->actor_id() &&
        (request->incarnation() == 0 || request->incarnation() == worker.actor_incarnation)) {
      worker.kill_reason = "killed by lumen::Kill";
      KillWorkerLocked(worker);
    }
  }
  return grpc::Status::OK;
}

// ---- Background -------------------------------------------------------------------------

proto::NodeInfo NodeManager::Info() {
  proto::NodeInfo info;
  info.set_address(config_.address);
  info.set_ip(config_.ip);
  info.set_pid(getpid());
  info.set_is_head(config_.is_head);
  const objectstore::StoreStats stats = store_->Stats();
  info.set_store_capacity(stats.capacity);
  info.set_store_used(stats.used);
  info.set_store_objects(stats.num_objects);
  info.set_store_pinned_objects(stats.pinned_objects);
  info.set_store_pinned_bytes(stats.pinned_bytes);
  info.set_store_released_pinned_objects(stats.released_pinned_objects);
  if (data_plane_) AddDataPlaneInfo(*data_plane_, spill_.get(), &info);
  info.set_alive(true);
  absl::MutexLock lock(&mu_);
  info.set_node_id(node_id_);
  *info.mutable_total() = total_;
  *info.mutable_available() = available_;
  info.set_num_workers(static_cast<int>(workers_.size()));
  info.set_max_workers(config_.max_workers);
  info.set_capped_workers(CountCappedWorkersLocked());
  info.set_start_time_ms(start_time_ms_);
  for (auto& process : ProcessesLocked()) *info.add_processes() = std::move(process);
  for (const auto& [key, demand] : demands_) {
    proto::ResourceDemand* out = info.add_demands();
    *out->mutable_resources() = demand.resources;
    out->set_count(demand.count);
    out->set_infeasible(demand.infeasible);
  }
  return info;
}

std::vector<proto::ProcessSummary> NodeManager::Processes() {
  absl::MutexLock lock(&mu_);
  return ProcessesLocked();
}

std::vector<proto::ProcessSummary> NodeManager::ProcessesLocked() {
  std::vector<proto::ProcessSummary> out;
  for (const auto& [id, worker] : workers_) {
    proto::ProcessSummary& process = out.emplace_back();
    process.set_worker_id(worker.id);
    process.set_pid(worker.pid);
    process.set_kind(worker.actor_id.empty() ? "worker" : "actor");
    process.set_actor_id(worker.actor_id);
    process.set_client_id(worker.client_id);
    switch (worker.state) {
      case WorkerState::kStarting:
        process.set_state("STARTING");
        break;
      case WorkerState::kIdle:
        process.set_state("IDLE");
        break;
      case WorkerState::kLeased:
        process.set_state("LEASED");
        break;
      case WorkerState::kActor:
        process.set_state("ACTOR");
        break;
    }
  }
  for (const auto& [id, client] : clients_) {
    if (client.kind != proto::CLIENT_DRIVER) continue;
    proto::ProcessSummary& process = out.emplace_back();
    process.set_pid(client.pid);
    process.set_kind("driver");
    process.set_state("CONNECTED");
    process.set_client_id(id);
  }
  return out;
}

void NodeManager::MaintenanceLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    cv_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
    // Only workers: the head's job manager reaps the jobs it runs in this process.
    std::vector<int> pids;
    for (const auto& [id, worker] : workers_) pids.push_back(worker.pid);
    for (const auto& [pid, status] : internal::ReapChildren(pids)) OnWorkerExitLocked(pid, status);
    std::vector<uint64_t> gone;
    for (const auto& [id, client] : clients_) {
      if (client.kind == proto::CLIENT_DRIVER && kill(client.pid, 0) != 0 && errno == ESRCH) {
        gone.push_back(id);
      }
    }
    for (uint64_t job : gone) CleanupJobLocked(job);
    // Keep one worker per CPU around so that the first tasks of a job start at once.
    const int cpus = static_cast<int>(total_.contains("CPU") ? total_["CPU"] : 0);
    if (static_cast<int>(workers_.size()) < cpus &&
        startup_failures_[config_.executable] < kMaxStartupFailures) {
      StartWorkerLocked(config_.executable, 0);
    }
  }
}

void NodeManager::HeartbeatLoop() {
  int failures = 0;
  HeadWatch head_watch(config_.head_lost_timeout);
  ResourceMap reported;  // the availability the head last heard
  while (true) {
    {
      // Any change wakes this loop, but one made while a heartbeat was in flight would wait
      // a whole period: the head (and `lumen status`) would show a released lease as held.
      absl::MutexLock lock(&mu_);
      if (SameAmounts(available_, reported)) cv_.WaitWithTimeout(&mu_, config_.heartbeat_period);
      if (stopping_) return;
    }
    proto::HeartbeatRequest request;
    *request.mutable_node() = Info();
    reported = request.node().available();
    request.set_deaths_seen(deaths_seen_);
    request.set_finished_jobs_seen(finished_jobs_seen_);
    proto::HeartbeatReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, config_.token, absl::Seconds(5));
    auto status = head_->Heartbeat(&context, request, &reply);
    if (!status.ok()) {
      if (failures++ % 20 == 0) {
        LUMEN_LOG(WARNING) << "heartbeat to the head at " << config_.head_address
                           << " failed: " << status.error_message();
      }
      if (HeadLost(head_watch)) return;
      continue;
    }
    failures = 0;
    head_watch.Reached();
    RelayDeaths(reply.deaths());
    ReleaseLeasesOfDeadNodes(reply.deaths());
    deaths_seen_ = reply.deaths_total();
    finished_jobs_seen_ = reply.finished_jobs_total();
    if (!reply.finished_jobs().empty()) {
      absl::MutexLock lock(&mu_);
      for (uint64_t job : reply.finished_jobs()) EndRemoteJobLocked(job);
    }
    if (reply.fenced()) Fence();
    if (reply.reregister()) {
      proto::RegisterNodeRequest again;
      *again.mutable_node() = Info();
      proto::RegisterNodeReply ok;
      grpc::ClientContext register_context;
      internal::PrepareContext(&register_context, config_.token, absl::Seconds(5));
      head_->RegisterNode(&register_context, again, &ok);
    }
  }
}

}  // namespace lumen::scheduler
