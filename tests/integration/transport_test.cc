// The fast path on an event loop, against real clusters: fixed threads, backpressure, replies
// per task, dead peers, bounded unauthenticated input, and transient errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Child;
using lumen::testing::DaemonPid;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

namespace {

// The value after "key=" in `text` (up to the next blank or line end), or "".
std::string Field(const std::string& text, const std::string& key) {
  const size_t at = text.find(key + "=");
  if (at == std::string::npos) return "";
  const size_t begin = at + key.size() + 1;
  const size_t end = text.find_first_of(" \n", begin);
  return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

long StatusField(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// Opens a TCP connection to 127.0.0.1:port; -1 if it cannot.
int OpenRaw(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True once the peer closed `fd` (end of stream or reset) within `seconds`.
bool ClosedByPeer(int fd, double seconds) {
  const auto micros = static_cast<long>(seconds * 1e6);
  timeval tv{.tv_sec = micros / 1000000, .tv_usec = micros % 1000000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char byte;
  const ssize_t n = recv(fd, &byte, 1, 0);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// The pid of the daemon recorded in a session folder under `temp_dir`.
}  // namespace

TEST_CASE("a driver calling 300 actors has as many threads as one calling a single actor",
          "[integration][transport]") {
  TestCluster cluster(2, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_transport_driver", "threads", "300"}, 170);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string one = Field(r.output, "one");
  REQUIRE_FALSE(one.empty());
  CHECK(Field(r.output, "many") == one);
  CHECK(std::stoi(Field(r.output, "timers_many")) <= 2);
  CHECK(Field(r.output, "actors") == "300");
}

TEST_CASE("streaming 2 GiB of 64 KiB calls to one actor completes with bounded memory",
          "[integration][transport]") {
  TestCluster cluster(2, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_transport_driver", "stream", "2048"}, 170);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(Field(r.output, "bytes") == Field(r.output, "expected"));
  CHECK(Field(r.output, "expected") == std::to_string(2048ll << 20));
  // Bounded: in flight per actor is at most 64 MiB, queued at the actor at most 64 MiB more.
  CHECK(std::stol(Field(r.output, "caller_peak_kb")) < 400L * 1024);
  CHECK(std::stol(Field(r.output, "actor_peak_kb")) < 400L * 1024);
}

TEST_CASE("a Get without a timeout returns when the actor's process is stopped",
          "[integration][transport]") {
  TestCluster cluster(2, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  auto driver = cluster.StartProgram({"lumen_transport_driver", "stopped-actor"});
  REQUIRE(driver->WaitForOutput("READY", 60));
  const int pid = std::stoi(Field(driver->Output(), "pid"));
  REQUIRE(kill(pid, SIGSTOP) == 0);
  driver->WriteLine("go");
  const int rc = driver->Wait(60);
  kill(pid, SIGKILL);
  const std::string output = driver->Output();
  INFO(output);
  REQUIRE(rc == 0);
  CHECK_THAT(output, Contains("stopped-actor ActorUnavailableError: "));
  CHECK_THAT(output, Contains("sent nothing for 10s"));
  CHECK(std::stod(Field(output, "seconds")) < 30);
}

TEST_CASE("a task whose worker is stopped is retried elsewhere and succeeds",
          "[integration][transport]") {
  TestCluster cluster(2, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string marker = MakeTempDir() + "/running";
  auto driver = cluster.StartProgram({"lumen_transport_driver", "interrupted-task", marker});
  int pid = -1;
  for (int i = 0; i < 3000 && pid < 0; ++i) {
    std::ifstream in(marker);
    if (!(in >> pid)) pid = -1;
    if (pid < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(pid > 0);
  REQUIRE(kill(pid, SIGSTOP) == 0);
  const int rc = driver->Wait(90);
  kill(pid, SIGKILL);
  INFO(driver->Output());
  REQUIRE(rc == 0);
  CHECK(Field(driver->Output(), "value") == "3000");
  CHECK(std::stod(Field(driver->Output(), "seconds")) < 40);
}

TEST_CASE("a worker that crashes mid-batch makes no finished task run again",
          "[integration][transport]") {
  TestCluster cluster(1, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string path = MakeTempDir() + "/ran";
  const auto r = cluster.RunProgram({"lumen_transport_driver", "crash-mid-batch", path});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(Field(r.output, "sum") == std::to_string(39 * 40 / 2));
  std::ifstream in(path);
  std::map<int, int> runs;
  int i = 0;
  while (in >> i) ++runs[i];
  CHECK(runs.size() == 40);
  for (const auto& [task, count] : runs) {
    INFO("task " << task);
    CHECK(count == 1);
  }
  CHECK(std::filesystem::exists(path + ".crashed"));
}

TEST_CASE("a retried task whose first attempt stored its result succeeds",
          "[integration][transport]") {
  TestCluster cluster(2, 256ll << 20, {}, {"LUMEN_TESTING_EXIT_AFTER_STORE=BigResult"});
  REQUIRE(cluster.start_result().exit_code == 0);
  const auto r = cluster.RunProgram({"lumen_transport_driver", "retry-stored"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("retry-stored size=65536 first=1.5"));
}

TEST_CASE("a healthy actor whose connection breaks keeps serving its callers",
          "[integration][transport]") {
  // Over TCP, which a network fault cuts: a same-host Unix socket has no network to fail.
  TestCluster cluster(2, 256ll << 20, {}, {"LUMEN_LOCAL_TRANSPORT=0"});
  REQUIRE(cluster.start_result().exit_code == 0);
  auto driver = cluster.StartProgram({"lumen_transport_driver", "cut-connection"});
  REQUIRE(driver->WaitForOutput("READY", 60));
  const std::string address = Field(driver->Output(), "address");
  REQUIRE_FALSE(address.empty());
  // Cut every TCP connection to the actor's fast-path port, as a network fault would.
  const std::string port = address.substr(address.rfind(':') + 1);
  const auto killed = Run({"/usr/bin/ss", "-K", "dst", "127.0.0.1", "dport", "=", port});
  INFO(killed.output);
  REQUIRE(killed.exit_code == 0);
  driver->WriteLine("go");
  REQUIRE(driver->Wait(90) == 0);
  const std::string output = driver->Output();
  INFO(output);
  CHECK_THAT(output, Contains("cut in-flight ActorUnavailableError: "));
  CHECK_THAT(output, Contains("cut after 3"));
}

TEST_CASE("300 unauthenticated connections to a worker cost little and are closed",
          "[integration][transport]") {
  TestCluster cluster(2, 256ll << 20);
  REQUIRE(cluster.start_result().exit_code == 0);
  auto driver = cluster.StartProgram({"lumen_transport_driver", "flooded"});
  REQUIRE(driver->WaitForOutput("READY", 60));
  const int pid = std::stoi(Field(driver->Output(), "pid"));
  const int port = PortOf(Field(driver->Output(), "address"));
  const long rss_before = StatusField(pid, "VmRSS");
  const long threads_before = StatusField(pid, "Threads");
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    const int fd = OpenRaw(port);
    REQUIRE(fd >= 0);
    // A length header claiming 64 MiB, and nothing else, ever.
    REQUIRE(send(fd, "\xff\xff\xff\x03", 4, MSG_NOSIGNAL) == 4);
    fds.push_back(fd);
  }
  const long rss_during = StatusField(pid, "VmRSS");
  const long threads_during = StatusField(pid, "Threads");
  // Every one is closed: at once (a claim over the hello limit), or at the hello deadline.
  int closed = 0;
  for (int fd : fds) closed += ClosedByPeer(fd, 10) ? 1 : 0;
  for (int fd : fds) close(fd);
  CHECK(closed == 300);
  CHECK(rss_during - rss_before < 64L * 1024);
  CHECK(threads_during == threads_before);
  CHECK(StatusField(pid, "Threads") == threads_before);
  driver->WriteLine("go");
  REQUIRE(driver->Wait(60) == 0);
  INFO(driver->Output());
  CHECK_THAT(driver->Output(), Contains("flooded actor=3 task=7"));
}

TEST_CASE("callers act on the head's declaration of a node's death at once",
          "[integration][transport]") {
  TestCluster cluster(1, 256ll << 20, {"--heartbeat-timeout-ms=2000"});
  REQUIRE(cluster.start_result().exit_code == 0);
  const std::string node_temp = MakeTempDir();
  const std::string token =
      Run({"lumen", "get-auth-token", cluster.TempDirFlag()}).output.substr(0, 64);
  const auto node = Run({"lumen", "start", "--address=" + cluster.address(), "--token=" + token,
                         "--num-cpus=1", "--resources={\"special\": 1}",
                         "--object-store-memory=134217728", "--temp-dir=" + node_temp});
  INFO(node.output);
  REQUIRE(node.exit_code == 0);
  const int node_pid = DaemonPid(node_temp);
  REQUIRE(node_pid > 0);
  auto driver = cluster.StartProgram({"lumen_transport_driver", "actor-on-stopped-node"});
  REQUIRE(driver->WaitForOutput("READY", 60));
  // The whole node stops: its node manager and its workers (one process group).
  REQUIRE(kill(-node_pid, SIGSTOP) == 0);
  driver->WriteLine("go");
  const int rc = driver->Wait(60);
  kill(-node_pid, SIGKILL);
  Run({"lumen", "stop", "--temp-dir=" + node_temp});
  const std::string output = driver->Output();
  INFO(output);
  REQUIRE(rc == 0);
  CHECK_THAT(output, Contains("node-stopped ActorDiedError: "));
  // Well before the 10 s in which the caller would notice the silence by itself.
  CHECK(std::stod(Field(output, "seconds")) < 8);
}
