#include "tests/integration/netns_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace lumen::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kPrefix[] = "lumt";
constexpr char kSubnet[] = "10.231.0.";

std::string IpTool() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// Runs argv (no shell) with output discarded; returns its exit code, -1 if it timed out.
int Exec(const std::vector<std::string>& argv, double timeout_seconds = 10) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> cargs;
    for (const auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
    cargs.push_back(nullptr);
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (true) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void MustExec(const std::vector<std::string>& argv) {
  if (Exec(argv) != 0) {
    std::string command;
    for (const auto& a : argv) command += a + " ";
    throw std::runtime_error("NetnsCluster: `" + command + "` failed");
  }
}

// The words a command prints; the command is a constant of this file with our own names only.
std::vector<std::string> Words(const std::string& command) {
  std::vector<std::string> out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  std::string text;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) text.append(buffer, n);
  pclose(pipe);
  std::istringstream in(text);
  std::string word;
  while (in >> word) out.push_back(word);
  return out;
}

std::vector<int> NamespacePids(const std::string& ns) {
  std::vector<int> pids;
  for (const auto& word : Words(IpTool() + " netns pids " + ns + " 2>/dev/null")) {
    try {
      pids.push_back(std::stoi(word));
    } catch (const std::exception&) {
    }
  }
  return pids;
}

