#include "cli/pi.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numbers>
#include <set>
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
// Batches each worker has queued or running at once: the next one is there when one ends.
constexpr int kWindow = 2;
// A batch whose worker died this many times in a row fails the job (a crash loop).
constexpr int kMaxBatchAttempts = 8;

// Collects the workers' reports: the progress everyone can ask about. A retried batch is
// counted once.
class PiSupervisor {
 public:
  static PiSupervisor* Create() {
    // Goes to the actor's worker log, which the dashboard and `lumen logs --actor` show.
    std::cout << "pi supervisor starting" << std::endl;
    return new PiSupervisor();
  }
  int64_t Report(int64_t batch, int64_t inside, int64_t samples) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reported_.insert(batch).second) {
      inside_ += inside;
      samples_ += samples;
    }
    return samples_;
  }
  std::vector<int64_t> Progress() {
    std::lock_guard<std::mutex> lock(mu_);
    return {inside_, samples_};
  }

 private:
  std::mutex mu_;
  std::set<int64_t> reported_;
  int64_t inside_ = 0;
  int64_t samples_ = 0;
};

// Samples the batches it is given, reporting each one to the supervisor. Holds no state the
// job needs, so a restarted worker simply takes the next batch.
class PiWorker {
 public:
  static PiWorker* Create(ActorHandle<PiSupervisor> supervisor, int index) {
    std::cout << "pi worker " << index << (WasCurrentActorRestarted() ? " restarting" : " starting")
              << std::endl;
    return new PiWorker(std::move(supervisor));
  }
  int64_t RunBatch(int64_t total_samples, int64_t batch, uint64_t seed) {
    const int64_t n = std::min(kBatch, total_samples - batch * kBatch);
    const int64_t hits =
        CountInsideQuarterCircle(n, seed * 1'000'003 + static_cast<uint64_t>(batch));
    supervisor_.Task(&PiSupervisor::Report).Remote(batch, hits, n);
    return hits;
  }

 private:
  explicit PiWorker(ActorHandle<PiSupervisor> supervisor) : supervisor_(std::move(supervisor)) {}
  ActorHandle<PiSupervisor> supervisor_;
};

LUMEN_REMOTE(PiSupervisor::Create, &PiSupervisor::Report, &PiSupervisor::Progress, PiWorker::Create,
             &PiWorker::RunBatch);

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
  // Restarted without limit: a crash loop ends the job through kMaxBatchAttempts instead.
  auto supervisor = Actor(PiSupervisor::Create).SetMaxRestarts(-1).Remote();
  std::vector<ActorHandle<PiWorker>> pool;
  pool.reserve(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    pool.push_back(
        Actor(PiWorker::Create).SetResource("CPU", 1).SetMaxRestarts(-1).Remote(supervisor, w));
  }
  const int64_t batches = (samples + kBatch - 1) / kBatch;
  std::deque<int64_t> todo;
  for (int64_t b = 0; b < batches; ++b) todo.push_back(b);
  std::vector<int> attempts(static_cast<size_t>(batches), 0);
  std::vector<int> load(static_cast<size_t>(workers), 0);
  struct Running {
    int64_t batch;
    int worker;
  };
  std::map<std::string, Running> running;  // by object id
  std::vector<ObjectRef<int64_t>> pending;
  auto dispatch = [&] {
    for (int w = 0; w < workers && !todo.empty(); ++w) {
      while (load[w] < kWindow && !todo.empty()) {
        const int64_t b = todo.front();
        todo.pop_front();
        pending.push_back(pool[w].Task(&PiWorker::RunBatch).Remote(samples, b, seed));
        running[pending.back().id()] = {b, w};
        ++load[w];
      }
    }
  };
  PiResult result;
  int64_t inside = 0;
  int64_t done = 0;
  double next_progress = 0;
  dispatch();
  while (!pending.empty()) {
    auto waited = Wait(pending, 1, progress ? 200 : -1);
    pending = std::move(waited.unready);
    for (const auto& ref : waited.ready) {
      const Running what = running.at(ref.id());
      running.erase(ref.id());
      --load[what.worker];
      try {
        inside += *Get(ref);
        done += std::min(kBatch, samples - what.batch * kBatch);
      } catch (const ActorDiedError& e) {
        // Its worker died while it ran (the worker restarts): sample the batch again.
        if (++attempts[what.batch] >= kMaxBatchAttempts) {
          throw Error(absl::StrFormat("batch %d failed %d times, the last time with: %s",
                                      what.batch, kMaxBatchAttempts, e.what()));
        }
        ++result.retried_batches;
        todo.push_front(what.batch);
      }
    }
    dispatch();
    if (progress && elapsed() >= next_progress) {
      progress(done, elapsed());
      next_progress = elapsed() + 0.2;
    }
  }
  result.seconds = elapsed();
  result.samples = samples;
  result.workers = workers;
  result.estimate = 4.0 * static_cast<double>(inside) / static_cast<double>(samples);
  result.error = std::abs(result.estimate - std::numbers::pi);
  result.restarts = NumRestarts(supervisor);
  for (auto& worker : pool) {
    result.restarts += NumRestarts(worker);
    Kill(worker);
  }
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
      nlohmann::json out = {{"estimate", result.estimate},
                            {"error", result.error},
                            {"samples", result.samples},
                            {"workers", result.workers},
                            {"seed", options.seed},
                            {"wall_seconds", result.seconds},
                            {"samples_per_second", rate},
                            {"restarts", result.restarts},
                            {"retried_batches", result.retried_batches}};
      std::cout << out.dump() << "\n";
    } else {
      std::cout << absl::StrFormat("pi is about %.8f (error %.2e)\n", result.estimate, result.error)
                << absl::StrFormat("%d samples, %d worker actors, %.3f s, %.1f M samples/s\n",
                                   result.samples, result.workers, result.seconds, rate / 1e6);
      if (result.restarts > 0 || result.retried_batches > 0) {
        std::cout << absl::StrFormat("%d actor restarts, %d batches sampled again\n",
                                     result.restarts, result.retried_batches);
      }
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
