// `lumen pi`: estimates pi by Monte Carlo the way the lab asks: one supervisor actor and K worker
// actors that sample in batches and report each batch to the supervisor. The driver hands out
// the batches (two at a time per worker) and hands a batch out again when its worker dies.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace lumen::cli {

struct PiOptions {
  int64_t samples = 100'000'000;
  int workers = -1;  // -1: the cluster's CPUs
  uint64_t seed = 42;
  std::string address;
  std::string temp_dir;
  bool json = false;
};

int RunPi(const PiOptions& options);

struct PiResult {
  double estimate = 0;
  double error = 0;
  int64_t samples = 0;
  int workers = 0;
  double seconds = 0;
  int restarts = 0;         // worker and supervisor actors re-created after they died
  int retried_batches = 0;  // batches sampled again because their worker died
};

// Runs the job on the cluster this process is connected to. Worker actors that die are
// restarted and their batches sampled again, so the result does not change. `progress` (may be
// empty) gets the samples counted so far about five times a second. The estimate depends only on
// `samples` and `seed`, not on the number of workers.
PiResult EstimatePi(int64_t samples, int workers, uint64_t seed,
                    const std::function<void(int64_t done, double seconds)>& progress);

// The sampling kernel: how many of `samples` points drawn from a generator seeded with `seed`
// fall inside the unit quarter circle.
int64_t CountInsideQuarterCircle(int64_t samples, uint64_t seed);

}  // namespace lumen::cli
