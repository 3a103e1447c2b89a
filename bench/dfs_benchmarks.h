// `lumen dfs benchmark`: the DFS's figures from the issue, each on a store of its own that the
// benchmark starts and purges (so it refuses to run while a DFS is running):
//   - upload and download throughput of one large file with R = 3, beside the object store's
//     own Put throughput (the same bytes in chunk-sized values) measured in the same run;
//   - the time from a storage node's death (SIGKILL) until every chunk is back at R;
//   - list and status latency with many artifacts.
// Needs lumen::Init() (a running cluster: the store's actors are detached).
#pragma once

#include <cstdint>
#include <string>

namespace lumen::bench {

struct DfsBenchmarkOptions {
  uint64_t file_bytes = uint64_t{1} << 30;
  int repair_chunks = 10000;
  uint64_t repair_chunk_size = uint64_t{64} << 10;
  int artifacts = 10000;
  std::string json_path;  // also write the results here
};

// Prints the results; returns the process exit code.
int RunDfsBenchmarks(const DfsBenchmarkOptions& options);

}  // namespace lumen::bench
