#include "runtime/core_worker.h"

#include <cxxabi.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <deque>
#include <exception>
#include <typeinfo>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/rpc.h"
#include "lumen/errors.h"
#include "lumen/internal/serialization.h"
#include "runtime/internal/function_registry.h"
#include "runtime/internal/remote_objects.h"

namespace lumen::internal {
namespace {

constexpr absl::Duration kNodeRpcTimeout = absl::Seconds(30);
constexpr absl::Duration kStoreCreateTimeout = absl::Seconds(10);
constexpr absl::Duration kRemotePullTimeout = absl::Minutes(5);
// How long a Get keeps trying an object whose node stopped answering a pull: long enough for the
// head to declare that node dead (the owner then rebuilds the object or marks it lost).
constexpr absl::Duration kUnreachableSourceWait = absl::Seconds(30);

// A pull failed because the node that holds the object stopped answering (it died, or the
// network failed): a system failure, never the task's own.
class SourceUnreachable : public Error {
 public:
  using Error::Error;
};

std::string Demangle(const char* name) {
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string result = (status == 0 && out != nullptr) ? out : name;
  std::free(out);
  return result;
}

class InlineBuffer : public Buffer {
 public:
  explicit InlineBuffer(ValuePtr value) : value_(std::move(value)) {}
  const char* data() const override { return value_->data().data(); }
  size_t size() const override { return value_->data().size(); }

 private:
  ValuePtr value_;
};

// The functions' view of their arguments; `keeper` lets values point into store objects.
std::vector<ArgView> ArgViews(const std::vector<std::shared_ptr<Buffer>>& buffers) {
  std::vector<ArgView> views;
  views.reserve(buffers.size());
  for (const auto& buffer : buffers) {
    views.push_back(ArgView{buffer->data(), buffer->size(), KeeperOf(buffer)});
  }
  return views;
}

// Turns an error value into the public exception a user catches.
[[noreturn]] void ThrowError(const proto::ErrorInfo& error) {
  switch (error.kind()) {
    case proto::ErrorInfo::TASK_ERROR:
      throw TaskError(error.type(), error.message(), error.function(), error.node());
    case proto::ErrorInfo::WORKER_CRASHED:
      throw WorkerCrashedError(error.message());
    case proto::ErrorInfo::OBJECT_LOST:
      throw ObjectLostError(error.message());
    case proto::ErrorInfo::OWNER_DIED:
      throw OwnerDiedError(error.message());
    case proto::ErrorInfo::STORE_FULL:
      throw ObjectStoreFullError(error.message());
    case proto::ErrorInfo::ACTOR_DIED:
      throw ActorDiedError(error.message());
    case proto::ErrorInfo::ACTOR_UNAVAILABLE:
      throw ActorUnavailableError(error.message());
    default:
      throw Error(error.message());
  }
}

// The handoffs of the refs inside a task's arguments, named apart from those of its result.
std::string ArgsToken(const std::string& token) { return token + "a"; }

std::unique_ptr<CoreWorker>& CurrentSlot() {
  static auto* slot = new std::unique_ptr<CoreWorker>();
  return *slot;
}

}  // namespace

CoreWorker* CurrentCoreWorker() { return CurrentSlot().get(); }
void SetCurrentCoreWorker(std::unique_ptr<CoreWorker> worker) { CurrentSlot() = std::move(worker); }
std::unique_ptr<CoreWorker> TakeCurrentCoreWorker() { return std::move(CurrentSlot()); }

CoreWorker::CoreWorker(CoreWorkerConfig config) : config_(std::move(config)) {}

absl::StatusOr<std::unique_ptr<CoreWorker>> CoreWorker::Start(const CoreWorkerConfig& config) {
  std::unique_ptr<CoreWorker> worker(new CoreWorker(config));
  if (auto status = worker->Connect(); !status.ok()) {
    worker->Shutdown();
    return status;
  }
  return worker;
}

absl::Status CoreWorker::Connect() {
  std::string host;
  int port = 0;
  if (auto status = net::ParseHostPort(config_.node_address, &host, &port); !status.ok()) {
    return status;
  }
  connection_options_ = net::ConnectionOptions::FromEnvironment();
  if (config_.is_worker) {
    // A worker's own threads take turns at the I/O and at its tasks (see TaskReceiver).
    io_ = std::make_unique<net::IoPool>(0, "lumen-io");
    receiver_ = std::make_unique<TaskReceiver>(
        [this](const proto::TaskSpec& spec, proto::Value* result) {
          ready_.WaitForNotification();
          RunTask(spec, result);
        },
        /*executors=*/1, /*max_queued_bytes=*/size_t{64} << 20, io_.get());
  } else {
    io_ = std::make_unique<net::IoPool>(net::IoPool::ConfiguredThreads(1), "lumen-io");
  }
  auto listener =
      net::Listener::Start(*io_, host, 0, config_.token, connection_options_,
                           [this](const std::shared_ptr<net::Connection>& conn,
                                  const proto::Hello& hello) { return OnAccept(conn, hello); });
  if (!listener.ok()) return listener.status();
  listener_ = std::move(*listener);
  self_address_ = absl::StrCat(host, ":", listener_->port());
  objects_ = std::make_unique<ObjectTable>(
      self_address_,
      [this](const std::string& id, const ValuePtr& value) {
        lineage_.Forget(id);
        if (value != nullptr && value->has_stored()) QueueRelease(id, value->stored());
      },
      [this](const std::string& owner, const std::string& id, bool add) {
        QueueBorrowUpdate(owner, id, add);
      },
      [this](const std::string& owner, const std::string& id, const std::string& token, bool give,
             const std::string& taker) {
        QueueBorrowUpdate(owner, id, false, give ? 1 : -1, token, taker);
      });
  proto::RegisterClientRequest request;
  request.set_kind(config_.is_worker ? proto::CLIENT_WORKER : proto::CLIENT_DRIVER);
  request.set_pid(getpid());
  request.set_executable(config_.executable);
  std::string worker_id;
  Unhex(config_.worker_id, &worker_id);
  request.set_worker_id(worker_id);
  request.set_wire_port(listener_->port());
  proto::RegisterClientReply reply;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, absl::Seconds(10));
  auto status = NodeStub(config_.node_address)->RegisterClient(&context, request, &reply);
  if (!status.ok()) {
    return FromGrpc(
        status, absl::StrCat("cannot register with the node manager at ", config_.node_address));
  }
  client_id_ = reply.client_id();
  job_id_ = reply.job_id();
  node_id_ = reply.node_id();
  session_dir_ = reply.session_dir();
  head_address_ = reply.head_address();
  actor_spec_ = reply.actor_spec();
  node_link_ = net::Link::Open(
      *io_, absl::StrCat(host, ":", reply.wire_port()),
      net::MakeHello(config_.token, self_address_, client_id_), connection_options_,
      {.on_frame =
           [this](net::Connection&, proto::Frame& frame) {
             if (frame.has_node_death()) OnNodeDeath(frame.node_death());
           },
       .on_close =
           [this](const std::string& reason) {
             absl::MutexLock lock(&state_mu_);
             if (!shutdown_) {
               LUMEN_LOG(WARNING) << "lost the link to the node manager: " << reason;
             }
           }});
  head_ = proto::HeadService::NewStub(MakeChannel(head_address_));
  task_events_ = MakeTaskEventRecorder(worker_id);
  ActorSubmitter::Options actor_options;
  actor_options.token = config_.token;
  actor_options.connection = connection_options_;
  actor_options.events = task_events_.get();
  actor_options.on_dead = [this](const std::string& actor_id) { ReleaseActorArgs(actor_id); };
  actor_submitter_ = std::make_unique<ActorSubmitter>(actor_options, *io_, head_.get());
  auto region = objectstore::ShmRegion::Open(reply.shm_name());
  if (!region.ok()) return region.status();
  region_ = std::move(*region);
  pins_ = std::make_unique<PinClient>(
      MakeNodePinTransport(NodeStub(config_.node_address), config_.token, client_id_), region_);

