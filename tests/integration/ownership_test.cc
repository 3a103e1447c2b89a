// Ownership against a real cluster: actor creation arguments, refs inside values, large actor
// arguments, and subscriptions left by timed-out waits.
#include <catch2/catch.hpp>
#include <string>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

TEST_CASE("an actor reads its creation argument after the caller dropped it, restarts included",
          "[integration][ownership]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_ownership_driver", "actor-arg"}, 90);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("actor-arg 307200 A"));
  CHECK_THAT(r.output, Contains("after-restart 307200 A"));
}

TEST_CASE("an actor starts with a constructor argument of any size passed by value",
          "[integration][ownership]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_ownership_driver", "large-actor-arg"}, 90);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("large-arg 204800 L"));
  CHECK_THAT(r.output, Contains("huge-arg 3145728 H"));
}

TEST_CASE("a ref that a task returns after only borrowing it resolves to its bytes",
          "[integration][ownership]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_ownership_driver", "returned-borrow"}, 90);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("returned 16 R"));
  CHECK_THAT(r.output, Contains("passed-on 16 R"));
  CHECK_THAT(r.output, Contains("returned 307200 R"));
  CHECK_THAT(r.output, Contains("passed-on 307200 R"));
  CHECK_THAT(r.output, !Contains("error"));
}

TEST_CASE("waits and gets that time out leave no subscription behind", "[integration][ownership]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_ownership_driver", "wait-loop"}, 60);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("timeouts 4000"));
  CHECK_THAT(r.output, Contains("subscriptions 0 0"));
  CHECK_THAT(r.output, Contains("value slow"));
}

TEST_CASE("borrowers of an object whose owner died get OwnerDiedError, never other bytes",
          "[integration][ownership]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_ownership_driver", "owner-death"}, 90);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("before 307200 O"));
  CHECK_THAT(r.output, Contains("after OwnerDiedError"));
  CHECK_THAT(r.output, Contains("stale 0"));
}

TEST_CASE("a borrower that dies releases its borrows", "[integration][ownership]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_ownership_driver", "borrower-death"}, 90);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("kept 1"));
  CHECK_THAT(r.output, Contains("held-by-borrower 1"));
  CHECK_THAT(r.output, Contains("released 1"));
}

TEST_CASE("an object lost with its node is rebuilt by its task, or fails naming the node",
          "[integration][ownership][multinode]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=1000"});
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string token =
      Run({"lumen", "get-auth-token", cluster.TempDirFlag()}).output.substr(0, 64);
  auto start_special = [&](const std::string& dir) {
    return Run({"lumen", "start", "--address=" + cluster.address(), "--token=" + token,
                "--num-cpus=1", "--resources={\"special\": 1}", "--object-store-memory=134217728",
                dir});
  };
  const std::string first = "--temp-dir=" + MakeTempDir();
  const std::string second = "--temp-dir=" + MakeTempDir();
  REQUIRE(start_special(first).exit_code == 0);
  Child driver({"lumen_ownership_driver", "rebuild-lost", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("made 307200 B 307200 B", 60));
  REQUIRE(start_special(second).exit_code == 0);
  REQUIRE(Run({"lumen", "stop", first}).exit_code == 0);
  driver.WriteLine("go");
  const int rc = driver.Wait(90);
  Run({"lumen", "stop", second});
  INFO(driver.Output());
  REQUIRE(rc == 0);
  CHECK_THAT(driver.Output(), Contains("rebuilt 307200 B"));
  CHECK_THAT(driver.Output(), Contains("lost ObjectLostError: ") &&
                                  Contains("was lost with node") && Contains("cannot be rebuilt"));
}