bool PidRuns(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// SIGKILLs every process in `ns` (all of them were started by a fixture), removes the shared
// memory their daemons made, then the namespace.
void KillAndDelete(const std::string& ns) {
  for (int round = 0; round < 50; ++round) {
    const std::vector<int> pids = NamespacePids(ns);
    if (pids.empty()) break;
    for (int pid : pids) {
      kill(pid, SIGKILL);
      // Daemons name their store lumen-<pid>-<node>; a killed one cannot unlink it.
      std::error_code ignored;
      for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ignored)) {
        if (entry.path().filename().string().rfind("lumen-" + std::to_string(pid) + "-", 0) == 0) {
          std::filesystem::remove(entry.path(), ignored);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Exec({IpTool(), "netns", "del", ns});
}

// The pid in a name made by the fixture (lumt<pid>-...), or 0.
int PidOf(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return 0;
  const size_t dash = name.find('-');
  try {
    return dash == std::string::npos ? 0 : std::stoi(name.substr(4, dash - 4));
  } catch (const std::exception&) {
    return 0;
  }
}

// Namespaces and temp dirs left by fixture runs whose process is gone.
void RemoveStale() {
  for (const auto& word : Words(IpTool() + " netns list 2>/dev/null")) {
    const int pid = PidOf(word);
    if (pid != 0 && pid != getpid() && !PidRuns(pid)) KillAndDelete(word);
  }
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/tmp", ignored)) {
    const std::string name = entry.path().filename().string();
    const int pid = PidOf(name);
    if (pid != 0 && pid != getpid() && !PidRuns(pid)) std::filesystem::remove_all(entry, ignored);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string NetnsCluster::Unavailable() {
  if (geteuid() != 0) return "not running as root";
  if (IpTool().empty()) return "the `ip` tool (iproute2) is not installed";
  const std::string probe = std::string(kPrefix) + std::to_string(getpid()) + "-probe";
  if (Exec({IpTool(), "netns", "add", probe}) != 0) return "`ip netns add` failed";
  Exec({IpTool(), "netns", "del", probe});
  return "";
}

NetnsCluster::NetnsCluster(int num_hosts) {
  static int counter = 0;
  prefix_ = std::string(kPrefix) + std::to_string(getpid()) + "-" + std::to_string(counter++);
  RemoveStale();
  root_dir_ = "/tmp/" + prefix_;
  std::filesystem::remove_all(root_dir_);
  std::filesystem::create_directories(root_dir_);
  try {
    const std::string ip = IpTool();
    bridge_ns_ = prefix_ + "br";
    MustExec({ip, "netns", "add", bridge_ns_});
    MustExec({ip, "-n", bridge_ns_, "link", "add", "br0", "type", "bridge"});
    MustExec({ip, "-n", bridge_ns_, "link", "set", "br0", "up"});
    for (int i = 0; i < num_hosts; ++i) {
      Host host;
      host.ns = prefix_ + "h" + std::to_string(i);
      host.ip = kSubnet + std::to_string(i + 1);
      host.temp_dir = root_dir_ + "/h" + std::to_string(i);
      std::filesystem::create_directories(host.temp_dir);
      hosts_.push_back(host);  // before it exists: a failure below still deletes it
      const std::string veth = "v" + std::to_string(i);
      MustExec({ip, "netns", "add", host.ns});
      MustExec({ip, "-n", bridge_ns_, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", host.ns});
      MustExec({ip, "-n", bridge_ns_, "link", "set", veth, "master", "br0"});
      MustExec({ip, "-n", bridge_ns_, "link", "set", veth, "up"});
      MustExec({ip, "-n", host.ns, "addr", "add", host.ip + "/24", "dev", "eth0"});
      MustExec({ip, "-n", host.ns, "link", "set", "eth0", "up"});
      MustExec({ip, "-n", host.ns, "link", "set", "lo", "up"});
    }
  } catch (...) {
    TearDown();
    throw;
  }
}

NetnsCluster::~NetnsCluster() { TearDown(); }

void NetnsCluster::TearDown() {
  for (int i = 0; i < size(); ++i) {
    if (!NamespacePids(hosts_[static_cast<size_t>(i)].ns).empty()) {
      Exec(Wrap(i, {Bin("lumen"), "stop", "--temp-dir=" + host(i).temp_dir}), 30);
    }
  }
  for (const Host& host : hosts_) KillAndDelete(host.ns);
  if (!bridge_ns_.empty()) KillAndDelete(bridge_ns_);
  hosts_.clear();
  bridge_ns_.clear();
  std::error_code ignored;
  if (!root_dir_.empty()) std::filesystem::remove_all(root_dir_, ignored);
}

std::string NetnsCluster::Token() const {
  std::string token = ReadFile(hosts_[0].temp_dir + "/session_latest/token");
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  return token;
}

std::vector<std::string> NetnsCluster::Wrap(int host, std::vector<std::string> argv) const {
  if (argv[0].find('/') == std::string::npos) argv[0] = Bin(argv[0]);
  std::vector<std::string> out = {IpTool(), "netns", "exec", this->host(host).ns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

CommandResult NetnsCluster::StartHead(const std::vector<std::string>& flags,
                                      double timeout_seconds) {
  std::vector<std::string> argv = {
      "lumen", "start", "--head", "--port=6379", "--ip=" + host(0).ip, "--dashboard-port=-1"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return Run(0, argv, timeout_seconds);
}

CommandResult NetnsCluster::StartNode(int host, const std::vector<std::string>& flags,
                                      double timeout_seconds) {
  std::vector<std::string> argv = {"lumen", "start", "--address=" + HeadAddress(),
                                   "--token=" + Token(), "--ip=" + this->host(host).ip};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return Run(host, argv, timeout_seconds);
}

CommandResult NetnsCluster::Run(int host, std::vector<std::string> argv, double timeout_seconds,
                                const std::vector<std::string>& env) const {
  argv.push_back("--temp-dir=" + this->host(host).temp_dir);
  return testing::Run(Wrap(host, std::move(argv)), timeout_seconds, env);
}

std::unique_ptr<Child> NetnsCluster::Start(int host, std::vector<std::string> argv,
                                           const std::vector<std::string>& env) const {
  argv.push_back("--temp-dir=" + this->host(host).temp_dir);
  return std::make_unique<Child>(Wrap(host, std::move(argv)), env);
}

std::vector<int> NetnsCluster::Pids(int host) const { return NamespacePids(this->host(host).ns); }

}  // namespace lumen::testing
