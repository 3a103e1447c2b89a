// `lumen pi`: estimates pi by Monte Carlo sampling spread over tasks on the cluster.
#pragma once

#include <cstdint>
#include <string>

namespace lumen::cli {

struct PiOptions {
  int64_t samples = 100'000'000;
  int tasks = -1;  // -1: enough tasks of at most 10^7 samples each
  uint64_t seed = 42;
  std::string address;
  std::string temp_dir;
  bool json = false;
};

int RunPi(const PiOptions& options);

// The sampling kernel: how many of `samples` points drawn from a generator seeded with `seed`
// fall inside the unit quarter circle. Deterministic for a given seed.
int64_t CountInsideQuarterCircle(int64_t samples, uint64_t seed);

}  // namespace lumen::cli
