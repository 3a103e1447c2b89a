// `lumen job submit|status|logs|stop|list`: drivers the head runs on its machine (see
// scheduler/job_manager.h), managed through the head's StateService.
#pragma once

#include <string>
#include <vector>

#include "cli/state_commands.h"

namespace lumen::cli {

struct JobSubmitOptions {
  ClusterFlags cluster;
  std::string working_dir;  // default: this process's current directory
  bool no_wait = false;
  std::vector<std::string> command;
};

// Each returns the process exit code and prints errors to stderr. Submit without --no-wait
// streams the job's output and exits 0 only if the job succeeded.
int JobSubmit(const JobSubmitOptions& options);
int JobStatus(const ClusterFlags& cluster, const std::string& job_id, bool json);
int JobLogs(const ClusterFlags& cluster, const std::string& job_id, bool follow);
int JobStop(const ClusterFlags& cluster, const std::string& job_id);
int JobList(const ClusterFlags& cluster, bool json);

}  // namespace lumen::cli
