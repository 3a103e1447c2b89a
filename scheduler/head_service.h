// The head's control service: which nodes exist, whether they are alive (heartbeats), their
// resources and pending demands, which node can take a resource shape a node cannot, and the
// durable KV store of lumen::kv (kept in the head's store).
//
// Thread-safe: gRPC calls it from its thread pool.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"
#include "scheduler/actor_directory.h"
#include "scheduler/actor_placer.h"
#include "scheduler/grpc_bundle_nodes.h"
#include "scheduler/head_store.h"
#include "scheduler/job_table.h"
#include "scheduler/node_liveness.h"
#include "scheduler/node_table.h"
#include "scheduler/placement_group_manager.h"
#include "scheduler/placement_policy.h"

namespace lumen::scheduler {

class HeadService final : public proto::HeadService::Service {
 public:
  // `store` holds the head's durable tables and must outlive the service.
  // Nodes are judged on `clock` (monotonic; tests pass a fake one).
  HeadService(std::string token, std::string session_dir, absl::Duration heartbeat_timeout,
              HeadStore* store, NodeLiveness::Clock clock = NodeLiveness::SteadyClock());
  ~HeadService() override;

  grpc::Status RegisterNode(grpc::ServerContext* context, const proto::RegisterNodeRequest* request,
                            proto::RegisterNodeReply* reply) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const proto::HeartbeatRequest* request,
                         proto::HeartbeatReply* reply) override;
  grpc::Status GetClusterStatus(grpc::ServerContext* context,
                                const proto::GetClusterStatusRequest* request,
                                proto::ClusterStatus* reply) override;
  grpc::Status FindNode(grpc::ServerContext* context, const proto::FindNodeRequest* request,
                        proto::FindNodeReply* reply) override;
  grpc::Status LeaveCluster(grpc::ServerContext* context, const proto::LeaveClusterRequest* request,
                            proto::LeaveClusterReply* reply) override;
  grpc::Status CreateActor(grpc::ServerContext* context, const proto::CreateActorRequest* request,
                           proto::CreateActorReply* reply) override;
  grpc::Status GetActorInfo(grpc::ServerContext* context, const proto::GetActorInfoRequest* request,
                            proto::ActorInfo* reply) override;
  grpc::Status KillActor(grpc::ServerContext* context, const proto::KillActorRequest* request,
                         proto::KillActorReply* reply) override;
  grpc::Status ReportActorDeath(grpc::ServerContext* context,
                                const proto::ReportActorDeathRequest* request,
                                proto::ReportActorDeathReply* reply) override;
  grpc::Status ListActors(grpc::ServerContext* context, const proto::ListActorsRequest* request,
                          proto::ListActorsReply* reply) override;
  grpc::Status ReportDriverJob(grpc::ServerContext* context, const proto::DriverJobEvent* request,
                               proto::DriverJobEventReply* reply) override;
  grpc::Status GetDriverJob(grpc::ServerContext* context, const proto::GetDriverJobRequest* request,
                            proto::DriverJobRecord* reply) override;
  grpc::Status KvPut(grpc::ServerContext* context, const proto::KvPutRequest* request,
                     proto::KvPutReply* reply) override;
  grpc::Status KvGet(grpc::ServerContext* context, const proto::KvGetRequest* request,
                     proto::KvGetReply* reply) override;
  grpc::Status KvDelete(grpc::ServerContext* context, const proto::KvDeleteRequest* request,
                        proto::KvDeleteReply* reply) override;
  grpc::Status KvList(grpc::ServerContext* context, const proto::KvListRequest* request,
                      proto::KvListReply* reply) override;
  // Placement groups (placement_group_manager.h).
  grpc::Status CreatePlacementGroup(grpc::ServerContext* context,
                                    const proto::CreatePlacementGroupRequest* request,
                                    proto::CreatePlacementGroupReply* reply) override;
  grpc::Status GetPlacementGroup(grpc::ServerContext* context,
                                 const proto::GetPlacementGroupRequest* request,
                                 proto::PlacementGroupInfo* reply) override;
  grpc::Status RemovePlacementGroup(grpc::ServerContext* context,
                                    const proto::RemovePlacementGroupRequest* request,
                                    proto::RemovePlacementGroupReply* reply) override;
  grpc::Status ListPlacementGroups(grpc::ServerContext* context,
                                   const proto::ListPlacementGroupsRequest* request,
                                   proto::ListPlacementGroupsReply* reply) override;

