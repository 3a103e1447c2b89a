// The DFS with real actors in a real cluster, driven as a person would: `lumen dfs start`, the
// `lumen dfs` shell, kill -9 of processes, damaged files on disk.
#include <signal.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::CommandResult;
using lumen::testing::Run;
using lumen::testing::TestCluster;
using lumen::testing::WaitUntil;

namespace {

namespace fs = std::filesystem;

// A cluster with a DFS started by `lumen dfs start <flags>`.
class DfsCluster {
 public:
  explicit DfsCluster(std::vector<std::string> flags = {}, long long store_bytes = 512ll << 20)
      : cluster_(2, store_bytes) {
    REQUIRE(cluster_.start_result().exit_code == 0);
    std::vector<std::string> argv = {"lumen", "dfs", "start"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    start_ = cluster_.RunProgram(argv, 120);
    INFO(start_.output);
    REQUIRE(start_.exit_code == 0);
  }

  // The store's chunks and the test's files are large: they go before the cluster stops.
  ~DfsCluster() {
    cluster_.RunProgram({"lumen", "dfs", "stop", "--purge"}, 60);
    std::error_code ignored;
    for (const auto& entry : fs::directory_iterator(cluster_.temp_dir(), ignored)) {
      if (entry.is_regular_file()) fs::remove(entry.path(), ignored);
    }
  }

  const TestCluster& cluster() const { return cluster_; }
  const CommandResult& start_result() const { return start_; }
  std::string session() const {
    return fs::canonical(cluster_.temp_dir() + "/session_latest").string();
  }
  std::string StorageDir(int node) const {
    return absl::StrCat(session(), "/dfs/dfs.storage.", node);
  }

  // `lumen dfs -c <script>`.
  CommandResult Shell(const std::string& script, double timeout = 120) const {
    return cluster_.RunProgram({"lumen", "dfs", "-c", script}, timeout);
  }
  // Runs a script that must succeed; returns its output.
  std::string Ok(const std::string& script) const {
    const CommandResult result = Shell(script);
    INFO(script);
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    return result.output;
  }
  nlohmann::json Json(const std::string& command) const {
    const CommandResult result = cluster_.RunProgram({"lumen", "dfs", "--json", "-c", command});
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    return nlohmann::json::parse(result.output);
  }
  nlohmann::json Status() const { return Json("status"); }

 private:
  TestCluster cluster_;
  CommandResult start_;
};

std::string Hex(uint64_t value) { return absl::StrFormat("%016x", value); }
uint64_t Checksum(const std::string& data) { return XXH3_64bits(data.data(), data.size()); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The XXH3 of a file, read in pieces.
uint64_t FileChecksum(const std::string& path) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(8 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

// A file of `size` pseudo-random bytes.
void MakeFile(const std::string& path, uint64_t size, uint64_t seed) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937_64 random(seed);
  std::vector<uint64_t> block(1 << 17);
  uint64_t left = size;
  while (left > 0) {
    for (auto& word : block) word = random();
    const uint64_t n = std::min<uint64_t>(left, block.size() * sizeof(uint64_t));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    left -= n;
  }
}

// The chunk files (replicas) in a storage node's folder.
std::vector<std::string> ChunkFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".chunk") files.push_back(entry.path().filename().string());
  }
  return files;
}

// The status line `status` prints for a storage node, from the JSON status.
std::string StatusLine(const nlohmann::json& node, int chunks, const std::string& bytes) {
  const std::string pid = node["pid"].get<int>() > 0 ? std::to_string(node["pid"].get<int>()) : "-";
  return absl::StrFormat("  %-11s %-5s  node %-16s  pid %-7s  %d %s  %s\n",
                         node["name"].get<std::string>(), node["alive"] ? "alive" : "dead",
                         node["cluster_node"].get<std::string>(), pid, chunks,
                         chunks == 1 ? "chunk" : "chunks", bytes);
}

