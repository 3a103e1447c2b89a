// The runtime inside every driver and worker process: owns this process's objects, submits
// tasks through leases, executes pushed tasks (workers), answers borrowers' questions about
// owned objects, and reads and writes the node's shared-memory store.
//
// Thread-safe. Threads, a fixed set whatever the number of connections or actors: the I/O
// threads of io_ (every fast-path socket: pushed tasks, replies, borrowers, the node manager
// link), the task receiver's executor threads in workers (user code runs only there and on the
// user's own threads), gRPC's callback threads, and one maintenance thread.
// Shutdown order: submitters (return leases), maintenance thread, listener and connections,
// node manager registration, then the I/O threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "lumen/internal/runtime_api.h"
#include "net/io_pool.h"
#include "net/link.h"
#include "net/listener.h"
#include "objectstore/shm_region.h"
#include "proto/control.grpc.pb.h"
#include "runtime/internal/actor_submitter.h"
#include "runtime/internal/lineage.h"
#include "runtime/internal/object_table.h"
#include "runtime/internal/pin_client.h"
#include "runtime/internal/task_events.h"
#include "runtime/internal/task_receiver.h"
#include "runtime/internal/task_submitter.h"

namespace lumen::internal {

// Values at most this large travel inline; larger ones go to the shared-memory store.
inline constexpr size_t kInlineObjectLimit = size_t{100} * 1024;

struct CoreWorkerConfig {
  bool is_worker = false;
  std::string node_address;  // this machine's node manager, host:port
  std::string token;
  std::string worker_id;   // workers: id given by the node manager (hex)
  std::string executable;  // drivers: path of this program
};

class CoreWorker {
 public:
  static absl::StatusOr<std::unique_ptr<CoreWorker>> Start(const CoreWorkerConfig& config);
  ~CoreWorker();
  CoreWorker(const CoreWorker&) = delete;
  CoreWorker& operator=(const CoreWorker&) = delete;

  // The public API's entry points (see lumen/internal/runtime_api.h).
  RefParts SubmitTask(const std::string& function, std::vector<TaskArgument> args,
                      const TaskOptions& options);
  RefParts Put(const ValueWriter& writer);
  std::string CreateActor(const std::string& factory, std::vector<TaskArgument> args,
                          const ActorOptions& options);
  RefParts SubmitActorTask(const std::string& actor_id, const std::string& method,
                           std::vector<TaskArgument> args);
  std::string FindNamedActor(const std::string& name, const std::string& ns);
  void KillActor(const std::string& actor_id, bool no_restart);
  std::map<std::string, double> ClusterResources();
  int ActorRestarts(const std::string& actor_id);
  // Actor workers: the node manager gave this worker an actor to host when it registered.
  bool hosts_actor() const { return !actor_spec_.actor_id().empty(); }
  // Actor workers: runs the factory of that actor's spec and reports to the node manager.
  // False if it threw (then the process should exit).
  bool CreateActorInstance();
  std::vector<std::shared_ptr<Buffer>> Get(const std::vector<const RefParts*>& refs,
                                           int64_t timeout_ms);
  std::vector<bool> Wait(const std::vector<const RefParts*>& refs, int num_returns,
                         int64_t timeout_ms);
  // Values of `refs` once num_returns are ready or the timeout passed; null where not ready.
  std::vector<ValuePtr> WaitValues(const std::vector<const RefParts*>& refs, int num_returns,
                                   int64_t timeout_ms);
  ObjectTable& objects() { return *objects_; }

  // Lets pushed tasks run. Called once this worker is the process's current runtime (tasks can
  // arrive as soon as the node manager knows us).
  void MarkReady() { ready_.Notify(); }
  // Workers: serves pushed tasks until the process is killed.
  [[noreturn]] void ServeForever();
  void Shutdown();

  const std::string& address() const { return self_address_; }
  const std::string& head_address() const { return head_address_; }
  const std::string& token() const { return config_.token; }
  const std::string& node_id() const { return node_id_; }
  const std::string& session_dir() const { return session_dir_; }
  uint64_t client_id() const { return client_id_; }
  // The job this process works for; 0 until known.
  uint64_t job_id() const { return job_id_.load(); }

