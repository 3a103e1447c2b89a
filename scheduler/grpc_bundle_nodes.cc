#include "scheduler/grpc_bundle_nodes.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"

namespace lumen::scheduler {
namespace {

// A node waits up to about a second for resources busy with tasks before it refuses.
constexpr absl::Duration kCallTimeout = absl::Seconds(5);

}  // namespace

GrpcBundleNodes::GrpcBundleNodes(std::string token,
                                 std::function<std::string(const std::string&)> address_of)
    : token_(std::move(token)), address_of_(std::move(address_of)) {}

proto::NodeService::Stub* GrpcBundleNodes::Stub(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = stubs_[address];
  if (stub == nullptr) stub = proto::NodeService::NewStub(internal::MakeChannel(address));
  return stub.get();
}

absl::Status GrpcBundleNodes::Reserve(const std::string& node_id,
                                      const proto::ReserveBundlesRequest& request) {
  const std::string address = address_of_(node_id);
  if (address.empty()) return absl::NotFoundError(absl::StrCat("node ", node_id, " is unknown"));
  grpc::ClientContext context;
  internal::PrepareContext(&context, token_, kCallTimeout);
  proto::ReserveBundlesReply reply;
  const grpc::Status status = Stub(address)->ReserveBundles(&context, request, &reply);
  if (!status.ok()) {
    return internal::FromGrpc(status, absl::StrCat("reserving bundles on ", address));
  }
  if (!reply.error().empty()) return absl::ResourceExhaustedError(reply.error());
  return absl::OkStatus();
}

void GrpcBundleNodes::Release(const std::string& node_id, const std::string& group_id,
                              const std::vector<int>& indexes) {
  const std::string address = address_of_(node_id);
  if (address.empty()) return;
  grpc::ClientContext context;
  internal::PrepareContext(&context, token_, kCallTimeout);
  proto::ReleaseBundlesRequest request;
  request.set_placement_group_id(group_id);
  for (int index : indexes) request.add_indexes(index);
  proto::ReleaseBundlesReply reply;
  const grpc::Status status = Stub(address)->ReleaseBundles(&context, request, &reply);
  if (!status.ok()) {
    LUMEN_LOG(WARNING) << "cannot release the bundles of placement group "
                       << internal::Hex(group_id) << " on " << address << ": "
                       << status.error_message();
  }
}

}  // namespace lumen::scheduler