  // Every node the head knows, with `alive` and `last_heartbeat_ms` filled in, and
  // `unconfirmed` for those read back from a previous head that have not reported yet.
  std::vector<proto::NodeInfo> Nodes();
  ActorDirectory& actors() { return *actors_; }
  JobTable& jobs() { return jobs_; }
  PlacementGroupManager& placement_groups() { return *groups_; }

 private:
  struct Node {
    proto::NodeInfo info;
    // Read from a previous head's table as alive, and not registered with this head yet: shown
    // unconfirmed, and counted for placement with its stored resources (what it had when it
    // registered with the previous head) until it registers or is declared dead.
    bool recovered = false;
  };
  // The node an actor should run on, by the placement policy over the head's reservations
  // (actor_placer.h); none while no node can take it.
  ActorDirectory::NodePick PickActorNode(const proto::ActorSpec& spec);
  // Every node as the placement policy sees it: totals, last reported availability.
  std::vector<NodeView> NodeViewsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What every node has free for new placement-group bundles: neither reserved for actors or
  // bundles nor in use as last reported.
  std::vector<NodeView> BundleViews();
  // Makes the placement-group manager and reads a previous head's groups
  // (head_placement_groups.cc, like the two below).
  void StartPlacementGroups();
  // An actor in a placement group's bundle asks for the bundle's resources.
  grpc::Status CreateActorInBundle(proto::ActorSpec spec);
  // A lease in a bundle: rewrites `shape`; false (with the reply filled in) when no node can
  // be named now (the group is not placed yet, or never will be).
  bool ShapeInPlacementGroup(const proto::SchedulingStrategy& strategy, ResourceShape* shape,
                             proto::FindNodeReply* reply);
  // Marks nodes silent for longer than the timeout as dead (once, with a log line) and queues
  // their addresses for the monitor, which tells the actor directory.
  void UpdateLivenessLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeclareDeadLocked(const std::string& id, Node& node, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Declares nodes dead on time even when nobody calls, and their actors with them.
  void MonitorLoop();
  // ---- The nodes' durable records (head_nodes.cc)
  // Reads the nodes a previous head knew: those alive are shown until they register again and
  // are declared dead if they stay silent for the heartbeat timeout; the dead are shown dead.
  void RecoverNodes();
  // Writes the registering node's record (before it is acknowledged); a record read back with
  // the same address under another id (the node restarted) is marked dead.
  absl::Status RecordRegistrationLocked(const proto::NodeInfo& info)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordDeathLocked(Node& node, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shows a recovered node not heard from yet as unconfirmed, with why (node_state_name.h).
  void MarkUnconfirmed(proto::NodeInfo* info) const;

  const std::string token_;
  const std::string session_dir_;
  const absl::Duration heartbeat_timeout_;
  HeadStore* const store_;
  JobTable jobs_;
  NodeTable node_table_;

  absl::Mutex mu_;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  NodeLiveness liveness_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> newly_dead_ ABSL_GUARDED_BY(mu_);
  // Every node death declared since the head started, oldest first: heartbeat replies carry
  // the ones a node has not seen, and its node manager tells its clients.
  std::vector<proto::NodeDeath> deaths_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> finished_jobs_ ABSL_GUARDED_BY(mu_);  // relayed in heartbeat replies
  std::string lease_spread_last_ ABSL_GUARDED_BY(mu_);
  std::thread monitor_;
  ActorPlacer placer_;
  std::unique_ptr<GrpcBundleNodes> bundle_nodes_;
  std::unique_ptr<PlacementGroupManager> groups_;  // made before the monitor starts

  // Last: its creation threads call PickActorNode.
  std::unique_ptr<ActorDirectory> actors_;
};

// True if `available` has at least `shape` of every resource.
bool Fits(const google::protobuf::Map<std::string, double>& available,
          const google::protobuf::Map<std::string, double>& shape);

}  // namespace lumen::scheduler