  TaskSubmitter::Options options;
  options.local_node_address = config_.node_address;
  options.local_node_id = node_id_;
  options.client_id = client_id_;
  options.token = config_.token;
  options.connection = connection_options_;
  options.events = task_events_.get();
  submitter_ = std::make_unique<TaskSubmitter>(
      options, *io_, [this](const std::string& address) { return NodeStub(address); });
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
  return absl::OkStatus();
}

CoreWorker::~CoreWorker() { Shutdown(); }

void CoreWorker::Shutdown() {
  {
    absl::MutexLock lock(&state_mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  if (!ready_.HasBeenNotified()) ready_.Notify();
  if (actor_submitter_) actor_submitter_->Shutdown();
  if (submitter_) submitter_->Shutdown();
  if (task_events_) task_events_->Stop();
  if (maintenance_.joinable()) maintenance_.join();
  if (objects_) {
    FlushBorrowUpdates();
    FlushReleases();
  }
  if (listener_) listener_->Stop();
  std::vector<std::shared_ptr<net::Connection>> conns;
  std::vector<std::shared_ptr<net::Link>> links;
  {
    absl::MutexLock lock(&conns_mu_);
    for (auto& conn : accepted_) conns.push_back(conn);
    for (auto& [owner, link] : owners_) links.push_back(link);
    accepted_.clear();
    owners_.clear();
  }
  // Borrow updates and releases queued above are written before the links close.
  for (auto& link : links) link->Close("shutting down");
  for (auto& conn : conns) conn->Close("shutting down");
  if (node_link_) node_link_->Close("shutting down");
  if (client_id_ != 0) {
    grpc::ClientContext context;
    PrepareContext(&context, config_.token, absl::Seconds(2));
    proto::DisconnectClientRequest request;
    request.set_client_id(client_id_);
    proto::DisconnectClientReply reply;
    NodeStub(config_.node_address)->DisconnectClient(&context, request, &reply);
  }
  if (receiver_) receiver_->Stop();  // a worker's threads drive io_: they stop it
  if (io_) io_->Stop();
}

proto::NodeService::Stub* CoreWorker::NodeStub(const std::string& address) {
  absl::MutexLock lock(&stubs_mu_);
  auto& stub = stubs_[address];
  if (stub == nullptr) stub = proto::NodeService::NewStub(MakeChannel(address));
  return stub.get();
}

void CoreWorker::MaintenanceLoop() {
  while (true) {
    {
      absl::MutexLock lock(&state_mu_);
      if (state_mu_.AwaitWithTimeout(absl::Condition(&shutdown_), absl::Milliseconds(10))) return;
    }
    submitter_->Tick();
    FlushBorrowUpdates();
    FlushReleases();
  }
}

// ---- Objects -------------------------------------------------------------------------

absl::StatusOr<proto::StoreLocation> CoreWorker::WriteToStore(const std::string& id,
                                                              const ValueWriter& writer,
                                                              uint64_t owner_client_id) {
  proto::CreateObjectRequest request;
  request.set_object_id(id);
  request.set_size(writer.size);
  request.set_owner_client_id(owner_client_id);
  request.set_creator_client_id(client_id_);
  proto::CreateObjectReply reply;
  {
    grpc::ClientContext context;
    PrepareContext(&context, config_.token, kStoreCreateTimeout + absl::Seconds(5));
    auto status = NodeStub(config_.node_address)->CreateObject(&context, request, &reply);
    if (!status.ok()) return FromGrpc(status, "cannot create the object in the store");
  }
  if (reply.offset() + writer.size > region_->size()) {
    return absl::InternalError("the store returned an offset outside its region");
  }
  proto::StoreLocation location;
  location.set_node_id(node_id_);
  location.set_offset(reply.offset());
  location.set_size(writer.size);
  location.set_object_id(id);
  location.set_data_address(reply.data_address());
  if (reply.already_sealed()) return location;  // an earlier attempt of this task made it
  region_->Prefault(reply.offset(), writer.size);
  writer.write(reinterpret_cast<char*>(region_->data() + reply.offset()));
  proto::SealObjectRequest seal;
  seal.set_object_id(id);
  proto::SealObjectReply sealed;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, kNodeRpcTimeout);
  auto status = NodeStub(config_.node_address)->SealObject(&context, seal, &sealed);
  if (!status.ok()) return FromGrpc(status, "cannot seal the object in the store");
  return location;
}

RefParts CoreWorker::Put(const ValueWriter& writer) {
  const std::string id = NewObjectId();
  auto value = std::make_shared<proto::Value>();
  RefCapture capture;  // the refs inside the value, held while it lives
  if (writer.size <= kInlineObjectLimit) {
    std::string* data = value->mutable_data();
    data->resize(writer.size);
    writer.write(data->data());
  } else {
    auto location = WriteToStore(id, writer, client_id_);
    if (!location.ok()) {
      if (location.status().code() == absl::StatusCode::kResourceExhausted ||
          location.status().code() == absl::StatusCode::kInvalidArgument) {
        throw ObjectStoreFullError(std::string(location.status().message()));
      }
      throw Error(absl::StrCat("lumen::Put: ", location.status().message()));
    }
    *value->mutable_stored() = std::move(*location);
  }
  for (RefParts& ref : capture.Take()) {
    proto::RefInfo* info = value->add_contained();
    info->set_object_id(std::move(ref.object_id));
    info->set_owner_address(std::move(ref.owner_address));
  }
  objects_->AddOwnedReady(id, std::move(value));
  return RefParts{id, self_address_};
}

void CoreWorker::QueueRelease(const std::string& id, const proto::StoreLocation& location) {
  absl::MutexLock lock(&conns_mu_);
  // A copy on another node is released there (through this node's manager), not here.
  releases_.emplace_back(id, location.node_id() == node_id_ ? "" : location.data_address());
}

void CoreWorker::FlushReleases() {
  if (pins_ != nullptr) pins_->FlushUnpins();
  proto::Frame frame;
  {
    absl::MutexLock lock(&conns_mu_);
    if (releases_.empty()) return;
    for (auto& [id, holder] : releases_) {
      frame.mutable_release()->add_object_ids(std::move(id));
      frame.mutable_release()->add_holders(std::move(holder));
    }
    releases_.clear();
  }
  if (node_link_ == nullptr || !node_link_->Send(frame)) {
    LUMEN_LOG(WARNING) << "cannot release " << frame.release().object_ids_size()
                       << " objects: the link to the node manager is closed";
  }
}

void CoreWorker::PullOrThrow(const std::vector<const proto::StoreLocation*>& remote,
                             absl::Time deadline) {
  const absl::Duration timeout =
      std::clamp(deadline - absl::Now(), absl::Milliseconds(1), kRemotePullTimeout);
  auto pulled = PullToLocalNode(NodeStub(config_.node_address), config_.token, remote, timeout);
  if (pulled.ok()) return;
  const std::string message(pulled.message());
  if (absl::IsAborted(pulled) && config_.is_worker) {
    // This worker's node manager is gone: end as its death would end us, so that the task's
    // owner retries it on a live node instead of receiving this as the task's own failure.
    LUMEN_LOG(WARNING) << message << "; exiting";
    std::_Exit(0);
  }
  if (absl::IsNotFound(pulled)) throw ObjectLostError(message);
  if (absl::IsResourceExhausted(pulled)) throw ObjectStoreFullError(message);
  if (absl::IsUnavailable(pulled) || absl::IsDeadlineExceeded(pulled)) {
    throw SourceUnreachable(message);
  }
  throw Error(message);
}

std::vector<std::shared_ptr<Buffer>> CoreWorker::MakeBuffers(const std::vector<ValuePtr>& values,
                                                             absl::Time deadline) {
  std::vector<const proto::StoreLocation*> stored;
  std::vector<const proto::StoreLocation*> remote;
  for (const ValuePtr& value : values) {
    if (value->has_error()) ThrowError(value->error());
    if (!value->has_stored()) continue;
    const proto::StoreLocation& location = value->stored();
    if (location.node_id() != node_id_) remote.push_back(&location);
    stored.push_back(&location);
  }
  std::vector<std::shared_ptr<Buffer>> pinned;
  if (!stored.empty()) {
    // Objects of other nodes are copied here first, then pinned here like local ones.
    PullOrThrow(remote, deadline);
    auto result = pins_->Pin(stored);
    if (!remote.empty() && absl::IsNotFound(result.status())) {
      // A pulled copy was evicted before it was pinned: once more.
      PullOrThrow(remote, deadline);
      result = pins_->Pin(stored);
    }
    if (!result.ok()) {
      if (absl::IsNotFound(result.status())) {
        throw ObjectLostError(
            absl::StrCat("cannot read the object: ", result.status().message(),
                         ". Keep an ObjectRef to an object for as long as you may read it"));
      }
      throw Error(
          absl::StrCat("cannot read the object from the store: ", result.status().message()));
    }
    pinned = *std::move(result);
  }
  std::vector<std::shared_ptr<Buffer>> buffers;
  buffers.reserve(values.size());
  size_t next = 0;
  for (const ValuePtr& value : values) {
    if (value->has_stored()) {
      buffers.push_back(std::move(pinned[next++]));
    } else {
      buffers.push_back(std::make_shared<InlineBuffer>(value));
    }
  }
  return buffers;
}

void CoreWorker::SetBlocked(bool blocked) {
  if (!config_.is_worker) return;
  // A task about to block hands over the I/O role it may have left vacant (TaskReceiver).
  if (blocked && receiver_ != nullptr) receiver_->YieldIo();
  {
    absl::MutexLock lock(&state_mu_);
    blocked_depth_ += blocked ? 1 : -1;
    // Only the outermost Get/Wait of a task lends or takes back the CPU.
    if (blocked ? blocked_depth_ != 1 : blocked_depth_ != 0) return;
  }
  proto::Frame frame;
  frame.mutable_blocked()->set_blocked(blocked);
  if (node_link_ != nullptr) node_link_->Send(frame);
}

void CoreWorker::AdmitCall(net::InFlightLimiter& limiter, size_t bytes) {
  if (!limiter.Acquire(
          bytes, [this] { SetBlocked(true); }, [this] { SetBlocked(false); })) {
    throw Error("lumen: Shutdown() was called while this call waited to be sent");
  }
}

std::vector<std::shared_ptr<Buffer>> CoreWorker::Get(const std::vector<const RefParts*>& refs,
                                                     int64_t timeout_ms) {
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + kUnreachableSourceWait;
  // The caller's timeout bounds the retries below too.
  const absl::Time deadline =
      timeout_ms < 0 ? absl::InfiniteFuture() : start + absl::Milliseconds(timeout_ms);
  while (true) {
    const int64_t remaining_ms =
        timeout_ms < 0 ? timeout_ms
                       : std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    std::vector<ValuePtr> values = WaitValues(refs, static_cast<int>(refs.size()), remaining_ms);
    size_t missing = 0;
    for (const auto& value : values) missing += value == nullptr ? 1 : 0;
    if (missing > 0) {
      throw GetTimeoutError(absl::StrCat(
          "lumen::Get timed out after ", timeout_ms, " ms: ", missing, " of ", refs.size(),
          " objects are not ready (`lumen status` shows tasks that wait for resources)"));
    }
    try {
      return MakeBuffers(values, deadline);
    } catch (const SourceUnreachable& e) {
      // Once the head declares the node dead, the owner rebuilds the object or marks it lost,
      // and the values read again say so; a node that answers again serves the pull.
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        throw GetTimeoutError(
            absl::StrCat("lumen::Get timed out after ", timeout_ms, " ms: ", e.what()));
      }
      if (now >= give_up) throw ObjectLostError(e.what());
      absl::SleepFor(std::min(absl::Milliseconds(200), deadline - now));
    }
  }
}

