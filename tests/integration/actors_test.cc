// Actors against a real cluster: ordering, handles, names, lifetimes, failures, concurrency.
#include <catch2/catch.hpp>
#include <string>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

TEST_CASE("actor calls run in order per caller, each actor in its own process",
          "[integration][actors]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_actor_driver", "basic"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("alternating 1 1 2 2 3 3 4 4 5 5"));
  CHECK_THAT(r.output, Contains("ordered 1"));
  CHECK_THAT(r.output, Contains("through-task 1015"));
  CHECK_THAT(r.output, Contains("own-process 1"));
  CHECK_THAT(r.output, Contains("method-error counter failed 3"));
  CHECK_THAT(r.output, Contains("still-alive 1015"));
  CHECK_THAT(r.output, Contains("nested 123"));  // 41 + 2 * 41
  CHECK_THAT(r.output, Contains("failed-arg counter failed 9"));
  CHECK_THAT(r.output, Contains("after-failed-arg 1015"));
  CHECK_THAT(r.output, Contains("pipelined-consume 1016"));
}

TEST_CASE("named actors are found from other drivers and detached ones outlive their creator",
          "[integration][actors]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto first = cluster.RunProgram({"lumen_actor_driver", "named"});
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.output, Contains("duplicate-name"));
  CHECK_THAT(first.output, Contains("already exists"));
  CHECK_THAT(first.output, Contains("found 1 101"));
  CHECK_THAT(first.output, Contains("missing 0"));
  CHECK_THAT(first.output, Contains("namespaced 500"));
  CHECK_THAT(first.output, Contains("detached 7"));
  const auto second = cluster.RunProgram({"lumen_actor_driver", "find-detached"});
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK_THAT(second.output, Contains("keeper 8"));
  CHECK_THAT(second.output, Contains("shared-gone 1"));
}

TEST_CASE(
    "dead actors fail calls with ActorDiedError and its cause, and restarts re-run the factory",
    "[integration][actors]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_actor_driver", "failures"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("crash ActorDiedError: "));
  CHECK_THAT(r.output, Contains("killed by signal 9"));
  CHECK_THAT(r.output, Contains("after-crash ActorDiedError"));
  CHECK_THAT(r.output, Contains("killed ActorDiedError: "));
  CHECK_THAT(r.output, Contains("killed by lumen::Kill"));
  CHECK_THAT(r.output, Contains("broken ActorDiedError: "));
  CHECK_THAT(r.output, Contains("std::logic_error: no way"));
  CHECK_THAT(r.output, Contains("restartable 0"));
  CHECK_THAT(r.output, Contains("restarted-state 5 restarted 1"));
  CHECK_THAT(r.output, Contains("kill-with-restart 3"));
  CHECK_THAT(r.output, Contains("killed-while-starting ActorDiedError: "));
  CHECK_THAT(r.output, Contains("killed-while-starting process-gone 1"));
}

TEST_CASE("an actor with max concurrency 4 runs four calls at once", "[integration][actors]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_actor_driver", "concurrent"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("concurrent 1"));
}

TEST_CASE("an actor placed on a second node by its resources dies with that node",
          "[integration][actors]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1000"});
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string node_dir = "--temp-dir=" + MakeTempDir();
  const std::string token =
      Run({"lumen", "get-auth-token", cluster.TempDirFlag()}).output.substr(0, 64);
  const auto node =
      Run({"lumen", "start", "--address=" + cluster.address(), "--token=" + token, "--num-cpus=1",
           "--resources={\"special\": 1}", "--object-store-memory=134217728", node_dir});
  INFO(node.output);
  REQUIRE(node.exit_code == 0);
  CHECK_THAT(cluster.StatusText(), Contains("special    0 / 1"));
  Child driver({"lumen_actor_driver", "other-node", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("remote 11", 60));
  REQUIRE(Run({"lumen", "stop", node_dir}).exit_code == 0);
  driver.WriteLine("go");
  REQUIRE(driver.Wait(90) == 0);
  CHECK_THAT(driver.Output(), Contains("node-died ActorDiedError: "));
  CHECK_THAT(driver.Output(), Contains("its node (127.0.0.1:"));
  const std::string status = cluster.StatusText();
  CHECK_THAT(status, Contains("DEAD"));
}
