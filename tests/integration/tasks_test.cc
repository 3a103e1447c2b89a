// A C++ driver program against real clusters: tasks, refs, Put/Get/Wait, errors, crashes,
// resources, nested tasks, reference counting and a full store.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::FreePort;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

TEST_CASE("tasks, refs as arguments, Put, Get and Wait give the values a user expects",
          "[integration][tasks]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_test_driver", "basic"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("chain 13"));
  CHECK_THAT(r.output, Contains("put hello"));
  CHECK_THAT(r.output, Contains("big-arg 1.04858e+06"));
  CHECK_THAT(r.output, Contains("big-inline-arg 1.04858e+06"));
  CHECK_THAT(r.output, Contains("big-result 1048576 7"));
  CHECK_THAT(r.output, Contains("many 9900"));
  CHECK_THAT(r.output, Contains("wait 2 1 first-slow-ready 0"));
  CHECK_THAT(r.output, Contains("wait-timeout 0 1"));
  CHECK_THAT(r.output, Contains("get-timeout GetTimeoutError"));
}

TEST_CASE(
    "a driver joins a cluster by --address and LUMEN_ADDRESS, and fails clearly on a "
    "wrong one",
    "[integration][tasks]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto by_flag =
      Run({"lumen_test_driver", "errors", "--address=" + cluster.address(), cluster.TempDirFlag()});
  CHECK(by_flag.exit_code == 0);
  const auto by_env = Run({"lumen_test_driver", "errors", cluster.TempDirFlag()}, 60,
                          {"LUMEN_ADDRESS=" + cluster.address()});
  CHECK(by_env.exit_code == 0);
  const auto wrong =
      Run({"lumen_test_driver", "errors", "--address=127.0.0.1:" + std::to_string(FreePort()),
           cluster.TempDirFlag()},
          60);
  CHECK(wrong.exit_code != 0);
  CHECK_THAT(wrong.output, Contains("cannot reach the head"));
  const auto no_token = Run({"lumen_test_driver", "errors", "--address=" + cluster.address(),
                             "--temp-dir=" + MakeTempDir()},
                            60);
  CHECK(no_token.exit_code != 0);
  CHECK_THAT(no_token.output, Contains("token"));
}

TEST_CASE("a driver with no cluster starts an embedded one and stops it at exit",
          "[integration][tasks]") {
  const std::string temp_dir = MakeTempDir();
  const auto r = Run({"lumen_test_driver", "basic", "--temp-dir=" + temp_dir}, 120);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("chain 13"));
  CHECK(Run({"lumen", "status", "--temp-dir=" + temp_dir}).exit_code != 0);
}

TEST_CASE("an exception in a task reaches Get as TaskError with type, message and function",
          "[integration][tasks]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_test_driver", "errors"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("type=std::invalid_argument"));
  CHECK_THAT(r.output, Contains("message=bad input 7"));
  CHECK_THAT(r.output, Contains("function=Thrower"));
  CHECK_THAT(r.output, Contains("propagated=bad input 8"));
}

TEST_CASE("a worker that crashes mid-task is replaced and the task retried",
          "[integration][tasks]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  for (const std::string how : {"abort", "segfault", "kill"}) {
    SECTION(how) {
      const std::string marker = MakeTempDir() + "/crashed";
      const auto r = cluster.RunProgram({"lumen_test_driver", "crash", how, marker});
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      CHECK(std::filesystem::exists(marker));
      CHECK_THAT(r.output, Contains("crash-once 42"));
      CHECK_THAT(r.output, Contains("always-crash WorkerCrashedError"));
      CHECK_THAT(r.output, Contains("ran 2 times"));
      CHECK_THAT(r.output, Contains("after 5"));
    }
  }
}

TEST_CASE("an infeasible task shows in lumen status and Get with a timeout does not hang",
          "[integration][tasks]") {
  TestCluster cluster(2, 256ll << 20, {"--resources={\"widget\": 2}"});
  REQUIRE(cluster.start_result().exit_code == 0);
  Child driver({"lumen_test_driver", "infeasible", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("submitted", 60));
  bool seen = false;
  for (int i = 0; i < 40 && !seen; ++i) {
    const std::string status = cluster.StatusText();
    seen = status.find("GPU: 1") != std::string::npos &&
           status.find("infeasible") != std::string::npos;
    if (!seen) driver.WaitForOutput("infeasible GetTimeoutError", 0.1);
  }
  CHECK(seen);
  REQUIRE(driver.Wait(60) == 0);
  CHECK_THAT(driver.Output(), Contains("infeasible GetTimeoutError"));
  CHECK_THAT(driver.Output(), Contains("custom 4"));
}

TEST_CASE("a recursive merge sort of 1,000,000 integers finishes on a 2-CPU node",
          "[integration][tasks]") {
  TestCluster cluster(2, 512ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_test_driver", "sort"}, 150);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("sorted ok 1000000"));
}

TEST_CASE("dropping every reference to large objects returns the store to its baseline",
          "[integration][tasks]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const long long baseline = cluster.StoreUsed();
  REQUIRE(baseline == 0);
  Child driver({"lumen_test_driver", "refcount", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("holding", 60));
  CHECK(cluster.StoreUsed() >= 30ll * (4 << 20));
  driver.WriteLine("go");
  REQUIRE(driver.WaitForOutput("dropped", 30));
  long long used = -1;
  for (int i = 0; i < 100 && used != baseline; ++i) {
    used = cluster.StoreUsed();
    if (used != baseline) driver.WaitForOutput("never", 0.05);
  }
  CHECK(used == baseline);
  driver.WriteLine("go");
  CHECK(driver.Wait(30) == 0);
}

TEST_CASE(
    "a full store spills to make room, raises ObjectStoreFullError with sizes when nothing can, "
    "and reuses freed space",
    "[integration][tasks]") {
  TestCluster cluster(1, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_test_driver", "storefull"}, 120);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("second-put ok"));
  CHECK_THAT(r.output, Contains("first-get a"));
  CHECK_THAT(r.output, Contains("huge-put ObjectStoreFullError"));
  CHECK_THAT(r.output, Contains("capacity"));
  CHECK_THAT(r.output, Contains("third-put c"));
}
