// The head's record of tasks, fed with reports as core workers send them.
#include "scheduler/task_event_store.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "common/ids.h"

namespace lumen::scheduler {
namespace {

using State = proto::TaskEvent::State;

std::string TaskId(int n) {
  std::string id(16, '\0');
  std::memcpy(id.data(), &n, sizeof(n));
  return id;
}

// Reports from one process, with consecutive sequence numbers.
class Reporter {
 public:
  Reporter(std::string id, std::string node, int pid, std::string worker = "")
      : id_(std::move(id)), node_(std::move(node)), worker_(std::move(worker)), pid_(pid) {}

  proto::ReportTaskEventsRequest Report() {
    proto::ReportTaskEventsRequest report;
    report.set_reporter_id(id_);
    report.set_seq(++seq_);
    report.set_node_id(node_);
    report.set_worker_id(worker_);
    report.set_pid(pid_);
    return report;
  }

 private:
  std::string id_;
  std::string node_;
  std::string worker_;
  int pid_;
  uint64_t seq_ = 0;
};

proto::TaskEvent* AddEvent(proto::ReportTaskEventsRequest& report, int task, State state,
                           int attempt = 0, int64_t time_us = 1000) {
  proto::TaskEvent* event = report.add_events();
  event->set_task_id(TaskId(task));
  event->set_state(state);
  event->set_attempt(attempt);
  event->set_time_us(time_us);
  return event;
}

void Submit(proto::ReportTaskEventsRequest& report, int task, const std::string& function,
            const std::string& actor_id = "") {
  proto::TaskEvent* event = AddEvent(report, task, proto::TaskEvent::SUBMITTED);
  event->set_function(function);
  event->set_actor_id(actor_id);
}

nlohmann::json Only(const TaskEventStore& store) {
  nlohmann::json rows = store.List({})["rows"];
  REQUIRE(rows.size() == 1);
  return rows[0];
}

const absl::Time kNow = absl::FromUnixSeconds(1'000'000);

}  // namespace

TEST_CASE("events from the owner and the worker give one record with where and when it ran",
          "[scheduler][task_events]") {
  TaskEventStore store;
  Reporter owner("driver", "node-a", 100);
  Reporter worker("worker", "node-b", 200, std::string(8, '\x01'));
  // The worker's report can arrive before the owner's.
  proto::ReportTaskEventsRequest running = worker.Report();
  AddEvent(running, 1, proto::TaskEvent::RUNNING, 0, 2000);
  store.Apply(running, kNow);
  proto::ReportTaskEventsRequest owned = owner.Report();
  Submit(owned, 1, "Square");
  AddEvent(owned, 1, proto::TaskEvent::PUSHED, 0, 1500);
  AddEvent(owned, 1, proto::TaskEvent::FINISHED, 0, 5000);
  store.Apply(owned, kNow);

  const nlohmann::json row = Only(store);
  CHECK(row["function"] == "Square");
  CHECK(row["state"] == "FINISHED");
  CHECK(row["type"] == "NORMAL_TASK");
  CHECK(row["node_id"] == "node-b");
  CHECK(row["worker_pid"] == 200);
  CHECK(row["worker_id"] == "0101010101010101");
  CHECK(row["owner_pid"] == 100);
  CHECK(row["duration_ms"].get<double>() == Approx(3.0));
  const absl::StatusOr<TaskEventStore::Location> location = store.Locate(internal::Hex(TaskId(1)));
  REQUIRE(location.ok());
  CHECK(location->node_id == "node-b");
  CHECK(location->worker_id == std::string(8, '\x01'));
}

TEST_CASE("a retried task shows its latest attempt and the reason of the failed one",
          "[scheduler][task_events]") {
  TaskEventStore store;
  Reporter owner("driver", "node-a", 100);
  Reporter first("worker-1", "node-a", 201, "w1");
  Reporter second("worker-2", "node-a", 202, "w2");
  proto::ReportTaskEventsRequest report = owner.Report();
  Submit(report, 1, "CrashOnce");
  AddEvent(report, 1, proto::TaskEvent::PUSHED, 0);
  AddEvent(report, 1, proto::TaskEvent::RETRYING, 1)->set_error("its worker died");
  AddEvent(report, 1, proto::TaskEvent::PUSHED, 1);
  store.Apply(report, kNow);
  CHECK(Only(store)["state"] == "SCHEDULED");
  CHECK(Only(store)["attempt"] == 1);

  proto::ReportTaskEventsRequest late = first.Report();  // the dead worker's last report
  AddEvent(late, 1, proto::TaskEvent::RUNNING, 0);
  store.Apply(late, kNow);
  CHECK(Only(store)["state"] == "SCHEDULED");
  CHECK(Only(store)["worker_pid"] == 0);

  proto::ReportTaskEventsRequest running = second.Report();
  AddEvent(running, 1, proto::TaskEvent::RUNNING, 1);
  store.Apply(running, kNow);
  CHECK(Only(store)["state"] == "RUNNING");
  CHECK(Only(store)["worker_pid"] == 202);

  proto::ReportTaskEventsRequest done = owner.Report();
  AddEvent(done, 1, proto::TaskEvent::FINISHED, 1);
  store.Apply(done, kNow);
  const nlohmann::json row = Only(store);
  CHECK(row["state"] == "FINISHED");
  CHECK(row["last_error"] == "its worker died");
  CHECK(store.Summary()["functions"][0]["state_counts"]["FINISHED"] == 1);
}

TEST_CASE("a report sent twice is applied once", "[scheduler][task_events]") {
  TaskEventStore store;
  Reporter owner("driver", "node-a", 100);
  proto::ReportTaskEventsRequest report = owner.Report();
  proto::UntrackedCounts* counts = report.add_untracked();
  counts->set_function("Fast");
  counts->set_submitted(10);
  counts->set_finished(10);
  store.Apply(report, kNow);
  store.Apply(report, kNow);
  CHECK(store.Summary()["functions"][0]["state_counts"]["FINISHED"] == 10);
}

TEST_CASE("finished tasks beyond the limit are folded into per-function counts",
          "[scheduler][task_events]") {
  TaskEventStore::Limits limits;
  limits.max_finished = 3;
  TaskEventStore store(limits);
  Reporter owner("driver", "node-a", 100);
  for (int task = 0; task < 10; ++task) {
    proto::ReportTaskEventsRequest report = owner.Report();
    Submit(report, task, task % 2 == 0 ? "Even" : "Odd");
    AddEvent(report, task, task == 9 ? proto::TaskEvent::FAILED : proto::TaskEvent::FINISHED);
    store.Apply(report, kNow);
  }
  CHECK(store.NumRecords() == 3);
  CHECK(store.NumEnded() == 10);
  const nlohmann::json listed = store.List({});
  CHECK(listed["total"] == 3);
  CHECK(listed["not_recorded_individually"] == 7);
  // Newest first.
  CHECK(listed["rows"][0]["task_id"] == internal::Hex(TaskId(9)));
  const nlohmann::json summary = store.Summary();
  CHECK(summary["total"] == 10);
  for (const auto& function : summary["functions"]) {
    if (function["function"] == "Even") CHECK(function["state_counts"]["FINISHED"] == 5);
    if (function["function"] == "Odd") {
      CHECK(function["state_counts"]["FINISHED"] == 4);
      CHECK(function["state_counts"]["FAILED"] == 1);
    }
  }
}

TEST_CASE("unfinished tasks beyond the limit are refused and counted", "[scheduler][task_events]") {
  TaskEventStore::Limits limits;
  limits.max_active = 2;
  TaskEventStore store(limits);
  Reporter owner("driver", "node-a", 100);
  proto::ReportTaskEventsRequest report = owner.Report();
  for (int task = 0; task < 5; ++task) Submit(report, task, "Slow");
  store.Apply(report, kNow);
  CHECK(store.NumRecords() == 2);
  CHECK(store.Summary()["dropped_records"] == 3);
}

TEST_CASE("tasks not recorded one by one count as finished, failed and in flight",
          "[scheduler][task_events]") {
  TaskEventStore store;
  Reporter owner("driver", "node-a", 100);
  proto::ReportTaskEventsRequest report = owner.Report();
  proto::UntrackedCounts* counts = report.add_untracked();
  counts->set_function("Fast");
  counts->set_submitted(100);
  counts->set_finished(90);
  counts->set_failed(4);
  store.Apply(report, kNow);
  const nlohmann::json states = store.Summary()["functions"][0]["state_counts"];
  CHECK(states["FINISHED"] == 90);
  CHECK(states["FAILED"] == 4);
  CHECK(states["IN_FLIGHT"] == 6);
  CHECK(store.NumEnded() == 94);
}

TEST_CASE("the unfinished tasks of an owner that shut down or went silent fail",
          "[scheduler][task_events]") {
  TaskEventStore::Limits limits;
  limits.reporter_timeout = absl::Seconds(15);
  TaskEventStore store(limits);
  SECTION("a final report") {
    Reporter owner("driver", "node-a", 100);
    proto::ReportTaskEventsRequest report = owner.Report();
    Submit(report, 1, "Slow");
    proto::UntrackedCounts* counts = report.add_untracked();
    counts->set_function("Fast");
    counts->set_submitted(5);
    report.set_final(true);
    store.Apply(report, kNow);
    const nlohmann::json row = Only(store);
    CHECK(row["state"] == "FAILED");
    CHECK(row["error_type"] == "OWNER_DIED");
    CHECK_THAT(row["error"].get<std::string>(), Catch::Contains("pid 100"));
    const nlohmann::json summary = store.Summary();
    for (const auto& function : summary["functions"]) {
      if (function["function"] == "Fast") CHECK(function["state_counts"]["FAILED"] == 5);
    }
  }
  SECTION("silence beyond the timeout") {
    Reporter owner("driver", "node-a", 100);
    proto::ReportTaskEventsRequest report = owner.Report();
    Submit(report, 1, "Slow");
    store.Apply(report, kNow);
    store.Sweep(kNow + absl::Seconds(10));
    CHECK(Only(store)["state"] == "SUBMITTED");
    CHECK(store.Reporters().size() == 1);
    store.Sweep(kNow + absl::Seconds(16));
    CHECK(Only(store)["state"] == "FAILED");
    CHECK_THAT(Only(store)["error"].get<std::string>(), Catch::Contains("stopped reporting"));
    CHECK(store.Reporters().empty());
  }
  SECTION("a task whose owner never reported it") {
    Reporter worker("worker", "node-a", 200, "w");
    proto::ReportTaskEventsRequest report = worker.Report();
    AddEvent(report, 1, proto::TaskEvent::RUNNING, 0, absl::ToUnixMicros(kNow));
    store.Apply(report, kNow);
    // The worker itself keeps reporting; only the task's own age counts.
    proto::ReportTaskEventsRequest keepalive = worker.Report();
    store.Apply(keepalive, kNow + absl::Seconds(16));
    store.Sweep(kNow + absl::Seconds(16));
    CHECK(Only(store)["state"] == "FAILED");
  }
}

TEST_CASE("listing filters on state, function, type and ids", "[scheduler][task_events]") {
  TaskEventStore store;
  Reporter owner("driver", "node-a", 100);
  proto::ReportTaskEventsRequest report = owner.Report();
  Submit(report, 1, "Square");
  Submit(report, 2, "Square");
  AddEvent(report, 2, proto::TaskEvent::FINISHED);
  Submit(report, 3, "Counter::Add", std::string(16, '\x07'));
  store.Apply(report, kNow);
  auto count = [&](TaskEventStore::Query query) { return store.List(query)["total"].get<int>(); };
  CHECK(count({}) == 3);
  CHECK(count({.state = "finished"}) == 1);
  CHECK(count({.state = "SUBMITTED"}) == 2);
  CHECK(count({.type = "ACTOR_TASK"}) == 1);
  CHECK(count({.function = "Square"}) == 2);
  CHECK(count({.task_id = internal::Hex(TaskId(3))}) == 1);
  CHECK(count({.actor_id = internal::Hex(std::string(16, '\x07'))}) == 1);
  CHECK(count({.node_id = "node-z"}) == 0);
  CHECK(store.List({.limit = 1})["rows"].size() == 1);
  CHECK(store.List({.limit = 1})["total"] == 3);
  CHECK_FALSE(store.Locate("not hex").ok());
  CHECK(absl::IsNotFound(store.Locate(internal::Hex(TaskId(1))).status()));
}

}  // namespace lumen::scheduler