std::vector<bool> CoreWorker::Wait(const std::vector<const RefParts*>& refs, int num_returns,
                                   int64_t timeout_ms) {
  std::vector<ValuePtr> values = WaitValues(refs, num_returns, timeout_ms);
  std::vector<bool> ready(refs.size(), false);
  int count = 0;
  for (size_t i = 0; i < refs.size() && count < num_returns; ++i) {
    if (values[i] != nullptr) {
      ready[i] = true;
      ++count;
    }
  }
  return ready;
}

std::vector<ValuePtr> CoreWorker::WaitValues(const std::vector<const RefParts*>& refs,
                                             int num_returns, int64_t timeout_ms) {
  if (num_returns < 0 || static_cast<size_t>(num_returns) > refs.size()) {
    throw Error(absl::StrCat("lumen::Wait: num_returns is ", num_returns, " but only ", refs.size(),
                             " refs were given"));
  }
  // Fast path: enough of the refs, in order, are ready already; nothing to subscribe to.
  {
    std::vector<ValuePtr> values(refs.size());
    int ready = 0;
    for (size_t i = 0; i < refs.size() && ready < num_returns; ++i) {
      values[i] = objects_->Peek(refs[i]->object_id);
      if (values[i] != nullptr) ++ready;
    }
    if (ready >= num_returns) return values;
  }
  // Shared with the callbacks, which may run after a timed-out call returned.
  struct Waiter {
    absl::Mutex mu;
    int ready = 0;
    std::vector<ValuePtr> values;
  };
  auto waiter = std::make_shared<Waiter>();
  waiter->values.resize(refs.size());
  // Callbacks still registered when this call returns are dropped, so that a loop of waits
  // that time out leaves nothing behind.
  std::vector<uint64_t> subscriptions(refs.size(), 0);
  struct Unsubscriber {
    ObjectTable& objects;
    const std::vector<const RefParts*>& refs;
    const std::vector<uint64_t>& subscriptions;
    ~Unsubscriber() {
      for (size_t i = 0; i < refs.size(); ++i) {
        if (subscriptions[i] != 0) objects.Unsubscribe(refs[i]->object_id, subscriptions[i]);
      }
    }
  } unsubscriber{*objects_, refs, subscriptions};
  for (size_t i = 0; i < refs.size(); ++i) {
    if (refs[i]->object_id.empty()) throw Error("lumen::Get/Wait: an ObjectRef is empty");
    bool fetch = false;
    ValuePtr value = objects_->GetOrSubscribe(
        refs[i]->object_id, refs[i]->owner_address,
        [waiter, i](const ValuePtr& v) {
          absl::MutexLock lock(&waiter->mu);
          waiter->values[i] = v;
          ++waiter->ready;
        },
        &fetch, &subscriptions[i]);
    if (fetch) FetchFromOwner(refs[i]->owner_address, refs[i]->object_id);
    if (value != nullptr) {
      absl::MutexLock lock(&waiter->mu);
      waiter->values[i] = std::move(value);
      ++waiter->ready;
    }
  }
  auto enough = [&waiter, num_returns] { return waiter->ready >= num_returns; };
  waiter->mu.Lock();
  if (!enough()) {
    waiter->mu.Unlock();
    SetBlocked(true);
    waiter->mu.Lock();
    if (timeout_ms < 0) {
      waiter->mu.Await(absl::Condition(&enough));
    } else {
      waiter->mu.AwaitWithTimeout(absl::Condition(&enough), absl::Milliseconds(timeout_ms));
    }
    waiter->mu.Unlock();
    SetBlocked(false);
    waiter->mu.Lock();
  }
  std::vector<ValuePtr> values = waiter->values;
  waiter->mu.Unlock();
  return values;
}

