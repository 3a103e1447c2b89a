#include "dfs/shell.h"

#include <editline/readline.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "dfs/format.h"

namespace lumen::dfs {
namespace {

constexpr char kHelp[] =
    "Commands:\n"
    "  upload NAME CONTENT        store CONTENT (the rest of the line) as a new artifact\n"
    "  upload-file NAME PATH      store a file as a new artifact (PATH - reads standard input,\n"
    "                             with -c)\n"
    "  update NAME CONTENT        store CONTENT as the next version of NAME\n"
    "  get NAME                   print the current version\n"
    "  download NAME PATH         write the current version to PATH (- for standard output)\n"
    "  delete NAME                delete the artifact and reclaim its chunks\n"
    "  list [NAME]                artifacts with size, version, checksum and each chunk's "
    "replicas\n"
    "  status                     the name node, every storage node, under-replicated chunks\n"
    "  kill NODE                  kill a storage node (storage.0, storage.1, ...)\n"
    "  revive NODE                start a killed storage node again on its data\n"
    "  chaos on [--interval=S]    every S seconds (default 5) kill or revive a random storage\n"
    "                             node, never more at once than the replication factor allows\n"
    "  chaos off                  stop chaos\n"
    "  help                       this list\n"
    "  exit                       leave the shell\n";

constexpr double kDefaultChaosInterval = 5;

struct Token {
  std::string text;
  size_t begin = 0;  // in the line
  size_t end = 0;
  bool quoted = false;
};

absl::StatusOr<std::vector<Token>> Tokenize(const std::string& line) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (true) {
    while (i < line.size() && absl::ascii_isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= line.size()) return tokens;
    Token token;
    token.begin = i;
    bool in_quotes = false;
    while (i < line.size() &&
           (in_quotes || !absl::ascii_isspace(static_cast<unsigned char>(line[i])))) {
      const char c = line[i];
      if (c == '"') {
        in_quotes = !in_quotes;
        token.quoted = true;
      } else if (in_quotes && c == '\\' && i + 1 < line.size() &&
                 (line[i + 1] == '"' || line[i + 1] == '\\')) {
        token.text += line[++i];
      } else {
        token.text += c;
      }
      ++i;
    }
    if (in_quotes) return absl::InvalidArgumentError("a double quote is not closed");
    token.end = i;
    tokens.push_back(std::move(token));
  }
}

// Usage errors name the command's form.
absl::Status Usage(const std::string& form) {
  return absl::InvalidArgumentError(absl::StrCat("usage: ", form));
}

// `path` opened for reading, if it is a regular file; sets *size.
absl::StatusOr<std::unique_ptr<std::istream>> OpenRegularFile(const std::string& path,
                                                              uint64_t* size) {
  // Checked before it is opened: opening a FIFO would wait for a writer.
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read the file ", path, ": ", strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path,
        "' is not a regular file (upload-file needs the size before it starts; `-` reads "
        "standard input)"));
  }
  auto file = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*file) return absl::PermissionDeniedError(absl::StrCat("cannot read the file ", path));
  *size = static_cast<uint64_t>(st.st_size);
  return file;
}

