// `lumen list`, `lumen summary`, `lumen memory` and `lumen logs`: the cluster's state as Ray-like
// tables, read from the head's state API (StateService.GetState), the same JSON documents the
// dashboard's /api/ endpoints serve.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace lumen::cli {

// Where the cluster is: --address / LUMEN_ADDRESS, else the local session's head.
struct ClusterFlags {
  std::string address;
  std::string temp_dir;
};

struct ListOptions {
  ClusterFlags cluster;
  std::string resource;              // nodes, actors, tasks, objects, jobs, placement-groups
  std::vector<std::string> filters;  // KEY=VALUE
  int limit = 100;
  bool json = false;
};

struct LogsOptions {
  ClusterFlags cluster;
  std::string actor;
  std::string task;
  std::string node;
  std::string worker;
  std::string job;
  bool follow = false;
};

// Each returns the process exit code and prints errors to stderr.
int List(const ListOptions& options);
int Summary(const ClusterFlags& cluster, const std::string& what, bool json);
int Memory(const ClusterFlags& cluster, bool json);
int Logs(const LogsOptions& options);

// One state API document from the head at `address`.
absl::StatusOr<nlohmann::json> QueryState(const std::string& address, const std::string& token,
                                          const std::string& resource,
                                          const std::map<std::string, std::string>& params);

// Prints a log (params name it, as the state API's `logs` resource takes them) to stdout: the
// last 64 KiB, then, with `follow`, what is appended until `keep_following` returns false
// (checked about twice a second). Returns an error if the log cannot be read.
absl::Status PrintLog(const std::string& address, const std::string& token,
                      std::map<std::string, std::string> params, bool follow,
                      const std::function<bool()>& keep_following);

}  // namespace lumen::cli