// ---- Tasks ---------------------------------------------------------------------------

std::unique_ptr<PendingTask> CoreWorker::MakeTask(const std::string& function,
                                                  std::vector<TaskArgument> args,
                                                  std::vector<RefParts>* deps) {
  auto task = std::make_unique<PendingTask>();
  const std::string return_id = NewObjectId();
  proto::TaskSpec& spec = task->spec;
  spec.set_function(function);
  spec.set_return_id(return_id);
  spec.set_owner_client_id(client_id_);
  spec.set_owner_address(self_address_);
  spec.set_job_id(job_id_);
  for (auto& arg : args) {
    proto::TaskArg* out = spec.add_args();
    if (!arg.is_ref && arg.bytes.size() > kInlineObjectLimit) {
      // Large values travel through the store like Ray's automatic put of big arguments.
      std::string bytes = std::move(arg.bytes);
      ValueWriter writer{bytes.size(),
                         [&bytes](char* dst) { CopyBytes(dst, bytes.data(), bytes.size()); }};
      RefParts parts = Put(writer);
      arg.is_ref = true;
      arg.object_id = parts.object_id;
      arg.owner_address = parts.owner_address;
    }
    if (arg.is_ref) {
      out->mutable_ref()->set_object_id(arg.object_id);
      out->mutable_ref()->set_owner_address(arg.owner_address);
      objects_->AddLocalRef(arg.object_id, arg.owner_address);
      deps->push_back(RefParts{arg.object_id, arg.owner_address});
    } else {
      out->mutable_value()->set_data(std::move(arg.bytes));
    }
  }
  // Refs inside the arguments' bytes are held like the arguments, until the worker, which
  // registers as their borrower before it replies, has answered.
  std::vector<RefParts> held = *deps;
  for (const auto& arg : args) {
    for (const RefParts& ref : arg.contained) {
      objects_->AddLocalRef(ref.object_id, ref.owner_address);
      held.push_back(ref);
      proto::RefInfo* info = spec.add_arg_refs();
      info->set_object_id(ref.object_id);
      info->set_owner_address(ref.owner_address);
    }
  }
  objects_->AddOwnedPending(return_id);
  // The refs held for the arguments (including a Put made above) go once the result is in;
  // first the worker's borrows of the refs inside them are taken over (see HandOverRefs).
  task->on_done = [this, held = std::move(held)](PendingTask& done, const ValuePtr& value) {
    if (task_events_ && value) task_events_->Finished(done.spec, *value);
    if (value != nullptr && !value->handoff_token().empty()) {
      for (const proto::RefInfo& ref : done.spec.arg_refs()) {
        objects_->Handoff(ref.object_id(), ref.owner_address(), ArgsToken(value->handoff_token()),
                          /*give=*/true, value->executor_address());
      }
    }
    objects_->SetValue(done.spec.return_id(), value);
    for (const auto& dep : held) objects_->RemoveLocalRef(dep.object_id);
  };
  return task;
}