 private:
  explicit CoreWorker(CoreWorkerConfig config);
  absl::Status Connect();

  // ---- server side: pushed tasks, borrowers' requests (on I/O threads)
  net::Connection::Handlers OnAccept(const std::shared_ptr<net::Connection>& conn,
                                     const proto::Hello& hello);
  void OnServerFrame(net::Connection& conn, proto::Frame& frame, const std::string& borrower);
  void AnswerGetObject(net::Connection& conn, const std::string& object_id);
  // The head declared a node dead (pushed by the node manager).
  void OnNodeDeath(const proto::NodeDeath& death);
  // Owned objects stored on the dead node: re-runs their tasks where retries allow, else
  // their values become OBJECT_LOST errors naming the node and the reason.
  void RebuildLostObjects(const std::string& node_id, const std::string& reason);
  // Submits a task again to rebuild its lost result.
  void Resubmit(Lineage::Recipe recipe);
  // Remembers how a finished task's stored result can be made again.
  void RecordLineage(const PendingTask& task, const ValuePtr& value);

  // ---- borrower side: links to other owners
  std::shared_ptr<net::Link> OwnerLink(const std::string& owner);
  void FetchFromOwner(const std::string& owner, const std::string& object_id);
  // `handoff` +1 / -1: gives / takes the handoff `token` (see ObjectTable::Handoff) instead of
  // an add or remove.
  void QueueBorrowUpdate(const std::string& owner, const std::string& id, bool add, int handoff = 0,
                         const std::string& token = "", const std::string& taker = "");
  void FlushBorrowUpdates();

  // ---- store
  absl::StatusOr<proto::StoreLocation> WriteToStore(const std::string& id, const ValueWriter& w,
                                                    uint64_t owner_client_id);
  // The owner let go of `id`: its store copy at `location` goes (on whichever node holds it).
  void QueueRelease(const std::string& id, const proto::StoreLocation& location);
  // Sends the queued releases and unpins.
  void FlushReleases();
  // Buffers over the values, in order: inline bytes, or store objects pinned for as long as their
  // buffer lives (one round trip for all of them). Throws the value's error, or ObjectLostError.
  // Copies from other nodes give up at `deadline` (a Get's timeout) with SourceUnreachable.
  std::vector<std::shared_ptr<Buffer>> MakeBuffers(const std::vector<ValuePtr>& values,
                                                   absl::Time deadline = absl::InfiniteFuture());
  // Copies objects held by other nodes into this node's store, by `deadline` at the latest.
  // Throws ObjectLostError, ObjectStoreFullError or Error when that fails.
  void PullOrThrow(const std::vector<const proto::StoreLocation*>& remote, absl::Time deadline);

  // ---- tasks
  using SubmitFn = std::function<void(std::unique_ptr<PendingTask>)>;
  using AbandonFn = std::function<void()>;
  // Builds the spec of a call: arguments (large values put in the store first), owner, and
  // the dependencies whose values must be resolved before it is sent.
  std::unique_ptr<PendingTask> MakeTask(const std::string& function, std::vector<TaskArgument> args,
                                        std::vector<RefParts>* deps);
  // Waits for the dependencies, fills their values in and calls `submit`; when one failed,
  // finishes the task with its error and calls `abandon` instead.
  void ResolveAndSubmit(std::unique_ptr<PendingTask> task, const std::vector<RefParts>& deps,
                        SubmitFn submit, AbandonFn abandon = nullptr);
  // Computes a pushed task's result (runs the function or the actor method). On an executor.
  void RunTask(const proto::TaskSpec& spec, proto::Value* result);
  // Lists `refs` (serialized into a task's result) in the result and gives their handoffs to
  // the caller.
  void HandOverRefs(std::vector<RefParts> refs, const std::string& token, const std::string& caller,
                    proto::Value* result);
  // Remote()'s backpressure: waits, lending the CPU back, while `limiter` is at its bound.
  void AdmitCall(net::InFlightLimiter& limiter, size_t bytes);
  proto::HeadService::Stub* Head();
  // Drops the refs held for an actor's creation arguments (the actor is dead for good).
  void ReleaseActorArgs(const std::string& actor_id);
  std::unique_ptr<TaskEventRecorder> MakeTaskEventRecorder(const std::string& worker_id);
  void SetBlocked(bool blocked);
  proto::NodeService::Stub* NodeStub(const std::string& address);
  void MaintenanceLoop();

