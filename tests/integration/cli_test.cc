// The lumen command as a user runs it: start, status, stop, tokens, and its error cases.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Bin;
using lumen::testing::FreePort;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

TEST_CASE("lumen start --head starts a cluster that status reports and stop ends",
          "[integration][cli]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  CHECK_THAT(cluster.start_result().output, Contains(cluster.address()));

  const auto status = Run({"lumen", "status", cluster.TempDirFlag()});
  REQUIRE(status.exit_code == 0);
  CHECK_THAT(status.output, Contains("ALIVE"));
  CHECK_THAT(status.output, Contains("CPU        0 / 2"));
  CHECK_THAT(status.output, Contains("0 B / 256.0 MiB used"));

  const auto json = Run({"lumen", "status", "--json", cluster.TempDirFlag()});
  REQUIRE(json.exit_code == 0);
  const auto parsed = nlohmann::json::parse(json.output);
  REQUIRE(parsed["nodes"].size() == 1);
  CHECK(parsed["nodes"][0]["alive"] == true);
  CHECK(parsed["nodes"][0]["total"]["CPU"] == 2);

  const auto token = Run({"lumen", "get-auth-token", cluster.TempDirFlag()});
  REQUIRE(token.exit_code == 0);
  CHECK(token.output.size() == 65);  // 64 hex digits and a newline

  const auto stop = Run({"lumen", "stop", cluster.TempDirFlag()});
  REQUIRE(stop.exit_code == 0);
  CHECK_THAT(stop.output, Contains("Stopped 1 process"));
  const auto after = Run({"lumen", "status", cluster.TempDirFlag()});
  CHECK(after.exit_code != 0);
  CHECK_THAT(after.output, Contains("No Lumen cluster is running"));
  const auto again = Run({"lumen", "stop", cluster.TempDirFlag()});
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.output, Contains("Stopped 0 processes"));
}

TEST_CASE("lumen stop removes the shared memory and ends the worker processes",
          "[integration][cli]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto before = Run({"/bin/sh", "-c", "ls /dev/shm | grep -c '^lumen-' || true"});
  REQUIRE(Run({"lumen", "stop", cluster.TempDirFlag()}).exit_code == 0);
  // Every process started from this cluster's executable with this session folder is gone.
  const auto session = std::filesystem::canonical(cluster.temp_dir() + "/session_latest");
  const auto left = Run({"/bin/sh", "-c",
                         "grep -l 'LUMEN_SESSION_DIR=" + session.string() +
                             "' /proc/[0-9]*/environ 2>/dev/null | wc -l"});
  CHECK(std::stoi(left.output) == 0);
  const auto after = Run({"/bin/sh", "-c", "ls /dev/shm | grep -c '^lumen-' || true"});
  CHECK(std::stoi(after.output) == std::stoi(before.output) - 1);
}

TEST_CASE("a second head in the same temp dir is refused", "[integration][cli]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto second = Run(
      {"lumen", "start", "--head", "--port=" + std::to_string(FreePort()), cluster.TempDirFlag()});
  CHECK(second.exit_code != 0);
  CHECK_THAT(second.output, Contains("a head is already running"));
}

TEST_CASE("a port in use is a clear error", "[integration][cli]") {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(fd, 1) == 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string temp_dir = MakeTempDir();
  const auto result =
      Run({"lumen", "start", "--head", "--port=" + std::to_string(ntohs(addr.sin_port)),
           "--temp-dir=" + temp_dir});
  close(fd);
  CHECK(result.exit_code != 0);
  CHECK_THAT(result.output, Contains("already in use"));
  CHECK(Run({"lumen", "status", "--temp-dir=" + temp_dir}).exit_code != 0);
}

TEST_CASE("bad flags and commands exit non-zero with a message", "[integration][cli]") {
  const std::string temp_dir = "--temp-dir=" + MakeTempDir();
  SECTION("a non-numeric CPU count") {
    const auto r = Run({"lumen", "start", "--head", "--num-cpus=abc", temp_dir});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("num-cpus"));
  }
  SECTION("a port out of range") {
    const auto r = Run({"lumen", "start", "--head", "--port=70000", temp_dir});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("port"));
  }
  SECTION("malformed resources") {
    const auto r = Run({"lumen", "start", "--head", "--resources={GPU:1", temp_dir});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("--resources must be a JSON object"));
  }
  SECTION("neither --head nor --address") {
    const auto r = Run({"lumen", "start", temp_dir});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("--head or --address"));
  }
  SECTION("an unknown command") {
    const auto r = Run({"lumen", "frobnicate"});
    CHECK(r.exit_code != 0);
  }
  SECTION("status with no cluster") {
    const auto r = Run({"lumen", "status", temp_dir});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("No Lumen cluster is running"));
  }
  SECTION("status of an address nobody serves") {
    const auto r =
        Run({"lumen", "status", "--address=127.0.0.1:" + std::to_string(FreePort()), temp_dir}, 30);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains("cannot reach the head"));
  }
}

TEST_CASE("a request without the cluster token is refused", "[integration][cli]") {
  TestCluster cluster(1);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto wrong =
      Run({"lumen", "status", "--address=" + cluster.address(), "--temp-dir=" + MakeTempDir()}, 30,
          {"LUMEN_TOKEN=not-the-token"});
  CHECK(wrong.exit_code != 0);
  CHECK_THAT(wrong.output, Contains("wrong cluster token"));
  const auto right =
      Run({"lumen", "status", "--address=" + cluster.address(), "--temp-dir=" + MakeTempDir()}, 30,
          {"LUMEN_TOKEN=" +
           Run({"lumen", "get-auth-token", cluster.TempDirFlag()}).output.substr(0, 64)});
  CHECK(right.exit_code == 0);
}

TEST_CASE("lumen pi estimates pi with actors on an embedded cluster and repeats with a seed",
          "[integration][cli]") {
  const std::string temp_dir = "--temp-dir=" + MakeTempDir();
  const auto first = Run({"lumen", "pi", "--samples=20000000", "--seed=5", "--json", temp_dir});
  REQUIRE(first.exit_code == 0);
  const auto result = nlohmann::json::parse(first.output);
  CHECK(result["error"].get<double>() < 0.01);
  CHECK(result["samples"] == 20000000);
  const auto second = Run({"lumen", "pi", "--samples=20000000", "--seed=5", "--json", temp_dir});
  REQUIRE(second.exit_code == 0);
  CHECK(nlohmann::json::parse(second.output)["estimate"] == result["estimate"]);
  // One supervisor and K worker actors: the estimate does not depend on K.
  const auto one_worker =
      Run({"lumen", "pi", "--samples=20000000", "--seed=5", "--workers=1", "--json", temp_dir});
  REQUIRE(one_worker.exit_code == 0);
  CHECK(nlohmann::json::parse(one_worker.output)["workers"] == 1);
  CHECK(nlohmann::json::parse(one_worker.output)["estimate"] == result["estimate"]);
  // The embedded cluster is gone with the job.
  CHECK(Run({"lumen", "status", temp_dir}).exit_code != 0);
}
