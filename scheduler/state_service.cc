#include "scheduler/state_service.h"

#include "common/rpc.h"

namespace lumen::scheduler {

using internal::CheckToken;
using internal::ToGrpc;

StateService::StateService(std::string token, TaskEventStore* tasks, StateApi* api,
                           JobManager* jobs)
    : token_(std::move(token)), tasks_(tasks), api_(api), jobs_(jobs) {}

grpc::Status StateService::ReportTaskEvents(grpc::ServerContext* context,
                                            const proto::ReportTaskEventsRequest* request,
                                            proto::ReportTaskEventsReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  if (request->reporter_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a report needs a reporter id");
  }
  tasks_->Apply(*request, absl::Now());
  return grpc::Status::OK;
}

grpc::Status StateService::GetState(grpc::ServerContext* context,
                                    const proto::GetStateRequest* request,
                                    proto::GetStateReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  const StateApi::Params params(request->params().begin(), request->params().end());
  absl::StatusOr<nlohmann::json> json = api_->Get(request->resource(), params);
  if (!json.ok()) return ToGrpc(json.status());
  reply->set_json(DumpJson(*json));
  return grpc::Status::OK;
}

grpc::Status StateService::SubmitJob(grpc::ServerContext* context,
                                     const proto::SubmitJobRequest* request,
                                     proto::SubmitJobReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  absl::StatusOr<std::string> id =
      jobs_->Submit(std::vector<std::string>(request->argv().begin(), request->argv().end()),
                    request->working_dir());
  if (!id.ok()) return ToGrpc(id.status());
  reply->set_job_id(*id);
  return grpc::Status::OK;
}

grpc::Status StateService::StopJob(grpc::ServerContext* context,
                                   const proto::StopJobRequest* request,
                                   proto::StopJobReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  return ToGrpc(jobs_->Stop(request->job_id()));
}

}  // namespace lumen::scheduler
