// The lab's exercises under examples/, each run against a real cluster and checked.
#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::TestCluster;

namespace {

double NumberAfter(const std::string& text, const std::string& label) {
  std::smatch match;
  if (!std::regex_search(text, match, std::regex(label + " ([0-9.e+-]+)"))) return -1;
  return std::stod(match[1]);
}

}  // namespace

TEST_CASE("the lab's exercises give their expected results", "[integration][examples]") {
  TestCluster cluster(4, 1ll << 30);
  REQUIRE(cluster.start_result().exit_code == 0);

  SECTION("1: four one-second tasks run in parallel") {
    const auto r = cluster.RunProgram({"example_parallel_tasks"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("sum of squares 14"));
    const double seconds = NumberAfter(r.output, "in");
    CHECK(seconds > 0.9);
    CHECK(seconds < 2.5);
  }
  SECTION("2: chains of dependent tasks pass refs and Get once") {
    const auto r = cluster.RunProgram({"example_task_chain"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    for (int i = 0; i < 4; ++i) CHECK_THAT(r.output, Contains("input " + std::to_string(i)));
    CHECK(NumberAfter(r.output, "input 0 loss") != NumberAfter(r.output, "input 3 loss"));
  }
  SECTION("3: two counters called in alternation") {
    const auto r = cluster.RunProgram({"example_counters"});
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("[1, 1, 2, 2, 3, 3, 4, 4, 5, 5]"));
  }
  SECTION("4: Wait returns the first three tasks to finish") {
    const auto r = cluster.RunProgram({"example_wait_first"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("ready 3 unready 3"));
    CHECK_THAT(r.output, Contains("ready finished first: yes"));
  }
  SECTION("5: a weight set Put once is shared by 20 tasks") {
    const auto r = cluster.RunProgram({"example_shared_weights"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("sum of scores 4.75e+09"));
  }
  SECTION("6: a parameter server updated by tasks holding its handle") {
    const auto r = cluster.RunProgram({"example_parameter_server"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(NumberAfter(r.output, "first parameter") == Approx(0.0).margin(1e-9));
  }
  SECTION("7: a parallel merge sort matches std::sort") {
    const auto r = cluster.RunProgram({"example_merge_sort"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("sorted correctly: yes"));
    CHECK_THAT(r.output, Contains("speed-up"));
  }
  SECTION("8: pi with a supervisor actor") {
    const auto r = cluster.RunProgram({"example_pi"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(NumberAfter(r.output, "error") < 0.01);
  }
}
