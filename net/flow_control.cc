#include "net/flow_control.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "net/io_pool.h"

namespace lumen::net {
namespace {

size_t EnvSize(const char* name, size_t fallback) {
  const char* env = std::getenv(name);
  uint64_t value = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &value) && value > 0) return value;
  return fallback;
}

}  // namespace

FlowLimits FlowLimits::FromEnvironment() {
  FlowLimits limits;
  limits.max_calls = EnvSize("LUMEN_MAX_INFLIGHT_CALLS", limits.max_calls);
  limits.max_bytes = EnvSize("LUMEN_MAX_INFLIGHT_BYTES", limits.max_bytes);
  return limits;
}

bool InFlightLimiter::HasRoomLocked(size_t bytes) const {
  if (cancelled_) return true;
  if (calls_ == 0) return true;
  return calls_ < limits_.max_calls && bytes_ + bytes <= limits_.max_bytes;
}

bool InFlightLimiter::Acquire(size_t bytes, const std::function<void()>& on_wait,
                              const std::function<void()>& on_resume) {
  absl::MutexLock lock(&mu_);
  if (!HasRoomLocked(bytes) && !IoPool::OnIoThread()) {
    if (on_wait) {
      mu_.Unlock();
      on_wait();
      mu_.Lock();
    }
    auto room = [this, bytes]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return HasRoomLocked(bytes); };
    mu_.Await(absl::Condition(&room));
    if (on_resume) {
      mu_.Unlock();
      on_resume();
      mu_.Lock();
    }
  }
  if (cancelled_) return false;
  ++calls_;
  bytes_ += bytes;
  return true;
}

void InFlightLimiter::Release(size_t bytes) {
  absl::MutexLock lock(&mu_);
  if (calls_ > 0) --calls_;
  bytes_ = bytes_ >= bytes ? bytes_ - bytes : 0;
}

void InFlightLimiter::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

size_t InFlightLimiter::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

size_t InFlightLimiter::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace lumen::net
