#include "runtime/internal/task_submitter.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"

namespace lumen::internal {
namespace {

constexpr absl::Duration kLeaseRpcTimeout = absl::Seconds(30);
// With a retry every 500 ms: about ten seconds without a node manager.
constexpr int kMaxLeaseFailures = 20;

std::string DescribeShape(const std::map<std::string, double>& resources) {
  std::string out = "{";
  for (const auto& [name, amount] : resources) {
    if (out.size() > 1) out += ", ";
    absl::StrAppend(&out, name, ": ", amount);
  }
  return out + "}";
}

}  // namespace

net::FlowLimits TaskSubmitter::Options::PendingLimitsFromEnvironment() {
  net::FlowLimits limits;
  limits.max_calls = 100000;
  limits.max_bytes = size_t{256} << 20;
  const char* calls = std::getenv("LUMEN_MAX_PENDING_TASKS");
  const char* bytes = std::getenv("LUMEN_MAX_PENDING_TASK_BYTES");
  uint64_t value = 0;
  if (calls != nullptr && absl::SimpleAtoi(calls, &value) && value > 0) limits.max_calls = value;
  if (bytes != nullptr && absl::SimpleAtoi(bytes, &value) && value > 0) limits.max_bytes = value;
  return limits;
}

TaskSubmitter::TaskSubmitter(Options options, net::IoPool& io, StubFactory stubs)
    : options_(std::move(options)), io_(io), stubs_(std::move(stubs)), limiter_(options_.pending) {}

TaskSubmitter::~TaskSubmitter() { Shutdown(); }

proto::SchedulingStrategy ToProtoStrategy(const SchedulingStrategy& strategy) {
  proto::SchedulingStrategy out;
  switch (strategy.kind) {
    case SchedulingStrategy::Kind::kDefault:
      out.set_kind(proto::SchedulingStrategy::DEFAULT);
      break;
    case SchedulingStrategy::Kind::kSpread:
      out.set_kind(proto::SchedulingStrategy::SPREAD);
      break;
    case SchedulingStrategy::Kind::kNodeAffinity:
      out.set_kind(proto::SchedulingStrategy::NODE_AFFINITY);
      out.set_node_id(strategy.node_id);
      out.set_soft(strategy.soft);
      break;
    case SchedulingStrategy::Kind::kPlacementGroup: {
      out.set_kind(proto::SchedulingStrategy::PLACEMENT_GROUP);
      std::string id;
      if (Unhex(strategy.placement_group_id, &id)) out.set_placement_group_id(id);
      out.set_bundle_index(strategy.bundle_index);
      break;
    }
  }
  return out;
}

std::string TaskSubmitter::ShapeKey(const std::map<std::string, double>& resources,
                                    const proto::SchedulingStrategy& strategy) {
  std::string key;
  for (const auto& [name, amount] : resources) absl::StrAppend(&key, name, "=", amount, ";");
  // Tasks placed differently never share a lease.
  if (strategy.kind() != proto::SchedulingStrategy::DEFAULT) {
    absl::StrAppend(&key, "|", strategy.kind(), ":", strategy.node_id(), ":", strategy.soft(), ":",
                    strategy.placement_group_id(), ":", strategy.bundle_index());
  }
  return key;
}

void TaskSubmitter::Submit(std::unique_ptr<PendingTask> task) {
  Outbox out;
  bool rejected = false;
  {
    absl::MutexLock lock(&mu_);
    rejected = shutdown_;
  }
  if (rejected) {
    Finish(std::move(task),
           MakeErrorValue(proto::ErrorInfo::SYSTEM, "lumen::Shutdown() was called"));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    const std::string key = ShapeKey(task->resources, task->strategy);
    ShapeQueue& shape = shapes_[key];
    if (shape.resources.empty()) {
      shape.resources = task->resources;
      shape.strategy = task->strategy;
    }
    if (task->strategy.kind() == proto::SchedulingStrategy::SPREAD) {
      if (!shape.spread.has_value()) shape.spread.emplace();
      if (IdleLocked(shape)) shape.spread->StartBurst();
    }
    task->spec.set_seq(next_seq_++);
    shape.queue.push_back(std::move(task));
    DispatchLocked(shape, &out);
    RequestLeasesLocked(key, shape, &out);
  }
  Deliver(out);
}

int TaskSubmitter::PipelineDepthLocked(const ShapeQueue& shape, const std::string& function) const {
  constexpr double kPipelineBudgetUs = 2000;
  auto it = shape.service_us.find(function);
  if (it == shape.service_us.end()) return 1;  // unknown cost: one at a time until measured
  const double depth = kPipelineBudgetUs / std::max(it->second, 1.0);
  return static_cast<int>(
      std::clamp(depth, 1.0, static_cast<double>(options_.max_in_flight_per_worker)));
}

bool TaskSubmitter::IdleLocked(const ShapeQueue& shape) {
  return shape.queue.empty() &&
         std::all_of(shape.workers.begin(), shape.workers.end(),
                     [](const auto& worker) { return worker->in_flight.empty(); });
}

void TaskSubmitter::DispatchLocked(ShapeQueue& shape, Outbox* out) {
  const absl::Time now = absl::Now();
  while (!shape.queue.empty()) {
    const int depth = PipelineDepthLocked(shape, shape.queue.front()->spec.function());
    std::shared_ptr<LeasedWorker> best;
    const size_t bytes = shape.queue.front()->bytes;
    for (auto& worker : shape.workers) {
      if (worker->dead || static_cast<int>(worker->in_flight.size()) >= depth ||
          (!worker->in_flight.empty() &&
           worker->in_flight_bytes + bytes > options_.max_in_flight_bytes_per_worker)) {
        continue;
      }
      if (shape.spread && !shape.spread->MayTake(worker->spread, shape.queue.size())) continue;
      const bool less_busy = best == nullptr || worker->in_flight.size() < best->in_flight.size();
      // SPREAD: among equally busy workers, the one whose last task is oldest, so that tasks
      // submitted one at a time go round the nodes.
      const bool less_recent = shape.spread && best != nullptr &&
                               worker->in_flight.size() == best->in_flight.size() &&
                               worker->spread.burst < best->spread.burst;
      if (less_busy || less_recent) best = worker;
    }
    if (best == nullptr) return;
    if (shape.spread) shape.spread->Took(best->spread);
    std::unique_ptr<PendingTask> task = std::move(shape.queue.front());
    shape.queue.pop_front();
    const bool was_idle = best->in_flight.empty();
    proto::Frame frame;
    // The spec is moved into the frame for the send and moved back: no copy of the args.
    frame.mutable_task()->Swap(&task->spec);
    best->conn->Send(frame, /*flush=*/false);
    frame.mutable_task()->Swap(&task->spec);
    const uint64_t seq = task->spec.seq();
    task->pushed_at = now;
    RecordPushed(options_.events, task->spec);
    if (was_idle) best->last_reply = now;
    best->in_flight_bytes += task->bytes;
    best->in_flight.emplace(seq, std::move(task));
    if (was_idle) out->flush.push_back(best->conn);
  }
}

void TaskSubmitter::RequestLeasesLocked(const std::string& key, ShapeQueue& shape, Outbox* out) {
  if (shape.queue.empty() || shutdown_ || absl::Now() < shape.retry_after) return;
  const int wanted = shape.spread ? shape.spread->LeasesWanted(
                                        shape.queue.size(), options_.max_pending_leases_per_shape)
                                  : std::min<int>(options_.max_pending_leases_per_shape,
                                                  static_cast<int>(shape.queue.size()));
  while (shape.pending_leases < wanted) {
    ++shape.pending_leases;
    ++outstanding_lease_rpcs_;
    out->leases.push_back({key, options_.local_node_address, shape.resources, shape.strategy});
  }
}

void TaskSubmitter::Deliver(Outbox& out) {
  for (auto& conn : out.flush) conn->Flush();
  for (auto& ask : out.leases) {
    RequestLease(ask.key, ask.node_address, ask.resources, ask.strategy, SpillTicket{});
  }
}

void TaskSubmitter::RequestLease(const std::string& key, const std::string& node_address,
                                 const std::map<std::string, double>& resources,
                                 const proto::SchedulingStrategy& strategy,
                                 const SpillTicket& ticket) {
  struct Call {
    grpc::ClientContext context;
    proto::LeaseRequest request;
    proto::LeaseReply reply;
  };
  auto call = std::make_shared<Call>();
  PrepareContext(&call->context, options_.token, kLeaseRpcTimeout);
  {
    absl::MutexLock lock(&contexts_mu_);
    lease_contexts_.insert(&call->context);
  }
  call->request.set_client_id(options_.client_id);
  call->request.set_spilled(node_address != options_.local_node_address);
  call->request.set_holder_node_address(options_.local_node_address);
  call->request.set_holder_node_id(options_.local_node_id);
  for (const auto& [name, amount] : resources) (*call->request.mutable_resources())[name] = amount;
  *call->request.mutable_strategy() = strategy;
  call->request.set_executable(ticket.executable);
  call->request.set_job_id(ticket.job_id);
  proto::NodeService::Stub* stub = stubs_(node_address);
  stub->async()->RequestWorkerLease(&call->context, &call->request, &call->reply,
                                    [this, call, key, node_address](const grpc::Status& status) {
                                      {
                                        absl::MutexLock lock(&contexts_mu_);
                                        lease_contexts_.erase(&call->context);
                                      }
                                      OnLeaseReply(key, node_address, status, call->reply);
                                    });
}

void TaskSubmitter::OnLeaseReply(const std::string& key, const std::string& node_address,
                                 const grpc::Status& status, const proto::LeaseReply& reply) {
  // Only the head's SPREAD placements carry the node count (spread_dispatch.h).
  const bool routed = node_address != options_.local_node_address;
  if (reply.feasible_nodes() > 0) {
    absl::MutexLock lock(&mu_);
    if (auto& spread = shapes_[key].spread) spread->set_feasible_nodes(reply.feasible_nodes());
  }
  if (status.ok() && reply.has_granted()) {
    ConnectWorker(key, node_address, reply.granted());
    return;  // still pending until connected
  } else if (status.ok() && !reply.spillback_address().empty()) {
    std::map<std::string, double> resources;
    proto::SchedulingStrategy strategy;
    {
      absl::MutexLock lock(&mu_);
      ShapeQueue& shape = shapes_[key];
      resources = shape.resources;
      strategy = shape.strategy;
      if (shape.spread && !routed) shape.spread->OnRouted();
    }
    RequestLease(key, reply.spillback_address(), resources, strategy,
                 SpillTicket{reply.executable(), reply.job_id()});
    return;  // still one pending lease for this shape
  }
  std::vector<std::unique_ptr<PendingTask>> failed;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    --outstanding_lease_rpcs_;
    ShapeQueue& shape = shapes_[key];
    --shape.pending_leases;
    if (shape.spread && routed) shape.spread->OnRoutedDone();
    if (!status.ok() && shutdown_) {
      // Cancelled by Shutdown: nothing to report.
    } else if (status.ok() && !reply.unschedulable().empty()) {
      FailShapeLocked(shape,
                      absl::StrCat("tasks needing ", DescribeShape(shape.resources),
                                   " cannot be scheduled: ", reply.unschedulable()),
                      &failed);
    } else if (!status.ok()) {
      ++shape.lease_failures;
      shape.retry_after = absl::Now() + absl::Milliseconds(500);
      LUMEN_LOG(WARNING) << "lease request to " << node_address
                         << " failed: " << status.error_message();
      if (shape.lease_failures >= kMaxLeaseFailures) {
        FailShapeLocked(
            shape,
            absl::StrCat("could not lease a worker for ", DescribeShape(shape.resources),
                         " from the node manager at ", node_address, ": ", status.error_message()),
            &failed);
      }
      // Tick() asks again.
    } else {
      shape.lease_failures = 0;
      if (!reply.has_granted()) {
        RequestLeasesLocked(key, shape, &out);
      }
    }
    DispatchLocked(shape, &out);
  }
  Deliver(out);
  for (auto& task : failed) {
    ValuePtr error = MakeErrorValue(
        proto::ErrorInfo::SYSTEM,
        status.ok()
            ? absl::StrCat("task ", task->spec.function(),
                           " could not be scheduled: ", reply.unschedulable())
            : absl::StrCat(
                  "task ", task->spec.function(), " could not be scheduled: no worker could be ",
                  "leased from the node manager at ", node_address, ": ", status.error_message()));
    Finish(std::move(task), error);
  }
}

