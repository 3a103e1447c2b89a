// A driver for the DFS integration tests, using the DFS's client library against a store that
// `lumen dfs start` created. Modes (argv[1]), then cluster flags for lumen::Init:
//   update-loop NAME WRITER COUNT SIZE   COUNT updates of NAME, each SIZE bytes of
//                                        "<WRITER><i>;" repeated; prints "updates <ok>"
//   read-loop NAME COUNT SIZE            COUNT reads of NAME, each checked to be one whole
//                                        version; prints "reads <n> whole <w> mixed <m> ..."
//   model SECONDS SEED                   random uploads, updates, reads and deletes on two
//                                        threads while storage nodes (and once the name node)
//                                        are killed and revived; every acknowledged write is
//                                        checked against a model at the end
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dfs/client.h"
#include "lumen/lumen.h"

namespace {

using lumen::dfs::Client;

std::mutex g_print_mu;
void Say(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_print_mu);
  std::cout << line << std::endl;
}

std::string Repeat(const std::string& token, size_t size) {
  std::string out;
  out.reserve(size + token.size());
  while (out.size() < size) out += token;
  out.resize(size);
  return out;
}

std::unique_ptr<Client> ConnectOrDie() {
  auto client = Client::Connect();
  if (!client.ok()) {
    Say(absl::StrCat("error ", client.status().message()));
    std::exit(1);
  }
  return std::move(*client);
}

int UpdateLoop(const std::string& name, const std::string& writer, int count, size_t size) {
  auto client = ConnectOrDie();
  int ok = 0;
  for (int i = 1; i <= count; ++i) {
    auto written = client->UploadBytes(name, Repeat(absl::StrCat(writer, i, ";"), size), true);
    if (written.ok()) {
      ++ok;
    } else {
      Say(absl::StrCat("update-error ", written.status().ToString()));
    }
  }
  Say(absl::StrCat("updates ", ok));
  return ok == count ? 0 : 1;
}

int ReadLoop(const std::string& name, int count, size_t size) {
  auto client = ConnectOrDie();
  int whole = 0;
  int mixed = 0;
  int errors = 0;
  std::set<std::string> versions;
  for (int i = 0; i < count; ++i) {
    auto content = client->GetBytes(name);
    if (!content.ok()) {
      ++errors;
      Say(absl::StrCat("read-error ", content.status().ToString()));
      continue;
    }
    const std::string token = content->substr(0, content->find(';') + 1);
    if (content->size() == size && *content == Repeat(token, size)) {
      ++whole;
      versions.insert(token);
    } else {
      ++mixed;
      Say(absl::StrCat("mixed read of ", content->size(), " bytes starting ", token));
    }
  }
  Say(absl::StrCat("reads ", count, " whole ", whole, " mixed ", mixed, " errors ", errors,
                   " versions ", versions.size()));
  return mixed == 0 && errors == 0 ? 0 : 1;
}

// What a name may hold: nullopt is "absent". One element once a write was acknowledged; more
// after a write failed (it may or may not have taken effect).
using Possible = std::set<std::optional<std::string>>;

struct Tally {
  std::atomic<int> acknowledged{0};
  std::atomic<int> failed{0};
  std::atomic<int> reads{0};
  std::atomic<int> violations{0};
};

void Workload(int worker, uint64_t seed, absl::Time until, std::map<std::string, Possible>* model,
              Tally* tally) {
  auto client = ConnectOrDie();
  std::mt19937_64 random(seed + static_cast<uint64_t>(worker));
  for (int k = 0; k < 6; ++k) (*model)[absl::StrCat("w", worker, "-", k)] = {std::nullopt};
  int round = 0;
  while (absl::Now() < until) {
    auto it = model->begin();
    std::advance(it, static_cast<long>(random() % model->size()));
    const std::string& name = it->first;
    Possible& possible = it->second;
    const bool maybe_absent = possible.contains(std::nullopt);
    const bool maybe_present = possible.size() > (maybe_absent ? 1u : 0u);
    const int choice = static_cast<int>(random() % 10);
    const std::string content =
        Repeat(absl::StrCat(name, "#", ++round, ";"), static_cast<size_t>(random() % 200000));
    if (!maybe_present || (maybe_absent && choice < 5)) {
      auto written = client->UploadBytes(name, content, /*update=*/false);
      if (written.ok()) {
        possible = {content};
        ++tally->acknowledged;
      } else if (!maybe_absent || absl::IsAlreadyExists(written.status())) {
        ++tally->failed;  // refused: nothing changed
      } else {
        possible.insert(content);
        ++tally->failed;
      }
    } else if (choice < 4) {
      auto written = client->UploadBytes(name, content, /*update=*/true);
      if (written.ok()) {
        possible = {content};
        ++tally->acknowledged;
      } else if (!absl::IsNotFound(written.status())) {
        possible.insert(content);
        ++tally->failed;
      }
    } else if (choice < 8) {
      auto read = client->GetBytes(name);
      ++tally->reads;
      if (read.ok() ? !possible.contains(*read)
                    : (absl::IsNotFound(read.status()) && !maybe_absent)) {
        ++tally->violations;
        Say(absl::StrCat("VIOLATION read of ", name, ": ",
                         read.ok() ? absl::StrCat(read->size(), " unexpected bytes")
                                   : read.status().ToString()));
      }
    } else {
      const absl::Status deleted = client->Delete(name);
      if (deleted.ok()) {
        possible = {std::nullopt};
        ++tally->acknowledged;
      } else if (!absl::IsNotFound(deleted)) {
        possible.insert(std::nullopt);
        ++tally->failed;
      }
    }
  }
}