RefParts CoreWorker::SubmitTask(const std::string& function, std::vector<TaskArgument> args,
                                const TaskOptions& options) {
  std::map<std::string, double> resources = options.resources;
  if (resources.empty()) resources["CPU"] = 1;
  for (auto it = resources.begin(); it != resources.end();) {
    if (it->second < 0) throw Error("lumen::Task: resource amounts must not be negative");
    it = it->second == 0 ? resources.erase(it) : std::next(it);
  }
  size_t bytes = 0;
  for (const auto& arg : args) bytes += arg.bytes.size();
  AdmitCall(submitter_->limiter(), bytes);
  std::vector<RefParts> deps;
  std::unique_ptr<PendingTask> task = MakeTask(function, std::move(args), &deps);
  task->bytes = bytes;
  task->on_done = [inner = std::move(task->on_done), this, bytes](PendingTask& done,
                                                                  const ValuePtr& value) {
    RecordLineage(done, value);
    inner(done, value);
    submitter_->limiter().Release(bytes);
  };
  task->resources = std::move(resources);
  task->retries_left = std::max(0, options.max_retries);
  task->retry_exceptions = options.retry_exceptions;
  task->strategy = ToProtoStrategy(options.strategy);
  if (task_events_) task_events_->Submitted(&task->spec);
  RefParts result{task->spec.return_id(), self_address_};
  ResolveAndSubmit(std::move(task), deps, [this](std::unique_ptr<PendingTask> ready) {
    submitter_->Submit(std::move(ready));
  });
  if (receiver_ != nullptr) receiver_->YieldIo();
  return result;
}

// ---- Actors ----------------------------------------------------------------------------

proto::HeadService::Stub* CoreWorker::Head() { return head_.get(); }

std::string CoreWorker::CreateActor(const std::string& factory, std::vector<TaskArgument> args,
                                    const ActorOptions& options) {
  proto::CreateActorRequest request;
  proto::ActorSpec* spec = request.mutable_spec();
  std::string actor_id = NewObjectId();
  spec->set_actor_id(actor_id);
  spec->set_factory(factory);
  spec->set_name(options.name);
  spec->set_ns(options.ns);
  spec->set_detached(options.detached);
  spec->set_max_restarts(options.max_restarts);
  spec->set_max_task_retries(options.max_task_retries);
  spec->set_max_concurrency(std::max(1, options.max_concurrency));
  spec->set_executable(SelfExecutable());
  spec->set_owner_client_id(client_id_);
  spec->set_owner_node_address(config_.node_address);
  spec->set_owner_job(job_id_);
  *spec->mutable_strategy() = ToProtoStrategy(options.strategy);
  for (const auto& [name, amount] : options.resources) {
    if (amount < 0) throw Error("lumen::Actor: resource amounts must not be negative");
    if (amount > 0) (*spec->mutable_resources())[name] = amount;
  }
  // Large values go to the store first, so that the spec stays small whatever the arguments.
  std::vector<RefParts> ref_args;
  std::vector<RefParts> holds;
  for (auto& arg : args) {
    if (!arg.is_ref && arg.bytes.size() > kInlineObjectLimit) {
      std::string bytes = std::move(arg.bytes);
      RefParts parts = Put(ValueWriter{
          bytes.size(), [&bytes](char* dst) { CopyBytes(dst, bytes.data(), bytes.size()); }});
      arg.is_ref = true;
      arg.object_id = parts.object_id;
      arg.owner_address = parts.owner_address;
    }
    if (arg.is_ref) ref_args.push_back(RefParts{arg.object_id, arg.owner_address});
    holds.insert(holds.end(), arg.contained.begin(), arg.contained.end());
  }
  holds.insert(holds.end(), ref_args.begin(), ref_args.end());
  // The arguments (and the refs inside them) stay pinned for the actor's whole life, restarts
  // included: every incarnation reads them again.
  for (const RefParts& ref : holds) objects_->AddLocalRef(ref.object_id, ref.owner_address);
  {
    absl::MutexLock lock(&state_mu_);
    actor_arg_holds_[actor_id] = std::move(holds);
  }
  try {
    // The factory's arguments are resolved now: the actor may start on any node, at any time.
    std::vector<const RefParts*> refs;
    refs.reserve(ref_args.size());
    for (const auto& ref : ref_args) refs.push_back(&ref);
    std::vector<ValuePtr> values = WaitValues(refs, static_cast<int>(refs.size()), -1);
    size_t next_ref = 0;
    for (auto& arg : args) {
      proto::TaskArg* out = spec->add_args();
      if (arg.is_ref) {
        const ValuePtr& value = values[next_ref++];
        if (value->has_error()) ThrowError(value->error());
        *out->mutable_value() = *value;
      } else {
        out->mutable_value()->set_data(std::move(arg.bytes));
      }
    }
    proto::CreateActorReply reply;
    grpc::ClientContext context;
    PrepareContext(&context, config_.token, absl::Seconds(30));
    auto status = Head()->CreateActor(&context, request, &reply);
    if (!status.ok()) throw Error("lumen::Actor: " + status.error_message());
  } catch (...) {
    ReleaseActorArgs(actor_id);
    throw;
  }
  return actor_id;
}

void CoreWorker::ReleaseActorArgs(const std::string& actor_id) {
  std::vector<RefParts> holds;
  {
    absl::MutexLock lock(&state_mu_);
    auto it = actor_arg_holds_.find(actor_id);
    if (it == actor_arg_holds_.end()) return;
    holds = std::move(it->second);
    actor_arg_holds_.erase(it);
  }
  for (const RefParts& ref : holds) objects_->RemoveLocalRef(ref.object_id);
}

RefParts CoreWorker::SubmitActorTask(const std::string& actor_id, const std::string& method,
                                     std::vector<TaskArgument> args) {
  if (actor_id.empty()) throw Error("lumen: this ActorHandle is empty");
  size_t bytes = 0;
  for (const auto& arg : args) bytes += arg.bytes.size();
  std::shared_ptr<net::InFlightLimiter> limiter = actor_submitter_->Limiter(actor_id);
  AdmitCall(*limiter, bytes);
  std::vector<RefParts> deps;
  std::unique_ptr<PendingTask> task = MakeTask(method, std::move(args), &deps);
  task->bytes = bytes;
  task->on_done = [inner = std::move(task->on_done), limiter, bytes](PendingTask& done,
                                                                     const ValuePtr& value) {
    inner(done, value);
    limiter->Release(bytes);
  };
  task->spec.set_actor_id(actor_id);
  if (task_events_) task_events_->Submitted(&task->spec);
  RefParts result{task->spec.return_id(), self_address_};
  // The call's place in this caller's order is taken now, and given up if it fails early.
  const uint64_t ticket = actor_submitter_->Reserve(actor_id);
  ResolveAndSubmit(
      std::move(task), deps,
      [this, actor_id, ticket](std::unique_ptr<PendingTask> ready) {
        actor_submitter_->Fill(actor_id, ticket, std::move(ready));
      },
      [this, actor_id, ticket] { actor_submitter_->Skip(actor_id, ticket); });
  if (receiver_ != nullptr) receiver_->YieldIo();
  return result;
}