// The whole text of `status` for a store of four healthy nodes, given each node's chunks and
// bytes (as shown).
std::string ExpectedStatus(const nlohmann::json& json, int artifacts, int chunks,
                           const std::vector<std::pair<int, std::string>>& per_node) {
  std::string out = absl::StrFormat(
      "name node: ready (pid %d)\n"
      "replication: 3  chunk size: 1.0 MiB  storage nodes: 4 (4 alive)\n"
      "artifacts: %d  chunks: %d  under-replicated: 0  lost: 0  repairs in flight: 0\n",
      json["name_node_pid"].get<int>(), artifacts, chunks);
  for (size_t i = 0; i < per_node.size(); ++i) {
    out += StatusLine(json["storage_nodes"][i], per_node[i].first, per_node[i].second);
  }
  return out;
}

// Chunk `index` of artifact `name` from `list --json`: its id and replicas (as indices).
std::pair<std::string, std::vector<int>> Chunk(const DfsCluster& dfs, const std::string& name,
                                               int index) {
  const auto list = dfs.Json("list " + name);
  const auto& chunk = list["artifacts"][0]["chunks"][index];
  std::vector<int> replicas;
  for (const auto& replica : chunk["replicas"]) {
    replicas.push_back(std::stoi(replica.get<std::string>().substr(8)));
  }
  return {chunk["id"].get<std::string>(), replicas};
}

bool Healthy(const nlohmann::json& status, int alive_wanted) {
  int alive = 0;
  for (const auto& node : status["storage_nodes"]) alive += node["alive"] ? 1 : 0;
  return status["name_node"] == "ready" && status["under_replicated"] == 0 &&
         status["repairs_in_flight"] == 0 && alive == alive_wanted;
}

}  // namespace

TEST_CASE(
    "the lab's verification scenario: upload, update, get and delete, each followed by list and "
    "status",
    "[integration][dfs]") {
  DfsCluster dfs;
  CHECK_THAT(dfs.start_result().output,
             Contains("DFS started: 4 storage nodes, replication 3, chunk size 1.0 MiB."));
  const std::string v1 = "hello";
  const std::string v2 = "hello, world";
  const std::string sum1 = Hex(Checksum(v1));
  const std::string sum2 = Hex(Checksum(v2));

  // upload, then list and status
  std::string out = dfs.Ok("upload notes hello; list; status");
  nlohmann::json status = dfs.Status();
  CHECK(out == absl::StrCat(
                   "uploaded notes: version 1, 5 B in 1 chunk, checksum ", sum1, "\n",
                   "notes  version 1  5 B  checksum ", sum1, "\n",
                   "  chunk 0  5 B  storage.0 storage.1 storage.2\n",
                   ExpectedStatus(status, 1, 1, {{1, "5 B"}, {1, "5 B"}, {1, "5 B"}, {0, "0 B"}})));

  // update: the new version goes to the least loaded nodes, the old chunk is deleted
  out = dfs.Ok("update notes hello, world; list; status");
  status = dfs.Status();
  CHECK(out == absl::StrCat("updated notes: version 2, 12 B in 1 chunk, checksum ", sum2, "\n",
                            "notes  version 2  12 B  checksum ", sum2, "\n",
                            "  chunk 0  12 B  storage.0 storage.1 storage.3\n",
                            ExpectedStatus(status, 1, 1,
                                           {{1, "12 B"}, {1, "12 B"}, {0, "0 B"}, {1, "12 B"}})));
  CHECK(WaitUntil([&] { return ChunkFiles(dfs.StorageDir(2)).empty(); }, 10));
  CHECK(ChunkFiles(dfs.StorageDir(0)).size() == 1);

  // get changes nothing
  out = dfs.Ok("get notes; list; status");
  CHECK(out == absl::StrCat("hello, world\n", "notes  version 2  12 B  checksum ", sum2, "\n",
                            "  chunk 0  12 B  storage.0 storage.1 storage.3\n",
                            ExpectedStatus(status, 1, 1,
                                           {{1, "12 B"}, {1, "12 B"}, {0, "0 B"}, {1, "12 B"}})));

  // delete: invisible at once, chunks reclaimed
  out = dfs.Ok("delete notes; list; status");
  status = dfs.Status();
  CHECK(out == absl::StrCat(
                   "deleted notes\n", "(no artifacts)\n",
                   ExpectedStatus(status, 0, 0, {{0, "0 B"}, {0, "0 B"}, {0, "0 B"}, {0, "0 B"}})));
  CHECK(WaitUntil(
      [&] {
        for (int node = 0; node < 4; ++node) {
          if (!ChunkFiles(dfs.StorageDir(node)).empty()) return false;
        }
        return true;
      },
      10));
}

