// The node manager: this node's worker pool, its resources and the leases that hand workers
// to task submitters, the object store's control calls, and heartbeats to the head.
//
//   NodeManager nm(config, std::move(store));
//   builder.RegisterService(&nm);  ...  nm.Start();   ...   nm.Stop();
//
// Local clients (drivers and workers) also keep a fast-path connection to the node manager:
// they send blocked notices and object releases over it, the node manager pushes node deaths
// the head announces, and a driver whose connection closes has left.
//
// Thread-safe: gRPC handlers run on gRPC's threads (a lease request waits up to about a
// second for resources, then answers "pending" and the client asks again); client connections
// on the I/O threads of io_; a maintenance thread reaps workers, notices dead drivers and keeps
// the pool filled; a heartbeat thread reports to the head; a holder-check thread releases the
// leases whose holders are gone (lease_holders.h). Stop() kills every worker this node started.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/process.h"
#include "net/io_pool.h"
#include "net/listener.h"
#include "objectstore/object_data_plane.h"
#include "objectstore/object_store.h"
#include "proto/control.grpc.pb.h"
#include "scheduler/code_cache.h"
#include "scheduler/head_reporter.h"
#include "scheduler/head_watch.h"
#include "scheduler/lease_holders.h"

namespace lumen::scheduler {

struct NodeManagerConfig {
  std::string node_id;
  std::string ip;
  std::string address;       // this node manager's gRPC host:port
  std::string head_address;  // head's host:port (may be this process)
  std::string token;
  std::string session_dir;
  std::string executable;  // this process's executable: the pre-started workers run it
  std::string shm_name;
  std::map<std::string, double> resources;  // total, including CPU
  // A soft cap on task workers that run (actor workers and workers blocked in Get or Wait do
  // not count): beyond it, lease requests wait for a worker instead of starting one.
  int max_workers = 64;
  bool is_head = false;
  absl::Duration heartbeat_period = absl::Milliseconds(500);
  // A node (not the head) that cannot reach the head for this long stops its workers and
  // exits: nobody can tell it whether what it runs is still wanted.
  absl::Duration head_lost_timeout = absl::Seconds(60);
  // Starts a worker process (tests pass a fake); called without the node manager's mutex.
  std::function<absl::StatusOr<int>(const internal::SpawnOptions&)> spawn = internal::StartProcess;
};

class NodeManager final : public proto::NodeService::Service {
 public:
  NodeManager(NodeManagerConfig config, std::unique_ptr<objectstore::ObjectStore> store);
  ~NodeManager() override;

  // Registers with the head (fails if it cannot), pre-starts one worker per CPU, and starts
  // the maintenance, heartbeat and holder-check threads.
  absl::Status Start();
  void Stop();

  grpc::Status RegisterClient(grpc::ServerContext* context,
                              const proto::RegisterClientRequest* request,
                              proto::RegisterClientReply* reply) override;
  grpc::Status RequestWorkerLease(grpc::ServerContext* context, const proto::LeaseRequest* request,
                                  proto::LeaseReply* reply) override;
  grpc::Status ReturnWorkerLease(grpc::ServerContext* context,
                                 const proto::ReturnLeaseRequest* request,
                                 proto::ReturnLeaseReply* reply) override;
  grpc::Status CreateObject(grpc::ServerContext* context, const proto::CreateObjectRequest* request,
                            proto::CreateObjectReply* reply) override;
  grpc::Status SealObject(grpc::ServerContext* context, const proto::SealObjectRequest* request,
                          proto::SealObjectReply* reply) override;
  grpc::Status PinObjects(grpc::ServerContext* context, const proto::PinObjectsRequest* request,
                          proto::PinObjectsReply* reply) override;
  grpc::Status UnpinObjects(grpc::ServerContext* context, const proto::UnpinObjectsRequest* request,
                            proto::UnpinObjectsReply* reply) override;
  grpc::Status DisconnectClient(grpc::ServerContext* context,
                                const proto::DisconnectClientRequest* request,
                                proto::DisconnectClientReply* reply) override;
  grpc::Status StartActor(grpc::ServerContext* context, const proto::StartActorRequest* request,
                          proto::StartActorReply* reply) override;
  grpc::Status ActorCreated(grpc::ServerContext* context, const proto::ActorCreatedRequest* request,
                            proto::ActorCreatedReply* reply) override;
  grpc::Status KillActorWorker(grpc::ServerContext* context,
                               const proto::KillActorWorkerRequest* request,
                               proto::KillActorWorkerReply* reply) override;
  // Copies objects other nodes hold into this node's store (node_manager_objects.cc).
  grpc::Status PullObjects(grpc::ServerContext* context, const proto::PullObjectsRequest* request,
                           proto::PullObjectsReply* reply) override;
  // Placement-group bundles reserved on this node (node_manager_bundles.cc).
  grpc::Status ReserveBundles(grpc::ServerContext* context,
                              const proto::ReserveBundlesRequest* request,
                              proto::ReserveBundlesReply* reply) override;
  grpc::Status ReleaseBundles(grpc::ServerContext* context,
                              const proto::ReleaseBundlesRequest* request,
                              proto::ReleaseBundlesReply* reply) override;
  // Which of the given clients of this node manager are gone (node_manager_leases.cc).
  grpc::Status CheckLeaseHolders(grpc::ServerContext* context,
                                 const proto::LeaseHoldersRequest* request,
                                 proto::LeaseHoldersReply* reply) override;

