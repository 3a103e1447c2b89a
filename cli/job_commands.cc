#include "cli/job_commands.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/cluster_commands.h"
#include "common/rpc.h"
#include "proto/state.grpc.pb.h"

namespace lumen::cli {
namespace {

constexpr absl::Duration kStopWait = absl::Seconds(30);

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "lumen job " << command << ": " << message << "\n";
  return 1;
}

bool Terminal(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "STOPPED";
}

std::unique_ptr<proto::StateService::Stub> Stub(const std::string& address) {
  return proto::StateService::NewStub(internal::MakeChannel(address));
}

std::string Describe(const nlohmann::json& job) {
  std::string out = absl::StrCat("Job '", job["job_id"].get<std::string>(), "' ",
                                 job["state"].get<std::string>());
  const std::string message = job["message"].get<std::string>();
  if (!message.empty()) absl::StrAppend(&out, ": ", message);
  return out;
}

}  // namespace

int JobSubmit(const JobSubmitOptions& options) {
  if (options.command.empty()) {
    return Fail("submit", "give the command after --, e.g. lumen job submit -- lumen pi");
  }
  std::string working_dir = options.working_dir;
  if (working_dir.empty()) working_dir = ".";
  char resolved[PATH_MAX];
  if (realpath(working_dir.c_str(), resolved) == nullptr) {
    return Fail("submit", absl::StrCat("no directory '", working_dir, "'"));
  }
  std::string address;
  std::string token;
  if (!ResolveCluster(options.cluster.address, options.cluster.temp_dir, &address, &token)) {
    return 1;
  }
  proto::SubmitJobRequest request;
  for (const std::string& word : options.command) request.add_argv(word);
  request.set_working_dir(resolved);
  proto::SubmitJobReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, token, absl::Seconds(30));
  const grpc::Status status = Stub(address)->SubmitJob(&context, request, &reply);
  if (!status.ok()) return Fail("submit", status.error_message());
  const std::string id = reply.job_id();
  std::cerr << "Job '" << id << "' submitted.\n";
  if (options.no_wait) {
    std::cout << id << "\n";
    std::cerr << "  Status: lumen job status " << id << "\n"
              << "  Logs:   lumen job logs " << id << " --follow\n"
              << "  Stop:   lumen job stop " << id << "\n";
    return 0;
  }
  std::cerr << "Tailing its output until it ends (Ctrl-C stops the tailing, not the job).\n";
  std::string state;
  // Follows until the job has ended and its log is read to the end.
  const absl::Status followed = PrintLog(address, token, {{"job", id}}, /*follow=*/true, [&]() {
    absl::StatusOr<nlohmann::json> job = QueryState(address, token, "jobs/" + id, {});
    if (!job.ok()) return false;
    state = (*job)["state"].get<std::string>();
    return !Terminal(state);
  });
  if (!followed.ok()) return Fail("submit", std::string(followed.message()));
  absl::StatusOr<nlohmann::json> job = QueryState(address, token, "jobs/" + id, {});
  if (!job.ok()) return Fail("submit", std::string(job.status().message()));
  std::cerr << "\n" << Describe(*job) << "\n";
  return (*job)["state"] == "SUCCEEDED" ? 0 : 1;
}

int JobStatus(const ClusterFlags& cluster, const std::string& job_id, bool json) {
  std::string address;
  std::string token;
  if (!ResolveCluster(cluster.address, cluster.temp_dir, &address, &token)) return 1;
  absl::StatusOr<nlohmann::json> job = QueryState(address, token, "jobs/" + job_id, {});
  if (!job.ok()) return Fail("status", std::string(job.status().message()));
  if (json) {
    std::cout << job->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << Describe(*job) << "\n"
              << "  Command: " << (*job)["entrypoint"].get<std::string>() << "\n"
              << "  Working directory: " << (*job)["working_dir"].get<std::string>() << "\n";
  }
  return 0;
}

int JobLogs(const ClusterFlags& cluster, const std::string& job_id, bool follow) {
  std::string address;
  std::string token;
  if (!ResolveCluster(cluster.address, cluster.temp_dir, &address, &token)) return 1;
  const absl::Status status = PrintLog(address, token, {{"job", job_id}}, follow, [&]() {
    absl::StatusOr<nlohmann::json> job = QueryState(address, token, "jobs/" + job_id, {});
    return job.ok() && !Terminal((*job)["state"].get<std::string>());
  });
  if (!status.ok()) return Fail("logs", std::string(status.message()));
  return 0;
}

int JobStop(const ClusterFlags& cluster, const std::string& job_id) {
  std::string address;
  std::string token;
  if (!ResolveCluster(cluster.address, cluster.temp_dir, &address, &token)) return 1;
  proto::StopJobRequest request;
  request.set_job_id(job_id);
  proto::StopJobReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, token, absl::Seconds(30));
  const grpc::Status status = Stub(address)->StopJob(&context, request, &reply);
  if (!status.ok()) return Fail("stop", status.error_message());
  // It gets SIGTERM now and SIGKILL after a grace period: wait for the end.
  const absl::Time deadline = absl::Now() + kStopWait;
  while (true) {
    absl::StatusOr<nlohmann::json> job = QueryState(address, token, "jobs/" + job_id, {});
    if (!job.ok()) return Fail("stop", std::string(job.status().message()));
    if (Terminal((*job)["state"].get<std::string>())) {
      std::cout << Describe(*job) << "\n";
      return 0;
    }
    if (absl::Now() > deadline) return Fail("stop", "the job did not end in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int JobList(const ClusterFlags& cluster, bool json) {
  ListOptions options;
  options.cluster = cluster;
  options.resource = "jobs";
  options.json = json;
  options.limit = 1000;
  return List(options);
}

}  // namespace lumen::cli
