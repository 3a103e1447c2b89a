// Brings store objects that other nodes hold into this node's store before a process reads
// them: one PullObjects call to the local node manager, which pulls them over its data plane
// (merging concurrent pulls of one object) and answers once each is here or failed.
//
//   std::vector<const proto::StoreLocation*> remote = ...;  // node_id != this node's
//   absl::Status pulled = PullToLocalNode(stub, token, remote, absl::Minutes(1));
//   // then pin them by id in the local store as usual
//
// Thread-safe (a blocking gRPC call).
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"

namespace lumen::internal {

// OK once every object is in the local store. NOT_FOUND if the node holding one lost it,
// RESOURCE_EXHAUSTED if one cannot fit this node's store, DEADLINE_EXCEEDED if they did not
// arrive within `timeout` (the copies go on), ABORTED if the local node manager itself did not
// answer (this node is going away), otherwise the failure with its reason.
[[nodiscard]] absl::Status PullToLocalNode(proto::NodeService::Stub* stub, const std::string& token,
                                           const std::vector<const proto::StoreLocation*>& remote,
                                           absl::Duration timeout);

}  // namespace lumen::internal