  proto::NodeInfo Info();
  // This node's workers and drivers, for the dashboard.
  std::vector<proto::ProcessSummary> Processes();
  const objectstore::ObjectStore& store() const { return *store_; }
  // The executables of the jobs this node runs (served to other nodes by CodeService).
  CodeCache& code() { return *code_; }
  // Objects spilled to disk, the largest first (node_manager_objects.cc).
  std::vector<objectstore::ObjectSummary> SpilledObjects(size_t limit) const;

 private:
  enum class WorkerState { kStarting, kIdle, kLeased, kActor };
  struct Worker {
    std::string id;
    int pid = 0;
    std::string executable;
    uint64_t job = 0;  // 0: not yet bound to a job
    uint64_t client_id = 0;
    std::string address;
    WorkerState state = WorkerState::kStarting;
    uint64_t lease_id = 0;
    // Actor workers: the actor, what it holds, and whether its instance exists yet.
    std::string actor_id;
    uint64_t actor_incarnation = 0;
    proto::ActorSpec actor_spec;  // handed to the worker when it registers
    bool detached = false;
    google::protobuf::Map<std::string, double> actor_resources;
    bool actor_created = false;
    std::string actor_error;
    std::string kill_reason;  // why this node manager killed it, if it did
    bool owner_gone = false;  // killed because its owner's job ended: never restarted
    bool dying = false;       // signalled; never leased again while it is being reaped
  };
  struct Lease {
    uint64_t id = 0;
    std::string worker_id;
    google::protobuf::Map<std::string, double> resources;
    uint64_t holder = 0;
    bool cpu_lent = false;
  };
  struct Client {
    proto::ClientKind kind = proto::CLIENT_DRIVER;
    int pid = 0;
    std::string executable;
    uint64_t job = 0;
    std::string worker_id;
    std::shared_ptr<net::Connection> conn;  // its fast-path connection, once made
  };
  using ResourceMap = google::protobuf::Map<std::string, double>;
  struct Demand {
    google::protobuf::Map<std::string, double> resources;
    int count = 0;
    bool infeasible = false;
  };

