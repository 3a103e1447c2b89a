#include "common/mutex_mode.h"

#include "absl/synchronization/mutex.h"

namespace lumen::internal {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace lumen::internal