TEST_CASE(
    "the shell reports bad commands in one line and goes on, and -c and pipes set the exit code",
    "[integration][dfs]") {
  DfsCluster dfs;
  CommandResult r = dfs.Shell(
      "upload a one; upload a two; get missing; frobnicate; upload; kill storage.9; get a; "
      "update missing x; delete missing; list");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("error: artifact 'a' already exists; use update to replace it\n"));
  CHECK_THAT(r.output, Contains("error: artifact 'missing' does not exist\n"));
  CHECK_THAT(r.output,
             Contains("error: unknown command 'frobnicate'; `help` lists the commands\n"));
  CHECK_THAT(r.output, Contains("error: usage: upload NAME CONTENT\n"));
  CHECK_THAT(r.output, Contains("error: 'storage.9' is not a storage node"));
  CHECK_THAT(r.output, Contains("one\n"));
  CHECK_THAT(r.output, Contains("a  version 1  3 B"));

  const CommandResult fine = dfs.Shell("get a; help");
  CHECK(fine.exit_code == 0);
  CHECK_THAT(fine.output, Contains("upload-file NAME PATH"));

  // download to a folder fails; into a FIFO (or a device) it writes in place, and the FIFO stays.
  const std::string dir = dfs.cluster().temp_dir();
  r = dfs.Shell("download a " + dir);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("error: '" + dir + "' is a directory\n"));
  const std::string fifo = dir + "/pipe";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  Child reader({"/bin/sh", "-c", "cat " + fifo + " > " + dir + "/received.txt"});
  r = dfs.Shell("download a " + fifo);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(reader.Wait(30) == 0);
  CHECK(ReadFile(dir + "/received.txt") == "one");
  CHECK(fs::is_fifo(fifo));
  CHECK_FALSE(fs::exists(fifo + ".partial"));
  // Through a symbolic link (as /dev/stdout is one): the link stays, its target gets the bytes.
  std::ofstream(dir + "/target.txt") << "old";
  fs::create_symlink(dir + "/target.txt", dir + "/link");
  CHECK(dfs.Shell("download a " + dir + "/link").exit_code == 0);
  CHECK(fs::is_symlink(dir + "/link"));
  CHECK(ReadFile(dir + "/target.txt") == "one");
  // upload-file needs a regular file, and says so at once (a FIFO with no writer never ends).
  r = dfs.Shell("upload-file f " + fifo + "; upload-file g " + dir + "/missing", 60);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("error: '" + fifo + "' is not a regular file"));
  CHECK_THAT(r.output, Contains("error: cannot read the file " + dir +
                                "/missing: No such file or directory\n"));

  // `-`: with -c, upload-file reads standard input; download writes standard output, and the
  // shell's own lines about it go to standard error.
  const std::string lumen_dfs =
      absl::StrCat(lumen::testing::Bin("lumen"), " dfs ", dfs.cluster().TempDirFlag());
  r = Run({"/bin/sh", "-c",
           absl::StrCat("printf 'from a pipe' | ", lumen_dfs, " -c 'upload-file p -' && ",
                        lumen_dfs, " -c 'download p -; download nope -' > ", dir, "/out.txt 2> ",
                        dir, "/err.txt")});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("uploaded p: version 1, 11 B in 1 chunk"));
  CHECK(ReadFile(dir + "/out.txt") == "from a pipe");
  const std::string said = ReadFile(dir + "/err.txt");
  CHECK_THAT(said, Contains("downloaded p: version 1, 11 B to standard output\n"));
  CHECK_THAT(said, Contains("error: artifact 'nope' does not exist\n"));

  // Commands from a pipe; standard input is not there to upload.
  const std::string script = dfs.cluster().temp_dir() + "/commands.txt";
  std::ofstream(script) << "update a \"two words\"\nget a\nbogus\nupload-file q -\n";
  r = Run({"/bin/sh", "-c", absl::StrCat(lumen_dfs, " < ", script)});
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("updated a: version 2, 9 B in 1 chunk"));
  CHECK_THAT(r.output, Contains("two words\n"));
  CHECK_THAT(r.output, Contains("error: unknown command 'bogus'"));
  CHECK_THAT(r.output, Contains("error: standard input carries this shell's commands"));

  // --json: one object per command, errors too.
  r = dfs.cluster().RunProgram({"lumen", "dfs", "--json", "-c", "get a; get nothing"});
  CHECK(r.exit_code == 1);
  std::istringstream lines(r.output);
  std::string line;
  std::vector<nlohmann::json> objects;
  while (std::getline(lines, line)) objects.push_back(nlohmann::json::parse(line));
  REQUIRE(objects.size() == 2);
  CHECK(objects[0]["content"] == "two words");
  CHECK(objects[0]["version"] == 2);
  CHECK(objects[1]["ok"] == false);
  CHECK(objects[1]["error"] == "artifact 'nothing' does not exist");
}

