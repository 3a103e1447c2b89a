#include "scheduler/task_event_store.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace lumen::scheduler {
namespace {

constexpr char kOtherFunctions[] = "(other)";

// Later states of one attempt win over earlier ones.
int Rank(proto::TaskEvent::State state) {
  switch (state) {
    case proto::TaskEvent::SUBMITTED:
    case proto::TaskEvent::RETRYING:
      return 0;
    case proto::TaskEvent::PUSHED:
      return 1;
    case proto::TaskEvent::RUNNING:
      return 2;
    default:
      return 3;
  }
}

double Millis(int64_t micros) { return static_cast<double>(micros) / 1000.0; }

}  // namespace

std::string TaskStateName(proto::TaskEvent::State state) {
  switch (state) {
    case proto::TaskEvent::SUBMITTED:
    case proto::TaskEvent::RETRYING:
      return "SUBMITTED";
    case proto::TaskEvent::PUSHED:
      return "SCHEDULED";
    case proto::TaskEvent::RUNNING:
      return "RUNNING";
    case proto::TaskEvent::FINISHED:
      return "FINISHED";
    case proto::TaskEvent::FAILED:
      return "FAILED";
    default:
      return "UNKNOWN";
  }
}

TaskEventStore::TaskEventStore(Limits limits) : limits_(limits) {
  absl::MutexLock lock(&mu_);
  functions_.push_back(FunctionCounts{});
}

uint32_t TaskEventStore::FunctionIndexLocked(const std::string& name, bool actor_task) {
  if (name.empty()) return 0;
  auto it = function_index_.find(name);
  if (it != function_index_.end()) return it->second;
  std::string key = name;
  if (functions_.size() > limits_.max_functions) {
    key = kOtherFunctions;
    it = function_index_.find(key);
    if (it != function_index_.end()) return it->second;
  }
  const auto index = static_cast<uint32_t>(functions_.size());
  FunctionCounts counts;
  counts.name = key;
  counts.actor_task = actor_task;
  functions_.push_back(std::move(counts));
  function_index_.emplace(std::move(key), index);
  return index;
}

void TaskEventStore::Apply(const proto::ReportTaskEventsRequest& report, absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Reporter>& slot = reporters_[report.reporter_id()];
  if (slot == nullptr) {
    slot = std::make_shared<Reporter>();
    slot->reporter_id = report.reporter_id();
  }
  if (report.seq() != 0 && report.seq() <= slot->last_seq) return;  // sent again: applied once
  slot->last_seq = report.seq();
  slot->last_report = now;
  slot->node_id = report.node_id();
  slot->worker_id = report.worker_id();
  slot->pid = report.pid();
  slot->address = report.address();
  slot->owned_objects = report.num_owned_objects();
  slot->borrowed_objects = report.num_borrowed_objects();
  dropped_events_ += report.dropped_events();
  const std::shared_ptr<Reporter> reporter = slot;
  for (const proto::TaskEvent& event : report.events()) ApplyEventLocked(event, reporter);
  for (const proto::UntrackedCounts& counts : report.untracked()) {
    const uint32_t index = FunctionIndexLocked(counts.function(), counts.actor_task());
    FunctionCounts& function = functions_[index];
    function.untracked_submitted += counts.submitted();
    function.untracked_finished += counts.finished();
    function.untracked_failed += counts.failed();
    ended_ += counts.finished() + counts.failed();
    reporter->untracked_active[index] += counts.submitted() - counts.finished() - counts.failed();
  }
  EvictLocked();
  if (report.final()) {
    ForgetReporterLocked(
        report.reporter_id(),
        absl::StrCat("its owner (pid ", report.pid(), ") shut down before the task finished"),
        absl::ToUnixMicros(now));
  }
}

