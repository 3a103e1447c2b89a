#include "cli/cluster_commands.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/ids.h"
#include "common/process.h"
#include "common/rpc.h"
#include "common/session.h"
#include "common/session_lookup.h"
#include "proto/control.grpc.pb.h"
#include "scheduler/bundle_resources.h"
#include "scheduler/cluster_usage.h"
#include "scheduler/daemon.h"
#include "scheduler/node_state_name.h"
#include "scheduler/placement_policy.h"

namespace lumen::cli {
namespace {

std::string TempDirOr(const std::string& temp_dir) {
  return temp_dir.empty() ? internal::DefaultTempDir() : temp_dir;
}

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "lumen " << command << ": " << message << "\n";
  return 1;
}

std::string Shape(const google::protobuf::Map<std::string, double>& shape) {
  return scheduler::DescribeShape(scheduler::ToShape(shape));
}

// Opens an existing session for a restarted head: no head may be running in it, the records
// of processes that died with the old head are cleaned up, and the port defaults to the old
// head's (so that its nodes find it again) when `use_old_port`.
absl::StatusOr<internal::Session> ReopenHeadSession(const std::string& dir, int* port,
                                                    bool use_old_port) {
  auto session = internal::Session::Open(dir);
  if (!session.ok()) return session.status();
  if (auto token = session->Token(); !token.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(session->dir(), " has no readable cluster token: ", token.status().message()));
  }
  if (auto live = session->LiveHead(); live.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("a head is already running in ", session->dir(), " (pid ", live->pid,
                     ", address ", live->address, "); stop it first with `lumen stop`"));
  }
  auto gone = session->RemoveDeadRecords();
  if (!gone.ok()) return gone.status();
  // The head's last address: recorded at its start, and in the record of a head that died.
  std::string address;
  std::getline(std::ifstream(session->dir() + "/" + scheduler::kHeadAddressFile), address);
  for (const internal::ProcessRecord& record : *gone) {
    if (record.role == "head") address = record.address;
  }
  const size_t colon = address.rfind(':');
  int old_port = 0;
  if (use_old_port && colon != std::string::npos &&
      absl::SimpleAtoi(address.substr(colon + 1), &old_port)) {
    *port = old_port;
  }
  if (auto status = session->MakeLatest(); !status.ok()) return status;
  return session;
}

// A node contacts the head before it makes anything: a wrong address, an unreachable head or
// a wrong token fails within seconds and leaves nothing behind.
absl::Status CheckHead(const std::string& address, const std::string& token) {
  auto status = internal::FetchClusterStatus(address, token, absl::Seconds(5));
  if (status.ok()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("cannot join the cluster: ", status.status().message()));
}

// The URL the head recorded in the session folder, or "" if it runs no dashboard.
std::string DashboardUrl(const internal::Session& session) {
  std::ifstream file(session.dir() + "/" + scheduler::kDashboardUrlFile);
  std::string url;
  std::getline(file, url);
  return url;
}

}  // namespace

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%.0f %s", bytes, units[unit])
                   : absl::StrFormat("%.1f %s", bytes, units[unit]);
}

