#include "scheduler/head_reporter.h"

#include <algorithm>

#include "common/logging.h"

namespace lumen::scheduler {
namespace {

// Answers that a retry cannot change.
bool Permanent(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

HeadReporter::HeadReporter(absl::Duration first_backoff, absl::Duration max_backoff)
    : first_backoff_(first_backoff), max_backoff_(max_backoff) {
  thread_ = std::thread([this] { Loop(); });
}

HeadReporter::~HeadReporter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void HeadReporter::Report(std::string what, Send send) {
  absl::MutexLock lock(&mu_);
  queue_.push_back({std::move(what), std::move(send)});
}

size_t HeadReporter::Pending() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

bool HeadReporter::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> bool { return queue_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&empty), timeout);
}

void HeadReporter::Loop() {
  absl::Duration backoff = first_backoff_;
  int failures = 0;
  absl::MutexLock lock(&mu_);
  while (true) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> bool {
      return stopping_ || !queue_.empty();
    };
    mu_.Await(absl::Condition(&ready));
    if (stopping_) return;
    const Queued report = queue_.front();
    mu_.Unlock();
    const grpc::Status status = report.send();
    mu_.Lock();
    if (status.ok() || Permanent(status)) {
      if (!status.ok()) {
        LUMEN_LOG(WARNING) << "the head refused the report of the " << report.what << ": "
                           << status.error_message();
      }
      queue_.pop_front();
      backoff = first_backoff_;
      failures = 0;
      continue;
    }
    if (failures++ % 20 == 0) {
      LUMEN_LOG(WARNING) << "reporting the " << report.what << " to the head failed ("
                         << status.error_message() << "); retrying";
    }
    // Wait out the pause (or until stopped) before sending it again.
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    backoff = std::min(backoff * 2, max_backoff_);
  }
}

}  // namespace lumen::scheduler
