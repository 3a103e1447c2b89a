#include "common/session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/logging.h"

namespace lumen::internal {
namespace {

namespace fs = std::filesystem;

constexpr char kLatestLink[] = "session_latest";
constexpr size_t kTokenBytes = 32;
// How often StopAll checks whether the processes it signalled have exited.
constexpr absl::Duration kStopPollInterval = absl::Milliseconds(10);
// How long StopAll waits for processes to disappear after SIGKILL.
constexpr absl::Duration kKillWait = absl::Seconds(2);

absl::Status ErrnoError(int error, absl::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  std::string content;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      close(fd);
      return ErrnoError(error, "cannot read", path);
    }
    content.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return content;
}

// Creates `path` (which must not exist) with `mode` and writes `content` to it.
absl::Status WriteNewFile(const std::string& path, absl::string_view content, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError(errno, "cannot create", path);
  absl::Status status;
  if (fchmod(fd, mode) != 0) status = ErrnoError(errno, "cannot chmod", path);
  size_t written = 0;
  while (status.ok() && written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoError(errno, "cannot write", path);
    } else {
      written += static_cast<size_t>(n);
    }
  }
  if (close(fd) != 0 && status.ok()) status = ErrnoError(errno, "cannot write", path);
  if (!status.ok()) unlink(path.c_str());
  return status;
}

