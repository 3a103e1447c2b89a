// What a node shows about itself to the head's state API: its log files, by worker id only
// (never by a path taken from a request), and the objects in its shared-memory store.
//
// Thread-safe: gRPC calls it from its thread pool; it only reads.
#pragma once

#include <string>

#include "proto/state.grpc.pb.h"
#include "scheduler/node_manager.h"

namespace lumen::scheduler {

// The largest log chunk one call returns.
inline constexpr int64_t kMaxLogChunk = int64_t{1} << 20;

class NodeStateService final : public proto::NodeStateService::Service {
 public:
  // `node_manager` must outlive this service. `daemon_log` is this node's own log file name
  // in <session_dir>/logs ("head.log" or "node.log").
  NodeStateService(std::string token, std::string session_dir, std::string daemon_log,
                   NodeManager* node_manager);

  grpc::Status ReadNodeLog(grpc::ServerContext* context, const proto::ReadNodeLogRequest* request,
                           proto::LogChunk* reply) override;
  grpc::Status ListStoreObjects(grpc::ServerContext* context,
                                const proto::ListStoreObjectsRequest* request,
                                proto::ListStoreObjectsReply* reply) override;

 private:
  const std::string token_;
  const std::string session_dir_;
  const std::string daemon_log_;
  NodeManager* const node_manager_;
};

// Reads up to `max_bytes` (at most kMaxLogChunk) of the file at `path` from `offset`, or the
// last `max_bytes` when offset < 0. NOT_FOUND if there is no such file.
absl::StatusOr<proto::LogChunk> ReadLogChunk(const std::string& path, int64_t offset,
                                             int64_t max_bytes);

}  // namespace lumen::scheduler