  // Set at construction / Connect, then read-only. io_ first: it outlives every connection.
  const CoreWorkerConfig config_;
  std::unique_ptr<net::IoPool> io_;
  net::ConnectionOptions connection_options_;
  std::string self_address_;
  std::string node_id_;
  std::string session_dir_;
  uint64_t client_id_ = 0;
  // The job this process works for (see TaskSpec.job_id); 0 until known.
  std::atomic<uint64_t> job_id_{0};
  // Shared with the buffers read from it, which may outlive this runtime.
  std::shared_ptr<objectstore::ShmRegion> region_;
  std::unique_ptr<ObjectTable> objects_;
  Lineage lineage_;
  std::unique_ptr<TaskEventRecorder> task_events_;
  std::unique_ptr<TaskSubmitter> submitter_;
  std::unique_ptr<ActorSubmitter> actor_submitter_;
  std::string head_address_;
  std::unique_ptr<proto::HeadService::Stub> head_;
  // Actor workers: the spec received at registration, and the instance.
  proto::ActorSpec actor_spec_;
  std::shared_ptr<void> actor_instance_;
  std::unique_ptr<net::Listener> listener_;
  // Workers: runs pushed tasks on executor threads.
  std::unique_ptr<TaskReceiver> receiver_;
  // To this node's manager: blocked notices and releases out, node deaths in.
  std::shared_ptr<net::Link> node_link_;
  std::thread maintenance_;
  absl::Notification ready_;

  absl::Mutex stubs_mu_;
  std::map<std::string, std::unique_ptr<proto::NodeService::Stub>> stubs_
      ABSL_GUARDED_BY(stubs_mu_);
  // Set in Connect; uses a stub of stubs_, so it is declared (and destroyed) after them.
  std::unique_ptr<PinClient> pins_;

  // Taken before conns_mu_: orders borrow update flushes.
  absl::Mutex flush_mu_ ABSL_ACQUIRED_BEFORE(conns_mu_);
  absl::Mutex conns_mu_;
  absl::flat_hash_set<std::shared_ptr<net::Connection>> accepted_ ABSL_GUARDED_BY(conns_mu_);
  std::map<std::string, std::shared_ptr<net::Link>> owners_ ABSL_GUARDED_BY(conns_mu_);
  // Open accepted connections by the peer's address (a borrower's, for borrowers).
  std::map<std::string, int> peer_connections_ ABSL_GUARDED_BY(conns_mu_);
  std::map<std::string, proto::BorrowUpdate> borrow_updates_ ABSL_GUARDED_BY(conns_mu_);
  // (object id, data address of the node holding it; empty: this node).
  std::vector<std::pair<std::string, std::string>> releases_ ABSL_GUARDED_BY(conns_mu_);

  absl::Mutex state_mu_;
  bool shutdown_ ABSL_GUARDED_BY(state_mu_) = false;
  int blocked_depth_ ABSL_GUARDED_BY(state_mu_) = 0;
  // Refs held for the creation arguments of the actors this process created, by actor id.
  std::map<std::string, std::vector<RefParts>> actor_arg_holds_ ABSL_GUARDED_BY(state_mu_);
};

// The process's runtime handle; null before Init and after Shutdown.
CoreWorker* CurrentCoreWorker();
void SetCurrentCoreWorker(std::unique_ptr<CoreWorker> worker);
std::unique_ptr<CoreWorker> TakeCurrentCoreWorker();

}  // namespace lumen::internal
