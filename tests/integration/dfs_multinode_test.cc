// The DFS on namespace hosts (netns_cluster.h): storage nodes on distinct hosts, a storage node's
// process killed on one host, and whole hosts lost (every process of the host killed by pid),
// with the name node, repair and reads watched through the `lumen dfs` shell.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/netns_cluster.h"

namespace lumen::testing {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A head on host 0 and a node on every other host, with a DFS of one storage node per host.
// The shell and the CLI run on host 0.
class DfsHosts {
 public:
  DfsHosts(int hosts, int replication) : cluster_(hosts) {
    REQUIRE(cluster_.StartHead({"--num-cpus=2", "--object-store-memory=134217728"}).exit_code == 0);
    for (int host = 1; host < hosts; ++host) {
      const CommandResult node =
          cluster_.StartNode(host, {"--num-cpus=1", "--object-store-memory=134217728"});
      INFO(node.output);
      REQUIRE(node.exit_code == 0);
    }
    const CommandResult started =
        cluster_.Run(0,
                     {"lumen", "dfs", "start", "--storage-nodes=" + std::to_string(hosts),
                      "--replication=" + std::to_string(replication), Address()},
                     90);
    INFO(started.output);
    REQUIRE(started.exit_code == 0);
    // One storage node on each host (SPREAD), and the name node on one of them.
    storage_hosts_ = StorageHosts();
    INFO("storage hosts " << nlohmann::json(storage_hosts_).dump());
    REQUIRE(std::set<int>(storage_hosts_.begin(), storage_hosts_.end()).size() ==
            static_cast<size_t>(hosts));
    name_node_host_ = NameNodeHost();
    REQUIRE(name_node_host_ >= 0);
  }

  // The host of each storage node (index i is storage.i) and of the name node, at the start.
  const std::vector<int>& storage_hosts() const { return storage_hosts_; }
  int name_node_host() const { return name_node_host_; }

  NetnsCluster& cluster() { return cluster_; }
  std::string Address() const { return "--address=" + cluster_.HeadAddress(); }
  std::string Dir() const { return cluster_.host(0).temp_dir; }

  // `lumen dfs -c <script>` on host 0, which must succeed.
  std::string Ok(const std::string& script, double timeout = 120) const {
    const CommandResult result =
        cluster_.Run(0, {"lumen", "dfs", "-c", script, Address()}, timeout);
    INFO(script);
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    return result.output;
  }
  nlohmann::json Json(const std::string& command) const {
    const CommandResult result =
        cluster_.Run(0, {"lumen", "dfs", "--json", "-c", command, Address()}, 30);
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    return nlohmann::json::parse(result.output);
  }
  // Like Json, but null if the command fails (while the name node restarts, say).
  nlohmann::json JsonOrNull(const std::string& command) const {
    const CommandResult result =
        cluster_.Run(0, {"lumen", "dfs", "--json", "-c", command, Address()}, 30);
    if (result.exit_code != 0) return nullptr;
    return nlohmann::json::parse(result.output, nullptr, /*allow_exceptions=*/false);
  }

  // The host each live actor whose name starts with `prefix` runs on, by actor name.
  std::map<std::string, int> ActorHosts(const std::string& prefix) const {
    const CommandResult actors =
        cluster_.Run(0, {"lumen", "list", "actors", "--json", Address()}, 20);
    INFO(actors.output);
    REQUIRE(actors.exit_code == 0);
    std::map<std::string, int> hosts;
    for (const auto& actor : nlohmann::json::parse(actors.output)) {
      const std::string name = actor.at("name").get<std::string>();
      if (name.rfind(prefix, 0) != 0 || actor.at("state") != "ALIVE") continue;
      for (int host = 0; host < cluster_.size(); ++host) {
        if (actor.at("ip") == cluster_.host(host).ip) hosts[name] = host;
      }
    }
    return hosts;
  }

