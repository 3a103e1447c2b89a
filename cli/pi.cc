#include "cli/pi.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <vector>

#include "absl/strings/str_format.h"
#include "lumen/lumen.h"

namespace lumen::cli {

int64_t CountInsideQuarterCircle(int64_t samples, uint64_t seed) {
  // splitmix64: fast, and the same stream on every machine.
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  constexpr double kScale = 1.0 / 9007199254740992.0;  // 2^-53
  int64_t inside = 0;
  for (int64_t i = 0; i < samples; ++i) {
    const double x = static_cast<double>(next() >> 11) * kScale;
    const double y = static_cast<double>(next() >> 11) * kScale;
    inside += (x * x + y * y <= 1.0) ? 1 : 0;
  }
  return inside;
}

namespace {

int64_t SampleBatch(int64_t samples, uint64_t seed) {
  return CountInsideQuarterCircle(samples, seed);
}
LUMEN_REMOTE(SampleBatch);

constexpr int64_t kMaxBatch = 10'000'000;

void DrawProgress(int64_t done, int64_t total, double seconds) {
  const int width = 40;
  const int filled = total == 0 ? width : static_cast<int>(width * done / total);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r[%s] %3d%%  %.1f M samples/s", bar.c_str(),
               static_cast<int>(total == 0 ? 100 : 100 * done / total),
               seconds > 0 ? static_cast<double>(done) / seconds / 1e6 : 0.0);
  std::fflush(stderr);
}

}  // namespace

int RunPi(const PiOptions& options) {
  if (options.samples <= 0) {
    std::cerr << "lumen pi: --samples must be positive\n";
    return 1;
  }
  int tasks = options.tasks;
  if (tasks <= 0) tasks = static_cast<int>((options.samples + kMaxBatch - 1) / kMaxBatch);
  if (tasks > options.samples) tasks = static_cast<int>(options.samples);
  InitOptions init;
  init.address = options.address;
  init.temp_dir = options.temp_dir;
  try {
    Init(init);
    const auto start = std::chrono::steady_clock::now();
    std::vector<ObjectRef<int64_t>> refs;
    std::vector<int64_t> sizes;
    for (int i = 0; i < tasks; ++i) {
      const int64_t n = options.samples / tasks + (i < options.samples % tasks ? 1 : 0);
      sizes.push_back(n);
      refs.push_back(Task(SampleBatch).Remote(n, options.seed + static_cast<uint64_t>(i)));
    }
    const bool progress = !options.json && isatty(STDERR_FILENO);
    int64_t inside = 0;
    int64_t done = 0;
    std::vector<ObjectRef<int64_t>> pending = refs;
    while (!pending.empty()) {
      auto [ready, rest] = Wait(pending, 1, progress ? 200 : -1);
      for (const auto& ref : ready) {
        inside += *Get(ref);
        for (size_t i = 0; i < refs.size(); ++i) {
          if (refs[i] == ref) done += sizes[i];
        }
      }
      pending = std::move(rest);
      if (progress) {
        DrawProgress(
            done, options.samples,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    }
    if (progress) std::fprintf(stderr, "\n");
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double estimate =
        4.0 * static_cast<double>(inside) / static_cast<double>(options.samples);
    const double error = std::abs(estimate - std::numbers::pi);
    if (options.json) {
      nlohmann::json out = {{"estimate", estimate},
                            {"error", error},
                            {"samples", options.samples},
                            {"tasks", tasks},
                            {"seed", options.seed},
                            {"wall_seconds", seconds},
                            {"samples_per_second", static_cast<double>(options.samples) / seconds}};
      std::cout << out.dump() << "\n";
    } else {
      std::cout << absl::StrFormat("pi is about %.8f (error %.2e)\n", estimate, error)
                << absl::StrFormat("%d samples in %d tasks, %.3f s, %.1f M samples/s\n",
                                   options.samples, tasks, seconds,
                                   static_cast<double>(options.samples) / seconds / 1e6);
    }
    Shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "lumen pi: " << e.what() << "\n";
    Shutdown();
    return 1;
  }
}

}  // namespace lumen::cli
