#include "scheduler/job_table.h"

#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace lumen::scheduler {
namespace {

// Keys sort like the ids they hold.
std::string Key(uint64_t job_id) { return absl::StrFormat("%016x", job_id); }

}  // namespace

JobTable::JobTable(HeadStore* store) : store_(store) {}

absl::Status JobTable::Load() {
  if (store_ == nullptr) return absl::OkStatus();
  auto records = store_->Scan(kTable, "");
  if (!records.ok()) return records.status();
  absl::MutexLock lock(&mu_);
  for (const auto& record : *records) {
    proto::DriverJobRecord job;
    if (!job.ParseFromString(record.value)) {
      LUMEN_LOG(WARNING) << "skipping a malformed job record " << record.key;
      continue;
    }
    jobs_[job.job_id()] = job;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> JobTable::Apply(const proto::DriverJobEvent& event) {
  if (event.job_id() == 0) return absl::InvalidArgumentError("a job report needs a job id");
  absl::MutexLock lock(&mu_);
  proto::DriverJobRecord updated;
  if (auto it = jobs_.find(event.job_id()); it != jobs_.end()) updated = it->second;
  if (updated.finished()) return false;  // the end is final; a late start changes nothing
  const bool was_known = updated.job_id() != 0;
  if (was_known && !event.finished()) {
    // A retried start changes nothing, but the one that brings the hash its first left pending.
    if (!updated.executable_hash_pending() || event.executable_hash_pending()) return false;
    updated.set_executable_hash(event.executable_hash());
    updated.set_executable_hash_pending(false);
    if (auto status = StoreLocked(updated); !status.ok()) return status;
    return false;
  }
  updated.set_job_id(event.job_id());
  if (!event.node_id().empty()) updated.set_node_id(event.node_id());
  if (event.driver_pid() != 0) updated.set_driver_pid(event.driver_pid());
  if (!event.executable().empty()) updated.set_executable(event.executable());
  if (!event.executable_hash().empty()) updated.set_executable_hash(event.executable_hash());
  if (!event.code_source().empty()) updated.set_code_source(event.code_source());
  // Nothing comes after the end: a hash still pending then never comes.
  updated.set_executable_hash_pending(event.executable_hash_pending() && !event.finished());
  if (event.finished()) {
    updated.set_finished(true);
    updated.set_end_time_ms(event.time_ms());
  } else {
    updated.set_start_time_ms(event.time_ms());
  }
  if (auto status = StoreLocked(updated); !status.ok()) return status;
  return event.finished();
}

absl::Status JobTable::StoreLocked(const proto::DriverJobRecord& record) {
  if (store_ != nullptr) {
    if (auto status = store_->Put(kTable, Key(record.job_id()), record.SerializeAsString());
        !status.ok()) {
      return status;
    }
  }
  jobs_[record.job_id()] = record;
  return absl::OkStatus();
}

bool JobTable::Finished(uint64_t job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second.finished();
}

std::optional<proto::DriverJobRecord> JobTable::Get(uint64_t job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

std::vector<proto::DriverJobRecord> JobTable::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<proto::DriverJobRecord> out;
  out.reserve(jobs_.size());
  for (const auto& [id, job] : jobs_) out.push_back(job);
  return out;
}

}  // namespace lumen::scheduler