void TaskEventStore::ApplyEventLocked(const proto::TaskEvent& event,
                                      const std::shared_ptr<Reporter>& reporter) {
  if (event.task_id().size() != std::tuple_size_v<TaskKey>) return;
  TaskKey key;
  std::memcpy(key.data(), event.task_id().data(), key.size());
  auto found = index_.find(key);
  Record* record = nullptr;
  if (found != index_.end()) {
    record = &records_[found->second];
  } else {
    const size_t active = records_.size() - num_finished_;
    if (active >= limits_.max_active) {
      ++dropped_records_;
      return;
    }
    const uint64_t seq = next_seq_++;
    record = &records_[seq];
    record->id = key;
    record->seq = seq;
    index_.emplace(key, seq);
  }
  const proto::TaskEvent::State state = event.state();
  switch (state) {
    case proto::TaskEvent::SUBMITTED:
      if (record->owner == nullptr) {
        record->owner = reporter;
        if (!Terminal(record->state)) ++reporter->active;
      }
      record->function = FunctionIndexLocked(event.function(), !event.actor_id().empty());
      record->actor_id = event.actor_id();
      record->submitted_us = event.time_us();
      break;
    case proto::TaskEvent::PUSHED:
      if (event.attempt() >= record->attempt) record->pushed_us = event.time_us();
      break;
    case proto::TaskEvent::RUNNING:
      if (event.attempt() >= record->attempt) {
        record->running_us = event.time_us();
        record->executor = reporter;
      }
      break;
    case proto::TaskEvent::RETRYING:
      record->last_error = event.error();
      break;
    case proto::TaskEvent::FINISHED:
    case proto::TaskEvent::FAILED:
      record->end_us = event.time_us();
      record->error = event.error();
      record->error_type = event.error_type();
      break;
    default:
      return;
  }
  if (Terminal(record->state)) return;
  // Events of one task come from two processes and may arrive out of order: a newer attempt
  // wins, and within an attempt the later state; an end is final.
  const bool newer_attempt = event.attempt() > record->attempt;
  if (Terminal(state) || newer_attempt ||
      (event.attempt() == record->attempt && Rank(state) > Rank(record->state))) {
    record->attempt = std::max(record->attempt, event.attempt());
    record->state = state;
    if (Terminal(state)) MarkTerminalLocked(*record);
  }
}

void TaskEventStore::MarkTerminalLocked(Record& record) {
  finished_order_.push_back(record.seq);
  ++num_finished_;
  ++ended_;
  if (record.owner != nullptr) {
    auto it = reporters_.find(record.owner->reporter_id);
    if (it != reporters_.end() && it->second->active > 0) --it->second->active;
  }
}

void TaskEventStore::FailLocked(Record& record, const std::string& why, int64_t now_us) {
  record.state = proto::TaskEvent::FAILED;
  record.error_type = "OWNER_DIED";
  record.error = why;
  record.end_us = now_us;
  MarkTerminalLocked(record);
}

void TaskEventStore::EvictLocked() {
  while (num_finished_ > limits_.max_finished && !finished_order_.empty()) {
    const uint64_t seq = finished_order_.front();
    finished_order_.pop_front();
    auto it = records_.find(seq);
    if (it == records_.end()) continue;
    FunctionCounts& function = functions_[it->second.function];
    ++(it->second.state == proto::TaskEvent::FAILED ? function.evicted_failed
                                                    : function.evicted_finished);
    index_.erase(it->second.id);
    records_.erase(it);
    --num_finished_;
  }
}

void TaskEventStore::ForgetReporterLocked(const std::string& reporter_id, const std::string& why,
                                          int64_t now_us) {
  auto it = reporters_.find(reporter_id);
  if (it == reporters_.end()) return;
  const std::shared_ptr<Reporter> reporter = it->second;
  reporters_.erase(it);
  for (const auto& [index, active] : reporter->untracked_active) {
    if (active > 0) functions_[index].untracked_lost += active;
  }
  if (reporter->active <= 0) return;
  for (auto& [seq, record] : records_) {
    if (Terminal(record.state) || record.owner == nullptr ||
        record.owner->reporter_id != reporter_id) {
      continue;
    }
    FailLocked(record, why, now_us);
  }
  EvictLocked();
}

void TaskEventStore::Sweep(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, int>> silent;
  for (const auto& [id, reporter] : reporters_) {
    if (now - reporter->last_report > limits_.reporter_timeout) {
      silent.emplace_back(id, reporter->pid);
    }
  }
  const int64_t now_us = absl::ToUnixMicros(now);
  for (const auto& [id, pid] : silent) {
    ForgetReporterLocked(id,
                         absl::StrCat("its owner (pid ", pid, ") stopped reporting for ",
                                      absl::FormatDuration(limits_.reporter_timeout),
                                      "; it probably exited or crashed"),
                         now_us);
  }
  // A task whose owner never reported it (the owner died before its first report) ends too.
  int64_t owned_active = 0;
  for (const auto& [id, reporter] : reporters_) owned_active += reporter->active;
  if (static_cast<int64_t>(records_.size() - num_finished_) <= owned_active) return;
  const int64_t timeout_us = absl::ToInt64Microseconds(limits_.reporter_timeout);
  for (auto& [seq, record] : records_) {
    const int64_t last = std::max({record.submitted_us, record.pushed_us, record.running_us});
    if (Terminal(record.state) || record.owner != nullptr || now_us - last <= timeout_us) continue;
    FailLocked(record, "its owner never reported it; it probably exited or crashed", now_us);
  }
  EvictLocked();
}