void TaskSubmitter::ConnectWorker(const std::string& key, const std::string& node_address,
                                  const proto::WorkerLease& lease) {
  net::Connection::AsyncConnect(
      io_, lease.worker_address(), absl::Seconds(10), options_.connection,
      [this, key, node_address, lease](absl::StatusOr<std::shared_ptr<net::Connection>> conn) {
        if (!conn.ok()) {
          LUMEN_LOG(WARNING) << "leased worker unreachable: " << conn.status();
          ReturnLease(node_address, lease.lease_id(), /*disconnect=*/true);
          conn = nullptr;
        }
        AddWorker(key, node_address, lease, conn.ok() ? *conn : nullptr);
      });
}

void TaskSubmitter::AddWorker(const std::string& key, const std::string& node_address,
                              const proto::WorkerLease& lease,
                              const std::shared_ptr<net::Connection>& conn) {
  std::shared_ptr<LeasedWorker> worker;
  if (conn != nullptr) {
    worker = std::make_shared<LeasedWorker>();
    worker->lease_id = lease.lease_id();
    worker->worker_address = lease.worker_address();
    worker->node_address = node_address;
    worker->node_id = lease.node_id();
    worker->key = key;
    worker->conn = conn;
    worker->idle_since = absl::Now();
    std::weak_ptr<LeasedWorker> weak = worker;
    conn->Start({
        .on_frame =
            [this, weak](net::Connection&, proto::Frame& frame) {
              auto w = weak.lock();
              if (w && frame.has_reply()) OnTaskReply(w, *frame.mutable_reply());
            },
        .on_batch_end = [](net::Connection& c) { c.Flush(); },
        .on_close =
            [this, weak](net::Connection&, const std::string& reason) {
              if (auto w = weak.lock()) OnWorkerClosed(w, reason);
            },
    });
    conn->Send(net::MakeHello(options_.token, ""), /*flush=*/false);
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    --outstanding_lease_rpcs_;
    ShapeQueue& shape = shapes_[key];
    --shape.pending_leases;
    if (shape.spread && node_address != options_.local_node_address) {
      shape.spread->OnRoutedDone();
    }
    if (worker != nullptr && shutdown_) {
      worker->conn->Close("shutting down");
    } else if (worker != nullptr) {
      shape.lease_failures = 0;
      shape.workers.push_back(worker);
      if (shape.spread) shape.spread->WorkerAdded(worker->node_id);
      out.flush.push_back(worker->conn);  // the hello, at least
    } else {
      shape.retry_after = absl::Now() + absl::Milliseconds(100);
    }
    DispatchLocked(shape, &out);
  }
  Deliver(out);
}

