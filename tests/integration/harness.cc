#include "tests/integration/harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace lumen::testing {
namespace {

// Removes the folder MakeTempDir made for a command's output file.
void RemoveDirOf(const std::string& output_path) {
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path(output_path).parent_path(), ignored);
}

using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
          const std::string& output_path, int* stdin_write) {
  int in_pipe[2] = {-1, -1};
  if (pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  std::vector<std::string> args = argv;
  if (args[0].find('/') == std::string::npos) args[0] = Bin(args[0]);
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in_pipe[0], 0);
    dup2(out, 1);
    dup2(out, 2);
    setpgid(0, 0);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  close(in_pipe[0]);
  if (stdin_write != nullptr) {
    *stdin_write = in_pipe[1];
  } else {
    close(in_pipe[1]);
  }
  return pid;
}

// Waits for pid up to timeout; returns its exit code, or -1 after killing its process group.
int WaitFor(int pid, double timeout_seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    if (Clock::now() > deadline) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::string Bin(const std::string& name) { return std::string(LUMEN_BIN_DIR) + "/" + name; }

bool WaitUntil(const std::function<bool()>& ready, double timeout_seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ready();
}

namespace {

// The folders MakeTempDir made since TakeTempDirs last ran.
std::mutex temp_dirs_mu;
std::vector<std::string> temp_dirs;

}  // namespace

std::string MakeTempDir() {
  std::string pattern = "/tmp/lumen-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
  std::lock_guard<std::mutex> lock(temp_dirs_mu);
  temp_dirs.push_back(pattern);
  return pattern;
}

std::vector<std::string> TakeTempDirs() {
  std::lock_guard<std::mutex> lock(temp_dirs_mu);
  return std::exchange(temp_dirs, {});
}

int DaemonPid(const std::string& temp_dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(temp_dir) / "session_latest" / "processes", error)) {
    return std::atoi(entry.path().stem().string().c_str());
  }
  return -1;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (fd >= 0) close(fd);
  if (!ok) throw std::runtime_error("FreePort: no free loopback port");
  return ntohs(addr.sin_port);
}

CommandResult Run(const std::vector<std::string>& argv, double timeout_seconds,
                  const std::vector<std::string>& env) {
  const std::string output = MakeTempDir() + "/output";
  const int pid = Spawn(argv, env, output, nullptr);
  CommandResult result;
  result.exit_code = WaitFor(pid, timeout_seconds);
  result.output = ReadFile(output);
  RemoveDirOf(output);
  return result;
}

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  output_path_ = MakeTempDir() + "/output";
  pid_ = Spawn(argv, env, output_path_, &stdin_fd_);
}

Child::~Child() {
  if (!exited_) Wait(0);
  if (stdin_fd_ >= 0) close(stdin_fd_);
  RemoveDirOf(output_path_);
}

bool Child::WaitForOutput(const std::string& text, double timeout_seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (Clock::now() < deadline) {
    if (Output().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void Child::WriteLine(const std::string& line) {
  const std::string text = line + "\n";
  ssize_t ignored = write(stdin_fd_, text.data(), text.size());
  (void)ignored;
}

int Child::Wait(double timeout_seconds) {
  exited_ = true;
  return WaitFor(pid_, timeout_seconds);
}

std::string Child::Output() const { return ReadFile(output_path_); }

TestCluster::TestCluster(int num_cpus, long long store_bytes,
                         const std::vector<std::string>& extra_flags,
                         const std::vector<std::string>& env) {
  temp_dir_ = MakeTempDir();
  const int port = FreePort();
  std::vector<std::string> argv = {"lumen",
                                   "start",
                                   "--head",
                                   "--port=" + std::to_string(port),
                                   "--num-cpus=" + std::to_string(num_cpus),
                                   "--object-store-memory=" + std::to_string(store_bytes),
                                   "--dashboard-port=0",
                                   TempDirFlag()};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  start_ = Run(argv, 60, env);
  address_ = "127.0.0.1:" + std::to_string(port);
}

TestCluster::~TestCluster() { RunProgram({"lumen", "stop"}, 60); }

CommandResult TestCluster::RunProgram(std::vector<std::string> argv, double timeout_seconds) const {
  argv.push_back(TempDirFlag());
  return Run(argv, timeout_seconds);
}

std::unique_ptr<Child> TestCluster::StartProgram(std::vector<std::string> argv) const {
  argv.push_back(TempDirFlag());
  return std::make_unique<Child>(argv);
}

std::string TestCluster::Token() const {
  std::string token = ReadFile(temp_dir_ + "/session_latest/token");
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  return token;
}

std::string TestCluster::DashboardUrl() const {
  std::string url = ReadFile(temp_dir_ + "/session_latest/dashboard_url");
  while (!url.empty() && url.back() == '\n') url.pop_back();
  return url;
}

std::string TestCluster::StatusText() const { return RunProgram({"lumen", "status"}, 30).output; }

long long TestCluster::StoreUsed() const {
  const CommandResult result = RunProgram({"lumen", "status", "--json"}, 30);
  try {
    const auto json = nlohmann::json::parse(result.output);
    long long used = 0;
    for (const auto& node : json.at("nodes")) used += node.at("store_used").get<long long>();
    return used;
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace lumen::testing
