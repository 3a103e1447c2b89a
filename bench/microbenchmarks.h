// `lumen microbenchmark`: Ray's core microbenchmarks with Ray's names, definitions and timing
// harness, plus this machine's baselines measured in the same run.
#pragma once

#include <string>

namespace lumen::bench {

struct MicrobenchmarkOptions {
  std::string address;
  std::string temp_dir;
  std::string filter;     // run only benchmarks whose name contains this
  std::string json_path;  // also write the results here
  int num_cpus = -1;      // embedded cluster
  bool quick = false;     // short trials, for smoke tests
};

int RunMicrobenchmarks(const MicrobenchmarkOptions& options);

}  // namespace lumen::bench
