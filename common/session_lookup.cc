#include "common/session_lookup.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace lumen::internal {
namespace fs = std::filesystem;

namespace {

std::string ReadJoinedHead(const std::string& dir) {
  std::ifstream file(dir + "/" + kHeadAddressFile);
  std::string joined;
  std::getline(file, joined);
  return std::string(absl::StripAsciiWhitespace(joined));
}

}  // namespace

std::string JoinedHead(const Session& session) {
  for (const ProcessRecord& record : session.Processes()) {
    if (IsAlive(record)) return ReadJoinedHead(session.dir());
  }
  return "";
}

absl::StatusOr<Session> FindLiveSessionFor(const std::string& temp_dir,
                                           const std::string& head_address) {
  std::vector<std::string> dirs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(temp_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("session_", 0) == 0 && name != "session_latest" && entry.is_directory(error)) {
      dirs.push_back(entry.path().string());
    }
  }
  // Session folder names start with their creation time: newest first.
  std::sort(dirs.rbegin(), dirs.rend());
  for (const std::string& dir : dirs) {
    auto session = Session::Open(dir);
    if (!session.ok()) continue;
    const std::string joined = ReadJoinedHead(dir);
    for (const ProcessRecord& record : session->Processes()) {
      if (!IsAlive(record)) continue;
      if ((record.role == "head" && record.address == head_address) || joined == head_address) {
        return session;
      }
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no live session in ", temp_dir, " belongs to the cluster at ", head_address));
}

absl::Status RecordJoinedHead(const Session& session, const std::string& head_address) {
  const std::string path = session.dir() + "/" + kHeadAddressFile;
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  std::fputs((head_address + "\n").c_str(), file);
  return std::fclose(file) == 0 ? absl::OkStatus()
                                : absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
}

}  // namespace lumen::internal