std::string CoreWorker::FindNamedActor(const std::string& name, const std::string& ns) {
  proto::GetActorInfoRequest request;
  request.set_name(name);
  request.set_ns(ns);
  proto::ActorInfo info;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, absl::Seconds(15));
  auto status = Head()->GetActorInfo(&context, request, &info);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return "";
  if (!status.ok()) throw Error("lumen::GetActor: " + status.error_message());
  return info.state() == proto::ActorInfo::DEAD ? "" : info.actor_id();
}

void CoreWorker::KillActor(const std::string& actor_id, bool no_restart) {
  proto::KillActorRequest request;
  request.set_actor_id(actor_id);
  request.set_no_restart(no_restart);
  proto::KillActorReply reply;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, absl::Seconds(15));
  auto status = Head()->KillActor(&context, request, &reply);
  if (!status.ok()) throw Error("lumen::Kill: " + status.error_message());
  if (no_restart) ReleaseActorArgs(actor_id);
}

std::map<std::string, double> CoreWorker::ClusterResources() {
  proto::ClusterStatus status;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, absl::Seconds(10));
  auto rpc = Head()->GetClusterStatus(&context, proto::GetClusterStatusRequest(), &status);
  if (!rpc.ok()) throw Error("lumen::ClusterResources: " + rpc.error_message());
  std::map<std::string, double> total;
  for (const auto& node : status.nodes()) {
    if (!node.alive()) continue;
    for (const auto& [name, amount] : node.total()) total[name] += amount;
  }
  return total;
}

int CoreWorker::ActorRestarts(const std::string& actor_id) {
  proto::GetActorInfoRequest request;
  request.set_actor_id(actor_id);
  proto::ActorInfo info;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, absl::Seconds(15));
  auto status = Head()->GetActorInfo(&context, request, &info);
  if (!status.ok()) throw Error("lumen::NumRestarts: " + status.error_message());
  return info.num_restarts();
}

bool CoreWorker::CreateActorInstance() {
  const proto::ActorSpec& spec = actor_spec_;
  std::string error;
  const RegisteredFactory* factory = nullptr;
  if ((factory = FindFactory(spec.factory())) == nullptr) {
    error = absl::StrCat("factory '", spec.factory(),
                         "' is not registered in this executable (LUMEN_REMOTE missing?)");
  } else if (static_cast<size_t>(spec.args_size()) != factory->num_args) {
    error = absl::StrCat("factory '", spec.factory(), "' takes ", factory->num_args,
                         " arguments, not ", spec.args_size());
  } else {
    job_id_ = spec.owner_job();
    try {
      std::vector<ValuePtr> values;
      for (const proto::TaskArg& arg : spec.args()) {
        values.push_back(std::make_shared<proto::Value>(arg.value()));
      }
      actor_instance_ = factory->invoker(ArgViews(MakeBuffers(values)));
      if (actor_instance_ == nullptr) error = "the factory returned a null pointer";
    } catch (const std::exception& e) {
      error = absl::StrCat(Demangle(typeid(e).name()), ": ", e.what());
    } catch (...) {
      error = "a non-standard exception";
    }
  }
  // Calls run one at a time in arrival order unless the actor asked for concurrency.
  if (error.empty() && spec.max_concurrency() > 1) receiver_->SetExecutors(spec.max_concurrency());
  proto::ActorCreatedRequest request;
  request.set_client_id(client_id_);
  request.set_error(error);
  proto::ActorCreatedReply reply;
  grpc::ClientContext context;
  PrepareContext(&context, config_.token, absl::Seconds(10));
  NodeStub(config_.node_address)->ActorCreated(&context, request, &reply);
  if (!error.empty()) LUMEN_LOG(ERROR) << "actor creation failed: " << error;
  return error.empty();
}

void CoreWorker::ResolveAndSubmit(std::unique_ptr<PendingTask> task,
                                  const std::vector<RefParts>& deps, SubmitFn submit,
                                  AbandonFn abandon) {
  if (deps.empty()) {
    submit(std::move(task));
    return;
  }
  struct Resolution {
    absl::Mutex mu;
    size_t remaining;
    std::unique_ptr<PendingTask> task;
  };
  auto resolution = std::make_shared<Resolution>();
  resolution->remaining = deps.size() + 1;
  resolution->task = std::move(task);
  auto finish_one = [this, resolution, submit = std::move(submit), abandon = std::move(abandon)] {
    std::unique_ptr<PendingTask> ready;
    {
      absl::MutexLock lock(&resolution->mu);
      if (--resolution->remaining > 0) return;
      ready = std::move(resolution->task);
    }
    // Fill in the resolved values; a failed dependency fails the task with its error.
    for (proto::TaskArg& arg : *ready->spec.mutable_args()) {
      if (!arg.has_ref()) continue;
      ValuePtr value = objects_->Peek(arg.ref().object_id());
      if (value == nullptr) {
        value = MakeErrorValue(proto::ErrorInfo::OBJECT_LOST, "an argument's value disappeared");
      }
      if (value->has_error()) {
        auto on_done = std::move(ready->on_done);
        on_done(*ready, value);
        if (abandon) abandon();
        return;
      }
      *arg.mutable_value() = *value;
    }
    submit(std::move(ready));
  };
  for (const auto& dep : deps) {
    bool fetch = false;
    ValuePtr value = objects_->GetOrSubscribe(
        dep.object_id, dep.owner_address, [finish_one](const ValuePtr&) { finish_one(); }, &fetch);
    if (fetch) FetchFromOwner(dep.owner_address, dep.object_id);
    if (value != nullptr) finish_one();
  }
  finish_one();
}

// ---- Wire server: pushed tasks and borrowers ------------------------------------------

net::Connection::Handlers CoreWorker::OnAccept(const std::shared_ptr<net::Connection>& conn,
                                               const proto::Hello& hello) {
  {
    absl::MutexLock lock(&conns_mu_);
    accepted_.insert(conn);
    if (peer_connections_[hello.address()]++ == 0) objects_->PeerConnected(hello.address());
  }
  std::weak_ptr<net::Connection> weak = conn;
  return {
      .on_frame = [this, borrower = hello.address()](
                      net::Connection& c,
                      proto::Frame& frame) { OnServerFrame(c, frame, borrower); },
      .on_batch_end = nullptr,
      .on_close =
          [this, weak, peer = hello.address()](net::Connection&, const std::string&) {
            bool peer_gone = false;
            {
              absl::MutexLock lock(&conns_mu_);
              if (auto c = weak.lock()) accepted_.erase(c);
              auto it = peer_connections_.find(peer);
              if (it != peer_connections_.end() && --it->second == 0) {
                peer_connections_.erase(it);
                peer_gone = true;
              }
            }
            // A borrower keeps its link to us while it lives: once its last connection is
            // gone, it died, and so did its borrows.
            if (peer_gone) objects_->RemoveBorrowerEverywhere(peer);
          },
  };
}

