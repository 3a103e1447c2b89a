// Code on new nodes: a job whose executable exists only on the driver's host runs its tasks and
// actors on another host, which fetches the executable by content hash and caches it
// (scheduler/code_cache.h). Hosts are network namespaces (netns_cluster.h); they share one
// filesystem, so the driver runs in a mount namespace of its own with its binary on a private
// tmpfs that no node manager can open.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "tests/integration/netns_cluster.h"

namespace lumen::testing {
namespace {

// The words after `key ` on its line of `output`: "<node id> <executable>", or "".
std::string LineOf(const std::string& output, const std::string& key) {
  const std::string text = "\n" + output;
  const size_t at = text.find("\n" + key + " ");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 2;
  return text.substr(start, text.find('\n', start) - start);
}

std::string NodeOf(const std::string& line) { return line.substr(0, line.find(' ')); }
std::string ExeOf(const std::string& line) {
  const size_t space = line.find(' ');
  return space == std::string::npos ? "" : line.substr(space + 1);
}

// Runs lumen_code_driver on `host` from a private copy of its binary: a tmpfs mounted over an
// empty directory inside a new mount namespace, so the path exists for the driver alone.
CommandResult RunPrivateDriver(const NetnsCluster& cluster, int host,
                               const std::string& private_dir) {
  const std::string script =
      "mount -t tmpfs lumen-code " + private_dir + " && cp " + Bin("lumen_code_driver") + " " +
      private_dir + "/lumen_code_driver && exec " + private_dir + "/lumen_code_driver \"$@\"";
  return cluster.Run(host,
                     {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                      script, "sh", "--address=" + cluster.HeadAddress()},
                     120);
}

}  // namespace

TEST_CASE("a job whose executable exists only on the driver's host runs on another host",
          "[multinode]") {
  LUMEN_REQUIRE_NETNS();
  NetnsCluster cluster(2);
  REQUIRE(cluster.StartHead({"--num-cpus=1", "--object-store-memory=67108864"}).exit_code == 0);
  const CommandResult node = cluster.StartNode(
      1, {"--num-cpus=2", "--resources={\"far\": 2}", "--object-store-memory=67108864"});
  INFO(node.output);
  REQUIRE(node.exit_code == 0);

  const std::string private_dir = MakeTempDir();
  const CommandResult run = RunPrivateDriver(cluster, 0, private_dir);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const std::string driver = LineOf(run.output, "driver");
  const std::string task = LineOf(run.output, "task");
  const std::string actor = LineOf(run.output, "actor");
  // The driver ran its private copy, which nobody outside its mount namespace can open.
  CHECK(ExeOf(driver) == private_dir + "/lumen_code_driver");
  CHECK(!std::filesystem::exists(ExeOf(driver)));

  const std::string far_dir = cluster.host(1).temp_dir;
  for (const std::string& line : {task, actor}) {
    // It ran on the other host, from that host's code cache, on the same bytes.
    CHECK(!NodeOf(line).empty());
    CHECK(NodeOf(line) != NodeOf(driver));
    const std::string exe = ExeOf(line);
    CHECK(exe.rfind(far_dir, 0) == 0);
    CHECK(exe.find("/code/node-") != std::string::npos);
    CHECK(Run({"/usr/bin/cmp", exe, Bin("lumen_code_driver")}, 30).exit_code == 0);
  }
  std::filesystem::remove(private_dir);
}

}  // namespace lumen::testing