TEST_CASE("dfs start refuses a second store and bad settings, and dfs stop keeps or purges data",
          "[integration][dfs]") {
  DfsCluster dfs({"--storage-nodes=3", "--replication=2", "--chunk-size=65536"});
  CHECK_THAT(dfs.start_result().output,
             Contains("DFS started: 3 storage nodes, replication 2, chunk size 64.0 KiB."));
  CommandResult again = dfs.cluster().RunProgram({"lumen", "dfs", "start"});
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.output, Contains("the DFS is already running"));
  dfs.Ok("upload kept still here");

  CommandResult stop = dfs.cluster().RunProgram({"lumen", "dfs", "stop"});
  INFO(stop.output);
  REQUIRE(stop.exit_code == 0);
  CHECK_THAT(stop.output, Contains("DFS stopped (4 actors); its data is kept"));
  CommandResult gone = dfs.Shell("list");
  CHECK(gone.exit_code != 0);
  CHECK_THAT(gone.output, Contains("the DFS is not running; start it with `lumen dfs start`"));

  // The kept store starts again only with its own layout: fewer storage nodes would strand the
  // replicas of the others. The benchmark, which purges its stores, leaves it alone.
  CommandResult other = dfs.cluster().RunProgram({"lumen", "dfs", "start", "--storage-nodes=2"});
  CHECK(other.exit_code != 0);
  CHECK_THAT(other.output, Contains("a DFS keeps its data on this cluster with "
                                    "--storage-nodes=3 --replication=2 --chunk-size=65536"));
  CommandResult bench = dfs.cluster().RunProgram(
      {"lumen", "dfs", "benchmark", "--file-bytes=1048576", "--repair-chunks=1", "--artifacts=1"});
  CHECK(bench.exit_code != 0);
  CHECK_THAT(bench.output, Contains("a stopped DFS keeps its data on this cluster"));

  // Started again (with no flags: its own layout), the store finds its data.
  CommandResult resumed = dfs.cluster().RunProgram({"lumen", "dfs", "start"});
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, Contains("DFS started again on its kept data: 3 storage nodes, "
                                      "replication 2, chunk size 64.0 KiB."));
  CHECK(dfs.Ok("get kept") == "still here\n");
  // A running store is not the benchmark's either.
  bench = dfs.cluster().RunProgram(
      {"lumen", "dfs", "benchmark", "--file-bytes=1048576", "--repair-chunks=1", "--artifacts=1"});
  CHECK(bench.exit_code != 0);
  CHECK_THAT(bench.output, Contains("the DFS is already running"));
  CHECK(dfs.Ok("get kept") == "still here\n");

  stop = dfs.cluster().RunProgram({"lumen", "dfs", "stop", "--purge"});
  CHECK(stop.exit_code == 0);
  CHECK_THAT(stop.output, Contains("DFS stopped (4 actors) and its data deleted."));
  CHECK_FALSE(fs::exists(dfs.session() + "/dfs"));
  CHECK_THAT(dfs.cluster().RunProgram({"lumen", "dfs", "stop"}).output,
             Contains("The DFS is not running; nothing to stop."));

  CommandResult bad =
      dfs.cluster().RunProgram({"lumen", "dfs", "start", "--storage-nodes=2", "--replication=3"});
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output,
             Contains("--replication must be between 1 and the number of storage nodes"));
}