void CoreWorker::OnServerFrame(net::Connection& conn, proto::Frame& frame,
                               const std::string& borrower) {
  if (frame.has_task()) {
    if (receiver_ == nullptr) {
      LUMEN_LOG(WARNING) << "closing connection from " << conn.peer()
                         << ": it pushed a task to a driver";
      conn.Close("a driver runs no tasks");
      return;
    }
    receiver_->Enqueue(conn.shared_from_this(), std::move(*frame.mutable_task()),
                       conn.current_frame_bytes());
  } else if (frame.has_get_object()) {
    AnswerGetObject(conn, frame.get_object().object_id());
  } else if (frame.has_borrow()) {
    const proto::BorrowUpdate& update = frame.borrow();
    for (int i = 0; i < update.ids_size() && i < update.adds_size(); ++i) {
      if (i < update.handoffs_size() && i < update.handoff_tokens_size() &&
          update.handoffs(i) != 0) {
        objects_->ApplyHandoff(
            update.ids(i), update.handoff_tokens(i), update.handoffs(i) > 0,
            i < update.handoff_takers_size() ? update.handoff_takers(i) : std::string());
      } else if (update.adds(i)) {
        objects_->AddBorrower(update.ids(i), borrower);
      } else {
        objects_->RemoveBorrower(update.ids(i), borrower);
      }
    }
  }
}

void CoreWorker::AnswerGetObject(net::Connection& conn, const std::string& object_id) {
  auto reply_with = [object_id, conn = conn.shared_from_this()](const ValuePtr& value) {
    proto::Frame frame;
    frame.mutable_object()->set_object_id(object_id);
    *frame.mutable_object()->mutable_value() = *value;
    conn->Send(frame);
  };
  bool fetch = false;
  ValuePtr value = objects_->GetOrSubscribe(object_id, self_address_, reply_with, &fetch);
  if (value != nullptr) reply_with(value);
}

void CoreWorker::OnNodeDeath(const proto::NodeDeath& death) {
  const std::string reason =
      absl::StrCat("the head declared node ", death.node_id(), " dead (", death.reason(), ")");
  LUMEN_LOG(INFO) << reason;
  submitter_->OnNodeDeath(death.node_id(), reason);
  actor_submitter_->OnNodeDeath(death.node_id(), reason);
  RebuildLostObjects(death.node_id(), reason);
}

void CoreWorker::RecordLineage(const PendingTask& task, const ValuePtr& value) {
  if (value == nullptr || !value->has_stored() || task.retries_left <= 0) return;
  lineage_.Record(task.spec.return_id(), Lineage::Recipe{task.spec, task.resources,
                                                         task.retries_left, task.retry_exceptions});
}

void CoreWorker::RebuildLostObjects(const std::string& node_id, const std::string& reason) {
  for (const std::string& id : objects_->OwnedStoredOn(node_id)) {
    std::optional<Lineage::Recipe> recipe = lineage_.Take(id);
    if (recipe.has_value()) {
      LUMEN_LOG(INFO) << "object " << ShortHex(id) << " was lost with node " << node_id
                      << "; running " << recipe->spec.function() << " again to rebuild it";
      objects_->ResetValue(id, nullptr);
      Resubmit(*std::move(recipe));
      continue;
    }
    objects_->ResetValue(
        id, MakeErrorValue(
                proto::ErrorInfo::OBJECT_LOST,
                absl::StrCat("object ", ShortHex(id), " was lost with node ", node_id, " (", reason,
                             ") and cannot be rebuilt: it was put with lumen::Put, or "
                             "the task that made it has no retries left")));
  }
}

void CoreWorker::Resubmit(Lineage::Recipe recipe) {
  auto task = std::make_unique<PendingTask>();
  task->spec = std::move(recipe.spec);
  task->spec.set_attempt(task->spec.attempt() + 1);
  task->resources = std::move(recipe.resources);
  task->retries_left = recipe.retries_left - 1;
  task->retry_exceptions = recipe.retry_exceptions;
  task->on_done = [this](PendingTask& done, const ValuePtr& value) {
    RecordLineage(done, value);
    objects_->SetValue(done.spec.return_id(), value);
  };
  submitter_->Submit(std::move(task));
}