// Kills and revives storage nodes (never more than R - 1 down, never the last live replica of
// a chunk), and kills the name node's process once.
void Chaos(uint64_t seed, absl::Time until, int* name_node_kills, int* storage_kills) {
  auto client = ConnectOrDie();
  std::mt19937_64 random(seed);
  const int replication = client->config().replication;
  const absl::Time name_node_kill_at = absl::Now() + (until - absl::Now()) / 2;
  while (absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(700));
    auto status = client->Status();
    if (!status.ok() || status->name_node_state != "ready") continue;
    if (*name_node_kills == 0 && absl::Now() > name_node_kill_at && status->name_node_pid > 0) {
      kill(status->name_node_pid, SIGKILL);
      ++*name_node_kills;
      Say(absl::StrCat("chaos killed the name node (pid ", status->name_node_pid, ")"));
      continue;
    }
    std::vector<int> alive;
    std::vector<int> dead;
    for (const auto& node : status->storage) (node.alive ? alive : dead).push_back(node.index);
    const bool may_kill = static_cast<int>(dead.size()) < replication - 1;
    if (!dead.empty() && (!may_kill || random() % 2 == 0)) {
      const int node = dead[random() % dead.size()];
      Say(absl::StrCat("chaos revive ", node, ": ", client->Revive(node).ToString()));
    } else if (may_kill) {
      std::shuffle(alive.begin(), alive.end(), random);
      for (int node : alive) {
        auto safe = client->CanLose(node);
        if (!safe.ok() || !*safe) continue;
        Say(absl::StrCat("chaos kill ", node, ": ", client->Kill(node).ToString()));
        ++*storage_kills;
        break;
      }
    }
  }
}

int Model(int seconds, uint64_t seed) {
  const absl::Time until = absl::Now() + absl::Seconds(seconds);
  std::map<std::string, Possible> models[2];
  Tally tally;
  int name_node_kills = 0;
  int storage_kills = 0;
  std::thread chaos(Chaos, seed, until, &name_node_kills, &storage_kills);
  std::thread first(Workload, 0, seed, until, &models[0], &tally);
  std::thread second(Workload, 1, seed, until, &models[1], &tally);
  first.join();
  second.join();
  chaos.join();

  // Everything back, then every name must hold what the model allows.
  auto client = ConnectOrDie();
  for (int node = 0; node < client->config().storage_nodes; ++node) (void)client->Revive(node);
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  std::optional<lumen::dfs::StoreStatus> settled;
  while (absl::Now() < deadline) {
    auto status = client->Status();
    if (status.ok() && status->name_node_state == "ready" && status->under_replicated == 0 &&
        status->repairs_in_flight == 0) {
      settled = *status;
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  Say(absl::StrCat("settled ", settled.has_value() ? 1 : 0));
  auto listed = client->List();
  std::set<std::string> names;
  if (listed.ok()) {
    for (const auto& artifact : *listed) names.insert(artifact.name);
  } else {
    Say(absl::StrCat("VIOLATION list failed: ", listed.status().ToString()));
    ++tally.violations;
  }
  int checked = 0;
  for (auto& model : models) {
    for (const auto& [name, possible] : model) {
      auto read = client->GetBytes(name);
      const std::optional<std::string> held =
          read.ok() ? std::optional<std::string>(*read) : std::nullopt;
      const bool ok = (read.ok() || absl::IsNotFound(read.status())) && possible.contains(held) &&
                      names.contains(name) == held.has_value();
      if (!ok) {
        ++tally.violations;
        Say(absl::StrCat(
            "VIOLATION final state of ", name, ": ",
            read.ok() ? absl::StrCat(read->size(), " bytes") : read.status().ToString(),
            ", listed ", names.contains(name)));
      }
      ++checked;
    }
  }
  Say(absl::StrCat("acknowledged ", tally.acknowledged.load(), " failed ", tally.failed.load(),
                   " reads ", tally.reads.load(), " storage-kills ", storage_kills,
                   " name-node-kills ", name_node_kills, " checked ", checked, " violations ",
                   tally.violations.load()));
  return tally.violations.load() == 0 && settled.has_value() ? 0 : 1;
}

int Usage() {
  std::cerr << "usage: lumen_dfs_driver update-loop|read-loop|model ...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // First: a storage node this driver revives runs this executable in worker mode, where Init
  // serves the actor and never returns.
  lumen::Init(argc, argv);
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  std::vector<std::string> args;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]).rfind("--", 0) != 0) args.emplace_back(argv[i]);
  }
  int code = 0;
  if (mode == "update-loop" && args.size() == 4) {
    code = UpdateLoop(args[0], args[1], std::atoi(args[2].c_str()),
                      static_cast<size_t>(std::atoll(args[3].c_str())));
  } else if (mode == "read-loop" && args.size() == 3) {
    code = ReadLoop(args[0], std::atoi(args[1].c_str()),
                    static_cast<size_t>(std::atoll(args[2].c_str())));
  } else if (mode == "model" && args.size() == 2) {
    code = Model(std::atoi(args[0].c_str()), std::strtoull(args[1].c_str(), nullptr, 10));
  } else {
    code = Usage();
  }
  lumen::Shutdown();
  return code;
}
