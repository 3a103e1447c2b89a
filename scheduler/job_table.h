// The head's table of jobs: one per driver, from the moment its node manager reports it
// connected until it reports it left. Kept in the head's store (table "jobs") when one is
// given, written before the report is acknowledged, and read back by a restarted head.
//
//   JobTable jobs(store);
//   absl::StatusOr<bool> ended = jobs.Apply(event);  // true: a running job just finished
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/control.pb.h"
#include "scheduler/head_store.h"

namespace lumen::scheduler {

class JobTable {
 public:
  // `store` may be null (nothing is kept); it must outlive the table.
  explicit JobTable(HeadStore* store);

  // Reads the jobs a previous head kept. Records that do not parse are skipped with a log line.
  [[nodiscard]] absl::Status Load();
  // Applies a driver's start or end. Idempotent: a repeated report changes nothing, but for the
  // start that brings the executable's hash its first start left pending. True when it ends a
  // job that was not finished before (its actors must end now).
  [[nodiscard]] absl::StatusOr<bool> Apply(const proto::DriverJobEvent& event);
  bool Finished(uint64_t job_id) const;
  std::optional<proto::DriverJobRecord> Get(uint64_t job_id) const;
  // Every job, oldest first.
  std::vector<proto::DriverJobRecord> List() const;

  static constexpr char kTable[] = "jobs";

 private:
  // Writes `record` to the store (if any), then to the table.
  absl::Status StoreLocked(const proto::DriverJobRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  HeadStore* const store_;

  mutable absl::Mutex mu_;
  std::map<uint64_t, proto::DriverJobRecord> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::scheduler
