// `lumen dfs` (the shell), `lumen dfs start` and `lumen dfs stop`: connect to the running
// cluster (never an embedded one: the store's actors must outlive the command) and hand over
// to the DFS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bench/dfs_benchmarks.h"

namespace lumen::cli {

struct DfsOptions {
  std::string address;  // head HOST:PORT; empty: LUMEN_ADDRESS or the local cluster
  std::string temp_dir;
  // The shell.
  bool json = false;
  std::optional<std::string> script;  // -c "cmd; cmd"
  // start
  // Unset: a kept store's, or the defaults (4, 3, 1 MiB).
  std::optional<int> storage_nodes;
  std::optional<int> replication;
  std::optional<uint64_t> chunk_size;
  double scrub_interval_seconds = 60;
  // stop
  bool purge = false;
};

// Each returns the process exit code and prints errors to stderr.
int RunDfsShell(const DfsOptions& options);
int DfsStart(const DfsOptions& options);
int DfsStop(const DfsOptions& options);
// `lumen dfs benchmark`: bench/dfs_benchmarks.h.
int DfsBenchmark(const DfsOptions& options, const bench::DfsBenchmarkOptions& benchmark);

}  // namespace lumen::cli
