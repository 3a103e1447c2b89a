// lumen::kv against a real head, and a head killed with kill -9 and restarted on its session.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

namespace {

std::string SessionDir(const TestCluster& cluster) {
  return std::filesystem::canonical(cluster.temp_dir() + "/session_latest").string();
}

// The pid the session's process records give the head, or 0.
int HeadPid(const std::string& session_dir) {
  for (const auto& entry : std::filesystem::directory_iterator(session_dir + "/processes")) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const auto json = nlohmann::json::parse(text.str(), nullptr, false);
    if (json.is_object() && json.value("role", "") == "head") return json.value("pid", 0);
  }
  return 0;
}

bool ProcessGone(int pid, double timeout_seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (kill(pid, 0) != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The last "acked <i>" in a put-many driver's output, or -1.
int LastAcked(const std::string& output) {
  const size_t at = output.rfind("acked ");
  return at == std::string::npos ? -1 : std::stoi(output.substr(at + 6));
}

}  // namespace

TEST_CASE("lumen::kv puts, gets, lists and deletes keys on the head", "[integration][kv]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  auto run = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), "lumen_kv_driver");
    const auto result = cluster.RunProgram(argv, 60);
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    return result.output;
  };
  run({"put", "model/a", "first"});
  run({"put", "model/b", "second"});
  run({"put", "other", "third"});
  run({"put", "model/a", "in-ns", "ns1"});
  CHECK_THAT(run({"get", "model/a"}), Contains("value first"));
  CHECK_THAT(run({"get", "model/a", "ns1"}), Contains("value in-ns"));
  CHECK_THAT(run({"list", "model/"}), Contains("keys model/a model/b\n"));
  CHECK_THAT(run({"delete", "model/a"}), Contains("deleted 1"));
  CHECK_THAT(run({"delete", "model/a"}), Contains("deleted 0"));
  CHECK_THAT(run({"get", "model/a"}), Contains("missing"));
  CHECK_THAT(run({"get", "model/a", "ns1"}), Contains("value in-ns"));
  const std::string oversized = run({"oversized"});
  CHECK_THAT(oversized,
             Contains("key-error lumen::kv::Put: KV key is 4097 bytes; the limit is 4096"));
  CHECK_THAT(oversized, Contains("value-error lumen::kv::Put: KV value is 67108865 bytes"));
}

TEST_CASE(
    "a head killed with kill -9 and restarted on its session keeps its token and every "
    "acknowledged KV write, and a writing driver carries on",
    "[integration][kv]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string session = SessionDir(cluster);
  const auto token = Run({"lumen", "get-auth-token", cluster.TempDirFlag()});
  REQUIRE(token.exit_code == 0);

  Child writer({"lumen_kv_driver", "put-many", "1000000", cluster.TempDirFlag()});
  REQUIRE(writer.WaitForOutput("acked 100\n", 60));
  const int head = HeadPid(session);
  REQUIRE(head > 0);
  REQUIRE(kill(head, SIGKILL) == 0);
  REQUIRE(ProcessGone(head, 10));
  const int acked_before_restart = LastAcked(writer.Output());

  const auto restart =
      Run({"lumen", "start", "--head", "--session-dir=" + session, "--num-cpus=1",
           "--object-store-memory=268435456", "--dashboard-port=0", cluster.TempDirFlag()},
          60);
  INFO(restart.output);
  REQUIRE(restart.exit_code == 0);
  CHECK_THAT(restart.output, Contains("Lumen head restarted at " + cluster.address()));
  const auto token_after = Run({"lumen", "get-auth-token", cluster.TempDirFlag()});
  CHECK(token_after.output == token.output);

  // The driver's Put waited for the head and goes on.
  REQUIRE(writer.WaitForOutput("acked " + std::to_string(acked_before_restart + 50) + "\n", 60));
  kill(writer.pid(), SIGKILL);
  writer.Wait(10);
  const int acked = LastAcked(writer.Output());
  INFO(writer.Output());

  const auto check =
      cluster.RunProgram({"lumen_kv_driver", "check-many", std::to_string(acked + 1)}, 120);
  INFO(check.output);
  REQUIRE(check.exit_code == 0);
  CHECK_THAT(check.output, Contains("present " + std::to_string(acked + 1) + "\n"));
}

TEST_CASE("lumen start --session-dir refuses what it cannot reopen", "[integration][kv]") {
  const std::string empty = MakeTempDir();
  const auto not_session = Run({"lumen", "start", "--head", "--session-dir=" + empty});
  CHECK(not_session.exit_code != 0);
  CHECK_THAT(not_session.output, Contains("is not a Lumen session folder"));

  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto running = Run(
      {"lumen", "start", "--head", "--session-dir=" + SessionDir(cluster), cluster.TempDirFlag()});
  CHECK(running.exit_code != 0);
  CHECK_THAT(running.output, Contains("a head is already running in"));

  const auto node = Run({"lumen", "start", "--address=127.0.0.1:1",
                         "--session-dir=" + SessionDir(cluster), cluster.TempDirFlag()});
  CHECK(node.exit_code != 0);
  CHECK_THAT(node.output, Contains("--session-dir reopens a head's session"));
}