absl::StatusOr<std::string> RandomToken() {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", "/dev/urandom");
  std::string random(kTokenBytes, '\0');
  size_t got = 0;
  while (got < random.size()) {
    ssize_t n = read(fd, random.data() + got, random.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = n < 0 ? errno : EIO;
      close(fd);
      return ErrnoError(error, "cannot read", "/dev/urandom");
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  return absl::BytesToHexString(random);
}

absl::StatusOr<std::string> AbsolutePath(const std::string& path) {
  std::error_code error;
  fs::path absolute = fs::absolute(path, error);
  if (error)
    return absl::InvalidArgumentError(absl::StrCat("bad path ", path, ": ", error.message()));
  std::string normal = absolute.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

bool IsDirectory(const std::string& path) {
  struct stat st = {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads the state (field 3) and start time (field 22) from /proc/<pid>/stat.
bool ReadProcStat(int pid, char* state, int64_t* start_ticks) {
  if (pid <= 0) return false;
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return false;
  // Field 2 is the command name in parentheses and may itself contain spaces and parentheses.
  size_t name_end = stat->rfind(')');
  if (name_end == std::string::npos) return false;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(name_end + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 of the file.
  constexpr size_t kStartTimeIndex = 22 - 3;
  if (fields.size() <= kStartTimeIndex || fields[0].empty()) return false;
  *state = fields[0][0];
  return absl::SimpleAtoi(fields[kStartTimeIndex], start_ticks);
}

std::string ToJson(const ProcessRecord& record) {
  nlohmann::json json = {{"role", record.role},
                         {"pid", record.pid},
                         {"start_ticks", record.start_ticks},
                         {"address", record.address},
                         {"shm_name", record.shm_name}};
  return json.dump(2) + "\n";
}

absl::StatusOr<ProcessRecord> FromJson(const std::string& text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return absl::DataLossError("not a JSON object");
  const auto field = [&](const char* name) -> const nlohmann::json* {
    auto it = json.find(name);
    return it == json.end() ? nullptr : &*it;
  };
  const nlohmann::json* role = field("role");
  const nlohmann::json* pid = field("pid");
  const nlohmann::json* start_ticks = field("start_ticks");
  const nlohmann::json* address = field("address");
  const nlohmann::json* shm_name = field("shm_name");
  if (role == nullptr || !role->is_string() || pid == nullptr || !pid->is_number_integer() ||
      start_ticks == nullptr || !start_ticks->is_number_integer() ||
      (address != nullptr && !address->is_string()) ||
      (shm_name != nullptr && !shm_name->is_string())) {
    return absl::DataLossError("missing or mistyped fields");
  }
  ProcessRecord record;
  record.role = role->get<std::string>();
  int64_t pid_value = pid->get<int64_t>();
  if (pid_value <= 0 || pid_value > INT32_MAX) return absl::DataLossError("bad pid");
  record.pid = static_cast<int>(pid_value);
  record.start_ticks = start_ticks->get<int64_t>();
  if (address != nullptr) record.address = address->get<std::string>();
  if (shm_name != nullptr) record.shm_name = shm_name->get<std::string>();
  return record;
}

// Unlinks the POSIX shared-memory object `name` ("/name" or "name"); OK if it does not exist.
absl::Status UnlinkSharedMemory(const std::string& name) {
  if (name.empty()) return absl::OkStatus();
  std::string object = name.front() == '/' ? name : "/" + name;
  if (shm_unlink(object.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "cannot unlink shared memory", object);
  }
  return absl::OkStatus();
}

// Waits until none of `records` IsAlive or `deadline` passes; returns those still alive.
std::vector<ProcessRecord> WaitUntilGone(std::vector<ProcessRecord> records, absl::Time deadline) {
  while (true) {
    records.erase(std::remove_if(records.begin(), records.end(),
                                 [](const ProcessRecord& r) { return !IsAlive(r); }),
                  records.end());
    if (records.empty() || absl::Now() >= deadline) return records;
    absl::SleepFor(std::min(kStopPollInterval, deadline - absl::Now()));
  }
}

}  // namespace

std::string DefaultTempDir() {
  const char* env = std::getenv("LUMEN_TEMP_DIR");
  return env != nullptr && *env != '\0' ? env : "/tmp/lumen";
}

int64_t ProcessStartTicks(int pid) {
  char state = 0;
  int64_t start_ticks = 0;
  return ReadProcStat(pid, &state, &start_ticks) ? start_ticks : -1;
}

bool IsAlive(const ProcessRecord& record) {
  char state = 0;
  int64_t start_ticks = 0;
  return ReadProcStat(record.pid, &state, &start_ticks) && state != 'Z' && state != 'X' &&
         start_ticks == record.start_ticks;
}

absl::StatusOr<Session> Session::Create(const std::string& temp_dir) {
  absl::StatusOr<std::string> root = AbsolutePath(temp_dir);
  if (!root.ok()) return root.status();
  std::error_code error;
  fs::create_directories(*root, error);
  if (error) {
    return absl::ErrnoToStatus(error.value(), absl::StrCat("cannot create ", *root));
  }

  // Names have microsecond resolution; on the rare clash, try again with a later time.
  std::string name;
  std::string dir;
  for (int attempt = 0;; ++attempt) {
    name = absl::StrCat(
        "session_", absl::FormatTime("%Y-%m-%d_%H-%M-%S_%E6f", absl::Now(), absl::LocalTimeZone()),
        "_", getpid());
    dir = absl::StrCat(*root, "/", name);
    if (mkdir(dir.c_str(), 0700) == 0) break;
    if (errno != EEXIST || attempt == 100) return ErrnoError(errno, "cannot create", dir);
  }
  for (const char* sub : {"/logs", "/processes"}) {
    std::string path = dir + sub;
    if (mkdir(path.c_str(), 0700) != 0) return ErrnoError(errno, "cannot create", path);
  }
  absl::StatusOr<std::string> token = RandomToken();
  if (!token.ok()) return token.status();
  if (absl::Status status = WriteNewFile(dir + "/token", *token + "\n", 0600); !status.ok()) {
    return status;
  }

  Session session(dir);
  if (absl::Status status = session.MakeLatest(); !status.ok()) return status;
  LUMEN_LOG(DEBUG) << "created session " << dir;
  return session;
}

absl::StatusOr<Session> Session::OpenLatest(const std::string& temp_dir) {
  std::string latest = absl::StrCat(temp_dir, "/", kLatestLink);
  std::error_code error;
  fs::path target = fs::read_symlink(latest, error);
  if (error == std::errc::no_such_file_or_directory) {
    return absl::NotFoundError(
        absl::StrCat("no Lumen session in ", temp_dir, " (", latest, " does not exist)"));
  }
  if (error) return absl::ErrnoToStatus(error.value(), absl::StrCat("cannot read ", latest));
  if (target.is_relative()) target = fs::path(temp_dir) / target;
  absl::StatusOr<Session> session = Open(target.string());
  if (absl::IsNotFound(session.status())) {
    return absl::NotFoundError(
        absl::StrCat("no Lumen session in ", temp_dir, " (", latest,
                     " points at a missing session: ", session.status().message(), ")"));
  }
  return session;
}

absl::StatusOr<Session> Session::Open(const std::string& dir) {
  absl::StatusOr<std::string> absolute = AbsolutePath(dir);
  if (!absolute.ok()) return absolute.status();
  if (!IsDirectory(*absolute + "/processes")) {
    return absl::NotFoundError(
        absl::StrCat(*absolute, " is not a Lumen session folder (it has no processes/ folder)"));
  }
  return Session(*absolute);
}

std::string Session::LogPath(const std::string& file_name) const {
  return absl::StrCat(dir_, "/logs/", file_name);
}

absl::StatusOr<std::string> Session::Token() const {
  absl::StatusOr<std::string> token = ReadFile(dir_ + "/token");
  if (!token.ok()) return token.status();
  return std::string(absl::StripAsciiWhitespace(*token));
}

std::string Session::RecordPath(int pid) const {
  return absl::StrCat(dir_, "/processes/", pid, ".json");
}

absl::Status Session::AddProcess(const ProcessRecord& record) {
  if (record.pid <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot record pid ", record.pid));
  }
  // Unique per writer, and starting with '.' so Processes() never reads it half-written.
  std::string staged = absl::StrCat(dir_, "/processes/.", record.pid, ".json.", getpid(), ".tmp");
  unlink(staged.c_str());
  if (absl::Status status = WriteNewFile(staged, ToJson(record), 0644); !status.ok()) {
    return status;
  }
  std::string path = RecordPath(record.pid);
  if (rename(staged.c_str(), path.c_str()) != 0) {
    int error = errno;
    unlink(staged.c_str());
    return ErrnoError(error, "cannot write", path);
  }
  return absl::OkStatus();
}

absl::Status Session::RemoveProcess(int pid) {
  std::string path = RecordPath(pid);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "cannot remove", path);
  return absl::OkStatus();
}

std::vector<ProcessRecord> Session::Processes() const {
  std::vector<ProcessRecord> records;
  std::error_code error;
  fs::directory_iterator it(dir_ + "/processes", error);
  if (error) {
    LUMEN_LOG(WARNING) << "cannot list " << dir_ << "/processes: " << error.message();
    return records;
  }
  for (const fs::directory_entry& entry : it) {
    // Only <pid>.json: staged writes start with '.'.
    std::string name = entry.path().filename().string();
    absl::string_view digits(name);
    if (!absl::ConsumeSuffix(&digits, ".json") || digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
      continue;
    }
    int pid = 0;
    if (!absl::SimpleAtoi(digits, &pid) || pid <= 0) continue;
    absl::StatusOr<std::string> text = ReadFile(entry.path().string());
    absl::StatusOr<ProcessRecord> record =
        text.ok() ? FromJson(*text) : absl::StatusOr<ProcessRecord>(text.status());
    if (record.ok() && record->pid != pid) {
      record = absl::DataLossError(absl::StrCat("it records pid ", record->pid));
    }
    if (!record.ok()) {
      LUMEN_LOG(WARNING) << "skipping process record " << entry.path().string() << ": "
                         << record.status().message();
      continue;
    }
    records.push_back(*std::move(record));
  }
  std::sort(records.begin(), records.end(),
            [](const ProcessRecord& a, const ProcessRecord& b) { return a.pid < b.pid; });
  return records;
}

std::optional<ProcessRecord> Session::LiveHead() const {
  for (const ProcessRecord& record : Processes()) {
    if (record.role == "head" && IsAlive(record)) return record;
  }
  return std::nullopt;
}

absl::Status Session::MakeLatest() const {
  const fs::path path(dir_);
  const std::string root = path.parent_path().string();
  const std::string name = path.filename().string();
  // A relative link, so the temp dir can be moved; rename replaces the old link atomically.
  std::string staged = absl::StrCat(root, "/.", kLatestLink, ".", name, ".", getpid());
  std::string latest = absl::StrCat(root, "/", kLatestLink);
  unlink(staged.c_str());
  if (symlink(name.c_str(), staged.c_str()) != 0) return ErrnoError(errno, "cannot create", staged);
  if (rename(staged.c_str(), latest.c_str()) != 0) {
    int rename_errno = errno;
    unlink(staged.c_str());
    return ErrnoError(rename_errno, "cannot replace", latest);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ProcessRecord>> Session::RemoveDeadRecords() {
  std::vector<ProcessRecord> removed;
  for (const ProcessRecord& record : Processes()) {
    if (IsAlive(record)) continue;
    if (absl::Status status = UnlinkSharedMemory(record.shm_name); !status.ok()) return status;
    if (absl::Status status = RemoveProcess(record.pid); !status.ok()) return status;
    removed.push_back(record);
  }
  return removed;
}

absl::StatusOr<int> Session::StopAll(absl::Duration grace) {
  const std::vector<ProcessRecord> records = Processes();
  absl::Status first_error;
  auto note_error = [&](absl::Status status) {
    LUMEN_LOG(WARNING) << status.message();
    first_error.Update(std::move(status));
  };

  std::vector<ProcessRecord> signalled;
  for (const ProcessRecord& record : records) {
    if (!IsAlive(record)) continue;
    if (kill(record.pid, SIGTERM) == 0) {
      LUMEN_LOG(INFO) << "sent SIGTERM to " << record.role << " (pid " << record.pid << ")";
      signalled.push_back(record);
    } else if (errno != ESRCH) {
      note_error(absl::ErrnoToStatus(
          errno, absl::StrCat("cannot stop ", record.role, " (pid ", record.pid, ")")));
    }
  }
  std::vector<ProcessRecord> stubborn = WaitUntilGone(signalled, absl::Now() + grace);
  for (const ProcessRecord& record : stubborn) {
    LUMEN_LOG(WARNING) << record.role << " (pid " << record.pid << ") did not exit within "
                       << absl::FormatDuration(grace) << " of SIGTERM; sending SIGKILL";
    kill(record.pid, SIGKILL);
  }
  WaitUntilGone(stubborn, absl::Now() + kKillWait);

  for (const ProcessRecord& record : records) {
    if (IsAlive(record)) {
      note_error(absl::UnavailableError(absl::StrCat(record.role, " (pid ", record.pid,
                                                     ") is still running; keeping its record")));
      continue;
    }
    if (absl::Status status = UnlinkSharedMemory(record.shm_name); !status.ok()) {
      note_error(std::move(status));
      continue;
    }
    if (absl::Status status = RemoveProcess(record.pid); !status.ok()) {
      note_error(std::move(status));
    }
  }
  if (!first_error.ok()) return first_error;
  // Nothing of the session runs any more: spill files of a node that was killed (and so could
  // not remove its own) are of no use to anyone.
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path(dir_) / "spill", ignored);
  return static_cast<int>(signalled.size());
}

}  // namespace lumen::internal
