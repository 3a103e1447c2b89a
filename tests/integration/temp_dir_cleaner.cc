// At the end of each integration test case, removes the folders it made with MakeTempDir if it
// passed; if it failed, keeps them (their session logs say what the cluster did) and names them.
// Only the integration tests link this: the benchmarks share the harness without Catch2.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // Catch2 declares the listener base only with this
#include <catch2/catch.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include "tests/integration/harness.h"

namespace lumen::testing {
namespace {

class TempDirCleaner : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    const bool passed = stats.totals.assertions.failed == 0;
    for (const std::string& dir : TakeTempDirs()) {
      if (passed) {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      } else if (std::filesystem::exists(dir)) {
        std::cerr << "kept for its logs: " << dir << "\n";
      }
    }
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(TempDirCleaner)

}  // namespace lumen::testing
