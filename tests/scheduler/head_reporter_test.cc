// Reports to the head sent until acknowledged, against a fake head; the node's head watch.
#include "scheduler/head_reporter.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "scheduler/head_watch.h"

namespace lumen::scheduler {
namespace {

// Fails the first `failures` sends with UNAVAILABLE, then acknowledges; records deliveries.
struct FakeHead {
  grpc::Status Send(const std::string& report) {
    absl::MutexLock lock(&mu);
    ++attempts;
    if (failures > 0) {
      --failures;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "head restarting");
    }
    if (refuse) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad");
    delivered.push_back(report);
    return grpc::Status::OK;
  }
  absl::Mutex mu;
  int failures ABSL_GUARDED_BY(mu) = 0;
  bool refuse ABSL_GUARDED_BY(mu) = false;
  int attempts ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::string> delivered ABSL_GUARDED_BY(mu);
};

TEST_CASE("reports are retried until the head acknowledges them, in order",
          "[scheduler][lifecycle]") {
  FakeHead head;
  {
    absl::MutexLock lock(&head.mu);
    head.failures = 4;
  }
  HeadReporter reporter(absl::Milliseconds(1), absl::Milliseconds(5));
  reporter.Report("a", [&] { return head.Send("a"); });
  reporter.Report("b", [&] { return head.Send("b"); });
  REQUIRE(reporter.Flush(absl::Seconds(10)));
  CHECK(reporter.Pending() == 0);
  absl::MutexLock lock(&head.mu);
  CHECK(head.delivered == std::vector<std::string>{"a", "b"});
  CHECK(head.attempts == 6);
}

TEST_CASE("a report the head refuses for good is dropped, not retried forever",
          "[scheduler][lifecycle]") {
  FakeHead head;
  {
    absl::MutexLock lock(&head.mu);
    head.refuse = true;
  }
  HeadReporter reporter(absl::Milliseconds(1), absl::Milliseconds(5));
  reporter.Report("a", [&] { return head.Send("a"); });
  REQUIRE(reporter.Flush(absl::Seconds(10)));
  absl::MutexLock lock(&head.mu);
  CHECK(head.attempts == 1);
  CHECK(head.delivered.empty());
}

TEST_CASE("a node counts the head lost only after the timeout without an answer",
          "[scheduler][lifecycle]") {
  absl::Duration now = absl::Seconds(10);
  HeadWatch watch(absl::Seconds(3), [&now] { return now; });
  now += absl::Seconds(2);
  CHECK_FALSE(watch.Lost());
  watch.Reached();
  now += absl::Seconds(2);
  CHECK_FALSE(watch.Lost());
  now += absl::Seconds(2);
  CHECK(watch.Lost());
  CHECK(watch.Unreachable() == absl::Seconds(4));
}

}  // namespace
}  // namespace lumen::scheduler
