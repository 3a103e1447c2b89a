#include "runtime/internal/remote_objects.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/rpc.h"

namespace lumen::internal {

absl::Status PullToLocalNode(proto::NodeService::Stub* stub, const std::string& token,
                             const std::vector<const proto::StoreLocation*>& remote,
                             absl::Duration timeout) {
  if (remote.empty()) return absl::OkStatus();
  proto::PullObjectsRequest request;
  for (const proto::StoreLocation* location : remote) *request.add_objects() = *location;
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  proto::PullObjectsReply reply;
  grpc::ClientContext context;
  const absl::Time answer_by = absl::Now() + timeout + absl::Seconds(5);
  PrepareContext(&context, token, answer_by - absl::Now());
  auto status = stub->PullObjects(&context, request, &reply);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && absl::Now() < answer_by) {
    // The node manager answered: the copies did not arrive within `timeout` (they go on).
    return absl::DeadlineExceededError(status.error_message());
  }
  if (!status.ok()) {
    return absl::AbortedError(
        absl::StrCat("cannot pull objects from other nodes: this node's manager did not answer: ",
                     status.error_message()));
  }
  for (int i = 0; i < reply.results_size() && i < request.objects_size(); ++i) {
    const proto::PullResult& result = reply.results(i);
    if (result.error().empty()) continue;
    const std::string message =
        absl::StrCat("cannot copy the object from node ", request.objects(i).node_id(), " (",
                     request.objects(i).data_address(), "): ", result.error());
    if (result.lost()) return absl::NotFoundError(message);
    if (result.too_large()) return absl::ResourceExhaustedError(message);
    return absl::UnavailableError(message);
  }
  if (reply.results_size() != request.objects_size()) {
    return absl::InternalError(absl::StrCat("the node manager answered ", reply.results_size(),
                                            " pulls for ", request.objects_size(), " objects"));
  }
  return absl::OkStatus();
}

}  // namespace lumen::internal
