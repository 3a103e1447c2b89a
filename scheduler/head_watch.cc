#include "scheduler/head_watch.h"

namespace lumen::scheduler {

HeadWatch::HeadWatch(absl::Duration timeout, NodeLiveness::Clock clock)
    : timeout_(timeout), clock_(std::move(clock)), last_reached_(clock_()) {}

void HeadWatch::Reached() { last_reached_ = clock_(); }

bool HeadWatch::Lost() const { return Unreachable() > timeout_; }

absl::Duration HeadWatch::Unreachable() const { return clock_() - last_reached_; }

}  // namespace lumen::scheduler
