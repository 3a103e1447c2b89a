#include "bench/harness.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

namespace lumen::bench {
namespace {

constexpr HarnessOptions kTinyOptions{.warmup_seconds = 0.05, .trials = 2, .trial_seconds = 0.05};

TEST_CASE("TimeIt reports a positive rate for a cheap function after warming up and timing") {
  long long calls = 0;
  const auto start = std::chrono::steady_clock::now();
  const Result r = TimeIt(
      "cheap", [&] { ++calls; }, 1, kTinyOptions);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  CHECK(r.name == "cheap");
  CHECK(r.unit == "per second");
  CHECK(r.mean > 0);
  CHECK(r.stddev >= 0);
  CHECK(calls > 0);
  // Warm-up plus two trials, each running at least its full duration.
  CHECK(elapsed >= 0.15);
  // The rate cannot exceed every call made, counted over the shortest possible timed span.
  CHECK(r.mean <= static_cast<double>(calls) / 0.05);
}

TEST_CASE("TimeIt scales each trial's figure by the multiplier") {
  // A call takes at least 2 ms, so 500 calls/s is the most it can do: a figure above 500 shows the
  // multiplier at work, and 1000 times 500 bounds it.
  const Result r = TimeIt(
      "scaled", [] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }, 1000,
      kTinyOptions);
  CHECK(r.mean > 500);
  CHECK(r.mean <= 1000 * 500);
}

TEST_CASE("TimeIt with no trials returns zeros without calling the function") {
  long long calls = 0;
  HarnessOptions options = kTinyOptions;
  options.warmup_seconds = 0;
  options.trials = 0;
  const Result r = TimeIt(
      "none", [&] { ++calls; }, 1, options);
  CHECK(r.mean == 0);
  CHECK(r.stddev == 0);
  CHECK(calls == 0);
}

TEST_CASE("FormatRayLine prints figures as Ray's Python print of rounded floats does") {
  SECTION("two decimals at most, and no trailing zeros") {
    CHECK(FormatRayLine({.name = "x", .mean = 952.234, .stddev = 12.1}) ==
          "x per second 952.23 +- 12.1");
  }
  SECTION("a whole number keeps one decimal") {
    CHECK(FormatRayLine({.name = "single_client_tasks_sync", .mean = 952.0, .stddev = 0}) ==
          "single_client_tasks_sync per second 952.0 +- 0.0");
  }
  SECTION("rounding to nearest, and tiny values become zero") {
    CHECK(FormatRayLine({.name = "y", .mean = 7691.4567, .stddev = 0.004}) ==
          "y per second 7691.46 +- 0.0");
  }
  SECTION("large figures keep all their integer digits, huge ones go scientific") {
    CHECK(FormatRayLine({.name = "z", .mean = 123456789.125, .stddev = 1e20}) ==
          "z per second 123456789.12 +- 1e+20");
  }
}

TEST_CASE("ResultsToJson writes every result's fields in order, readable back") {
  const std::vector<Result> results = {
      {.name = "a", .mean = 1.5, .stddev = 0.25},
      {.name = "single_client_put_gigabytes", .mean = 20.9, .stddev = 1, .unit = "GB/s"}};
  const nlohmann::json parsed = nlohmann::json::parse(ResultsToJson(results));

  REQUIRE(parsed.is_array());
  REQUIRE(parsed.size() == results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    CHECK(parsed[i].size() == 4);
    CHECK(parsed[i].at("name") == results[i].name);
    CHECK(parsed[i].at("mean").get<double>() == results[i].mean);
    CHECK(parsed[i].at("stddev").get<double>() == results[i].stddev);
    CHECK(parsed[i].at("unit") == results[i].unit);
  }
  CHECK(nlohmann::json::parse(ResultsToJson({})) == nlohmann::json::array());
}

}  // namespace
}  // namespace lumen::bench
