// Node liveness on an injected monotonic clock.
#include "scheduler/node_liveness.h"

#include <catch2/catch.hpp>

namespace lumen::scheduler {
namespace {

struct FakeClock {
  absl::Duration now = absl::Seconds(100);
  NodeLiveness::Clock clock() {
    return [this] { return now; };
  }
};

// Advances the fake clock in monitor-sized steps, checking after each, as the head does.
std::vector<std::string> RunFor(FakeClock& clock, NodeLiveness& liveness, absl::Duration span) {
  std::vector<std::string> dead;
  for (absl::Duration t; t < span; t += absl::Milliseconds(200)) {
    clock.now += absl::Milliseconds(200);
    for (auto& id : liveness.Check()) dead.push_back(id);
  }
  return dead;
}

TEST_CASE("a silent node is declared dead once after the timeout", "[scheduler][liveness]") {
  FakeClock clock;
  NodeLiveness liveness(absl::Seconds(5), absl::Seconds(1), clock.clock());
  liveness.Heard("a");
  liveness.Heard("b");
  std::vector<std::string> dead;
  for (int i = 0; i < 30; ++i) {
    clock.now += absl::Milliseconds(200);
    liveness.Heard("b");
    for (auto& id : liveness.Check()) dead.push_back(id);
  }
  REQUIRE(dead == std::vector<std::string>{"a"});
  CHECK_FALSE(liveness.IsAlive("a"));
  CHECK(liveness.IsAlive("b"));
  CHECK(RunFor(clock, liveness, absl::Seconds(1)).empty());
  // Heard again: alive again.
  liveness.Heard("a");
  CHECK(liveness.IsAlive("a"));
}

TEST_CASE("a stall of the head itself does not declare the nodes dead", "[scheduler][liveness]") {
  FakeClock clock;
  NodeLiveness liveness(absl::Seconds(5), absl::Seconds(1), clock.clock());
  liveness.Heard("a");
  liveness.Heard("b");
  CHECK(RunFor(clock, liveness, absl::Seconds(2)).empty());
  // Stopped for eight seconds: the next check sees a gap, not eight seconds of silence.
  clock.now += absl::Seconds(8);
  CHECK(liveness.Check().empty());
  CHECK(liveness.IsAlive("a"));
  CHECK(liveness.Silence("a") < absl::Seconds(5));
  // Nodes that stay silent after the stall still die on time.
  CHECK(RunFor(clock, liveness, absl::Seconds(2)).empty());
  CHECK(RunFor(clock, liveness, absl::Seconds(2)).size() == 2);
}

TEST_CASE("silence is measured from the last time a node was heard", "[scheduler][liveness]") {
  FakeClock clock;
  NodeLiveness liveness(absl::Seconds(5), absl::Seconds(1), clock.clock());
  CHECK_FALSE(liveness.Knows("a"));
  liveness.Heard("a");
  clock.now += absl::Milliseconds(700);
  CHECK(liveness.Silence("a") == absl::Milliseconds(700));
  CHECK(liveness.Knows("a"));
  CHECK_FALSE(liveness.IsAlive("unknown"));
}

}  // namespace
}  // namespace lumen::scheduler