int Start(const StartOptions& options) {
  if (options.head == !options.address.empty()) {
    return Fail("start", "pass exactly one of --head or --address=HEAD:PORT");
  }
  if (options.port < -1 || options.port > 65535) {
    return Fail("start", absl::StrCat("--port must be between 0 and 65535, not ", options.port));
  }
  if (options.object_store_memory != 0 && options.object_store_memory < (1 << 20)) {
    return Fail("start", "--object-store-memory must be at least 1048576 bytes");
  }
  scheduler::DaemonConfig config;
  config.head = options.head;
  config.ip = options.ip;
  config.node_ip = options.node_ip;
  config.port = options.port >= 0 ? options.port : (options.head ? 6379 : 0);
  config.head_address = options.address;
  config.num_cpus = options.num_cpus;
  config.object_store_memory = options.object_store_memory;
  config.heartbeat_timeout_ms = options.heartbeat_timeout_ms;
  config.head_lost_timeout_ms = options.head_lost_timeout_ms;
  config.max_workers = options.max_workers;
  config.dashboard_host = options.dashboard_host;
  config.dashboard_port = options.dashboard_port;
  if (!options.resources_json.empty()) {
    try {
      const auto json = nlohmann::json::parse(options.resources_json);
      if (!json.is_object()) throw std::runtime_error("not a JSON object");
      for (const auto& [name, value] : json.items()) {
        if (!value.is_number() || value.get<double>() < 0) {
          throw std::runtime_error("resource '" + name + "' needs a non-negative number");
        }
        if (name == "CPU") throw std::runtime_error("give CPUs with --num-cpus");
        config.resources[name] = value.get<double>();
      }
    } catch (const std::exception& e) {
      return Fail("start", absl::StrCat("--resources must be a JSON object of names to ",
                                        "amounts, like '{\"GPU\": 1}': ", e.what()));
    }
  }
  if (!options.session_dir.empty() && !options.head) {
    return Fail("start", "--session-dir reopens a head's session; nodes join with --address");
  }
  const std::string temp_dir = TempDirOr(options.temp_dir);
  absl::StatusOr<internal::Session> session = absl::UnknownError("no session yet");
  std::optional<internal::ProcessRecord> head;
  if (!options.session_dir.empty()) {
    session = ReopenHeadSession(options.session_dir, &config.port, options.port < 0);
    if (!session.ok()) return Fail("start", std::string(session.status().message()));
  } else {
    auto latest = internal::Session::OpenLatest(temp_dir);
    if (latest.ok()) head = latest->LiveHead();
    if (options.head && head.has_value()) {
      return Fail("start",
                  absl::StrCat("a head is already running in ", temp_dir, " (pid ", head->pid,
                               ", address ", head->address, "); stop it first with `lumen stop`"));
    }
    if (!options.head) {
      // Before anything is made here (session folder, daemon, shared memory).
      std::string token = options.token;
      if (token.empty() && std::getenv("LUMEN_TOKEN") != nullptr)
        token = std::getenv("LUMEN_TOKEN");
      if (token.empty() && head.has_value()) token = latest->Token().value_or("");
      if (!token.empty()) {
        if (auto reached = CheckHead(options.address, token); !reached.ok()) {
          return Fail("start", std::string(reached.message()));
        }
      }
    }
    // A node on the head's machine joins the head's session; elsewhere it starts its own.
    session = (!options.head && head.has_value()) ? std::move(latest)
                                                  : internal::Session::Create(temp_dir);
    if (!session.ok()) return Fail("start", std::string(session.status().message()));
  }
  if (!options.head) {
    std::string token = options.token;
    if (token.empty() && std::getenv("LUMEN_TOKEN") != nullptr) token = std::getenv("LUMEN_TOKEN");
    if (!token.empty()) {
      // The node's daemon reads the cluster token from its session folder.
      auto existing = session->Token();
      if (!existing.ok() || *existing != token) {
        FILE* file = std::fopen((session->dir() + "/token").c_str(), "w");
        if (file == nullptr) return Fail("start", "cannot write the token file");
        std::fputs(token.c_str(), file);
        std::fclose(file);
      }
    } else if (!head.has_value()) {
      return Fail("start",
                  "joining a cluster needs its token: pass --token or set LUMEN_TOKEN "
                  "(run `lumen get-auth-token` on the head)");
    }
  }
  config.session_dir = session->dir();
  if (!options.head) {
    if (auto recorded = internal::RecordJoinedHead(*session, options.address); !recorded.ok()) {
      return Fail("start", std::string(recorded.message()));
    }
  }
  internal::SpawnOptions spawn;
  spawn.argv = {internal::SelfExecutable()};
  spawn.env = {{"LUMEN_ROLE", "daemon"}, {"LUMEN_DAEMON_CONFIG", scheduler::ToJson(config)}};
  spawn.log_path = session->LogPath(options.head ? "head.log" : "node.log");
  spawn.detach = true;
  int pid = 0;
  auto address = internal::StartDaemon(spawn, absl::Seconds(60), &pid);
  if (!address.ok()) return Fail("start", std::string(address.status().message()));
  if (options.head) {
    std::cout << "Lumen head " << (options.session_dir.empty() ? "started" : "restarted") << " at "
              << *address << " (pid " << pid << ").\n"
              << "  Session:   " << session->dir() << "\n";
    if (auto url = DashboardUrl(*session); !url.empty()) {
      std::cout << "  Dashboard: " << url << " (log in with `lumen get-auth-token`)\n";
    }
    std::cout << "  Add nodes: lumen start --address=" << *address
              << " --token=$(lumen get-auth-token)\n"
              << "  Drivers on this machine connect by themselves; elsewhere set "
                 "LUMEN_ADDRESS="
              << *address << " and LUMEN_TOKEN.\n"
              << "  Status:    lumen status\n"
              << "  Stop:      lumen stop\n";
  } else {
    std::cout << "Lumen node started at " << *address << " (pid " << pid << "), joined "
              << options.address << ".\n";
  }
  return 0;
}

int Stop(const std::string& temp_dir_flag) {
  const std::string temp_dir = TempDirOr(temp_dir_flag);
  auto session = internal::Session::OpenLatest(temp_dir);
  if (!session.ok()) {
    std::cout << "No Lumen session in " << temp_dir << "; nothing to stop.\n";
    return 0;
  }
  auto stopped = session->StopAll(absl::Seconds(10));
  if (!stopped.ok()) return Fail("stop", std::string(stopped.status().message()));
  std::cout << "Stopped " << *stopped << (*stopped == 1 ? " process" : " processes") << " of "
            << session->dir() << ".\n";
  return 0;
}

