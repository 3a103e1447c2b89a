// Spilling: a store full of referenced objects writes some to the session folder's spill/ and
// reads them back on Get; the files go when their objects are freed and when the node stops.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::TestCluster;

namespace {

constexpr long long kMiB = 1 << 20;

// Regular files under the session's spill folder.
int SpillFiles(const TestCluster& cluster) {
  const std::filesystem::path dir =
      std::filesystem::path(cluster.temp_dir()) / "session_latest" / "spill";
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) return 0;
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, error)) {
    if (entry.is_regular_file()) ++files;
  }
  return files;
}

nlohmann::json Memory(const TestCluster& cluster) {
  const auto result = cluster.RunProgram({"lumen", "memory", "--json"}, 30);
  try {
    return nlohmann::json::parse(result.output);
  } catch (const std::exception& e) {
    UNSCOPED_INFO("cannot read `lumen memory --json`: " << e.what() << "\n" << result.output);
    return nlohmann::json::object();
  }
}

long long Spilled(const nlohmann::json& memory) {
  long long total = 0;
  for (const auto& node : memory.value("nodes", nlohmann::json::array())) {
    total += node.value("store_spilled_objects", 0LL);
  }
  return total;
}

bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace

TEST_CASE("a full store spills referenced objects to disk and restores them on Get",
          "[integration][spill]") {
  TestCluster cluster(2, 64 * kMiB);
  REQUIRE(cluster.start_result().exit_code == 0);
  // Four objects of 24 MiB each in a 64 MiB store.
  Child driver({"lumen_objects_driver", "spill", std::to_string(3 * kMiB), cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("put 4 round 0", 120));
  INFO(driver.Output());
  CHECK(SpillFiles(cluster) >= 2);
  CHECK(WaitFor([&] { return Spilled(Memory(cluster)) >= 2; }));
  const nlohmann::json memory = Memory(cluster);
  INFO(memory.dump(2));
  bool listed = false;
  for (const auto& object : memory.value("largest_objects", nlohmann::json::array())) {
    listed = listed || object.value("state", "") == "SPILLED";
  }
  CHECK(listed);
  CHECK_THAT(cluster.RunProgram({"lumen", "memory"}, 30).output, Contains("SPILLED"));

  driver.WriteLine("");
  REQUIRE(driver.WaitForOutput("dropped", 120));
  CHECK_THAT(driver.Output(), Contains("restored equal 1"));
  // Freed objects leave no file behind, in memory or on disk.
  CHECK(WaitFor([&] { return SpillFiles(cluster) == 0; }));
  CHECK(WaitFor([&] { return Spilled(Memory(cluster)) == 0 && cluster.StoreUsed() == 0; }));

  // Spilled again, then the node stops: the files go with it.
  driver.WriteLine("");
  REQUIRE(driver.WaitForOutput("put 4 round 1", 120));
  CHECK(SpillFiles(cluster) >= 2);
  const auto stopped = cluster.RunProgram({"lumen", "stop"}, 60);
  CHECK(stopped.exit_code == 0);
  CHECK(SpillFiles(cluster) == 0);
  driver.WriteLine("");
  driver.Wait(30);
}