  std::vector<int> StorageHosts() const {
    const std::map<std::string, int> hosts = ActorHosts("dfs.storage.");
    std::vector<int> out;
    for (int i = 0; i < cluster_.size(); ++i) {
      const auto found = hosts.find("dfs.storage." + std::to_string(i));
      out.push_back(found == hosts.end() ? -1 : found->second);
    }
    return out;
  }
  int NameNodeHost() const {
    const std::map<std::string, int> hosts = ActorHosts("dfs.namenode");
    return hosts.empty() ? -1 : hosts.begin()->second;
  }

  // The whole host goes at once: SIGKILL to every process in its namespace.
  void LoseHost(int host) {
    for (int pid : cluster_.Pids(host)) kill(pid, SIGKILL);
    REQUIRE(WaitUntil([&] { return cluster_.Pids(host).empty(); }, 10));
  }

  // True once the name node sees exactly the storage nodes `alive` as alive.
  bool Sees(const std::set<std::string>& alive) const {
    const nlohmann::json status = JsonOrNull("status");
    if (!status.is_object()) return false;
    std::set<std::string> seen;
    for (const auto& node : status.at("storage_nodes")) {
      if (node.at("alive").get<bool>()) seen.insert(node.at("name").get<std::string>());
    }
    return status.at("name_node") == "ready" && seen == alive;
  }

  // True once no repair runs and every chunk has `replicas` replicas, all on nodes of `alive`.
  bool Repaired(const std::set<std::string>& alive, size_t replicas) const {
    const nlohmann::json status = JsonOrNull("status");
    const nlohmann::json list = JsonOrNull("list");
    if (!status.is_object() || !list.is_object()) return false;
    if (status.at("repairs_in_flight") != 0 || status.at("lost") != 0) return false;
    for (const auto& artifact : list.at("artifacts")) {
      for (const auto& chunk : artifact.at("chunks")) {
        if (chunk.at("replicas").size() != replicas) return false;
        for (const auto& replica : chunk.at("replicas")) {
          if (alive.count(replica.get<std::string>()) == 0) return false;
        }
      }
    }
    return true;
  }

  // Downloads `name` on host 0 and compares it with `input`.
  bool ReadsBack(const std::string& name, const std::string& input) const {
    const std::string output = Dir() + "/output-" + name + ".bin";
    Ok("download " + name + " " + output);
    return Run({"/bin/sh", "-c", "cmp " + input + " " + output}).exit_code == 0;
  }

  // A file of `bytes` random bytes in host 0's temp dir.
  std::string MakeInput(const std::string& name, int bytes) const {
    std::string path = Dir() + "/" + name + ".bin";
    REQUIRE(Run({"/bin/sh", "-c", "head -c " + std::to_string(bytes) + " /dev/urandom > " + path})
                .exit_code == 0);
    return path;
  }

 private:
  NetnsCluster cluster_;
  std::vector<int> storage_hosts_;
  int name_node_host_ = -1;
};

std::string StorageName(int index) { return "storage." + std::to_string(index); }

std::set<std::string> AllBut(int nodes, const std::set<int>& gone) {
  std::set<std::string> names;
  for (int i = 0; i < nodes; ++i) {
    if (gone.count(i) == 0) names.insert(StorageName(i));
  }
  return names;
}

}  // namespace

