// The session folder: where `lumen start` records the daemons it started, their logs and the
// cluster token, and what `lumen stop` reads to stop exactly those daemons.
//
//   absl::StatusOr<Session> session = Session::Create(DefaultTempDir());
//   session->AddProcess({.role = "head", .pid = pid, .start_ticks = ProcessStartTicks(pid)});
//   absl::StatusOr<int> stopped =
//   Session::OpenLatest(DefaultTempDir())->StopAll(absl::Seconds(10));
//
// Layout: <temp_dir>/session_<YYYY-MM-DD_HH-MM-SS_micros>_<pid>/ holds `token` (mode 0600),
// `logs/` and `processes/<pid>.json`; <temp_dir>/session_latest is a symlink to the newest one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lumen::internal {

// $LUMEN_TEMP_DIR if set and not empty, else /tmp/lumen.
std::string DefaultTempDir();

// One daemon of a session, stored as processes/<pid>.json.
struct ProcessRecord {
  // "head" or "node".
  std::string role{};
  int pid = 0;
  // /proc/<pid>/stat field 22: tells this process from a later one that reuses its pid.
  int64_t start_ticks = 0;
  // The gRPC address it serves, e.g. "127.0.0.1:6379".
  std::string address{};
  // The shared-memory object to unlink when it is stopped ("" if none).
  std::string shm_name{};

  friend bool operator==(const ProcessRecord&, const ProcessRecord&) = default;
};

// The start time of process `pid` in clock ticks since boot, or -1 if there is no such process.
int64_t ProcessStartTicks(int pid);

// True if the recorded process still runs: its pid exists, is not a zombie, and started at
// record.start_ticks.
bool IsAlive(const ProcessRecord& record);

// A handle to one session folder; copies refer to the same folder. Every method is thread-safe,
// and safe while other processes use the same folder: each record file is replaced atomically.
class Session {
 public:
  // Makes a new session folder under `temp_dir` (created if needed) with a fresh random token of 64
  // hex characters, and atomically points <temp_dir>/session_latest at it. The session folder has
  // mode 0700.
  [[nodiscard]] static absl::StatusOr<Session> Create(const std::string& temp_dir);
  // The session <temp_dir>/session_latest points at; NOT_FOUND, naming temp_dir, if there is none.
  [[nodiscard]] static absl::StatusOr<Session> OpenLatest(const std::string& temp_dir);
  // The session in `dir`; NOT_FOUND if `dir` is not a session folder.
  [[nodiscard]] static absl::StatusOr<Session> Open(const std::string& dir);

  // The absolute path of the session folder.
  const std::string& dir() const { return dir_; }
  // <dir>/logs/<file_name>.
  std::string LogPath(const std::string& file_name) const;
  // The cluster token, without surrounding whitespace.
  [[nodiscard]] absl::StatusOr<std::string> Token() const;

  // Records `record`, replacing any record with the same pid. INVALID_ARGUMENT if pid <= 0.
  [[nodiscard]] absl::Status AddProcess(const ProcessRecord& record);
  // Deletes the record of `pid`; OK if there is none.
  [[nodiscard]] absl::Status RemoveProcess(int pid);
  // All records, sorted by pid. Files that cannot be read or parsed are skipped with a warning.
  std::vector<ProcessRecord> Processes() const;
  // A record with role "head" whose process IsAlive, if any.
  std::optional<ProcessRecord> LiveHead() const;
  // Removes the records of processes that are gone (killed without `lumen stop`) and unlinks
  // their shared memory; returns them. Records of live processes are kept.
  [[nodiscard]] absl::StatusOr<std::vector<ProcessRecord>> RemoveDeadRecords();
  // Atomically points <parent folder>/session_latest at this session (a reopened session is
  // the one local commands should find).
  [[nodiscard]] absl::Status MakeLatest() const;

  // Stops every recorded process: SIGTERM to each live one, up to `grace` for them to exit, then
  // SIGKILL to the rest. Unlinks each record's shared-memory object and removes the record; records
  // of processes already gone are just cleaned up this way. Returns how many live processes it
  // stopped, so a second call returns 0. If a process cannot be signalled or survives SIGKILL, its
  // record and shared memory are kept, the rest is still done, and the error is returned.
  [[nodiscard]] absl::StatusOr<int> StopAll(absl::Duration grace);

 private:
  explicit Session(std::string dir) : dir_(std::move(dir)) {}
  std::string RecordPath(int pid) const;

  std::string dir_;  // set at construction
};

}  // namespace lumen::internal
