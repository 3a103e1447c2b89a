// Lifecycle benchmarks, each on clusters it starts with `lumen start` in a temporary folder on
// loopback addresses, each printing its figure beside the baseline it is compared with:
//
//   lumen_lifecycle_bench death [--reps=3]
//     Time from `kill -9` of a node's daemon (which ends its workers: the whole node) to the
//     head declaring the node dead, with default settings, beside Ray's default for the event.
//   lumen_lifecycle_bench head-restart [--actors=10000]
//     Time for a head killed with `kill -9` and started again on its session folder to serve
//     (status and a named-actor lookup answered), with --actors actor records in its table,
//     beside the same restart with an empty table, measured in the same run.
//   lumen_lifecycle_bench pi-kills [--samples=N] [--kill-every-ms=2000]
//     `lumen pi` throughput while one worker actor is killed every 2 s, as a fraction of its
//     undisturbed throughput in the same run.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/ids.h"
#include "common/process.h"
#include "common/rpc.h"
#include "proto/control.grpc.pb.h"
#include "scheduler/actor_directory.h"
#include "scheduler/head_store.h"

namespace {

namespace proto = lumen::proto;
using Clock = std::chrono::steady_clock;

// Ray's defaults for the same event (src/ray/common/ray_config_def.h in ray-project/ray): the
// GCS health-checks each raylet every health_check_period_ms and declares it dead after
// health_check_failure_threshold failed checks in a row, each failing at once when the process is
// gone (connection refused) or after health_check_timeout_ms when the host does not answer.
constexpr double kRayHealthCheckPeriodS = 3.0;
constexpr int kRayHealthCheckFailureThreshold = 5;
constexpr double kRayHealthCheckTimeoutS = 10.0;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Runs a shell command line of this program's own making; its output is discarded.
int Shell(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str());
}

std::string Output(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// The recorded daemon pids of the session `session_dir`.
std::vector<int> DaemonPids(const std::string& session_dir) {
  std::vector<int> pids;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(session_dir + "/processes", error)) {
    pids.push_back(std::atoi(entry.path().stem().string().c_str()));
  }
  return pids;
}

