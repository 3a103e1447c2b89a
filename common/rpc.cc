#include "common/rpc.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace lumen::internal {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // A restarted head (or node) is found again within a couple of seconds, not gRPC's default
  // of up to two minutes of reconnection backoff. (The minimum backoff is also the connect
  // timeout, so it stays at gRPC's 20 s.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void PrepareContext(grpc::ClientContext* context, const std::string& token,
                    absl::Duration timeout) {
  context->AddMetadata(kTokenMetadataKey, token);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

grpc::Status CheckToken(const grpc::ServerContext* context, const std::string& token) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kTokenMetadataKey);
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing cluster token: pass --token or set LUMEN_TOKEN "
                        "(see `lumen get-auth-token` on the head)");
  }
  if (std::string(it->second.data(), it->second.size()) != token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong cluster token");
  }
  return grpc::Status::OK;
}

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::StatusOr<proto::ClusterStatus> FetchClusterStatus(const std::string& head_address,
                                                        const std::string& token,
                                                        absl::Duration timeout) {
  auto stub = proto::HeadService::NewStub(MakeChannel(head_address));
  grpc::ClientContext context;
  PrepareContext(&context, token, timeout);
  proto::ClusterStatus status;
  auto rpc = stub->GetClusterStatus(&context, proto::GetClusterStatusRequest(), &status);
  if (!rpc.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the head at ", head_address, ": ", rpc.error_message()));
  }
  return status;
}

}  // namespace lumen::internal
