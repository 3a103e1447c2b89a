// BundleNodes over gRPC: the head's calls to the node managers' ReserveBundles and
// ReleaseBundles, for the placement-group manager.
//
//   GrpcBundleNodes nodes(token, [&](const std::string& id) { return AddressOf(id); });
//   absl::Status reserved = nodes.Reserve(node_id, request);
//
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/control.grpc.pb.h"
#include "scheduler/placement_group_manager.h"

namespace lumen::scheduler {

class GrpcBundleNodes final : public BundleNodes {
 public:
  // `address_of` maps a node id to its node manager's address ("" if unknown).
  GrpcBundleNodes(std::string token, std::function<std::string(const std::string&)> address_of);

  absl::Status Reserve(const std::string& node_id,
                       const proto::ReserveBundlesRequest& request) override;
  void Release(const std::string& node_id, const std::string& group_id,
               const std::vector<int>& indexes) override;

 private:
  proto::NodeService::Stub* Stub(const std::string& address);

  // Set at construction.
  const std::string token_;
  const std::function<std::string(const std::string&)> address_of_;

  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<proto::NodeService::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::scheduler
