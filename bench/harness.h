// Ray's microbenchmark timing harness (`timeit` in ray/_private/ray_microbenchmark_helpers.py),
// so that Lumen's figures compare one to one with `ray microbenchmark`.
//
//   Result r = TimeIt("single_client_tasks_sync", [&] { rt.Get(f.Remote()); });
//   std::cout << FormatRayLine(r) << "\n";  // "single_client_tasks_sync per second 952.23 +- 12.1"
//   std::string json = ResultsToJson({r});
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace lumen::bench {

// One benchmark's figure: mean and population standard deviation over the trials.
struct Result {
  std::string name;
  double mean = 0;
  double stddev = 0;
  std::string unit = "per second";
};

// Ray's defaults, except that Ray also sleeps before warming up.
struct HarnessOptions {
  double warmup_seconds = 1.0;
  int trials = 4;
  double trial_seconds = 2.0;
};

// Calls `fn` for `warmup_seconds`, counting calls; then runs `trials` trials, each calling `fn` in
// groups of count/10 + 1 until `trial_seconds` have passed. A trial's figure is
// multiplier * calls / elapsed seconds. Runs on the calling thread; `fn` is never called
// concurrently. With trials < 1, returns zeros.
Result TimeIt(const std::string& name, const std::function<void()>& fn, double multiplier = 1,
              const HarnessOptions& options = {});

// Ray's printed line: "<name> per second <mean> +- <stddev>", each rounded to 2 decimals and
// printed as Python prints a float (shortest form, so 12.1 and 952.0, not 12.10 or 952).
std::string FormatRayLine(const Result& r);

// A JSON array of {"name", "mean", "stddev", "unit"} objects, in order.
std::string ResultsToJson(const std::vector<Result>& results);

}  // namespace lumen::bench