void TaskSubmitter::OnNodeDeath(const std::string& node_id, const std::string& reason) {
  std::vector<std::shared_ptr<net::Connection>> doomed;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, shape] : shapes_) {
      for (auto& worker : shape.workers) {
        if (worker->node_id == node_id) doomed.push_back(worker->conn);
      }
    }
  }
  for (auto& conn : doomed) conn->Close(reason);
}

void TaskSubmitter::OnTaskReply(const std::shared_ptr<LeasedWorker>& worker,
                                proto::TaskReply& reply) {
  std::unique_ptr<PendingTask> task;
  Outbox out;
  bool retry = false;
  bool retired = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = worker->in_flight.find(reply.seq());
    if (it == worker->in_flight.end()) return;
    task = std::move(it->second);
    worker->in_flight.erase(it);
    worker->in_flight_bytes -= std::min(worker->in_flight_bytes, task->bytes);
    const absl::Time now = absl::Now();
    ShapeQueue& shape = shapes_[worker->key];
    // The task ran from when it was pushed or when the worker finished the one before it.
    const double service =
        absl::ToDoubleMicroseconds(now - std::max(task->pushed_at, worker->last_reply));
    auto [average, first] = shape.service_us.try_emplace(task->spec.function(), service);
    if (!first) average->second = 0.8 * average->second + 0.2 * service;
    worker->last_reply = now;
    if (worker->in_flight.empty()) worker->idle_since = now;
    if (reply.result().has_error() &&
        reply.result().error().kind() == proto::ErrorInfo::TASK_ERROR && task->retry_exceptions &&
        task->retries_left > 0) {
      --task->retries_left;
      task->spec.set_attempt(task->spec.attempt() + 1);
      RecordRetrying(options_.events, task->spec, reply.result().error().message());
      shape.queue.push_back(std::move(task));
      retry = true;
    }
    DispatchLocked(shape, &out);
    // SPREAD while some feasible node holds no lease of the shape: a worker left idle with
    // nothing queued goes back at once, so that the next task asks the head again and lands on
    // another node (tasks submitted one at a time would otherwise all reuse this one).
    if (shape.spread && shape.queue.empty() && worker->in_flight.empty() && !worker->dead &&
        shape.spread->held_nodes() < shape.spread->feasible_nodes()) {
      RetireLocked(shape, *worker);
      auto& list = shape.workers;
      list.erase(std::remove(list.begin(), list.end(), worker), list.end());
      retired = true;
    }
  }
  Deliver(out);
  if (retired) GiveBack(worker);
  if (retry) return;
  auto value = std::make_shared<proto::Value>();
  value->Swap(reply.mutable_result());
  Finish(std::move(task), std::move(value));
}

