// `lumen start`, `lumen stop`, `lumen status` and `lumen get-auth-token`: managing the
// processes of a cluster on this machine through its session folder.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace lumen::cli {

struct StartOptions {
  bool head = false;
  std::string address;  // nodes: the head's host:port
  std::string token;
  std::string ip = "127.0.0.1";  // bind address
  std::string node_ip;           // advertised address ("" : derived, see DaemonConfig)
  int port = -1;                 // -1: 6379 for a head, any free port for a node
  int num_cpus = -1;
  std::string resources_json;
  int64_t object_store_memory = 0;
  std::string temp_dir;
  int heartbeat_timeout_ms = 5000;
  int head_lost_timeout_ms = 60000;
  int max_workers = 64;
  // Heads: reopen this existing session folder (its token and durable state) instead of
  // making a new one.
  std::string session_dir;
  std::string dashboard_host = "127.0.0.1";
  int dashboard_port = 8265;  // 0: any free port; -1: none
};

// Each returns the process exit code and prints errors to stderr.
int Start(const StartOptions& options);
int Stop(const std::string& temp_dir);
int Status(const std::string& address, const std::string& temp_dir, bool json);
int PrintAuthToken(const std::string& temp_dir);

// "0 B", "1.5 KiB", "8.0 MiB" ...
std::string FormatBytes(double bytes);

// The head address and token for commands that talk to a cluster: --address / LUMEN_ADDRESS,
// else the live head of the local session. False (with a message on stderr) if none.
bool ResolveCluster(const std::string& address_flag, const std::string& temp_dir,
                    std::string* address, std::string* token);

}  // namespace lumen::cli
