// Bounds the work a caller has outstanding toward one destination, in calls and in bytes: past
// the bound, Acquire waits until replies Release enough (backpressure instead of memory).
//
//   InFlightLimiter limiter(FlowLimits::FromEnvironment());
//   limiter.Acquire(frame_bytes);        // in Remote(): may wait
//   ...                                  // reply arrives (any thread):
//   limiter.Release(frame_bytes);
//
// One call larger than the byte bound still goes, alone. On an I/O thread Acquire never waits
// (the replies it would wait for arrive on such threads); it admits the call over the bound.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace lumen::net {

struct FlowLimits {
  size_t max_calls = 10000;
  size_t max_bytes = size_t{64} << 20;
  // Defaults, with $LUMEN_MAX_INFLIGHT_CALLS and $LUMEN_MAX_INFLIGHT_BYTES applied.
  static FlowLimits FromEnvironment();
};

class InFlightLimiter {
 public:
  explicit InFlightLimiter(FlowLimits limits) : limits_(limits) {}

  // Takes one call of `bytes`, waiting while the bounds are reached. `on_wait` (optional) is
  // called once before the first wait and `on_resume` after it (e.g. to lend a CPU back).
  // Returns false, taking nothing, if Cancel was called.
  bool Acquire(size_t bytes, const std::function<void()>& on_wait = nullptr,
               const std::function<void()>& on_resume = nullptr);
  void Release(size_t bytes);
  // Wakes every waiter; later Acquires return false at once.
  void Cancel();

  size_t calls() const;
  size_t bytes() const;

 private:
  bool HasRoomLocked(size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FlowLimits limits_;
  mutable absl::Mutex mu_;
  size_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::net
