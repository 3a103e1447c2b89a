// lumen::Array read in place from the store, and the pins that keep what is read there: real
// clusters, drivers and workers that check their pointers against their own store mapping.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::TestCluster;

namespace {

// Sum of `field` over the nodes of `lumen status --json`; -1 if it cannot be read.
long long StoreField(const TestCluster& cluster, const std::string& field) {
  const auto result = cluster.RunProgram({"lumen", "status", "--json"}, 30);
  try {
    const auto status = nlohmann::json::parse(result.output);
    long long total = 0;
    for (const auto& node : status.at("nodes")) {
      total += node.at(field).get<long long>();
    }
    return total;
  } catch (const std::exception& e) {
    UNSCOPED_INFO("cannot read " << field << " from `lumen status --json`: " << e.what() << "\n"
                                 << result.output);
    return -1;
  }
}

// Polls `lumen status` (refreshed by heartbeats) until `condition` holds; false after 30 s.
bool WaitForStore(const TestCluster& cluster, const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace

TEST_CASE("arrays from Get and as task and actor arguments are read in place from the store",
          "[integration][zero_copy]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_array_driver", "zero-copy"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("get in-store 1 sum 500000500000 expected 500000500000"));
  // The worker checks the argument's pointer against its own mapping of the store.
  CHECK_THAT(r.output, Contains("ref-arg in-store 1 sum 500000500000"));
  CHECK_THAT(r.output, Contains("value-arg in-store 1 sum 500000500000"));
  CHECK_THAT(r.output, Contains("small-arg in-store 0 sum 6"));  // inline: a private copy
  CHECK_THAT(r.output, Contains("map-get in-store 1 equal 1"));
  CHECK_THAT(r.output, Contains("map-arg in-store 1"));
  CHECK_THAT(r.output,
             Contains("struct-result in-store 1 name dense size 1000000 shape 1000000x1"));
  CHECK_THAT(r.output, Contains("actor-creation-arg in-store 1 sum 500000500000"));
  CHECK_THAT(r.output, Contains("actor-method-arg in-store 1"));
  // A std::vector result is copied out, and equal.
  CHECK_THAT(r.output, Contains("vector-result in-store 0 sum 499999500000 expected 499999500000"));
}

TEST_CASE("views outlive their refs in a driver and in a worker, and a killed worker's pins go",
          "[integration][zero_copy]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  Child driver({"lumen_array_driver", "outlive", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("dropped view in-store 1", 60));
  INFO(driver.Output());
  CHECK_THAT(driver.Output(), Contains("actor-keep in-store 1"));

  // The owner released both objects; the store keeps them for their readers.
  CHECK(WaitForStore(cluster,
                     [&] { return StoreField(cluster, "store_released_pinned_objects") == 2; }));
  CHECK(StoreField(cluster, "store_pinned_objects") == 2);

  // New objects do not land on the released ones: both views still read their own values.
  driver.WriteLine("go");
  REQUIRE(driver.WaitForOutput("actor-pid ", 60));
  const std::string output = driver.Output();
  CHECK_THAT(output, Contains("view sum 500000500000 expected 500000500000"));
  CHECK_THAT(output, Contains("actor sum 500001500000 expected 500001500000"));

  // The driver dropped its view; killing the actor drops the last pin.
  const int actor_pid = std::stoi(output.substr(output.find("actor-pid ") + 10));
  REQUIRE(actor_pid > 0);
  CHECK(WaitForStore(cluster, [&] { return StoreField(cluster, "store_pinned_objects") == 1; }));
  REQUIRE(kill(actor_pid, SIGKILL) == 0);
  CHECK(WaitForStore(cluster, [&] {
    return StoreField(cluster, "store_pinned_objects") == 0 &&
           StoreField(cluster, "store_released_pinned_objects") == 0 &&
           StoreField(cluster, "store_objects") == 4;  // the driver's four new objects
  }));
  driver.WriteLine("done");
  CHECK(driver.Wait(60) == 0);
  CHECK(WaitForStore(cluster, [&] { return cluster.StoreUsed() == 0; }));
}

TEST_CASE("a driver killed while it holds views has its pins released",
          "[integration][zero_copy]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const long long baseline = cluster.StoreUsed();
  REQUIRE(baseline >= 0);
  Child driver({"lumen_array_driver", "hold", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("holding in-store 1", 60));
  CHECK(WaitForStore(cluster, [&] { return StoreField(cluster, "store_pinned_objects") == 1; }));
  CHECK(cluster.StoreUsed() > baseline);
  REQUIRE(kill(driver.pid(), SIGKILL) == 0);
  driver.Wait(10);  // reaped, so that the node manager sees it gone
  CHECK(WaitForStore(cluster, [&] {
    return StoreField(cluster, "store_pinned_objects") == 0 && cluster.StoreUsed() == baseline;
  }));
}
