// The head's control service: which nodes exist, whether they are alive (heartbeats), their
// resources and pending demands, and which node can take a resource shape a node cannot.
//
// Thread-safe: gRPC calls it from its thread pool.
#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"

namespace lumen::scheduler {

class HeadService final : public proto::HeadService::Service {
 public:
  HeadService(std::string token, std::string session_dir, absl::Duration heartbeat_timeout);

  grpc::Status RegisterNode(grpc::ServerContext* context, const proto::RegisterNodeRequest* request,
                            proto::RegisterNodeReply* reply) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const proto::HeartbeatRequest* request,
                         proto::HeartbeatReply* reply) override;
  grpc::Status GetClusterStatus(grpc::ServerContext* context,
                                const proto::GetClusterStatusRequest* request,
                                proto::ClusterStatus* reply) override;
  grpc::Status FindNode(grpc::ServerContext* context, const proto::FindNodeRequest* request,
                        proto::FindNodeReply* reply) override;

 private:
  struct Node {
    proto::NodeInfo info;
    absl::Time last_heartbeat;
    bool dead = false;
  };
  // Marks nodes silent for longer than the timeout as dead (once, with a log line).
  void UpdateLivenessLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string token_;
  const std::string session_dir_;
  const absl::Duration heartbeat_timeout_;

  absl::Mutex mu_;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
};

// True if `available` has at least `shape` of every resource.
bool Fits(const google::protobuf::Map<std::string, double>& available,
          const google::protobuf::Map<std::string, double>& shape);

}  // namespace lumen::scheduler