bool ResolveCluster(const std::string& address_flag, const std::string& temp_dir_flag,
                    std::string* address, std::string* token) {
  const std::string temp_dir = TempDirOr(temp_dir_flag);
  *address = address_flag;
  if (address->empty() && std::getenv("LUMEN_ADDRESS") != nullptr) {
    *address = std::getenv("LUMEN_ADDRESS");
  }
  if (token->empty() && std::getenv("LUMEN_TOKEN") != nullptr) *token = std::getenv("LUMEN_TOKEN");
  auto session = internal::Session::OpenLatest(temp_dir);
  std::optional<internal::ProcessRecord> head;
  if (session.ok()) head = session->LiveHead();
  const bool address_given = !address->empty();
  if (address->empty() && !head.has_value() && session.ok()) {
    // A host that only runs a node: the head its node joined.
    *address = internal::JoinedHead(*session);
  }
  if (address->empty()) {
    if (!head.has_value()) {
      std::cerr << "No Lumen cluster is running (no live head in " << temp_dir
                << "). Start one with `lumen start --head`, or pass --address.\n";
      return false;
    }
    *address = head->address;
  }
  if (token->empty() && address_given) {
    // The session of this machine that belongs to that cluster, if any.
    if (auto joined = internal::FindLiveSessionFor(temp_dir, *address); joined.ok()) {
      session = std::move(joined);
    }
  }
  if (token->empty() && session.ok()) {
    auto session_token = session->Token();
    if (session_token.ok()) *token = *session_token;
  }
  return true;
}

