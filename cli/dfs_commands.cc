#include "cli/dfs_commands.h"

#include <unistd.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/cluster_commands.h"
#include "dfs/client.h"
#include "dfs/format.h"
#include "dfs/shell.h"
#include "lumen/lumen.h"

namespace lumen::cli {
namespace {

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "lumen " << command << ": " << message << "\n";
  return 1;
}

// Connects this process to the cluster; false (with a message) if there is none.
bool Connect(const DfsOptions& options, const std::string& command) {
  std::string address;
  std::string token;
  if (!ResolveCluster(options.address, options.temp_dir, &address, &token)) return false;
  try {
    InitOptions init;
    init.address = address;
    init.token = token;
    init.temp_dir = options.temp_dir;
    Init(init);
    return true;
  } catch (const Error& e) {
    Fail(command, e.what());
    return false;
  }
}

}  // namespace

int RunDfsShell(const DfsOptions& options) {
  if (!Connect(options, "dfs")) return 1;
  dfs::ShellOptions shell;
  shell.json = options.json;
  shell.progress = isatty(STDERR_FILENO) != 0 && !options.json;
  const int code = dfs::RunShell(shell, options.script);
  Shutdown();
  return code;
}

int DfsStart(const DfsOptions& options) {
  if (options.scrub_interval_seconds < 0) {
    return Fail("dfs start", "--scrub-interval must not be negative");
  }
  if (!Connect(options, "dfs start")) return 1;
  dfs::StartOptions start;
  start.storage_nodes = options.storage_nodes;
  start.replication = options.replication;
  start.chunk_size = options.chunk_size;
  start.scrub_interval_ms = static_cast<int64_t>(options.scrub_interval_seconds * 1000);
  const absl::StatusOr<dfs::StartedStore> started = dfs::StartStore(start);
  Shutdown();
  if (!started.ok()) return Fail("dfs start", std::string(started.status().message()));
  const dfs::StoreConfig& config = started->config;
  std::cout << (started->kept ? "DFS started again on its kept data: " : "DFS started: ")
            << config.storage_nodes << " storage nodes, replication " << config.replication
            << ", chunk size " << dfs::FormatBytes(config.chunk_size) << ".\n";
  if (started->kept &&
      (!started->name_node_started ||
       started->storage_started.size() < static_cast<size_t>(config.storage_nodes))) {
    // Only what did not run: the rest was up already.
    std::cout << "  Started:";
    if (started->name_node_started) std::cout << " the name node";
    for (int node : started->storage_started) std::cout << " " << dfs::StorageDisplayName(node);
    std::cout << " (the rest was running)\n";
  }
  std::cout << "  Shell: lumen dfs        (or lumen dfs -c \"upload a hello; list\")\n"
            << "  Stop:  lumen dfs stop   (--purge also deletes the data)\n";
  return 0;
}

int DfsStop(const DfsOptions& options) {
  if (!Connect(options, "dfs stop")) return 1;
  const absl::StatusOr<int> stopped = dfs::StopStore(options.purge);
  Shutdown();
  if (!stopped.ok()) return Fail("dfs stop", std::string(stopped.status().message()));
  if (*stopped == 0 && !options.purge) {
    std::cout << "The DFS is not running; nothing to stop.\n";
  } else if (options.purge) {
    std::cout << "DFS stopped (" << *stopped << " actors) and its data deleted.\n";
  } else {
    std::cout << "DFS stopped (" << *stopped
              << " actors); its data is kept for the next `lumen dfs start` "
                 "(`lumen dfs stop --purge` deletes it).\n";
  }
  return 0;
}

int DfsBenchmark(const DfsOptions& options, const bench::DfsBenchmarkOptions& benchmark) {
  if (!Connect(options, "dfs benchmark")) return 1;
  const int code = bench::RunDfsBenchmarks(benchmark);
  Shutdown();
  return code;
}

}  // namespace lumen::cli
