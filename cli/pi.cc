#include "cli/pi.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numbers>
#include <vector>

#include "absl/strings/str_format.h"
#include "lumen/lumen.h"

namespace lumen::cli {

int64_t CountInsideQuarterCircle(int64_t samples, uint64_t seed) {
  // splitmix64: fast, and the same stream on every machine. The seed is mixed into the start
  // so that nearby seeds (consecutive batches) do not walk shifted copies of one stream.
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  uint64_t state = mix(seed + 0x9E3779B97F4A7C15ull);
  auto next = [&state, &mix] { return mix(state += 0x9E3779B97F4A7C15ull); };
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

constexpr int64_t kBatch = 1'000'000;

// Collects the workers' reports: the progress everyone can ask about.
class PiSupervisor {
 public:
  static PiSupervisor* Create() {
    // Goes to the actor's worker log, which the dashboard and `lumen logs --actor` show.
    std::cout << "pi supervisor starting" << std::endl;
    return new PiSupervisor();
  }
  int64_t Report(int64_t inside, int64_t samples) {
    std::lock_guard<std::mutex> lock(mu_);
    inside_ += inside;
    samples_ += samples;
    return samples_;
  }
  std::vector<int64_t> Progress() {
    std::lock_guard<std::mutex> lock(mu_);
    return {inside_, samples_};
  }

 private:
  std::mutex mu_;
  int64_t inside_ = 0;
  int64_t samples_ = 0;
};

// Samples its share of the batches (every `stride`-th, from `first`), reporting each one.
class PiWorker {
 public:
  static PiWorker* Create(ActorHandle<PiSupervisor> supervisor, int index) {
    std::cout << "pi worker " << index << " starting" << std::endl;
    return new PiWorker(std::move(supervisor));
  }
  int64_t Run(int64_t total_samples, int64_t first, int64_t stride, uint64_t seed) {
    const int64_t batches = (total_samples + kBatch - 1) / kBatch;
    int64_t inside = 0;
    for (int64_t b = first; b < batches; b += stride) {
      const int64_t n = std::min(kBatch, total_samples - b * kBatch);
      const int64_t hits = CountInsideQuarterCircle(n, seed * 1'000'003 + static_cast<uint64_t>(b));
      supervisor_.Task(&PiSupervisor::Report).Remote(hits, n);
      inside += hits;
    }
    return inside;
  }

 private:
  explicit PiWorker(ActorHandle<PiSupervisor> supervisor) : supervisor_(std::move(supervisor)) {}
  ActorHandle<PiSupervisor> supervisor_;
};

LUMEN_REMOTE(PiSupervisor::Create, &PiSupervisor::Report, &PiSupervisor::Progress, PiWorker::Create,
             &PiWorker::Run);

void DrawProgress(int64_t done, int64_t total, double seconds) {
  const int width = 40;
  const int filled = static_cast<int>(width * std::min(done, total) / std::max<int64_t>(total, 1));
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r[%s] %3d%%  %.1f M samples/s", bar.c_str(),
               static_cast<int>(100 * std::min(done, total) / std::max<int64_t>(total, 1)),
               seconds > 0 ? static_cast<double>(done) / seconds / 1e6 : 0.0);
  std::fflush(stderr);
}

}  // namespace

PiResult EstimatePi(int64_t samples, int workers, uint64_t seed,
                    const std::function<void(int64_t done, double seconds)>& progress) {
  if (workers <= 0) {
    const auto resources = ClusterResources();
    auto cpu = resources.find("CPU");
    workers = std::max(1, cpu == resources.end() ? 1 : static_cast<int>(cpu->second));
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto supervisor = Actor(PiSupervisor::Create).Remote();
  std::vector<ActorHandle<PiWorker>> pool;
  std::vector<ObjectRef<int64_t>> runs;
  for (int w = 0; w < workers; ++w) {
    pool.push_back(Actor(PiWorker::Create).SetResource("CPU", 1).Remote(supervisor, w));
    runs.push_back(pool.back().Task(&PiWorker::Run).Remote(samples, w, workers, seed));
  }
  std::vector<ObjectRef<int64_t>> pending = runs;
  while (!pending.empty()) {
    pending = Wait(pending, static_cast<int>(pending.size()), progress ? 200 : -1).unready;
    if (progress) {
      progress((*Get(supervisor.Task(&PiSupervisor::Progress).Remote()))[1], elapsed());
    }
  }
  int64_t inside = 0;
  for (const auto& hits : Get(runs)) inside += *hits;
  PiResult result;
  result.seconds = elapsed();
  result.samples = samples;
  result.workers = workers;
  result.estimate = 4.0 * static_cast<double>(inside) / static_cast<double>(samples);
  result.error = std::abs(result.estimate - std::numbers::pi);
  for (auto& worker : pool) Kill(worker);
  Kill(supervisor);
  return result;
}

int RunPi(const PiOptions& options) {
  if (options.samples <= 0) {
    std::cerr << "lumen pi: --samples must be positive\n";
    return 1;
  }
  InitOptions init;
  init.address = options.address;
  init.temp_dir = options.temp_dir;
  try {
    Init(init);
    const bool bar = !options.json && isatty(STDERR_FILENO);
    std::function<void(int64_t, double)> progress;
    if (bar) {
      progress = [&](int64_t done, double seconds) {
        DrawProgress(done, options.samples, seconds);
      };
    }
    const PiResult result = EstimatePi(options.samples, options.workers, options.seed, progress);
    if (bar) {
      DrawProgress(options.samples, options.samples, result.seconds);
      std::fprintf(stderr, "\n");
    }
    const double rate = static_cast<double>(result.samples) / result.seconds;
    if (options.json) {
      nlohmann::json out = {{"estimate", result.estimate}, {"error", result.error},
                            {"samples", result.samples},   {"workers", result.workers},
                            {"seed", options.seed},        {"wall_seconds", result.seconds},
                            {"samples_per_second", rate}};
      std::cout << out.dump() << "\n";
    } else {
      std::cout << absl::StrFormat("pi is about %.8f (error %.2e)\n", result.estimate, result.error)
                << absl::StrFormat("%d samples, %d worker actors, %.3f s, %.1f M samples/s\n",
                                   result.samples, result.workers, result.seconds, rate / 1e6);
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
