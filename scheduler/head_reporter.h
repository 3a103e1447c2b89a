// Delivers a node's reports to the head (actor deaths, drivers that came and went) until the
// head acknowledges each one, in the order they were made. While the head is unreachable
// (restarting, stalled, a network fault) reports wait and are retried with a growing pause (up to
// `max_backoff`); only an answer that retrying cannot change (a bad or unauthenticated request)
// drops a report, with a log line. Every report must be idempotent at the head (the head drops
// reports about stale incarnations and finished jobs), so a retried report is harmless.
//
//   HeadReporter reporter;
//   reporter.Report("death of actor 1a2b", [&] { return head->ReportActorDeath(...); });
//
// Thread-safe. The destructor stops the sending thread; reports not delivered by then are lost
// with the node manager that made them.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace lumen::scheduler {

class HeadReporter {
 public:
  // Sends one report (a gRPC call with its own deadline).
  using Send = std::function<grpc::Status()>;

  explicit HeadReporter(absl::Duration first_backoff = absl::Milliseconds(100),
                        absl::Duration max_backoff = absl::Seconds(2));
  ~HeadReporter();
  HeadReporter(const HeadReporter&) = delete;
  HeadReporter& operator=(const HeadReporter&) = delete;

  // `what` names the report in log lines.
  void Report(std::string what, Send send);
  // Reports not yet acknowledged.
  size_t Pending();
  // Waits up to `timeout` until every report made so far is acknowledged (or dropped).
  bool Flush(absl::Duration timeout);

 private:
  void Loop();

  struct Queued {
    std::string what;
    Send send;
  };

  // Set at construction.
  const absl::Duration first_backoff_;
  const absl::Duration max_backoff_;

  absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lumen::scheduler