// Standard input, copied into a temporary file (removed at once) and opened for reading. The
// name node plans every chunk's replicas before the first byte goes up, so an upload needs its
// size, which a pipe does not tell. Sets *size.
absl::StatusOr<std::unique_ptr<std::istream>> SpoolStandardInput(bool stdin_is_free,
                                                                 uint64_t* size) {
  if (!stdin_is_free) {
    return absl::FailedPreconditionError(
        "standard input carries this shell's commands; give them with -c to upload it, as in "
        "`lumen dfs -c \"upload-file NAME -\" < FILE`");
  }
  std::error_code error;
  std::string dir = std::filesystem::temp_directory_path(error).string();
  if (error) dir = "/tmp";
  std::string path = dir + "/lumen-upload-XXXXXX";
  const int fd = mkstemp(path.data());  // a name of its own
  if (fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot make a temporary file in ", dir, " to hold standard input"));
  }
  close(fd);
  auto file = std::make_unique<std::fstream>(
      path, std::ios::in | std::ios::out | std::ios::binary | std::ios::trunc);
  unlink(path.c_str());
  std::vector<char> buffer(size_t{1} << 20);
  size_t n = 0;
  while (*file && (n = std::fread(buffer.data(), 1, buffer.size(), stdin)) > 0) {
    file->write(buffer.data(), static_cast<std::streamsize>(n));
  }
  if (std::ferror(stdin)) return absl::InternalError("cannot read standard input");
  if (!*file) return absl::InternalError(absl::StrCat("cannot hold standard input in ", dir));
  *size = static_cast<uint64_t>(file->tellp());
  file->seekg(0);
  return file;
}

}  // namespace

std::vector<std::string> SplitCommands(const std::string& script) {
  std::vector<std::string> commands;
  std::string current;
  bool in_quotes = false;
  for (size_t i = 0; i < script.size(); ++i) {
    const char c = script[i];
    if (c == '"') in_quotes = !in_quotes;
    if (in_quotes && c == '\\' && i + 1 < script.size()) {
      current += c;
      current += script[++i];
      continue;
    }
    if (c == ';' && !in_quotes) {
      if (!absl::StripAsciiWhitespace(current).empty()) commands.push_back(current);
      current.clear();
      continue;
    }
    current += c;
  }
  if (!absl::StripAsciiWhitespace(current).empty()) commands.push_back(current);
  return commands;
}

absl::StatusOr<Command> ParseCommand(const std::string& line) {
  auto tokens = Tokenize(line);
  if (!tokens.ok()) return tokens.status();
  Command command;
  if (tokens->empty()) return command;
  command.name = (*tokens)[0].text;
  for (size_t i = 1; i < tokens->size(); ++i) command.args.push_back((*tokens)[i].text);
  if (tokens->size() >= 3) {
    if (tokens->size() == 3 && (*tokens)[2].quoted) {
      command.content = (*tokens)[2].text;
    } else {
      command.content = std::string(
          absl::StripAsciiWhitespace(absl::string_view(line).substr((*tokens)[2].begin)));
    }
  }
  return command;
}

Shell::Shell(ShellOptions options) : options_(options) {}

Shell::~Shell() { StopChaos(); }

std::ostream& Shell::Out() { return options_.out != nullptr ? *options_.out : std::cout; }

std::ostream& Shell::Err() { return options_.err != nullptr ? *options_.err : std::cerr; }

void Shell::Print(const std::string& text) {
  absl::MutexLock lock(&print_mu_);
  std::ostream& out = out_carries_data_ ? Err() : Out();
  out << text;
  out.flush();
}

