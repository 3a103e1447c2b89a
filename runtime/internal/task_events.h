// Records the state transitions of the tasks this process owns (submitted, pushed to a worker,
// retried, finished or failed) and of the tasks it runs (running), and sends them to the head
// in batches from a thread of its own, about once a second, off the submission path.
//
//   TaskEventRecorder events(identity, TaskEventRecorder::SendToHead(head, token), counts);
//   events.Submitted(spec);   // owner: decides whether this task is recorded one by one
//   events.Running(spec);     // executing worker
//   events.Finished(spec, value);
//
// Cost control: at most `max_tracked_per_second` tasks a second are recorded one by one (the
// owner marks them in TaskSpec.record_events, so the executing worker reports only those);
// the rest are only counted by function. At most `max_buffered_events` events wait for the
// next report; more are dropped and counted. LUMEN_TASK_EVENTS=0 turns recording off.
//
// Thread-safe: the recording calls may come from any thread and only append to a buffer.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/state.pb.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

class TaskEventRecorder {
 public:
  struct Identity {
    std::string reporter_id{};  // unique per process
    std::string node_id{};
    std::string worker_id{};  // bytes; empty for a driver
    int pid = 0;
    std::string address{};
  };
  struct Options {
    bool enabled = true;
    int max_tracked_per_second = 10000;
    size_t max_buffered_events = 200000;
    absl::Duration flush_period = absl::Seconds(1);
    // A reporter sends at least this often, so that the head knows it lives (and can tell a
    // silent owner of unfinished tasks from a busy one).
    absl::Duration keepalive_period = absl::Seconds(3);
  };
  // Sends one report; an error keeps it for the next attempt (same seq).
  using Sender = std::function<absl::Status(const proto::ReportTaskEventsRequest&)>;
  // The process's owned and borrowed object counts, reported alongside.
  using ObjectCounter = std::function<std::pair<int64_t, int64_t>()>;

  // Options with `enabled` from LUMEN_TASK_EVENTS (anything but "0" is on).
  static Options OptionsFromEnvironment();
  // A sender that calls StateService.ReportTaskEvents on the head.
  static Sender SendToHead(const std::string& head_address, const std::string& token);

  TaskEventRecorder(Identity identity, Sender sender, ObjectCounter counter,
                    Options options = OptionsFromEnvironment());
  ~TaskEventRecorder();
  TaskEventRecorder(const TaskEventRecorder&) = delete;
  TaskEventRecorder& operator=(const TaskEventRecorder&) = delete;

  // Owner side. Submitted sets spec->record_events; the others read it.
  void Submitted(proto::TaskSpec* spec);
  void Pushed(const proto::TaskSpec& spec);
  void Retrying(const proto::TaskSpec& spec, const std::string& why);
  void Finished(const proto::TaskSpec& spec, const proto::Value& value);
  // Executing side.
  void Running(const proto::TaskSpec& spec);

  // Sends what is buffered (a final report) and stops the thread. Idempotent.
  void Stop();

 private:
  struct Event {
    std::array<char, 16> task_id{};
    proto::TaskEvent::State state = proto::TaskEvent::SUBMITTED;
    int32_t attempt = 0;
    int64_t time_us = 0;
    std::string function;  // SUBMITTED
    std::string actor_id;  // SUBMITTED
    std::string error;     // FAILED, RETRYING
    std::string error_type;
  };
  struct Counts {
    bool actor_task = false;
    int64_t submitted = 0;
    int64_t finished = 0;
    int64_t failed = 0;
  };

  void Append(Event event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static Event MakeEvent(const proto::TaskSpec& spec, proto::TaskEvent::State state);
  void Loop();
  // Builds the next report from what is buffered; nullopt if there is nothing to say.
  std::optional<proto::ReportTaskEventsRequest> TakeReport(bool final, absl::Time now);

  // Set at construction.
  const Identity identity_;
  const Sender sender_;
  const ObjectCounter counter_;
  const Options options_;

  absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Counts> untracked_ ABSL_GUARDED_BY(mu_);
  int64_t window_start_us_ ABSL_GUARDED_BY(mu_) = 0;
  int tracked_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t active_ ABSL_GUARDED_BY(mu_) = 0;  // owned tasks submitted and not yet finished
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Only touched by the reporting thread (and by Stop once it has joined it).
  uint64_t next_seq_ = 1;
  std::optional<proto::ReportTaskEventsRequest> unsent_;
  absl::Time last_sent_ = absl::InfinitePast();
  std::thread thread_;
};

// Null-safe forms of the submitters' hooks.
inline void RecordPushed(TaskEventRecorder* events, const proto::TaskSpec& spec) {
  if (events != nullptr) events->Pushed(spec);
}
inline void RecordRetrying(TaskEventRecorder* events, const proto::TaskSpec& spec,
                           const std::string& why) {
  if (events != nullptr) events->Retrying(spec, why);
}

}  // namespace lumen::internal