void TaskSubmitter::OnWorkerClosed(const std::shared_ptr<LeasedWorker>& worker,
                                   const std::string& reason) {
  std::vector<std::unique_ptr<PendingTask>> failed;
  Outbox out;
  bool was_dead = false;
  {
    absl::MutexLock lock(&mu_);
    was_dead = worker->dead;
    worker->dead = true;
    ShapeQueue& shape = shapes_[worker->key];
    auto& list = shape.workers;
    const auto gone = std::remove(list.begin(), list.end(), worker);
    if (shape.spread && gone != list.end()) shape.spread->WorkerGone(worker->node_id);
    list.erase(gone, list.end());
    for (auto& [seq, task] : worker->in_flight) {
      if (task->retries_left > 0 && !shutdown_) {
        --task->retries_left;
        task->spec.set_attempt(task->spec.attempt() + 1);
        RecordRetrying(options_.events, task->spec, "its worker died: " + reason);
        LUMEN_LOG(INFO) << "worker " << worker->worker_address << " died (" << reason
                        << "); retrying task " << task->spec.function() << ", "
                        << task->retries_left << " retries left";
        shape.queue.push_front(std::move(task));
      } else {
        failed.push_back(std::move(task));
      }
    }
    worker->in_flight.clear();
    worker->in_flight_bytes = 0;
    DispatchLocked(shape, &out);
    RequestLeasesLocked(worker->key, shape, &out);
  }
  Deliver(out);
  if (!was_dead) ReturnLease(worker->node_address, worker->lease_id, /*disconnect=*/true);
  for (auto& task : failed) {
    const int attempts = task->spec.attempt() + 1;
    ValuePtr error =
        MakeErrorValue(proto::ErrorInfo::WORKER_CRASHED,
                       absl::StrCat("the worker process running task ", task->spec.function(), " (",
                                    worker->worker_address, ") died: ", reason, "; the task ran ",
                                    attempts, attempts == 1 ? " time" : " times",
                                    " and has no retries left (raise them with SetMaxRetries)"));
    Finish(std::move(task), error);
  }
}

