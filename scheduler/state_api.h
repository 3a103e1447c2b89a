// The one state API: every JSON document that the dashboard's /api/ endpoints serve and that
// the CLI's list, summary, memory and logs commands print, built from the head's tables
// (nodes, actors, task events, jobs) and the nodes' own answers (store objects, log files).
//
//   StateApi api({.head = &head, .tasks = &tasks, .jobs = &jobs, .token = token});
//   absl::StatusOr<nlohmann::json> alive = api.Get("actors", {{"state", "ALIVE"}});
//
// Resources (GET /api/<resource>?<params>), each a JSON object:
//   overview                  cluster totals, running jobs, actor and task counts
//   nodes, actors, tasks, objects, jobs, placement-groups
//                             {"total", "rows": [...]}; params: limit (default 1000) and
//                             filters KEY=VALUE on the rows' fields (see kFilters in the .cc)
//   jobs/<id>                 one job
//   summary/tasks             per function: counts by state
//   summary/actors            per class: counts by state
//   memory                    store use per node, objects per owner, the largest objects
//   metrics                   samples of resource use and finished tasks over the last 10 min
//   logs                      one of actor=ID, task=ID, worker=ID [node=ID], node=ID, job=ID,
//                             with offset (default: the tail) and max_bytes (<= 1 MiB)
// Errors: INVALID_ARGUMENT for bad parameters (unknown filters, malformed ids), NOT_FOUND,
// UNAVAILABLE when a node cannot be reached. Logs are found by id only, never by a path.
//
// Thread-safe. A sampler thread records cluster usage for `metrics` and ends silent task
// reporters (TaskEventStore::Sweep).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "proto/state.grpc.pb.h"
#include "scheduler/head_service.h"
#include "scheduler/job_manager.h"
#include "scheduler/task_event_store.h"

namespace lumen::scheduler {

class StateApi {
 public:
  using Params = std::map<std::string, std::string>;
  struct Sources {
    HeadService* head = nullptr;
    TaskEventStore* tasks = nullptr;
    JobManager* jobs = nullptr;
    std::string token{};
  };

  // The sources must outlive the StateApi.
  explicit StateApi(Sources sources, absl::Duration sample_period = absl::Seconds(2));
  ~StateApi();
  StateApi(const StateApi&) = delete;
  StateApi& operator=(const StateApi&) = delete;

  absl::StatusOr<nlohmann::json> Get(const std::string& resource, const Params& params);

 private:
  absl::StatusOr<nlohmann::json> Overview();
  absl::StatusOr<nlohmann::json> Nodes(const Params& params);
  absl::StatusOr<nlohmann::json> Actors(const Params& params);
  absl::StatusOr<nlohmann::json> Tasks(const Params& params);
  absl::StatusOr<nlohmann::json> Objects(const Params& params);
  absl::StatusOr<nlohmann::json> Jobs(const Params& params);
  absl::StatusOr<nlohmann::json> SummaryActors();
  absl::StatusOr<nlohmann::json> Memory();
  absl::StatusOr<nlohmann::json> Logs(const Params& params);
  nlohmann::json Metrics();
  std::optional<proto::ActorInfo> ActorInfo(const std::string& actor_id_hex);
  nlohmann::json NodeRows();
  // Store objects of every live node (each node's largest `limit_per_node`).
  nlohmann::json StoreObjectRows(int limit_per_node);
  absl::StatusOr<proto::LogChunk> ReadNodeLog(const std::string& node_id,
                                              const proto::ReadNodeLogRequest& request);
  proto::NodeStateService::Stub* NodeStub(const std::string& address);
  void SampleLoop(absl::Duration period);

  const Sources sources_;

  absl::Mutex stubs_mu_;
  std::map<std::string, std::unique_ptr<proto::NodeStateService::Stub>> stubs_
      ABSL_GUARDED_BY(stubs_mu_);

  absl::Mutex samples_mu_;
  std::deque<nlohmann::json> samples_ ABSL_GUARDED_BY(samples_mu_);
  bool stopping_ ABSL_GUARDED_BY(samples_mu_) = false;
  std::thread sampler_;
};

// JSON text with invalid UTF-8 (from logs, user error messages) replaced, never a throw.
std::string DumpJson(const nlohmann::json& json, int indent = -1);

}  // namespace lumen::scheduler