  // Starts a worker process running `executable` for `job` (0: any job of that executable);
  // with `actor`, a dedicated worker that constructs that actor. Returns its id ("" on error).
  // Releases mu_ while the process is forked and exec'd: callers keep no references into the
  // state across the call. The worker is listed (starting, pid 0) before mu_ is released.
  std::string StartWorkerLocked(const std::string& executable, uint64_t job,
                                const proto::StartActorRequest* actor = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<proto::ProcessSummary> ProcessesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Worker* FindIdleWorkerLocked(const std::string& executable, uint64_t job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int CountWorkersLocked(const std::string& executable, uint64_t job, WorkerState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLeaseLocked(uint64_t lease_id, bool kill_worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWorkerExitLocked(int pid, int status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A driver left: its leases, workers and objects go.
  void CleanupJobLocked(uint64_t job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The head says a job whose driver ran elsewhere ended: its leases and task workers here go.
  void EndRemoteJobLocked(uint64_t job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KillWorkerLocked(Worker& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Demand& DemandLocked(const google::protobuf::Map<std::string, double>& shape)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ---- objects (node_manager_objects.cc)
  // Reserves room for an object, spilling others to disk if the store is full.
  absl::StatusOr<objectstore::ObjectLocation> CreateInStore(const proto::CreateObjectRequest& r);
  // Brings spilled objects among `ids` back into the store before they are pinned.
  void RestoreSpilled(const google::protobuf::RepeatedPtrField<std::string>& ids);
  // Asks the head's placement policy where `lease` should go (never here if exclude_self).
  proto::FindNodeReply FindOtherNode(const proto::LeaseRequest& lease, bool exclude_self);
  void MaintenanceLoop();
  void HeartbeatLoop();
  // ---- local clients' fast-path connections (on I/O threads)
  net::Connection::Handlers OnClientConnected(const std::shared_ptr<net::Connection>& conn,
                                              const proto::Hello& hello);
  void OnClientFrame(uint64_t client_id, proto::Frame& frame);
  void OnClientClosed(uint64_t client_id, const std::shared_ptr<net::Connection>& conn);
  // A worker blocked in Get lends its lease's CPU back, and takes it again when it resumes.
  void SetBlockedLocked(uint64_t client_id, bool blocked) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns bundle `index` of `group` to the free pool (node_manager_bundles.cc).
  void ReturnBundleLocked(const std::string& group, int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns every bundle: a fenced node's groups are placed again by the head.
  void DropBundlesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The head declared this node dead (fenced): what it ran was replaced elsewhere, so its
  // workers and actors end, and it registers again as a new node (under a new id).
  void Fence();
  // True (after asking the process to stop) when the head was out of reach for longer than
  // config_.head_lost_timeout. Never on the head's own node manager.
  bool HeadLost(const HeadWatch& watch);
  // Sends a report to the head until it is acknowledged (see HeadReporter).
  void ReportToHead(proto::ReportActorDeathRequest death);
  // Tells the head that a driver (its job) connected or left.
  void ReportDriverLocked(uint64_t job, const Client& driver, bool finished)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The code cache has hashed the executable of local driver `job`: its start is reported
  // again, with the hash.
  void OnDriverHashed(uint64_t job) ABSL_LOCKS_EXCLUDED(mu_);
  // The workers that count against config_.max_workers.
  int CountCappedWorkersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // At the cap, makes room for a worker of `executable` for `job`: kills one idle task worker
  // that cannot serve it (another program's, or bound to another job). False if there is none.
  bool EvictIdleWorkerLocked(const std::string& executable, uint64_t job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ---- leases whose holders are gone (node_manager_leases.cc)
  class HolderLookup;
  // Records who holds a lease just granted for `request`.
  void TrackLeaseHolderLocked(uint64_t lease_id, const proto::LeaseRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases the leases held by clients of nodes the head declared dead.
  void ReleaseLeasesOfDeadNodes(const google::protobuf::RepeatedPtrField<proto::NodeDeath>& deaths);
  // Every few seconds until Stop: releases the leases whose holders are gone, asking their node
  // managers, and ends idle task workers of jobs that ended.
  void HolderCheckLoop();
  void ReleaseOrphanedLeases(HolderDirectory& directory);
  void NoteJobEndedLocked(uint64_t job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells every local client that the head declared these nodes dead.
  void RelayDeaths(const google::protobuf::RepeatedPtrField<proto::NodeDeath>& deaths);

  // Set at construction.
  const NodeManagerConfig config_;
  const int64_t start_time_ms_;
  const std::unique_ptr<objectstore::ObjectStore> store_;
  std::unique_ptr<proto::HeadService::Stub> head_;
  // Actor deaths, sent until the head acknowledges them (uses head_).
  std::unique_ptr<HeadReporter> reporter_;
  std::unique_ptr<CodeCache> code_;

  absl::Mutex mu_;
  absl::CondVar cv_;                          // signalled when resources, workers or clients change
  std::string node_id_ ABSL_GUARDED_BY(mu_);  // a new one after each fence
  google::protobuf::Map<std::string, double> total_ ABSL_GUARDED_BY(mu_);
  google::protobuf::Map<std::string, double> available_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);  // by worker id
  std::map<uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Client> clients_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Demand> demands_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> waiting_for_worker_ ABSL_GUARDED_BY(mu_);  // by executable
  std::map<std::string, int> startup_failures_ ABSL_GUARDED_BY(mu_);    // by executable
  // Placement-group bundles reserved here: group id -> bundle index -> its resources.
  std::map<std::string, std::map<int, ResourceMap>> bundles_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Jobs that ended (the most recent ones), whose idle task workers here are ended too.
  std::set<uint64_t> ended_jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> ended_order_ ABSL_GUARDED_BY(mu_);
  // Who holds each lease (thread-safe on its own; taken after mu_, never before).
  LeaseHolders holders_;

  std::thread maintenance_;
  std::thread heartbeat_;
  std::thread holder_check_;
  // Only touched by the heartbeat thread.
  uint64_t deaths_seen_ = 0;
  uint64_t finished_jobs_seen_ = 0;
  // Last: connections may call into everything above until Stop closes them.
  std::unique_ptr<net::IoPool> io_;
  std::unique_ptr<net::Listener> listener_;
  // Spills objects of a full store to disk (set in Start; its files go when it does), and moves
  // objects between nodes (set in Start, stopped in Stop); both before the store goes.
  std::unique_ptr<objectstore::SpillManager> spill_;
  std::unique_ptr<objectstore::ObjectDataPlane> data_plane_;
};

}  // namespace lumen::scheduler