bool WaitGone(int pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (kill(pid, 0) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return kill(pid, 0) != 0;
}

// A temporary folder for one cluster, stopped and removed when this goes.
class Cluster {
 public:
  Cluster() {
    const std::string self = lumen::internal::SelfExecutable();
    lumen_ = self.substr(0, self.rfind('/')) + "/lumen";
    char dir_template[] = "/tmp/lumen-lifecycle-bench-XXXXXX";
    dir_ = mkdtemp(dir_template);
    port_ = 20000 + static_cast<int>(getpid() % 20000);
  }
  ~Cluster() {
    for (const auto& dir : node_dirs_) Shell(absl::StrCat(lumen_, " stop --temp-dir=", dir));
    Shell(absl::StrCat(lumen_, " stop --temp-dir=", dir_));
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    for (const auto& dir : node_dirs_) std::filesystem::remove_all(dir, ignored);
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  std::string HeadFlags() const {
    return absl::StrCat("--ip=127.0.0.1 --port=", port_, " --dashboard-port=-1 --temp-dir=", dir_);
  }
  bool StartHead(const std::string& flags) {
    if (Shell(absl::StrCat(lumen_, " start --head ", HeadFlags(), " ", flags)) != 0) return false;
    session_ = std::filesystem::canonical(dir_ + "/session_latest").string();
    token_ = ReadLine(session_ + "/token");
    return true;
  }
  // A node on `ip` with its own temp dir; returns its session folder ("" if it failed).
  std::string StartNode(const std::string& ip, const std::string& flags) {
    char dir_template[] = "/tmp/lumen-lifecycle-bench-node-XXXXXX";
    const std::string dir = mkdtemp(dir_template);
    node_dirs_.push_back(dir);
    if (Shell(absl::StrCat(lumen_, " start --address=", address(), " --token=", token_,
                           " --ip=", ip, " --temp-dir=", dir, " ", flags)) != 0) {
      return "";
    }
    return std::filesystem::canonical(dir + "/session_latest").string();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  const std::string& token() const { return token_; }
  const std::string& session() const { return session_; }
  const std::string& dir() const { return dir_; }
  const std::string& lumen() const { return lumen_; }

 private:
  std::string lumen_;
  std::string dir_;
  std::vector<std::string> node_dirs_;
  std::string session_;
  std::string token_;
  int port_ = 0;
};

// ---- death -------------------------------------------------------------------------------

// Whether the head reports the node at `ip` alive (nullopt: not listed or no answer).
std::optional<bool> NodeAlive(const Cluster& cluster, const std::string& ip) {
  auto status =
      lumen::internal::FetchClusterStatus(cluster.address(), cluster.token(), absl::Seconds(2));
  if (!status.ok()) return std::nullopt;
  std::optional<bool> alive;
  for (const auto& node : status->nodes()) {
    if (node.ip() == ip) alive = alive.value_or(false) || node.alive();
  }
  return alive;
}

int Death(int reps) {
  Cluster cluster;
  if (!cluster.StartHead("--num-cpus=1")) {
    std::cerr << "cannot start the head\n";
    return 1;
  }
  std::vector<double> seconds;
  for (int rep = 0; rep < reps; ++rep) {
    const std::string ip = absl::StrCat("127.0.0.", 2 + rep);
    const std::string session = cluster.StartNode(ip, "--num-cpus=1");
    const std::vector<int> pids = session.empty() ? std::vector<int>{} : DaemonPids(session);
    if (pids.empty() || NodeAlive(cluster, ip) != std::optional<bool>(true)) {
      std::cerr << "cannot start a node on " << ip << "\n";
      return 1;
    }
    const auto killed_at = Clock::now();
    for (int pid : pids) kill(pid, SIGKILL);
    while (NodeAlive(cluster, ip) != std::optional<bool>(false) && Since(killed_at) < 60) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    seconds.push_back(Since(killed_at));
    std::cout << absl::StrFormat("node_death_detected_s %.2f (rep %d)\n", seconds.back(), rep + 1);
  }
  double sum = 0;
  for (double s : seconds) sum += s;
  std::cout << absl::StrFormat(
      "lumen: node death declared after %.2f s on average (defaults: heartbeat every 0.5 s, "
      "dead after 5 s of silence)\n"
      "ray (defaults): health check every %.0f s, dead after %d failed checks in a row: about "
      "%.0f s when the raylet's process is gone, up to %.0f s when its host does not answer "
      "(%.0f s timeout per check)\n"
      "ratio lumen/ray %.2f\n",
      sum / static_cast<double>(seconds.size()), kRayHealthCheckPeriodS,
      kRayHealthCheckFailureThreshold, kRayHealthCheckPeriodS * kRayHealthCheckFailureThreshold,
      kRayHealthCheckTimeoutS * kRayHealthCheckFailureThreshold, kRayHealthCheckTimeoutS,
      sum / static_cast<double>(seconds.size()) /
          (kRayHealthCheckPeriodS * kRayHealthCheckFailureThreshold));
  return 0;
}

// ---- head-restart --------------------------------------------------------------------------

// `count` records of detached named actors, ALIVE on a node that is gone, as a head writes them.
absl::Status WriteActorRecords(const std::string& session, int count) {
  auto store = lumen::scheduler::HeadStore::Open(session + "/head.db");
  if (!store.ok()) return store.status();
  std::vector<lumen::scheduler::HeadStore::Mutation> batch;
  batch.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    proto::ActorRecord record;
    const std::string id = lumen::internal::NewObjectId();
    proto::ActorSpec* spec = record.mutable_spec();
    spec->set_actor_id(id);
    spec->set_factory(absl::StrCat("BenchActor", i % 20, "::Create"));
    spec->set_name(absl::StrCat("bench-", i));
    spec->set_detached(true);
    (*spec->mutable_resources())["CPU"] = 0.01;
    proto::ActorInfo* info = record.mutable_info();
    info->set_actor_id(id);
    info->set_state(proto::ActorInfo::ALIVE);
    info->set_name(spec->name());
    info->set_class_name(spec->factory());
    info->set_detached(true);
    info->set_address(absl::StrCat("127.0.0.9:", 30000 + i % 1000));
    info->set_pid(100000 + i);
    record.set_node_address("127.0.0.9:29999");
    record.set_incarnation(1);
    batch.push_back({lumen::scheduler::kActorTable, id, record.SerializeAsString()});
  }
  return (*store)->Write(batch);
}

// Kills the head with SIGKILL, then starts it again on its session folder; returns the seconds
// from that start until it answers a status request and a lookup of actor `name`.
double RestartAndServe(Cluster& cluster, const std::string& name, int records) {
  for (int pid : DaemonPids(cluster.session())) {
    kill(pid, SIGKILL);
    WaitGone(pid, 10);
  }
  if (records > 0) {
    if (auto written = WriteActorRecords(cluster.session(), records); !written.ok()) {
      std::cerr << "cannot write the actor records: " << written << "\n";
      return -1;
    }
  }
  const auto start = Clock::now();
  std::thread restart([&] {
    Shell(absl::StrCat(cluster.lumen(), " start --head --session-dir=", cluster.session(), " ",
                       cluster.HeadFlags(), " --num-cpus=1"));
  });
  double served = -1;
  while (Since(start) < 60) {
    // A new channel each time: one that failed to connect waits out gRPC's reconnect backoff.
    auto head = proto::HeadService::NewStub(lumen::internal::MakeChannel(cluster.address()));
    auto status = lumen::internal::FetchClusterStatus(cluster.address(), cluster.token(),
                                                      absl::Milliseconds(500));
    proto::GetActorInfoRequest request;
    request.set_name(name);
    proto::ActorInfo info;
    grpc::ClientContext context;
    lumen::internal::PrepareContext(&context, cluster.token(), absl::Milliseconds(500));
    const grpc::Status found = status.ok() ? head->GetActorInfo(&context, request, &info)
                                           : grpc::Status(grpc::StatusCode::UNAVAILABLE, "");
    // An empty table answers NOT_FOUND; a full one must find the actor.
    if (status.ok() && (records > 0 ? found.ok() && info.name() == name
                                    : found.error_code() == grpc::StatusCode::NOT_FOUND)) {
      served = Since(start);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  restart.join();
  return served;
}

int HeadRestart(int actors) {
  Cluster cluster;
  if (!cluster.StartHead("--num-cpus=1")) {
    std::cerr << "cannot start the head\n";
    return 1;
  }
  const double empty = RestartAndServe(cluster, "bench-0", 0);
  const double full = RestartAndServe(cluster, absl::StrCat("bench-", actors - 1), actors);
  if (empty < 0 || full < 0) {
    std::cerr << "the restarted head did not serve within 60 s\n";
    return 1;
  }
  std::cout << absl::StrFormat(
      "head_restart_empty_s %.3f (killed with SIGKILL, restarted on its session folder, "
      "until status and a named-actor lookup answer)\n"
      "head_restart_%d_actors_s %.3f\n"
      "ratio full/empty %.2f\n",
      empty, actors, full, full / empty);
  return 0;
}

// ---- pi-kills ------------------------------------------------------------------------------

nlohmann::json RunPi(const Cluster& cluster, int64_t samples) {
  const std::string out =
      Output(absl::StrCat(cluster.lumen(), " pi --json --workers=2 --samples=", samples,
                          " --temp-dir=", cluster.dir(), " 2>/dev/null"));
  const size_t brace = out.find('{');
  return brace == std::string::npos ? nlohmann::json()
                                    : nlohmann::json::parse(out.substr(brace), nullptr, false);
}

// Pids of the ALIVE PiWorker actors.
std::vector<int> PiWorkerPids(const Cluster& cluster) {
  const nlohmann::json actors = nlohmann::json::parse(
      Output(absl::StrCat(cluster.lumen(), " list actors --json --temp-dir=", cluster.dir(),
                          " 2>/dev/null")),
      nullptr, false);
  std::vector<int> pids;
  for (const auto& actor : actors.is_array() ? actors : nlohmann::json::array()) {
    if (actor.value("class_name", "") == "PiWorker" && actor.value("state", "") == "ALIVE" &&
        actor.contains("pid")) {
      pids.push_back(actor["pid"].get<int>());
    }
  }
  return pids;
}

int PiKills(int64_t samples, int kill_every_ms) {
  Cluster cluster;
  if (!cluster.StartHead("--num-cpus=2")) {
    std::cerr << "cannot start the head\n";
    return 1;
  }
  const nlohmann::json calm = RunPi(cluster, samples);
  std::atomic<bool> done{false};
  int kills = 0;
  std::thread killer([&] {
    std::mt19937 rng(11);
    auto next = Clock::now() + std::chrono::milliseconds(kill_every_ms);
    while (!done) {
      if (Clock::now() < next) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      next += std::chrono::milliseconds(kill_every_ms);
      const std::vector<int> pids = PiWorkerPids(cluster);
      if (!pids.empty() && kill(pids[rng() % pids.size()], SIGKILL) == 0) ++kills;
    }
  });
  const nlohmann::json disturbed = RunPi(cluster, samples);
  done = true;
  killer.join();
  if (!calm.is_object() || !disturbed.is_object()) {
    std::cerr << "lumen pi failed\n";
    return 1;
  }
  const double calm_rate = calm["samples_per_second"].get<double>();
  const double disturbed_rate = disturbed["samples_per_second"].get<double>();
  std::cout << absl::StrFormat(
      "pi_undisturbed %.1f M samples/s (%.1f s, estimate %.6f)\n"
      "pi_one_worker_killed_every_%d_ms %.1f M samples/s (%.1f s, estimate %.6f, %d kills, %d "
      "restarts)\n"
      "ratio disturbed/undisturbed %.2f\n",
      calm_rate / 1e6, calm["wall_seconds"].get<double>(), calm["estimate"].get<double>(),
      kill_every_ms, disturbed_rate / 1e6, disturbed["wall_seconds"].get<double>(),
      disturbed["estimate"].get<double>(), kills, disturbed["restarts"].get<int>(),
      disturbed_rate / calm_rate);
  return 0;
}

int Usage() {
  std::cerr << "usage: lumen_lifecycle_bench death [--reps=N]\n"
               "       lumen_lifecycle_bench head-restart [--actors=N]\n"
               "       lumen_lifecycle_bench pi-kills [--samples=N] [--kill-every-ms=N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  int reps = 3;
  int actors = 10'000;
  int64_t samples = 4'000'000'000;
  int kill_every_ms = 2000;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag, auto* out) {
      return absl::StartsWith(arg, flag) &&
             absl::SimpleAtoi(arg.substr(std::string(flag).size()), out) && *out > 0;
    };
    if (!value("--reps=", &reps) && !value("--actors=", &actors) &&
        !value("--samples=", &samples) && !value("--kill-every-ms=", &kill_every_ms)) {
      return Usage();
    }
  }
  if (mode == "death") return Death(reps);
  if (mode == "head-restart") return HeadRestart(actors);
  if (mode == "pi-kills") return PiKills(samples, kill_every_ms);
  return Usage();
}