void TaskSubmitter::ReturnLease(const std::string& node_address, uint64_t lease_id,
                                bool disconnect) {
  struct Call {
    grpc::ClientContext context;
    proto::ReturnLeaseRequest request;
    proto::ReturnLeaseReply reply;
  };
  auto call = std::make_shared<Call>();
  PrepareContext(&call->context, options_.token, absl::Seconds(10));
  call->request.set_lease_id(lease_id);
  call->request.set_disconnect_worker(disconnect);
  stubs_(node_address)
      ->async()
      ->ReturnWorkerLease(&call->context, &call->request, &call->reply,
                          [call](const grpc::Status&) {});
}

void TaskSubmitter::Finish(std::unique_ptr<PendingTask> task, ValuePtr value) {
  auto on_done = std::move(task->on_done);
  if (on_done) on_done(*task, std::move(value));
}

void TaskSubmitter::FailShapeLocked(ShapeQueue& shape, const std::string& message,
                                    std::vector<std::unique_ptr<PendingTask>>* failed) {
  LUMEN_LOG(WARNING) << message;
  while (!shape.queue.empty()) {
    failed->push_back(std::move(shape.queue.front()));
    shape.queue.pop_front();
  }
}

void TaskSubmitter::Tick() {
  std::vector<std::shared_ptr<LeasedWorker>> to_return;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    for (auto& [key, shape] : shapes_) {
      if (shape.queue.empty()) {
        auto& list = shape.workers;
        for (auto it = list.begin(); it != list.end();) {
          LeasedWorker& w = **it;
          if (w.in_flight.empty() && now - w.idle_since > options_.lease_idle_timeout) {
            RetireLocked(shape, w);
            to_return.push_back(*it);
            it = list.erase(it);
          } else {
            ++it;
          }
        }
      }
      RequestLeasesLocked(key, shape, &out);
    }
  }
  Deliver(out);
  for (auto& worker : to_return) GiveBack(worker);
}