TEST_CASE(
    "on namespace hosts a storage node's killed process and then a whole lost host are noticed "
    "within seconds and repaired back to R",
    "[multinode][dfs]") {
  LUMEN_REQUIRE_NETNS();
  constexpr int kHosts = 4;
  DfsHosts dfs(kHosts, 2);
  const std::vector<int>& storage_hosts = dfs.storage_hosts();
  const int name_node_host = dfs.name_node_host();

  const std::string data = dfs.MakeInput("data", (6 << 20) + 4321);
  const std::string more = dfs.MakeInput("more", 3 << 20);
  dfs.Ok("upload-file data " + data + "; upload-file more " + more + "; upload small tiny");

  // A storage node's process on a host other than the head's and the name node's.
  int victim = -1;
  for (int i = 0; i < kHosts; ++i) {
    if (storage_hosts[i] != 0 && storage_hosts[i] != name_node_host) victim = i;
  }
  REQUIRE(victim >= 0);
  const int victim_pid = dfs.Json("status").at("storage_nodes").at(victim).at("pid").get<int>();
  REQUIRE(victim_pid > 0);
  auto killed_at = std::chrono::steady_clock::now();
  REQUIRE(kill(victim_pid, SIGKILL) == 0);
  REQUIRE(WaitUntil([&] { return dfs.Sees(AllBut(kHosts, {victim})); }, 20));
  CHECK(SecondsSince(killed_at) < 15);
  REQUIRE(WaitUntil([&] { return dfs.Repaired(AllBut(kHosts, {victim}), 2); }, 60));
  CHECK(dfs.Json("status").at("under_replicated") == 0);
  CHECK(dfs.ReadsBack("data", data));

  // A whole host (not the head's, not the name node's, not the one already down) is lost.
  int lost = -1;
  for (int i = 0; i < kHosts; ++i) {
    if (i != victim && storage_hosts[i] != 0 && storage_hosts[i] != name_node_host) lost = i;
  }
  REQUIRE(lost >= 0);
  killed_at = std::chrono::steady_clock::now();
  dfs.LoseHost(storage_hosts[lost]);
  REQUIRE(WaitUntil([&] { return dfs.Sees(AllBut(kHosts, {victim, lost})); }, 20));
  CHECK(SecondsSince(killed_at) < 15);
  // Committed data stays readable while the repair runs, and the repair gets back to R.
  CHECK(dfs.ReadsBack("more", more));
  REQUIRE(WaitUntil([&] { return dfs.Repaired(AllBut(kHosts, {victim, lost}), 2); }, 60));
  CHECK(dfs.Json("status").at("under_replicated") == 0);
  CHECK(dfs.ReadsBack("data", data));
  CHECK(dfs.Ok("get small") == "tiny\n");
}

TEST_CASE(
    "on namespace hosts a chunk reads back intact with R - 1 of its hosts lost, and repair "
    "goes as far as the live nodes allow",
    "[multinode][dfs]") {
  LUMEN_REQUIRE_NETNS();
  constexpr int kHosts = 4;
  DfsHosts dfs(kHosts, 3);
  const std::vector<int>& storage_hosts = dfs.storage_hosts();
  const int name_node_host = dfs.name_node_host();

  // Several files, so that placement (by load) spreads chunks over every storage node.
  std::vector<std::string> inputs;
  for (int i = 0; i < 3; ++i) {
    inputs.push_back(dfs.MakeInput("data" + std::to_string(i), 4 << 20));
    dfs.Ok("upload-file data" + std::to_string(i) + " " + inputs.back());
  }

  // Two replicas of one chunk on hosts other than the head's: if possible not the name node's
  // either (else the name node restarts on a live host too, and reads go on meanwhile).
  std::vector<int> doomed;
  std::string doomed_artifact;
  const nlohmann::json list = dfs.Json("list");
  for (bool spare_name_node : {true, false}) {
    for (const auto& artifact : list.at("artifacts")) {
      for (const auto& chunk : artifact.at("chunks")) {
        std::vector<int> candidates;
        for (const auto& replica : chunk.at("replicas")) {
          const int index = std::stoi(replica.get<std::string>().substr(8));
          const int host = storage_hosts[index];
          if (host != 0 && (!spare_name_node || host != name_node_host)) {
            candidates.push_back(index);
          }
        }
        if (candidates.size() >= 2 && doomed.empty()) {
          doomed = {candidates[0], candidates[1]};
          doomed_artifact = artifact.at("name").get<std::string>();
        }
      }
    }
  }
  REQUIRE(doomed.size() == 2);
  const bool name_node_lost =
      storage_hosts[doomed[0]] == name_node_host || storage_hosts[doomed[1]] == name_node_host;
  INFO("lost storage." << doomed[0] << " and storage." << doomed[1]
                       << (name_node_lost ? " with the name node" : ""));
  const auto killed_at = std::chrono::steady_clock::now();
  for (int index : doomed) dfs.LoseHost(storage_hosts[index]);

  // Read at once, before the name node has noticed anything.
  const int artifact_index = std::stoi(doomed_artifact.substr(4));
  CHECK(dfs.ReadsBack(doomed_artifact, inputs[static_cast<size_t>(artifact_index)]));
  const std::set<std::string> alive = AllBut(kHosts, {doomed[0], doomed[1]});
  REQUIRE(WaitUntil([&] { return dfs.Sees(alive); }, name_node_lost ? 90 : 20));
  if (!name_node_lost) CHECK(SecondsSince(killed_at) < 20);
  // Two live nodes for R = 3: every chunk gets back to two replicas, none is lost.
  REQUIRE(WaitUntil([&] { return dfs.Repaired(alive, 2); }, 60));
  const nlohmann::json status = dfs.Json("status");
  CHECK(status.at("lost") == 0);
  CHECK(status.at("under_replicated") == status.at("chunks"));
  for (size_t i = 0; i < inputs.size(); ++i) {
    CHECK(dfs.ReadsBack("data" + std::to_string(i), inputs[i]));
  }
}