TEST_CASE(
    "after its cluster stops and starts again on its session, dfs start brings up what of the "
    "store did not come back, and every artifact reads back",
    "[integration][dfs]") {
  DfsCluster dfs;
  const std::string input = dfs.cluster().temp_dir() + "/input.bin";
  MakeFile(input, (3 << 20) + 5, 4);
  dfs.Ok("upload-file data " + input + "; kill storage.2");
  // One storage node missing: dfs start starts it, and the name node sees it at once.
  CommandResult started = dfs.cluster().RunProgram({"lumen", "dfs", "start"});
  INFO(started.output);
  REQUIRE(started.exit_code == 0);
  CHECK_THAT(started.output, Contains("Started: storage.2 (the rest was running)"));
  CHECK_THAT(dfs.Ok("status"), Contains("storage nodes: 4 (4 alive)"));

  const std::string session = dfs.session();
  REQUIRE(dfs.cluster().RunProgram({"lumen", "stop"}).exit_code == 0);
  const CommandResult restarted = dfs.cluster().RunProgram(
      {"lumen", "start", "--head", "--session-dir=" + session, "--num-cpus=2",
       "--object-store-memory=536870912", "--dashboard-port=0"},
      60);
  INFO(restarted.output);
  REQUIRE(restarted.exit_code == 0);
  // At its old address, although `lumen stop` removed its process record.
  CHECK_THAT(restarted.output, Contains("Lumen head restarted at " + dfs.cluster().address()));
  // The name node (restarted without limit) comes back with the head; the storage nodes do not.
  started = dfs.cluster().RunProgram({"lumen", "dfs", "start"}, 120);
  INFO(started.output);
  REQUIRE(started.exit_code == 0);
  CHECK_THAT(started.output, Contains("DFS started again on its kept data"));
  const std::string output = dfs.cluster().temp_dir() + "/output.bin";
  dfs.Ok("download data " + output);
  CHECK(FileChecksum(output) == FileChecksum(input));
  CHECK_THAT(dfs.Ok("status"), Contains("storage nodes: 4 (4 alive)"));
  CHECK(dfs.cluster().RunProgram({"lumen", "dfs", "start"}).exit_code != 0);  // all of it runs
}

TEST_CASE("a killed storage node's chunks are copied back to R, and its return is trimmed back",
          "[integration][dfs]") {
  DfsCluster dfs;
  const std::string input = dfs.cluster().temp_dir() + "/input.bin";
  MakeFile(input, (5 << 20) + 123, 1);
  dfs.Ok("upload-file data " + input + "; upload small tiny");
  CHECK(dfs.Ok("kill storage.1") == "killed storage.1\n");
  nlohmann::json status = dfs.Status();
  CHECK(status["storage_nodes"][1]["alive"] == false);
  REQUIRE(WaitUntil([&] { return Healthy(dfs.Status(), 3); }, 30));
  const auto list = dfs.Json("list");
  for (const auto& artifact : list["artifacts"]) {
    for (const auto& chunk : artifact["chunks"]) {
      CHECK(chunk["replicas"].size() == 3);
      for (const auto& replica : chunk["replicas"]) CHECK(replica != "storage.1");
    }
  }
  const std::string output = dfs.cluster().temp_dir() + "/output.bin";
  dfs.Ok("download data " + output);
  CHECK(FileChecksum(output) == FileChecksum(input));

  // Back: it reports what it holds, and replicas over R are dropped.
  CHECK(dfs.Ok("revive storage.1") == "revived storage.1\n");
  REQUIRE(WaitUntil(
      [&] {
        const auto again = dfs.Json("list");
        for (const auto& artifact : again["artifacts"]) {
          for (const auto& chunk : artifact["chunks"]) {
            if (chunk["replicas"].size() != 3) return false;
          }
        }
        return Healthy(dfs.Status(), 4);
      },
      30));
  status = dfs.Status();
  int replicas = 0;
  for (const auto& node : status["storage_nodes"]) replicas += node["chunks"].get<int>();
  CHECK(replicas == 3 * 7);  // 6 chunks of data, 1 of small
  CHECK(dfs.Ok("get small") == "tiny\n");
}

