// The head's record of tasks, built from the events core workers report: one record per task
// (function, state, attempt, where and when it ran, its error), per-function counts, and the
// reporting processes themselves.
//
//   TaskEventStore store;
//   store.Apply(report, absl::Now());
//   nlohmann::json rows = store.List({.state = "RUNNING", .limit = 100});
//
// Retention, so that memory stays bounded whatever runs:
//   - the last `max_finished` (100,000) finished or failed tasks are kept in full; older ones
//     are folded into per-function counts (finished, failed) and dropped;
//   - at most `max_active` (100,000) unfinished tasks are kept; records beyond that are refused
//     and counted as dropped;
//   - tasks a reporter did not record one by one (above its rate limit, see
//     runtime/internal/task_events.h) only count per function;
//   - at most `max_functions` (10,000) distinct function names; more count as "(other)";
//   - a reporter silent for `reporter_timeout` (15 s; live ones report every few seconds) is
//     forgotten, and the unfinished tasks it owned are marked FAILED: their owner is gone.
//
// Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "proto/state.pb.h"

namespace lumen::scheduler {

class TaskEventStore {
 public:
  struct Limits {
    size_t max_finished = 100'000;
    size_t max_active = 100'000;
    size_t max_functions = 10'000;
    absl::Duration reporter_timeout = absl::Seconds(15);
  };
  // Filters of List: each non-empty one must match exactly (state and type ignore case).
  struct Query {
    std::string state{};  // SUBMITTED, SCHEDULED, RUNNING, FINISHED, FAILED
    std::string type{};   // NORMAL_TASK, ACTOR_TASK
    std::string function{};
    std::string task_id{};   // hex
    std::string actor_id{};  // hex
    std::string node_id{};
    std::string worker_id{};  // hex
    size_t limit = 1000;
  };
  // Where a task ran (its latest attempt that reported RUNNING); for an actor call that has not
  // reported it, only the actor is known.
  struct Location {
    std::string node_id{};
    std::string worker_id{};  // bytes
    std::string actor_id{};   // bytes; set for an actor call
  };

  explicit TaskEventStore(Limits limits);
  TaskEventStore() : TaskEventStore(Limits{}) {}

  void Apply(const proto::ReportTaskEventsRequest& report, absl::Time now);
  // Forgets reporters silent for longer than the timeout, failing their unfinished tasks.
  void Sweep(absl::Time now);

  // {"total": matching records, "rows": [newest first, at most limit],
  //  "not_recorded_individually": tasks counted only per function (evicted or untracked)}.
  nlohmann::json List(const Query& query) const;
  // {"functions": [{"function", "type", "state_counts": {...}}], "total", ...}.
  nlohmann::json Summary() const;
  // NOT_FOUND if the task is unknown, or a normal task that never reported RUNNING.
  absl::StatusOr<Location> Locate(const std::string& task_id) const;
  // The processes that report, with their object counts (for `lumen memory`).
  nlohmann::json Reporters() const;
  size_t NumRecords() const;
  // Tasks that ended (finished or failed), recorded or not, since the store was made.
  int64_t NumEnded() const;

 private:
  using TaskKey = std::array<char, 16>;
  struct Reporter {
    std::string reporter_id;
    std::string node_id;
    std::string worker_id;
    int pid = 0;
    std::string address;
    uint64_t last_seq = 0;
    absl::Time last_report;
    int64_t owned_objects = 0;
    int64_t borrowed_objects = 0;
    int64_t active = 0;  // unfinished recorded tasks it owns
    // Unfinished tasks it did not record one by one, by function index.
    absl::flat_hash_map<uint32_t, int64_t> untracked_active;
  };
  struct Record {
    TaskKey id{};
    std::string actor_id;  // bytes; empty for a normal task
    uint32_t function = 0;
    proto::TaskEvent::State state = proto::TaskEvent::SUBMITTED;
    int32_t attempt = 0;
    int64_t submitted_us = 0;
    int64_t pushed_us = 0;
    int64_t running_us = 0;
    int64_t end_us = 0;
    std::shared_ptr<const Reporter> owner;
    std::shared_ptr<const Reporter> executor;
    std::string error;
    std::string error_type;
    std::string last_error;  // of an attempt that was retried
    uint64_t seq = 0;
  };
  struct FunctionCounts {
    std::string name;
    bool actor_task = false;
    int64_t evicted_finished = 0;
    int64_t evicted_failed = 0;
    int64_t untracked_submitted = 0;
    int64_t untracked_finished = 0;
    int64_t untracked_failed = 0;
    int64_t untracked_lost = 0;  // their owner went away before they finished
  };

  static bool Terminal(proto::TaskEvent::State state) {
    return state == proto::TaskEvent::FINISHED || state == proto::TaskEvent::FAILED;
  }
  uint32_t FunctionIndexLocked(const std::string& name, bool actor_task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyEventLocked(const proto::TaskEvent& event, const std::shared_ptr<Reporter>& reporter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkTerminalLocked(Record& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Its owner is gone: the task ends as FAILED with `why`.
  void FailLocked(Record& record, const std::string& why, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The reporter is gone: its unfinished tasks fail with `why`; it is forgotten.
  void ForgetReporterLocked(const std::string& reporter_id, const std::string& why, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nlohmann::json RowLocked(const Record& record) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Limits limits_;

  mutable absl::Mutex mu_;
  std::map<uint64_t, Record> records_ ABSL_GUARDED_BY(mu_);            // by arrival order
  absl::flat_hash_map<TaskKey, uint64_t> index_ ABSL_GUARDED_BY(mu_);  // task id -> seq
  std::deque<uint64_t> finished_order_ ABSL_GUARDED_BY(mu_);
  size_t num_finished_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<FunctionCounts> functions_ ABSL_GUARDED_BY(mu_);  // [0] is "" (not yet known)
  absl::flat_hash_map<std::string, uint32_t> function_index_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Reporter>> reporters_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_records_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_events_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t ended_ ABSL_GUARDED_BY(mu_) = 0;
};

// Exact names of task states as the API shows them.
std::string TaskStateName(proto::TaskEvent::State state);

}  // namespace lumen::scheduler
