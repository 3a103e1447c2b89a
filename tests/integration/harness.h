// Helpers for integration tests: run the lumen CLI and driver programs as real processes,
// with bounded waits, in a private temp dir per test.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lumen::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when it timed out or could not run
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv (argv[0] resolved against LUMEN_BIN_DIR when it has no slash) with extra
// environment, killing it after timeout_seconds.
CommandResult Run(const std::vector<std::string>& argv, double timeout_seconds = 60,
                  const std::vector<std::string>& env = {});

std::string Bin(const std::string& name);
// Polls `ready` every 100 ms until it holds (true) or `timeout_seconds` pass (false).
bool WaitUntil(const std::function<bool()>& ready, double timeout_seconds);
// A new folder under /tmp. In the integration tests it is removed when the test case ends if
// it passed, and kept (and named on standard error) if it failed: see temp_dir_cleaner.cc.
std::string MakeTempDir();
// The folders MakeTempDir made since the last call.
std::vector<std::string> TakeTempDirs();
int FreePort();
// The pid of the node daemon of the cluster started with --temp-dir=`temp_dir`; -1 if none.
int DaemonPid(const std::string& temp_dir);

// A process whose output goes to a file the test can poll, with a pipe to its stdin.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  ~Child();  // kills it if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // True once `text` appears in the output; false after timeout_seconds.
  bool WaitForOutput(const std::string& text, double timeout_seconds);
  void WriteLine(const std::string& line);
  // Exit code, or -1 if it did not exit in time (then it is killed).
  int Wait(double timeout_seconds);
  std::string Output() const;
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  int stdin_fd_ = -1;
  std::string output_path_;
  bool exited_ = false;
};

// A head started with `lumen start` in a private temp dir (its dashboard on any free port);
// stopped with `lumen stop`.
class TestCluster {
 public:
  // `env` is added to the environment of `lumen start` (and so of the daemons and workers).
  explicit TestCluster(int num_cpus = 2, long long store_bytes = 256ll << 20,
                       const std::vector<std::string>& extra_flags = {},
                       const std::vector<std::string>& env = {});
  ~TestCluster();
  const std::string& temp_dir() const { return temp_dir_; }
  const std::string& address() const { return address_; }
  // --temp-dir=... for a command that should find this cluster.
  std::string TempDirFlag() const { return "--temp-dir=" + temp_dir_; }
  const CommandResult& start_result() const { return start_; }
  // Runs argv (as Run does) with this cluster's --temp-dir appended.
  CommandResult RunProgram(std::vector<std::string> argv, double timeout_seconds = 120) const;
  // Starts argv with this cluster's --temp-dir appended, to talk to it while it runs.
  std::unique_ptr<Child> StartProgram(std::vector<std::string> argv) const;
  // `lumen status --json`, parsed fields of the first node.
  long long StoreUsed() const;
  std::string StatusText() const;
  // The session's cluster token and dashboard URL (http://host:port).
  std::string Token() const;
  std::string DashboardUrl() const;

 private:
  std::string temp_dir_;
  std::string address_;
  CommandResult start_;
};

}  // namespace lumen::testing