TEST_CASE("with R - 1 of a chunk's nodes killed it still reads back intact", "[integration][dfs]") {
  DfsCluster dfs;
  const std::string input = dfs.cluster().temp_dir() + "/input.bin";
  MakeFile(input, 3 << 20, 2);
  dfs.Ok("upload-file data " + input);
  const auto [id, replicas] = Chunk(dfs, "data", 0);
  REQUIRE(replicas.size() == 3);
  dfs.Ok(absl::StrFormat("kill storage.%d; kill storage.%d", replicas[0], replicas[1]));
  const std::string output = dfs.cluster().temp_dir() + "/output.bin";
  const std::string out = dfs.Ok("download data " + output + "; status");
  CHECK(FileChecksum(output) == FileChecksum(input));
  CHECK_THAT(out, Contains("storage nodes: 4 (2 alive)"));

  // Past the budget: the shell kills and warns; reads fail clearly; a revival loses nothing.
  const CommandResult all = dfs.Shell(
      "kill storage.0; kill storage.1; kill storage.2; "
      "kill storage.3; download data " +
      output);
  INFO(all.output);
  CHECK(all.exit_code == 1);
  CHECK_THAT(all.output, Contains("chunks have no live replica now; reading them fails until a "
                                  "storage node that holds them is revived"));
  CHECK_THAT(all.output, Contains("error: "));
  dfs.Ok("revive storage.0; revive storage.1; revive storage.2; revive storage.3");
  fs::remove(output);
  dfs.Ok("download data " + output);
  CHECK(FileChecksum(output) == FileChecksum(input));
}

TEST_CASE("a download reads around replicas damaged on disk, whichever batch they are in",
          "[integration][dfs]") {
  DfsCluster dfs;
  const std::string input = dfs.cluster().temp_dir() + "/input.bin";
  MakeFile(input, (6 << 20) + 77, 6);
  dfs.Ok("upload-file data " + input);
  // Chunks 1 and 4 damaged on two of their three replicas: a batch read that includes them on
  // those nodes fails, and its chunks must come from the good replicas instead.
  for (const int index : {1, 4}) {
    const auto [id, replicas] = Chunk(dfs, "data", index);
    REQUIRE(replicas.size() == 3);
    for (size_t k = 0; k < 2; ++k) {
      const std::string path = absl::StrCat(dfs.StorageDir(replicas[k]), "/", id, ".chunk");
      const std::string good = ReadFile(path);
      REQUIRE(good.size() >= 32 + (1 << 20));  // header, bytes, maybe zeros to a whole block
      std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(32 + 100);
      file.put(static_cast<char>(good[32 + 100] ^ 0x01));
    }
  }
  const std::string output = dfs.cluster().temp_dir() + "/output.bin";
  dfs.Ok("download data " + output);
  CHECK(FileChecksum(output) == FileChecksum(input));
}