nlohmann::json TaskEventStore::RowLocked(const Record& record) const {
  nlohmann::json row;
  row["task_id"] = internal::Hex(std::string(record.id.data(), record.id.size()));
  row["function"] = functions_[record.function].name;
  row["type"] = record.actor_id.empty() ? "NORMAL_TASK" : "ACTOR_TASK";
  row["actor_id"] = internal::Hex(record.actor_id);
  row["state"] = TaskStateName(record.state);
  row["attempt"] = record.attempt;
  row["node_id"] = record.executor != nullptr ? record.executor->node_id : "";
  row["worker_id"] = record.executor != nullptr ? internal::Hex(record.executor->worker_id) : "";
  row["worker_pid"] = record.executor != nullptr ? record.executor->pid : 0;
  row["owner_pid"] = record.owner != nullptr ? record.owner->pid : 0;
  row["submitted_ms"] = Millis(record.submitted_us);
  row["scheduled_ms"] = Millis(record.pushed_us);
  row["start_ms"] = Millis(record.running_us);
  row["end_ms"] = Millis(record.end_us);
  const int64_t start = record.running_us != 0 ? record.running_us : record.pushed_us;
  row["duration_ms"] =
      record.end_us != 0 && start != 0 ? Millis(std::max<int64_t>(0, record.end_us - start)) : 0.0;
  row["error"] = record.error;
  row["error_type"] = record.error_type;
  row["last_error"] = record.last_error;
  return row;
}

nlohmann::json TaskEventStore::List(const Query& query) const {
  const std::string state = absl::AsciiStrToUpper(query.state);
  const std::string type = absl::AsciiStrToUpper(query.type);
  std::string task_id;
  std::string actor_id;
  std::string worker_id;
  internal::Unhex(query.task_id, &task_id);
  internal::Unhex(query.actor_id, &actor_id);
  internal::Unhex(query.worker_id, &worker_id);
  absl::MutexLock lock(&mu_);
  // Filter values become what records hold (state numbers, a function index), so that a scan
  // of every record compares integers; a value nothing can have matches nothing.
  std::array<bool, proto::TaskEvent::State_ARRAYSIZE> states{};
  bool possible = true;
  if (!state.empty()) {
    for (int s = 0; s < proto::TaskEvent::State_ARRAYSIZE; ++s) {
      states[s] = TaskStateName(static_cast<proto::TaskEvent::State>(s)) == state;
    }
    possible = std::find(states.begin(), states.end(), true) != states.end();
  }
  possible = possible && (type.empty() || type == "NORMAL_TASK" || type == "ACTOR_TASK");
  uint32_t function = 0;
  if (!query.function.empty()) {
    auto it = function_index_.find(query.function);
    possible = possible && it != function_index_.end();
    if (it != function_index_.end()) function = it->second;
  }
  auto matches = [&](const Record& record) {
    if (!possible) return false;
    if (!state.empty() && !states[record.state]) return false;
    if (!type.empty() && record.actor_id.empty() != (type == "NORMAL_TASK")) return false;
    if (!query.function.empty() && record.function != function) return false;
    if (!query.task_id.empty() &&
        (task_id.size() != record.id.size() ||
         std::memcmp(record.id.data(), task_id.data(), task_id.size()) != 0)) {
      return false;
    }
    if (!query.actor_id.empty() && record.actor_id != actor_id) return false;
    if (!query.node_id.empty() &&
        (record.executor == nullptr || record.executor->node_id != query.node_id)) {
      return false;
    }
    if (!query.worker_id.empty() &&
        (record.executor == nullptr || record.executor->worker_id != worker_id)) {
      return false;
    }
    return true;
  };
  const bool filtered = !state.empty() || !type.empty() || !query.function.empty() ||
                        !query.task_id.empty() || !query.actor_id.empty() ||
                        !query.node_id.empty() || !query.worker_id.empty();
  nlohmann::json rows = nlohmann::json::array();
  size_t total = 0;
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (!matches(it->second)) continue;
    ++total;
    if (rows.size() < query.limit) {
      rows.push_back(RowLocked(it->second));
    } else if (!filtered) {
      total = records_.size();
      break;
    }
  }
  int64_t not_recorded = 0;
  for (const FunctionCounts& function : functions_) {
    not_recorded +=
        function.evicted_finished + function.evicted_failed + function.untracked_submitted;
  }
  return {{"total", total}, {"rows", std::move(rows)}, {"not_recorded_individually", not_recorded}};
}