TEST_CASE(
    "on namespace hosts a stopped DFS starts again with each storage node on its own host, and a "
    "revived storage node goes back to its host and its chunks, or elsewhere once the host is lost",
    "[multinode][dfs]") {
  LUMEN_REQUIRE_NETNS();
  constexpr int kHosts = 3;
  DfsHosts dfs(kHosts, 3);  // every chunk on every node: a dead node's chunks are not copied
  const std::vector<int> storage_hosts = dfs.storage_hosts();
  const std::string data = dfs.MakeInput("data", (5 << 20) + 99);
  dfs.Ok("upload-file data " + data + "; upload small tiny");

  // Stopped with its data kept and started again: every storage node on the host whose disk
  // holds its chunks, whatever order SPREAD would take now.
  const CommandResult stopped = dfs.cluster().Run(0, {"lumen", "dfs", "stop", dfs.Address()}, 60);
  INFO(stopped.output);
  REQUIRE(stopped.exit_code == 0);
  const CommandResult started = dfs.cluster().Run(0, {"lumen", "dfs", "start", dfs.Address()}, 90);
  INFO(started.output);
  REQUIRE(started.exit_code == 0);
  CHECK(dfs.StorageHosts() == storage_hosts);
  CHECK(dfs.ReadsBack("data", data));
  CHECK(dfs.Ok("get small") == "tiny\n");
  const nlohmann::json before = dfs.Json("status");
  CHECK(before.at("under_replicated") == 0);

  // Killed and revived: back on its host, holding what it held.
  const int chunks = before.at("storage_nodes").at(1).at("chunks").get<int>();
  REQUIRE(chunks > 0);
  dfs.Ok("kill storage.1; revive storage.1");
  CHECK(dfs.StorageHosts() == storage_hosts);
  CHECK(dfs.Json("status").at("storage_nodes").at(1).at("chunks").get<int>() == chunks);
  CHECK(dfs.ReadsBack("data", data));

  // Its host lost, a storage node is revived on another host (its chunks went with the disk)
  // and refilled there by repair.
  int homeless = -1;
  for (int i = 0; i < kHosts; ++i) {
    if (storage_hosts[i] != 0 && storage_hosts[i] != dfs.NameNodeHost()) homeless = i;
  }
  REQUIRE(homeless >= 0);
  dfs.LoseHost(storage_hosts[homeless]);
  REQUIRE(WaitUntil([&] { return dfs.Sees(AllBut(kHosts, {homeless})); }, 20));
  dfs.Ok("revive " + StorageName(homeless), 90);
  const int new_host = dfs.StorageHosts()[homeless];
  CHECK(new_host >= 0);
  CHECK(new_host != storage_hosts[homeless]);
  REQUIRE(WaitUntil([&] { return dfs.Repaired(AllBut(kHosts, {}), 3); }, 60));
  CHECK(dfs.ReadsBack("data", data));
}

}  // namespace lumen::testing