TEST_CASE("a name node killed after and during uploads restarts with every committed artifact",
          "[integration][dfs]") {
  DfsCluster dfs;
  dfs.Ok("upload a first; upload b second; update a third; delete b; upload c fourth");
  const int first_pid = dfs.Status()["name_node_pid"].get<int>();
  REQUIRE(first_pid > 0);
  REQUIRE(kill(first_pid, SIGKILL) == 0);
  // Reads work while it restarts (from the log in the KV store if it is not ready yet).
  CHECK(dfs.Ok("get a; get c") == "third\nfourth\n");
  REQUIRE(WaitUntil([&] { return Healthy(dfs.Status(), 4); }, 30));
  nlohmann::json status = dfs.Status();
  CHECK(status["name_node_pid"].get<int>() != first_pid);
  CHECK(status["artifacts"] == 2);
  CHECK_THAT(dfs.Shell("get b").output, Contains("artifact 'b' does not exist"));

  // Mid-upload: kill it while a large file's chunks are being written.
  const std::string input = dfs.cluster().temp_dir() + "/input.bin";
  MakeFile(input, 64 << 20, 3);
  Child upload({"lumen", "dfs", "-c", "upload-file big " + input, dfs.cluster().TempDirFlag()});
  REQUIRE(WaitUntil([&] { return ChunkFiles(dfs.StorageDir(0)).size() >= 8; }, 60));
  const int second_pid = dfs.Status()["name_node_pid"].get<int>();
  REQUIRE(kill(second_pid, SIGKILL) == 0);
  const int code = upload.Wait(180);
  INFO(upload.Output());
  // The upload waits for the restart and commits, or fails with a clear error; nothing breaks.
  if (code == 0) {
    CHECK_THAT(upload.Output(), Contains("uploaded big: version 1, 64.0 MiB in 64 chunks"));
    const std::string output = dfs.cluster().temp_dir() + "/output.bin";
    dfs.Ok("download big " + output);
    CHECK(FileChecksum(output) == FileChecksum(input));
  } else {
    CHECK_THAT(upload.Output(), Contains("error: "));
  }
  CHECK(dfs.Ok("get a; get c") == "third\nfourth\n");
  REQUIRE(WaitUntil([&] { return Healthy(dfs.Status(), 4); }, 30));
}

