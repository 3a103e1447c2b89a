#include "runtime/internal/task_events.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "proto/state.grpc.pb.h"

namespace lumen::internal {
namespace {

constexpr absl::Duration kReportTimeout = absl::Seconds(5);
constexpr int64_t kWindowUs = 1'000'000;

int64_t NowMicros() { return absl::GetCurrentTimeNanos() / 1000; }

}  // namespace

TaskEventRecorder::Options TaskEventRecorder::OptionsFromEnvironment() {
  Options options;
  const char* env = std::getenv("LUMEN_TASK_EVENTS");
  options.enabled = env == nullptr || std::string(env) != "0";
  return options;
}

TaskEventRecorder::Sender TaskEventRecorder::SendToHead(const std::string& head_address,
                                                        const std::string& token) {
  std::shared_ptr<proto::StateService::Stub> stub =
      proto::StateService::NewStub(MakeChannel(head_address));
  return [stub, token](const proto::ReportTaskEventsRequest& request) {
    grpc::ClientContext context;
    PrepareContext(&context, token, kReportTimeout);
    proto::ReportTaskEventsReply reply;
    return FromGrpc(stub->ReportTaskEvents(&context, request, &reply), "reporting task events");
  };
}

TaskEventRecorder::TaskEventRecorder(Identity identity, Sender sender, ObjectCounter counter,
                                     Options options)
    : identity_(std::move(identity)),
      sender_(std::move(sender)),
      counter_(std::move(counter)),
      options_(options) {
  if (options_.enabled) thread_ = std::thread([this] { Loop(); });
}

TaskEventRecorder::~TaskEventRecorder() { Stop(); }

TaskEventRecorder::Event TaskEventRecorder::MakeEvent(const proto::TaskSpec& spec,
                                                      proto::TaskEvent::State state) {
  Event event;
  const std::string& id = spec.return_id();
  std::memcpy(event.task_id.data(), id.data(), std::min(id.size(), event.task_id.size()));
  event.state = state;
  event.attempt = spec.attempt();
  event.time_us = NowMicros();
  return event;
}

void TaskEventRecorder::Append(Event event) {
  if (events_.size() >= options_.max_buffered_events) {
    ++dropped_;
    return;
  }
  events_.push_back(std::move(event));
}

void TaskEventRecorder::Submitted(proto::TaskSpec* spec) {
  if (!options_.enabled) return;
  Event event = MakeEvent(*spec, proto::TaskEvent::SUBMITTED);
  absl::MutexLock lock(&mu_);
  if (event.time_us - window_start_us_ >= kWindowUs) {
    window_start_us_ = event.time_us;
    tracked_in_window_ = 0;
  }
  if (tracked_in_window_ >= options_.max_tracked_per_second) {
    Counts& counts = untracked_[spec->function()];
    counts.actor_task = !spec->actor_id().empty();
    ++counts.submitted;
    return;
  }
  ++tracked_in_window_;
  ++active_;
  spec->set_record_events(true);
  event.function = spec->function();
  event.actor_id = spec->actor_id();
  Append(std::move(event));
}

void TaskEventRecorder::Pushed(const proto::TaskSpec& spec) {
  if (!options_.enabled || !spec.record_events()) return;
  Event event = MakeEvent(spec, proto::TaskEvent::PUSHED);
  absl::MutexLock lock(&mu_);
  Append(std::move(event));
}

void TaskEventRecorder::Retrying(const proto::TaskSpec& spec, const std::string& why) {
  if (!options_.enabled || !spec.record_events()) return;
  Event event = MakeEvent(spec, proto::TaskEvent::RETRYING);
  event.error = why;
  absl::MutexLock lock(&mu_);
  Append(std::move(event));
}

void TaskEventRecorder::Finished(const proto::TaskSpec& spec, const proto::Value& value) {
  if (!options_.enabled) return;
  const bool failed = value.has_error();
  if (!spec.record_events()) {
    absl::MutexLock lock(&mu_);
    Counts& counts = untracked_[spec.function()];
    counts.actor_task = !spec.actor_id().empty();
    ++(failed ? counts.failed : counts.finished);
    return;
  }
  Event event = MakeEvent(spec, failed ? proto::TaskEvent::FAILED : proto::TaskEvent::FINISHED);
  if (failed) {
    const proto::ErrorInfo& error = value.error();
    event.error_type = proto::ErrorInfo::Kind_Name(error.kind());
    event.error =
        error.type().empty() ? error.message() : absl::StrCat(error.type(), ": ", error.message());
  }
  absl::MutexLock lock(&mu_);
  --active_;
  Append(std::move(event));
}

void TaskEventRecorder::Running(const proto::TaskSpec& spec) {
  if (!options_.enabled || !spec.record_events()) return;
  Event event = MakeEvent(spec, proto::TaskEvent::RUNNING);
  absl::MutexLock lock(&mu_);
  Append(std::move(event));
}

std::optional<proto::ReportTaskEventsRequest> TaskEventRecorder::TakeReport(bool final,
                                                                            absl::Time now) {
  std::vector<Event> events;
  absl::flat_hash_map<std::string, Counts> untracked;
  int64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    const bool keepalive = now - last_sent_ >= options_.keepalive_period;
    if (events_.empty() && untracked_.empty() && dropped_ == 0 && !final && !keepalive) {
      return std::nullopt;
    }
    events.swap(events_);
    untracked.swap(untracked_);
    dropped = std::exchange(dropped_, 0);
  }
  proto::ReportTaskEventsRequest report;
  report.set_reporter_id(identity_.reporter_id);
  report.set_seq(next_seq_++);
  report.set_node_id(identity_.node_id);
  report.set_worker_id(identity_.worker_id);
  report.set_pid(identity_.pid);
  report.set_address(identity_.address);
  report.set_final(final);
  report.set_dropped_events(dropped);
  if (counter_) {
    const auto [owned, borrowed] = counter_();
    report.set_num_owned_objects(owned);
    report.set_num_borrowed_objects(borrowed);
  }
  report.mutable_events()->Reserve(static_cast<int>(events.size()));
  for (Event& event : events) {
    proto::TaskEvent* out = report.add_events();
    out->set_task_id(event.task_id.data(), event.task_id.size());
    out->set_state(event.state);
    out->set_attempt(event.attempt);
    out->set_time_us(event.time_us);
    if (!event.function.empty()) out->set_function(std::move(event.function));
    if (!event.actor_id.empty()) out->set_actor_id(std::move(event.actor_id));
    if (!event.error.empty()) out->set_error(std::move(event.error));
    if (!event.error_type.empty()) out->set_error_type(std::move(event.error_type));
  }
  for (auto& [function, counts] : untracked) {
    proto::UntrackedCounts* out = report.add_untracked();
    out->set_function(function);
    out->set_actor_task(counts.actor_task);
    out->set_submitted(counts.submitted);
    out->set_finished(counts.finished);
    out->set_failed(counts.failed);
  }
  return report;
}

void TaskEventRecorder::Loop() {
  while (true) {
    bool final = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.flush_period);
      final = stopping_;
    }
    // A report that failed goes again first, with its seq, so that the head counts it once.
    if (unsent_.has_value()) {
      if (!sender_(*unsent_).ok() && !final) continue;
      unsent_.reset();
    }
    const absl::Time now = absl::Now();
    std::optional<proto::ReportTaskEventsRequest> report = TakeReport(final, now);
    if (report.has_value()) {
      const absl::Status status = sender_(*report);
      if (status.ok()) {
        last_sent_ = now;
      } else if (!final) {
        LUMEN_LOG(DEBUG) << status;
        unsent_ = std::move(report);
      }
    }
    if (final) return;
  }
}

void TaskEventRecorder::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace lumen::internal