void CoreWorker::RunTask(const proto::TaskSpec& spec, proto::Value* result) {
  if (task_events_) task_events_->Running(spec);
  // A task worker runs for its submitter's job; an actor keeps its owner's.
  if (spec.actor_id().empty() && spec.job_id() != 0) job_id_ = spec.job_id();
  // Names this execution's handoffs (refs the result hands to the caller, refs inside the
  // arguments the caller hands here); made only when there are some.
  std::string token;
  auto handoff_token = [&token]() -> const std::string& {
    if (token.empty()) token = NewObjectId();
    return token;
  };
  auto fail = [&](proto::ErrorInfo::Kind kind, const std::string& type,
                  const std::string& message) {
    result->Clear();
    proto::ErrorInfo* error = result->mutable_error();
    error->set_kind(kind);
    error->set_type(type);
    error->set_message(message);
    error->set_function(spec.function());
    error->set_node(node_id_);
  };
  // The callable: a registered function, or a method of this worker's actor.
  std::function<ValueWriter(const std::vector<ArgView>&)> call;
  size_t num_args = 0;
  if (spec.actor_id().empty()) {
    const RegisteredFunction* function = FindFunction(spec.function());
    if (function != nullptr) {
      call = function->invoker;
      num_args = function->num_args;
    }
  } else if (actor_instance_ == nullptr) {
    fail(proto::ErrorInfo::SYSTEM, "lumen::Error", "this worker does not host an actor");
    return;
  } else if (const RegisteredMethod* method = FindMethod(spec.function())) {
    call = [method, instance = actor_instance_.get()](const std::vector<ArgView>& args) {
      return method->invoker(instance, args);
    };
    num_args = method->num_args;
  }
  if (!call) {
    fail(proto::ErrorInfo::TASK_ERROR, "lumen::Error",
         absl::StrCat("'", spec.function(),
                      "' is not registered in this worker's executable (LUMEN_REMOTE missing?)"));
    return;
  }
  if (static_cast<size_t>(spec.args_size()) != num_args) {
    fail(proto::ErrorInfo::TASK_ERROR, "lumen::Error",
         absl::StrCat("'", spec.function(), "' takes ", num_args, " arguments but the call has ",
                      spec.args_size()));
    return;
  }
  try {
    std::vector<ValuePtr> values;
    for (const proto::TaskArg& arg : spec.args()) {
      values.push_back(std::make_shared<proto::Value>(arg.value()));
    }
    std::vector<std::shared_ptr<Buffer>> arg_buffers;
    try {
      arg_buffers = MakeBuffers(values);
    } catch (const SourceUnreachable& e) {
      if (actor_instance_ != nullptr) throw ObjectLostError(e.what());
      // An argument's node stopped answering: end as a crash would, so that the owner retries
      // the task (or reports WorkerCrashedError) instead of taking this as the task's failure.
      LUMEN_LOG(WARNING) << e.what() << "; exiting";
      std::_Exit(0);
    }
    ValueWriter writer = call(ArgViews(arg_buffers));
    RefCapture capture;  // the refs the result holds, handed over to the caller below
    if (writer.size <= kInlineObjectLimit) {
      std::string* data = result->mutable_data();
      data->resize(writer.size);
      writer.write(data->data());
    } else {
      auto location = WriteToStore(spec.return_id(), writer, spec.owner_client_id());
      if (location.ok()) {
        *result->mutable_stored() = std::move(*location);
        // Fault injection for tests: the first attempt dies after storing, before its reply.
        static const std::string exit_after_store = [] {
          const char* env = std::getenv("LUMEN_TESTING_EXIT_AFTER_STORE");
          return std::string(env != nullptr ? env : "");
        }();
        if (spec.attempt() == 0 && spec.function() == exit_after_store) std::_Exit(70);
      } else if (absl::IsUnavailable(location.status())) {
        // This worker's node manager is gone (its node is going down): end as a crash would,
        // so that the owner retries the task instead of taking this as the task's failure.
        LUMEN_LOG(WARNING) << location.status() << "; exiting";
        std::_Exit(0);
      } else {
        fail(proto::ErrorInfo::STORE_FULL, "lumen::ObjectStoreFullError",
             std::string(location.status().message()));
      }
    }
    std::vector<RefParts> returned = capture.Take();
    if (!result->has_error() && !returned.empty()) {
      HandOverRefs(std::move(returned), handoff_token(), spec.owner_address(), result);
    }
  } catch (const std::exception& e) {
    fail(proto::ErrorInfo::TASK_ERROR, Demangle(typeid(e).name()), e.what());
  } catch (...) {
    std::type_info* type = abi::__cxa_current_exception_type();
    fail(proto::ErrorInfo::TASK_ERROR, type != nullptr ? Demangle(type->name()) : "unknown",
         "a non-standard exception was thrown");
  }
  // The caller holds the refs inside the arguments until this reply; it then gives a handoff
  // of each, taken here after this worker's own borrow updates (its stream keeps their order).
  for (const proto::RefInfo& ref : spec.arg_refs()) {
    objects_->Handoff(ref.object_id(), ref.owner_address(), ArgsToken(handoff_token()),
                      /*give=*/false);
  }
  if (!token.empty()) {
    result->set_handoff_token(token);
    result->set_executor_address(self_address_);
    // A handoff given here must not wait for the next maintenance round: its taker may
    // die meanwhile.
    FlushBorrowUpdates();
  }
}

void CoreWorker::HandOverRefs(std::vector<RefParts> refs, const std::string& token,
                              const std::string& caller, proto::Value* result) {
  for (RefParts& ref : refs) {
    objects_->Handoff(ref.object_id, ref.owner_address, token, /*give=*/true, caller);
    proto::RefInfo* info = result->add_contained();
    info->set_object_id(std::move(ref.object_id));
    info->set_owner_address(std::move(ref.owner_address));
  }
}

// ---- Borrower side ---------------------------------------------------------------------

std::shared_ptr<net::Link> CoreWorker::OwnerLink(const std::string& owner) {
  absl::MutexLock lock(&conns_mu_);
  auto& link = owners_[owner];
  if (link != nullptr && !link->closed()) return link;
  link = net::Link::Open(*io_, owner, net::MakeHello(config_.token, self_address_),
                         connection_options_,
                         {.on_frame =
                              [this](net::Connection&, proto::Frame& frame) {
                                if (!frame.has_object()) return;
                                auto value = std::make_shared<proto::Value>();
                                value->Swap(frame.mutable_object()->mutable_value());
                                objects_->SetValue(frame.object().object_id(), std::move(value));
                              },
                          .on_close =
                              [this, owner](const std::string& reason) {
                                objects_->FailBorrowedFrom(owner, "connection lost: " + reason);
                              }},
                         absl::Seconds(5));
  return link;
}

void CoreWorker::FetchFromOwner(const std::string& owner, const std::string& object_id) {
  FlushBorrowUpdates();
  proto::Frame frame;
  frame.mutable_get_object()->set_object_id(object_id);
  OwnerLink(owner)->Send(frame);
}

void CoreWorker::QueueBorrowUpdate(const std::string& owner, const std::string& id, bool add,
                                   int handoff, const std::string& token,
                                   const std::string& taker) {
  absl::MutexLock lock(&conns_mu_);
  proto::BorrowUpdate& update = borrow_updates_[owner];
  update.add_ids(id);
  update.add_adds(add);
  update.add_handoffs(handoff);
  update.add_handoff_tokens(token);
  update.add_handoff_takers(taker);
}

void CoreWorker::FlushBorrowUpdates() {
  // One flush at a time: updates taken by a later flush must not overtake earlier ones (an
  // owner seeing a borrower's remove before its add would free the object too early).
  absl::MutexLock flush_lock(&flush_mu_);
  std::map<std::string, proto::BorrowUpdate> updates;
  {
    absl::MutexLock lock(&conns_mu_);
    updates.swap(borrow_updates_);
  }
  for (auto& [owner, update] : updates) {
    proto::Frame frame;
    frame.mutable_borrow()->Swap(&update);
    OwnerLink(owner)->Send(frame);
  }
}

// ---- Task events ---------------------------------------------------------------------

std::unique_ptr<TaskEventRecorder> CoreWorker::MakeTaskEventRecorder(const std::string& worker_id) {
  TaskEventRecorder::Identity identity;
  identity.reporter_id = absl::StrCat(node_id_, ":", client_id_);
  identity.node_id = node_id_;
  identity.worker_id = worker_id;
  identity.pid = getpid();
  identity.address = self_address_;
  // objects_ is set later in Connect, which ends before MarkReady notifies ready_.
  auto counter = [this]() -> std::pair<int64_t, int64_t> {
    if (!ready_.HasBeenNotified() || objects_ == nullptr) return {0, 0};
    return {static_cast<int64_t>(objects_->NumOwned()),
            static_cast<int64_t>(objects_->NumBorrowed())};
  };
  return std::make_unique<TaskEventRecorder>(
      std::move(identity), TaskEventRecorder::SendToHead(head_address_, config_.token), counter);
}

[[noreturn]] void CoreWorker::ServeForever() {
  while (true) pause();
}

}  // namespace lumen::internal