nlohmann::json TaskEventStore::Summary() const {
  absl::MutexLock lock(&mu_);
  // Counts by state number first (cheap per record), names after.
  std::vector<std::array<int64_t, proto::TaskEvent::State_ARRAYSIZE>> by_state(functions_.size());
  for (const auto& [seq, record] : records_) ++by_state[record.function][record.state];
  std::vector<std::map<std::string, int64_t>> counts(functions_.size());
  for (size_t i = 0; i < functions_.size(); ++i) {
    for (int state = 0; state < proto::TaskEvent::State_ARRAYSIZE; ++state) {
      if (by_state[i][state] != 0) {
        counts[i][TaskStateName(static_cast<proto::TaskEvent::State>(state))] += by_state[i][state];
      }
    }
  }
  nlohmann::json functions = nlohmann::json::array();
  int64_t total = 0;
  int64_t not_recorded = 0;
  for (size_t i = 0; i < functions_.size(); ++i) {
    const FunctionCounts& function = functions_[i];
    std::map<std::string, int64_t>& states = counts[i];
    states["FINISHED"] += function.evicted_finished + function.untracked_finished;
    states["FAILED"] +=
        function.evicted_failed + function.untracked_failed + function.untracked_lost;
    const int64_t in_flight = function.untracked_submitted - function.untracked_finished -
                              function.untracked_failed - function.untracked_lost;
    if (in_flight > 0) states["IN_FLIGHT"] += in_flight;
    nlohmann::json state_counts = nlohmann::json::object();
    int64_t function_total = 0;
    for (const auto& [name, n] : states) {
      if (n == 0) continue;
      state_counts[name] = n;
      function_total += n;
    }
    if (function_total == 0) continue;
    total += function_total;
    not_recorded +=
        function.evicted_finished + function.evicted_failed + function.untracked_submitted;
    functions.push_back({{"function", i == 0 ? "(unknown)" : function.name},
                         {"type", function.actor_task ? "ACTOR_TASK" : "NORMAL_TASK"},
                         {"state_counts", std::move(state_counts)},
                         {"total", function_total}});
  }
  std::sort(functions.begin(), functions.end(),
            [](const nlohmann::json& a, const nlohmann::json& b) {
              return a["total"].get<int64_t>() > b["total"].get<int64_t>();
            });
  return {{"functions", std::move(functions)},   {"total", total},
          {"recorded", records_.size()},         {"not_recorded_individually", not_recorded},
          {"dropped_records", dropped_records_}, {"dropped_events", dropped_events_}};
}

absl::StatusOr<TaskEventStore::Location> TaskEventStore::Locate(const std::string& task_id) const {
  std::string bytes;
  if (!internal::Unhex(task_id, &bytes) || bytes.size() != std::tuple_size_v<TaskKey>) {
    return absl::InvalidArgumentError("a task id is 32 hex digits");
  }
  TaskKey key;
  std::memcpy(key.data(), bytes.data(), key.size());
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no task ", task_id, " is recorded (old tasks are dropped after 100,000)"));
  }
  const Record& record = records_.at(it->second);
  if (record.executor != nullptr) {
    return Location{record.executor->node_id, record.executor->worker_id, record.actor_id};
  }
  if (!record.actor_id.empty()) return Location{"", "", record.actor_id};
  return absl::NotFoundError(absl::StrCat("task ", task_id, " has not started on a worker"));
}

nlohmann::json TaskEventStore::Reporters() const {
  absl::MutexLock lock(&mu_);
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [id, reporter] : reporters_) {
    rows.push_back({{"node_id", reporter->node_id},
                    {"worker_id", internal::Hex(reporter->worker_id)},
                    {"pid", reporter->pid},
                    {"address", reporter->address},
                    {"kind", reporter->worker_id.empty() ? "driver" : "worker"},
                    {"owned_objects", reporter->owned_objects},
                    {"borrowed_objects", reporter->borrowed_objects},
                    {"unfinished_tasks", reporter->active}});
  }
  return rows;
}

int64_t TaskEventStore::NumEnded() const {
  absl::MutexLock lock(&mu_);
  return ended_;
}

size_t TaskEventStore::NumRecords() const {
  absl::MutexLock lock(&mu_);
  return records_.size();
}

}  // namespace lumen::scheduler