TEST_CASE("a replica damaged on disk is found by the scrub and replaced from a good one",
          "[integration][dfs]") {
  DfsCluster dfs({"--scrub-interval=0.5"});
  const std::string input = dfs.cluster().temp_dir() + "/input.bin";
  MakeFile(input, 3 << 20, 4);
  dfs.Ok("upload-file data " + input);
  const auto chunk = Chunk(dfs, "data", 1);
  const std::string id = chunk.first;
  const std::vector<int> replicas = chunk.second;
  const std::string victim = absl::StrCat(dfs.StorageDir(replicas[0]), "/", id, ".chunk");
  const std::string good = ReadFile(victim);
  REQUIRE(good.size() >= 32 + (1 << 20));  // header, bytes, maybe zeros to a whole block
  {
    std::fstream file(victim, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(32 + 4096);
    file.put(static_cast<char>(good[32 + 4096] ^ 0x01));
  }
  // The damaged file is dropped, and chunk 1 has three good replicas again.
  REQUIRE(WaitUntil(
      [&] {
        const std::vector<int> now = Chunk(dfs, "data", 1).second;
        if (now.size() != 3) return false;
        for (int node : now) {
          if (ReadFile(absl::StrCat(dfs.StorageDir(node), "/", id, ".chunk")) != good) return false;
        }
        return ReadFile(victim).empty() || ReadFile(victim) == good;
      },
      30));
  const std::string output = dfs.cluster().temp_dir() + "/output.bin";
  dfs.Ok("download data " + output);
  CHECK(FileChecksum(output) == FileChecksum(input));
  // The name node's log says what happened.
  bool logged = false;
  for (const auto& entry : fs::directory_iterator(dfs.session() + "/logs")) {
    logged =
        logged || ReadFile(entry.path().string()).find("dropped its corrupt replica of " + id) !=
                      std::string::npos;
  }
  CHECK(logged);
}

TEST_CASE("two shells updating one artifact while a third reads it: every read is one version",
          "[integration][dfs]") {
  DfsCluster dfs({"--chunk-size=65536"});
  const size_t size = size_t{160} * 1024;  // three chunks
  std::string initial;
  while (initial.size() < size) initial += "init;";
  initial.resize(size);
  const std::string input = dfs.cluster().temp_dir() + "/initial";
  std::ofstream(input) << initial;
  dfs.Ok("upload-file shared " + input);
  const std::string flag = dfs.cluster().TempDirFlag();
  const std::string bytes = std::to_string(size);
  Child first({"lumen_dfs_driver", "update-loop", "shared", "A", "25", bytes, flag});
  Child second({"lumen_dfs_driver", "update-loop", "shared", "B", "25", bytes, flag});
  Child reader({"lumen_dfs_driver", "read-loop", "shared", "60", bytes, flag});
  CHECK(first.Wait(180) == 0);
  CHECK(second.Wait(180) == 0);
  INFO(first.Output() + second.Output());
  CHECK_THAT(first.Output(), Contains("updates 25"));
  CHECK_THAT(second.Output(), Contains("updates 25"));
  const int read_code = reader.Wait(180);
  INFO(reader.Output());
  CHECK(read_code == 0);
  CHECK_THAT(reader.Output(), Contains("reads 60 whole 60 mixed 0 errors 0"));
  CHECK_THAT(dfs.Ok("list shared"), Contains("shared  version 51  160.0 KiB"));
}

TEST_CASE("a 1 GiB file goes up and comes back with an equal checksum", "[integration][dfs]") {
  DfsCluster dfs({}, 256ll << 20);
  const std::string input = dfs.cluster().temp_dir() + "/big.bin";
  const std::string output = dfs.cluster().temp_dir() + "/big.out";
  MakeFile(input, uint64_t{1} << 30, 5);
  const auto start = std::chrono::steady_clock::now();
  const CommandResult up = dfs.Shell("upload-file big " + input, 240);
  INFO(up.output);
  REQUIRE(up.exit_code == 0);
  CHECK_THAT(up.output, Contains("uploaded big: version 1, 1.0 GiB in 1024 chunks"));
  const CommandResult down = dfs.Shell("download big " + output, 240);
  INFO(down.output);
  REQUIRE(down.exit_code == 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("1 GiB up and down in " << seconds << " s");
  CHECK(FileChecksum(output) == FileChecksum(input));
  fs::remove(input);
  fs::remove(output);
}

TEST_CASE(
    "chaos: storage nodes and the name node killed at random while clients write, read and "
    "delete, and every acknowledged write holds",
    "[integration][dfs]") {
  DfsCluster dfs({"--chunk-size=65536"});
  const char* env = std::getenv("LUMEN_DFS_CHAOS_SECONDS");
  const std::string seconds = env != nullptr ? env : "40";
  const CommandResult r =
      dfs.cluster().RunProgram({"lumen_dfs_driver", "model", seconds, "12345"}, 600);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("settled 1"));
  CHECK_THAT(r.output, Contains(" violations 0"));
  CHECK_THAT(r.output, Contains("name-node-kills 1"));
}

TEST_CASE("lumen dfs benchmark runs its three parts with small sizes", "[integration][dfs]") {
  TestCluster cluster(2, 512ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string json = cluster.temp_dir() + "/bench.json";
  const CommandResult r =
      cluster.RunProgram({"lumen", "dfs", "benchmark", "--file-bytes=16777216",
                          "--repair-chunks=200", "--artifacts=50", "--json=" + json},
                         300);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto results = nlohmann::json::parse(ReadFile(json));
  std::vector<std::string> names;
  for (const auto& result : results) {
    names.push_back(result["name"].get<std::string>());
    CHECK(result["mean"].get<double>() > 0);
  }
  CHECK(names == std::vector<std::string>{
                     "dfs_store_put_gigabytes", "dfs_upload_gigabytes", "dfs_download_gigabytes",
                     "dfs_upload_vs_put", "dfs_download_vs_put", "dfs_disk_write_gigabytes",
                     "dfs_disk_read_gigabytes", "dfs_upload_vs_disk", "dfs_download_vs_disk",
                     "dfs_disk_write_vs_put", "dfs_death_noticed_seconds",
                     "dfs_repair_seconds_200_chunks", "dfs_small_uploads_per_second",
                     "dfs_list_ms_50_artifacts", "dfs_status_ms_50_artifacts"});
  // Each part purged its store.
  CHECK_THAT(cluster.RunProgram({"lumen", "dfs", "-c", "list"}).output,
             Contains("the DFS is not running"));
}