void TaskSubmitter::RetireLocked(ShapeQueue& shape, LeasedWorker& worker) {
  worker.dead = true;
  if (shape.spread) shape.spread->WorkerGone(worker.node_id);
}

void TaskSubmitter::GiveBack(const std::shared_ptr<LeasedWorker>& worker) {
  ReturnLease(worker->node_address, worker->lease_id, /*disconnect=*/false);
  worker->conn->Close("lease returned");
}

void TaskSubmitter::Shutdown() {
  std::vector<std::shared_ptr<LeasedWorker>> workers;
  std::vector<std::unique_ptr<PendingTask>> failed;
  limiter_.Cancel();
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [key, shape] : shapes_) {
      for (auto& w : shape.workers) {
        w->dead = true;
        workers.push_back(w);
        for (auto& [seq, task] : w->in_flight) failed.push_back(std::move(task));
        w->in_flight.clear();
      }
      shape.workers.clear();
      while (!shape.queue.empty()) {
        failed.push_back(std::move(shape.queue.front()));
        shape.queue.pop_front();
      }
    }
  }
  {
    absl::MutexLock lock(&contexts_mu_);
    for (grpc::ClientContext* context : lease_contexts_) context->TryCancel();
  }
  for (auto& worker : workers) {
    grpc::ClientContext context;
    PrepareContext(&context, options_.token, absl::Seconds(2));
    proto::ReturnLeaseRequest request;
    request.set_lease_id(worker->lease_id);
    proto::ReturnLeaseReply reply;
    stubs_(worker->node_address)->ReturnWorkerLease(&context, request, &reply);
    worker->conn->Close("shutting down");
  }
  for (auto& task : failed) {
    Finish(std::move(task),
           MakeErrorValue(proto::ErrorInfo::SYSTEM, "lumen::Shutdown() was called"));
  }
  // Lease RPCs still in flight complete on gRPC threads; wait for them so that their
  // callbacks never touch a destroyed submitter.
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int* n) { return *n == 0; }, &outstanding_lease_rpcs_),
                       absl::Seconds(5));
}

}  // namespace lumen::internal
