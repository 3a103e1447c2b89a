// Helpers shared by every gRPC client and server of Lumen: token metadata, deadlines, and
// turning grpc::Status into absl::Status with context.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"

namespace lumen::internal {

inline constexpr char kTokenMetadataKey[] = "lumen-token";

// A channel to host:port that does not share sockets with other channels' subchannels.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);
// Adds the cluster token and a deadline to a client context.
void PrepareContext(grpc::ClientContext* context, const std::string& token, absl::Duration timeout);
// UNAUTHENTICATED unless the call carries `token`.
grpc::Status CheckToken(const grpc::ServerContext* context, const std::string& token);
// Maps a gRPC status to absl with "<what>: <message>".
absl::Status FromGrpc(const grpc::Status& status, const std::string& what);
grpc::Status ToGrpc(const absl::Status& status);
// The head's view of the cluster; the error names the head and says why it failed.
absl::StatusOr<proto::ClusterStatus> FetchClusterStatus(const std::string& head_address,
                                                        const std::string& token,
                                                        absl::Duration timeout);

}  // namespace lumen::internal
