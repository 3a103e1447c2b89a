// Serves the executables this node has (CodeCache) to node managers that fetch them by hash.
//
//   CodeService code_service(token, &node_manager->code());
//   builder.RegisterService(&code_service);
//
// Thread-safe: each call streams one file on its gRPC thread.
#pragma once

#include <string>

#include "proto/code.grpc.pb.h"
#include "scheduler/code_cache.h"

namespace lumen::scheduler {

class CodeService final : public proto::CodeService::Service {
 public:
  // `cache` must outlive the service.
  CodeService(std::string token, CodeCache* cache);

  grpc::Status FetchExecutable(grpc::ServerContext* context,
                               const proto::FetchExecutableRequest* request,
                               grpc::ServerWriter<proto::ExecutableChunk>* writer) override;

 private:
  const std::string token_;
  CodeCache* const cache_;
};

}  // namespace lumen::scheduler