int Status(const std::string& address_flag, const std::string& temp_dir, bool json) {
  std::string address;
  std::string token;
  if (!ResolveCluster(address_flag, temp_dir, &address, &token)) return 1;
  auto fetched = internal::FetchClusterStatus(address, token, absl::Seconds(5));
  if (!fetched.ok()) return Fail("status", std::string(fetched.status().message()));
  const proto::ClusterStatus& status = *fetched;
  if (json) {
    nlohmann::json out;
    out["address"] = address;
    out["session_dir"] = status.session_dir();
    out["nodes"] = nlohmann::json::array();
    for (const auto& node : status.nodes()) {
      nlohmann::json n;
      n["node_id"] = node.node_id();
      n["address"] = node.address();
      n["ip"] = node.ip();
      // An unconfirmed node's figures are as a previous head stored them: `alive` is false and
      // `available` null until it reports.
      n["alive"] = scheduler::HeardFrom(node);
      n["state"] = scheduler::NodeStateName(node);
      n["state_reason"] = node.state_reason();
      n["is_head"] = node.is_head();
      n["total"] = std::map<std::string, double>(node.total().begin(), node.total().end());
      n["available"] = node.unconfirmed() ? nlohmann::json(nullptr)
                                          : nlohmann::json(std::map<std::string, double>(
                                                node.available().begin(), node.available().end()));
      n["store_capacity"] = node.store_capacity();
      n["store_used"] = node.store_used();
      n["store_objects"] = node.store_objects();
      n["store_pinned_objects"] = node.store_pinned_objects();
      n["store_pinned_bytes"] = node.store_pinned_bytes();
      n["store_released_pinned_objects"] = node.store_released_pinned_objects();
      n["data_address"] = node.data_address();
      n["pulls_started"] = node.pulls_started();
      n["pulls_merged"] = node.pulls_merged();
      n["bytes_pulled"] = node.bytes_pulled();
      n["chunks_served"] = node.chunks_served();
      n["store_spilled_objects"] = node.store_spilled_objects();
      n["store_spilled_bytes"] = node.store_spilled_bytes();
      n["workers"] = node.num_workers();
      n["max_workers"] = node.max_workers();
      n["capped_workers"] = node.capped_workers();
      n["last_heartbeat_ms"] =
          node.unconfirmed() ? nlohmann::json(nullptr) : nlohmann::json(node.last_heartbeat_ms());
      n["demands"] = nlohmann::json::array();
      for (const auto& demand : node.demands()) {
        n["demands"].push_back(
            {{"resources",
              std::map<std::string, double>(demand.resources().begin(), demand.resources().end())},
             {"count", demand.count()},
             {"infeasible", demand.infeasible()}});
      }
      out["nodes"].push_back(n);
    }
    out["pending_actors"] = nlohmann::json::array();
    for (const auto& actor : status.pending_actors()) {
      out["pending_actors"].push_back(
          {{"class_name", actor.class_name()},
           {"name", actor.name()},
           {"resources",
            std::map<std::string, double>(actor.resources().begin(), actor.resources().end())},
           {"reason", actor.reason()}});
    }
    out["pending_placement_groups"] = nlohmann::json::array();
    for (const auto& group : status.pending_placement_groups()) {
      out["pending_placement_groups"].push_back(
          {{"placement_group_id", internal::Hex(group.placement_group_id())},
           {"name", group.name()},
           {"strategy", proto::PlacementGroupInfo::Strategy_Name(group.strategy())},
           {"state", proto::PlacementGroupInfo::State_Name(group.state())},
           {"bundles", group.bundles_size()},
           {"reason", group.reason()}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "======== Lumen cluster at " << address << " ========\n";
  std::cout << "Session: " << status.session_dir() << "\n\nNodes\n";
  for (const auto& node : status.nodes()) {
    std::cout << absl::StrFormat(
        " %-16s %-21s %-5s %s  workers %d (%d of soft cap %d)  %s\n", node.node_id(),
        node.address(), scheduler::NodeStateName(node), node.is_head() ? "head" : "node",
        node.num_workers(), node.capped_workers(), node.max_workers(),
        node.unconfirmed() ? "not heard from yet"
                           : absl::StrCat("heartbeat ", node.last_heartbeat_ms(), " ms ago"));
    std::string resources;
    for (const auto& [name, total] :
         std::map<std::string, double>(node.total().begin(), node.total().end())) {
      if (scheduler::IsBundleResource(name)) continue;  // placement groups have their own list
      auto free = node.available().find(name);
      const std::string used =
          node.unconfirmed()
              ? "?"
              : absl::StrCat(total - (free == node.available().end() ? 0 : free->second));
      absl::StrAppend(&resources, resources.empty() ? "" : ", ", name, " ", used, "/", total);
    }
    std::cout << "   resources: " << resources << "\n";
    if (node.unconfirmed()) std::cout << "   unconfirmed: " << node.state_reason() << "\n";
  }
  const scheduler::ClusterUsage usage = scheduler::SumUsage(status.nodes());
  std::cout << "\nResources (used / total, " << usage.alive << " live "
            << (usage.alive == 1 ? "node" : "nodes")
            << (usage.unconfirmed > 0
                    ? absl::StrCat("; ", usage.unconfirmed, " unconfirmed not counted")
                    : "")
            << ")\n";
  for (const auto& [name, amount] : usage.resources) {
    if (scheduler::IsBundleResource(name)) continue;
    std::cout << absl::StrFormat(" %-10s %g / %g\n", name, amount.used, amount.total);
  }
  std::cout << "\nObject store\n " << FormatBytes(static_cast<double>(usage.store_used)) << " / "
            << FormatBytes(static_cast<double>(usage.store_capacity)) << " used, "
            << usage.store_objects << (usage.store_objects == 1 ? " object" : " objects") << ", "
            << usage.store_pinned_objects << " pinned by readers\n";
  std::cout << "\nPending demands\n";
  bool any = false;
  for (const auto& node : status.nodes()) {
    if (!node.alive()) continue;
    for (const auto& demand : node.demands()) {
      any = true;
      std::cout << " " << Shape(demand.resources()) << " x " << demand.count()
                << (demand.infeasible() ? "  (infeasible: no node has these resources)"
                                        : "  (waiting for resources)")
                << "\n";
    }
  }
  if (!any) std::cout << " (none)\n";
  std::cout << "\nPending actors (waiting in the head's queue for a node)\n";
  for (const auto& actor : status.pending_actors()) {
    std::cout << " " << actor.class_name()
              << (actor.name().empty() ? "" : " '" + actor.name() + "'") << " "
              << Shape(actor.resources()) << "  (" << actor.reason() << ")\n";
  }
  if (status.pending_actors().empty()) std::cout << " (none)\n";
  std::cout << "\nPending placement groups\n";
  for (const auto& group : status.pending_placement_groups()) {
    std::cout << " " << internal::Hex(group.placement_group_id())
              << (group.name().empty() ? "" : " '" + group.name() + "'") << " "
              << proto::PlacementGroupInfo::Strategy_Name(group.strategy()) << " "
              << group.bundles_size() << (group.bundles_size() == 1 ? " bundle" : " bundles")
              << "  (" << proto::PlacementGroupInfo::State_Name(group.state()) << ": "
              << group.reason() << ")\n";
  }
  if (status.pending_placement_groups().empty()) std::cout << " (none)\n";
  return 0;
}

int PrintAuthToken(const std::string& temp_dir_flag) {
  const std::string temp_dir = TempDirOr(temp_dir_flag);
  auto session = internal::Session::OpenLatest(temp_dir);
  if (!session.ok()) return Fail("get-auth-token", std::string(session.status().message()));
  auto token = session->Token();
  if (!token.ok()) return Fail("get-auth-token", std::string(token.status().message()));
  std::cout << *token << "\n";
  return 0;
}

}  // namespace lumen::cli
