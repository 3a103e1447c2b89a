// The DFS shell (`lumen dfs`): upload, update, get, download, delete, list, status, kill,
// revive, chaos, help, exit. Commands come from a terminal (libedit line editing and history),
// from piped standard input, or from `-c "cmd; cmd"`. A failing command prints one line
// ("error: ...") and the shell goes on; in -c and piped mode any error makes the exit code 1.
// With --json every command prints one JSON object per line instead (errors too).
//
//   Shell shell({.json = false});
//   bool exit = false;
//   shell.Execute("upload notes hello world", &exit);   // prints "uploaded notes: ..."
//
// Thread-compatible; chaos runs on a thread of its own, which the Shell stops and joins.
#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dfs/client.h"

namespace lumen::dfs {

// One command line, split into words ("double quotes" group words; \" and \\ escape inside).
struct Command {
  std::string name;
  std::vector<std::string> args;
  // The text after the first argument, for CONTENT: as typed, or unquoted if it is one quoted
  // word.
  std::string content;
};

// Splits a -c script on semicolons outside double quotes; empty commands are dropped.
std::vector<std::string> SplitCommands(const std::string& script);
// INVALID_ARGUMENT for an unterminated quote; an empty name for a blank line.
absl::StatusOr<Command> ParseCommand(const std::string& line);

struct ShellOptions {
  bool json = false;
  // Progress bars on stderr for upload-file and download (when stderr is a terminal).
  bool progress = false;
  std::ostream* out = nullptr;  // default std::cout
  // True when commands do not come from standard input (RunShell sets it for -c): then
  // `upload-file NAME -` may read it.
  bool stdin_is_free = false;
  std::ostream* err = nullptr;  // default std::cerr
};

class Shell {
 public:
  explicit Shell(ShellOptions options);
  ~Shell();
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  // Runs one command line and prints its result; false if it failed. Sets *exit on `exit`.
  bool Execute(const std::string& line, bool* exit);

 private:
  absl::Status Run(const Command& command, bool* exit);
  absl::StatusOr<Client*> Dfs();
  std::ostream& Out();
  std::ostream& Err();
  // Prints to standard output, or to standard error while a download's bytes go to the former.
  void Print(const std::string& text);
  void PrintJson(const nlohmann::json& json);
  Progress MakeProgress(const std::string& what);
  absl::Status StartChaos(double interval_seconds);
  void StopChaos();
  void ChaosLoop(double interval_seconds);

  const ShellOptions options_;
  std::unique_ptr<Client> client_;

  absl::Mutex print_mu_;
  bool out_carries_data_ ABSL_GUARDED_BY(print_mu_) = false;
  absl::Mutex chaos_mu_;
  bool chaos_stop_ ABSL_GUARDED_BY(chaos_mu_) = false;
  std::thread chaos_;
};

// Runs the shell until `exit`, end of input, or the end of `script`; returns the exit code.
int RunShell(ShellOptions options, const std::optional<std::string>& script);

}  // namespace lumen::dfs
