// The long-running processes of a cluster: a head (control service plus this machine's node
// manager and object store) or a node (node manager and object store). `lumen start` and an
// embedded lumen::Init() both start the running executable again with LUMEN_ROLE=daemon and
// the configuration below in LUMEN_DAEMON_CONFIG.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace lumen::scheduler {

struct DaemonConfig {
  bool head = false;
  std::string ip = "127.0.0.1";  // address this node listens on (0.0.0.0: every interface)
  std::string node_ip;           // address it advertises; "": see advertised_ip.h
  int port = 0;                  // gRPC port; 0: any free port
  std::string head_address;      // nodes: the head's host:port
  int num_cpus = -1;             // -1: this machine's
  std::map<std::string, double> resources;
  int64_t object_store_memory = 0;  // 0: min(2 GiB, 30% of memory)
  std::string session_dir;
  int heartbeat_period_ms = 500;
  int heartbeat_timeout_ms = 5000;
  int head_lost_timeout_ms = 60000;
  int max_workers = 64;
  bool embedded = false;
  // The head's dashboard (HTTP): port 0 picks a free one, -1 runs none.
  std::string dashboard_host = "127.0.0.1";
  int dashboard_port = 8265;
};

// The file in a session folder that holds the head's dashboard URL (absent without one).
inline constexpr char kDashboardUrlFile[] = "dashboard_url";
// The file in a session folder that holds the head's last HOST:PORT, which a head restarted on
// the session takes again (its nodes and drivers know it), also after a clean `lumen stop`.
inline constexpr char kHeadAddressFile[] = "head_address";

std::string ToJson(const DaemonConfig& config);
absl::StatusOr<DaemonConfig> DaemonConfigFromJson(const std::string& json);

// Runs the daemon until SIGTERM or SIGINT; reports readiness through NotifyReady. Returns the
// process exit code.
int RunDaemon(const DaemonConfig& config);

// When LUMEN_ROLE=daemon, runs the daemon described by LUMEN_DAEMON_CONFIG and exits the
// process; otherwise returns at once.
void MaybeRunDaemonFromEnvironment();

}  // namespace lumen::scheduler
