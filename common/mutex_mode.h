// Turns off Abseil's mutex deadlock detector in a production process.
//
// Debian builds its Abseil without NDEBUG, so every absl::Mutex acquisition runs the deadlock
// detector: it records the lock in a per-thread list and, when another lock is held, adds an edge
// to one process-wide lock-order graph under one process-wide lock. On the 2-vCPU test VM that
// costs about 80 ns per uncontended lock and unlock (139 ns instead of 58 ns), and the global
// lock is a point of contention between threads. Lumen's drivers, workers and daemons call this
// once at start; the unit test binary does not, so the tests keep the detector and abort on a
// lock-order cycle. Thread-safe (an atomic store); idempotent.
#pragma once

namespace lumen::internal {

void DisableMutexDeadlockDetection();

}  // namespace lumen::internal