void Shell::PrintJson(const nlohmann::json& json) {
  Print(json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

absl::StatusOr<Client*> Shell::Dfs() {
  if (client_ == nullptr) {
    auto connected = Client::Connect();
    if (!connected.ok()) return connected.status();
    client_ = std::move(*connected);
  }
  return client_.get();
}

Progress Shell::MakeProgress(const std::string& what) {
  if (!options_.progress) return nullptr;
  auto start = std::make_shared<absl::Time>(absl::Now());
  auto last = std::make_shared<absl::Time>(absl::InfinitePast());
  return [this, what, start, last](uint64_t done, uint64_t total) {
    const absl::Time now = absl::Now();
    if (done < total && now - *last < absl::Milliseconds(100)) return;
    *last = now;
    const int width = 30;
    const double fraction =
        total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
    std::string bar(static_cast<size_t>(fraction * width), '#');
    bar.resize(width, '.');
    const double seconds = absl::ToDoubleSeconds(now - *start);
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    absl::MutexLock lock(&print_mu_);
    std::ostream& err = Err();
    err << absl::StrFormat("\r%s [%s] %3d%%  %s / %s  %s/s", what, bar,
                           static_cast<int>(fraction * 100), FormatBytes(done), FormatBytes(total),
                           FormatBytes(static_cast<uint64_t>(rate)))
        << (done >= total ? "\n" : "");
    err.flush();
  };
}

bool Shell::Execute(const std::string& line, bool* exit) {
  auto command = ParseCommand(line);
  absl::Status status = command.status();
  if (command.ok() && command->name.empty()) return true;
  const std::string name = command.ok() ? command->name : "";
  // `download NAME -` writes the bytes to standard output; all the shell says about the
  // command (its report, its error, and chaos meanwhile) goes to standard error.
  const bool to_out = name == "download" && command->args.size() == 2 && command->args[1] == "-";
  if (to_out) {
    absl::MutexLock lock(&print_mu_);
    out_carries_data_ = true;
  }
  absl::Cleanup restore = [this, to_out] {
    if (!to_out) return;
    absl::MutexLock lock(&print_mu_);
    out_carries_data_ = false;
  };
  if (command.ok()) status = Run(*command, exit);
  if (status.ok()) return true;
  if (options_.json) {
    PrintJson({{"command", name}, {"ok", false}, {"error", std::string(status.message())}});
  } else {
    absl::MutexLock lock(&print_mu_);
    std::ostream& err = Err();
    err << "error: " << status.message() << "\n";
    err.flush();
  }
  return false;
}

absl::Status Shell::Run(const Command& command, bool* exit) {
  const std::string& name = command.name;
  const std::vector<std::string>& args = command.args;
  nlohmann::json json = {{"command", name}, {"ok", true}};
  auto done = [&](const std::string& text) {
    if (options_.json) {
      PrintJson(json);
    } else {
      Print(text);
    }
    return absl::OkStatus();
  };
  if (name == "help") {
    if (!args.empty()) return Usage("help");
    json["help"] = kHelp;
    return done(kHelp);
  }
  if (name == "exit" || name == "quit") {
    if (!args.empty()) return Usage("exit");
    *exit = true;
    return options_.json ? done("") : absl::OkStatus();
  }
  static const char* kKnown[] = {"upload", "upload-file", "update", "get",    "download", "delete",
                                 "list",   "status",      "kill",   "revive", "chaos"};
  if (std::find(std::begin(kKnown), std::end(kKnown), name) == std::end(kKnown)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", name, "'; `help` lists the commands"));
  }
  if (name == "chaos") {
    if (args.empty() || (args[0] != "on" && args[0] != "off")) {
      return Usage("chaos on [--interval=S] | chaos off");
    }
    if (args[0] == "off") {
      if (args.size() != 1) return Usage("chaos off");
      StopChaos();
      return done("chaos off\n");
    }
    double interval = kDefaultChaosInterval;
    for (size_t i = 1; i < args.size(); ++i) {
      absl::string_view value(args[i]);
      if (!absl::ConsumePrefix(&value, "--interval=") || !absl::SimpleAtod(value, &interval) ||
          !(interval >= 0.1 && interval <= 3600)) {
        return Usage("chaos on [--interval=S]   (S between 0.1 and 3600 seconds)");
      }
    }
    if (auto status = StartChaos(interval); !status.ok()) return status;
    json["interval"] = interval;
    return done(absl::StrFormat(
        "chaos on: every %g s a random storage node is killed or revived (at most %d down at "
        "once)\n",
        interval, client_->config().replication - 1));
  }

  auto dfs = Dfs();
  if (!dfs.ok()) return dfs.status();
  Client& client = **dfs;
  if (name == "upload" || name == "update") {
    if (args.size() < 2) return Usage(name + " NAME CONTENT");
    auto info = client.UploadBytes(args[0], command.content, name == "update");
    if (!info.ok()) return info.status();
    json["artifact"] = ArtifactJson(*info);
    return done(FormatWritten(name == "upload" ? "uploaded" : "updated", *info));
  }
  if (name == "upload-file") {
    if (args.size() != 2) return Usage("upload-file NAME PATH   (PATH - for standard input)");
    uint64_t size = 0;
    auto file = args[1] == "-" ? SpoolStandardInput(options_.stdin_is_free, &size)
                               : OpenRegularFile(args[1], &size);
    if (!file.ok()) return file.status();
    auto info = client.Upload(args[0], **file, size, false, MakeProgress("upload " + args[0]));
    if (!info.ok()) return info.status();
    json["artifact"] = ArtifactJson(*info);
    return done(FormatWritten("uploaded", *info));
  }
  if (name == "get") {
    if (args.size() != 1) return Usage("get NAME");
    ArtifactInfo info;
    auto content = client.GetBytes(args[0], uint64_t{64} << 20, &info);
    if (!content.ok()) return content.status();
    json["name"] = info.name;
    json["version"] = info.version;
    json["size"] = info.size;
    json["checksum"] = ChecksumHex(info.checksum);
    json["content"] = *content;
    const bool newline = content->empty() || content->back() != '\n';
    return done(*content + (newline ? "\n" : ""));
  }
  if (name == "download") {
    if (args.size() != 2) return Usage("download NAME PATH   (PATH - for standard output)");
    const Progress progress = MakeProgress("download " + args[0]);
    auto info = args[1] == "-" ? client.Download(args[0], Out(), progress)
                               : client.Download(args[0], args[1], progress);
    if (!info.ok()) return info.status();
    json["artifact"] = ArtifactJson(*info);
    json["path"] = args[1];
    return done(absl::StrFormat("downloaded %s: version %d, %s to %s\n", info->name, info->version,
                                FormatBytes(info->size),
                                args[1] == "-" ? "standard output" : args[1]));
  }
  if (name == "delete") {
    if (args.size() != 1) return Usage("delete NAME");
    if (auto status = client.Delete(args[0]); !status.ok()) return status;
    json["name"] = args[0];
    return done(absl::StrCat("deleted ", args[0], "\n"));
  }
  if (name == "list") {
    if (args.size() > 1) return Usage("list [NAME]");
    auto artifacts = client.List(args.empty() ? "" : args[0]);
    if (!artifacts.ok()) return artifacts.status();
    json["artifacts"] = nlohmann::json::array();
    for (const ArtifactInfo& artifact : *artifacts)
      json["artifacts"].push_back(ArtifactJson(artifact));
    return done(FormatList(*artifacts));
  }
  if (name == "status") {
    if (!args.empty()) return Usage("status");
    auto status = client.Status();
    if (!status.ok()) return status.status();
    json.update(StatusJson(*status));
    return done(FormatStatus(*status));
  }
  // kill, revive
  if (args.size() != 1) return Usage(name + " NODE");
  auto node = ParseNodeName(args[0], client.config().storage_nodes);
  if (!node.ok()) return node.status();
  auto status = name == "kill" ? client.Kill(*node) : client.Revive(*node);
  if (!status.ok()) return status;
  json["node"] = StorageDisplayName(*node);
  std::string text =
      absl::StrCat(name == "kill" ? "killed " : "revived ", StorageDisplayName(*node), "\n");
  // Only chaos keeps to the failure budget; a kill beyond it is done, and said.
  if (name == "kill") {
    auto after = client.Status();
    if (after.ok() && after->lost > 0) {
      json["lost"] = after->lost;
      absl::StrAppend(&text, "warning: ", after->lost,
                      " chunks have no live replica now; reading them fails until a storage node "
                      "that holds them is revived (their data stays on its disk)\n");
    }
  }
  return done(text);
}

absl::Status Shell::StartChaos(double interval_seconds) {
  auto dfs = Dfs();
  if (!dfs.ok()) return dfs.status();
  StopChaos();
  {
    absl::MutexLock lock(&chaos_mu_);
    chaos_stop_ = false;
  }
  chaos_ = std::thread([this, interval_seconds] { ChaosLoop(interval_seconds); });
  return absl::OkStatus();
}

void Shell::StopChaos() {
  {
    absl::MutexLock lock(&chaos_mu_);
    chaos_stop_ = true;
  }
  if (chaos_.joinable()) chaos_.join();
}

void Shell::ChaosLoop(double interval_seconds) {
  auto connected = Client::Connect();
  if (!connected.ok()) {
    Print(absl::StrCat("chaos: ", connected.status().message(), "\n"));
    return;
  }
  Client& client = **connected;
  const int replication = client.config().replication;
  std::mt19937 random(std::random_device{}());
  while (true) {
    {
      absl::MutexLock lock(&chaos_mu_);
      if (chaos_mu_.AwaitWithTimeout(absl::Condition(&chaos_stop_),
                                     absl::Seconds(interval_seconds))) {
        return;
      }
    }
    auto status = client.Status();
    if (!status.ok()) continue;
    std::vector<int> alive;
    std::vector<int> dead;
    for (const StorageNodeStatus& node : status->storage) {
      (node.alive ? alive : dead).push_back(node.index);
    }
    // Revive when as many are down as R allows, else flip a coin between reviving and killing.
    const bool may_kill = static_cast<int>(dead.size()) < replication - 1;
    std::string event;
    if (!dead.empty() && (!may_kill || random() % 2 == 0)) {
      const int node = dead[random() % dead.size()];
      auto revived = client.Revive(node);
      event = revived.ok() ? absl::StrCat("revived ", StorageDisplayName(node))
                           : absl::StrCat("could not revive ", StorageDisplayName(node), ": ",
                                          revived.message());
    } else if (may_kill) {
      std::shuffle(alive.begin(), alive.end(), random);
      for (int node : alive) {
        auto safe = client.CanLose(node);
        if (!safe.ok() || !*safe) continue;
        auto killed = client.Kill(node);
        event = killed.ok() ? absl::StrCat("killed ", StorageDisplayName(node))
                            : absl::StrCat("could not kill ", StorageDisplayName(node), ": ",
                                           killed.message());
        break;
      }
    }
    if (event.empty()) continue;
    if (options_.json) {
      PrintJson({{"command", "chaos"}, {"ok", true}, {"event", event}});
    } else {
      Print(absl::StrCat("chaos: ", event, "\n"));
    }
  }
}

int RunShell(ShellOptions options, const std::optional<std::string>& script) {
  options.stdin_is_free = script.has_value();
  Shell shell(options);
  bool exit = false;
  bool ok = true;
  if (script.has_value()) {
    for (const std::string& line : SplitCommands(*script)) {
      ok = shell.Execute(line, &exit) && ok;
      if (exit) break;
    }
    return ok ? 0 : 1;
  }
  if (!isatty(STDIN_FILENO)) {
    std::string line;
    while (!exit && std::getline(std::cin, line)) ok = shell.Execute(line, &exit) && ok;
    return ok ? 0 : 1;
  }
  // A terminal: line editing and history (~/.lumen_dfs_history).
  const char* home = std::getenv("HOME");
  const std::string history = home != nullptr ? std::string(home) + "/.lumen_dfs_history" : "";
  using_history();
  stifle_history(1000);
  if (!history.empty()) read_history(history.c_str());
  std::cout << "Lumen DFS shell; `help` lists the commands, `exit` or Ctrl-D leaves.\n";
  while (!exit) {
    char* input = readline("dfs> ");
    if (input == nullptr) {
      std::cout << "\n";
      break;
    }
    const std::string line = input;
    std::free(input);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    add_history(line.c_str());
    shell.Execute(line, &exit);
  }
  if (!history.empty()) write_history(history.c_str());
  return 0;
}

}  // namespace lumen::dfs
