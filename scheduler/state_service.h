// The head's gRPC face of the state API: core workers report task events here, the CLI reads
// the same JSON documents the dashboard shows, and submits and stops jobs.
//
// Thread-safe: gRPC calls it from its thread pool.
#pragma once

#include <string>

#include "proto/state.grpc.pb.h"
#include "scheduler/job_manager.h"
#include "scheduler/state_api.h"
#include "scheduler/task_event_store.h"

namespace lumen::scheduler {

class StateService final : public proto::StateService::Service {
 public:
  // Every pointer must outlive the service.
  StateService(std::string token, TaskEventStore* tasks, StateApi* api, JobManager* jobs);

  grpc::Status ReportTaskEvents(grpc::ServerContext* context,
                                const proto::ReportTaskEventsRequest* request,
                                proto::ReportTaskEventsReply* reply) override;
  grpc::Status GetState(grpc::ServerContext* context, const proto::GetStateRequest* request,
                        proto::GetStateReply* reply) override;
  grpc::Status SubmitJob(grpc::ServerContext* context, const proto::SubmitJobRequest* request,
                         proto::SubmitJobReply* reply) override;
  grpc::Status StopJob(grpc::ServerContext* context, const proto::StopJobRequest* request,
                       proto::StopJobReply* reply) override;

 private:
  const std::string token_;
  TaskEventStore* const tasks_;
  StateApi* const api_;
  JobManager* const jobs_;
};

}  // namespace lumen::scheduler
