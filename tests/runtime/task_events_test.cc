// The core worker's task event recorder, with a hand-written sender in place of the head.
#include "runtime/internal/task_events.h"

#include <catch2/catch.hpp>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace lumen::internal {
namespace {

// Keeps every report; fails the first `failures` sends.
class FakeHead {
 public:
  explicit FakeHead(int failures = 0) : failures_(failures) {}

  TaskEventRecorder::Sender Sender() {
    return [this](const proto::ReportTaskEventsRequest& report) {
      absl::MutexLock lock(&mu_);
      if (failures_ > 0) {
        --failures_;
        return absl::UnavailableError("the head is away");
      }
      reports_.push_back(report);
      return absl::OkStatus();
    };
  }
  std::vector<proto::ReportTaskEventsRequest> reports() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }

 private:
  absl::Mutex mu_;
  int failures_ ABSL_GUARDED_BY(mu_);
  std::vector<proto::ReportTaskEventsRequest> reports_ ABSL_GUARDED_BY(mu_);
};

TaskEventRecorder::Identity Identity() {
  return {.reporter_id = "node:1",
          .node_id = "node",
          .worker_id = "",
          .pid = 42,
          .address = "127.0.0.1:1"};
}

proto::TaskSpec Spec(int n, const std::string& function = "Square") {
  proto::TaskSpec spec;
  spec.set_return_id(std::string(15, 'a') + static_cast<char>(n));
  spec.set_function(function);
  return spec;
}

proto::Value Ok() {
  proto::Value value;
  value.set_data("x");
  return value;
}

std::vector<proto::TaskEvent> AllEvents(FakeHead& head) {
  std::vector<proto::TaskEvent> events;
  for (const auto& report : head.reports()) {
    events.insert(events.end(), report.events().begin(), report.events().end());
  }
  return events;
}

}  // namespace

TEST_CASE("recorded tasks report their transitions and the worker is told to report its start",
          "[runtime][task_events]") {
  FakeHead head;
  TaskEventRecorder::Options options;
  options.flush_period = absl::Hours(1);  // only the final report
  TaskEventRecorder recorder(
      Identity(), head.Sender(), [] { return std::pair<int64_t, int64_t>(3, 4); }, options);
  proto::TaskSpec spec = Spec(1);
  recorder.Submitted(&spec);
  CHECK(spec.record_events());
  recorder.Pushed(spec);
  recorder.Running(spec);
  spec.set_attempt(1);
  recorder.Retrying(spec, "its worker died");
  proto::Value error;
  error.mutable_error()->set_kind(proto::ErrorInfo::TASK_ERROR);
  error.mutable_error()->set_type("std::runtime_error");
  error.mutable_error()->set_message("boom");
  recorder.Finished(spec, error);
  recorder.Stop();

  const auto reports = head.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].final());
  CHECK(reports[0].seq() == 1);
  CHECK(reports[0].pid() == 42);
  CHECK(reports[0].num_owned_objects() == 3);
  CHECK(reports[0].num_borrowed_objects() == 4);
  const auto events = AllEvents(head);
  REQUIRE(events.size() == 5);
  CHECK(events[0].state() == proto::TaskEvent::SUBMITTED);
  CHECK(events[0].function() == "Square");
  CHECK(events[0].task_id() == spec.return_id());
  CHECK(events[1].state() == proto::TaskEvent::PUSHED);
  CHECK(events[2].state() == proto::TaskEvent::RUNNING);
  CHECK(events[3].state() == proto::TaskEvent::RETRYING);
  CHECK(events[3].attempt() == 1);
  CHECK(events[3].error() == "its worker died");
  CHECK(events[4].state() == proto::TaskEvent::FAILED);
  CHECK(events[4].error() == "std::runtime_error: boom");
  CHECK(events[4].error_type() == "TASK_ERROR");
  CHECK(events[4].time_us() >= events[0].time_us());
}

TEST_CASE("tasks above the rate limit are only counted, and their workers report nothing",
          "[runtime][task_events]") {
  FakeHead head;
  TaskEventRecorder::Options options;
  options.flush_period = absl::Hours(1);
  options.max_tracked_per_second = 2;
  TaskEventRecorder recorder(Identity(), head.Sender(), nullptr, options);
  std::vector<proto::TaskSpec> specs;
  for (int i = 0; i < 5; ++i) specs.push_back(Spec(i));
  for (auto& spec : specs) recorder.Submitted(&spec);
  CHECK(specs[0].record_events());
  CHECK(specs[1].record_events());
  CHECK_FALSE(specs[2].record_events());
  for (auto& spec : specs) {
    recorder.Pushed(spec);
    recorder.Running(spec);
  }
  proto::Value failed;
  failed.mutable_error()->set_kind(proto::ErrorInfo::WORKER_CRASHED);
  for (int i = 0; i < 5; ++i) recorder.Finished(specs[i], i == 4 ? failed : Ok());
  recorder.Stop();
  // Two tasks one by one (submitted, pushed, running, finished each), three counted.
  CHECK(AllEvents(head).size() == 8);
  const auto reports = head.reports();
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].untracked_size() == 1);
  const proto::UntrackedCounts& counts = reports[0].untracked(0);
  CHECK(counts.function() == "Square");
  CHECK(counts.submitted() == 3);
  CHECK(counts.finished() == 2);
  CHECK(counts.failed() == 1);
}

TEST_CASE("a report the head did not take is sent again with the same seq",
          "[runtime][task_events]") {
  FakeHead head(/*failures=*/1);
  TaskEventRecorder::Options options;
  options.flush_period = absl::Milliseconds(10);
  TaskEventRecorder recorder(Identity(), head.Sender(), nullptr, options);
  proto::TaskSpec spec = Spec(1);
  recorder.Submitted(&spec);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (AllEvents(head).empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  recorder.Stop();
  // Seqs stay consecutive (the failed report went again as itself) and the event arrived once.
  const auto reports = head.reports();
  REQUIRE_FALSE(reports.empty());
  for (size_t i = 0; i < reports.size(); ++i) CHECK(reports[i].seq() == i + 1);
  const auto events = AllEvents(head);
  REQUIRE(events.size() == 1);
  CHECK(events[0].state() == proto::TaskEvent::SUBMITTED);
}

TEST_CASE("with recording off nothing is recorded or sent", "[runtime][task_events]") {
  FakeHead head;
  TaskEventRecorder::Options options;
  options.enabled = false;
  TaskEventRecorder recorder(Identity(), head.Sender(), nullptr, options);
  proto::TaskSpec spec = Spec(1);
  recorder.Submitted(&spec);
  CHECK_FALSE(spec.record_events());
  recorder.Finished(spec, Ok());
  recorder.Stop();
  CHECK(head.reports().empty());
}

TEST_CASE("events beyond the buffer are dropped and counted", "[runtime][task_events]") {
  FakeHead head;
  TaskEventRecorder::Options options;
  options.flush_period = absl::Hours(1);
  options.max_buffered_events = 3;
  TaskEventRecorder recorder(Identity(), head.Sender(), nullptr, options);
  proto::TaskSpec spec = Spec(1);
  recorder.Submitted(&spec);
  for (int i = 0; i < 4; ++i) recorder.Pushed(spec);
  recorder.Stop();
  const auto reports = head.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].events_size() == 3);
  CHECK(reports[0].dropped_events() == 2);
}

}  // namespace lumen::internal
