// Moving a large object between two hosts, beside plain TCP between the same hosts in the same
// run. The hosts are network namespaces joined by veth pairs to a bridge
// (tests/integration/netns_cluster.h; needs root): a head on host 0 and a node on host 1 (custom
// resource {"b": 1}), each with its own store. A task on host 1 makes an object of --bytes, and a
// driver on host 0 times its Get (pulled over the data plane into host 0's store, then read in
// place). Then one plain TCP connection from host 0 to host 1 carries --bytes (read into a
// reused buffer). The two alternate, rep by rep; both are the median of --reps, and the rates
// and their ratio are printed.
//
//   lumen_object_transfer_bench [--bytes=1073741824] [--reps=3]
//
// The same binary plays the driver and the TCP ends inside the namespaces (--role=...).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/process.h"
#include "lumen/lumen.h"
#include "tests/integration/netns_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kTcpPort = 7100;

// An array of `bytes` bytes, made on the node that runs this.
lumen::Array<uint8_t> MakeBytes(int64_t bytes) {
  std::vector<uint8_t> values(static_cast<size_t>(bytes), 7);
  return lumen::Array<uint8_t>(std::move(values));
}
LUMEN_REMOTE(MakeBytes);

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

sockaddr_in Address(const std::string& ip, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  return addr;
}

// Host 1: accepts `reps` connections and reads each to its end.
int TcpServer(const std::string& ip, int reps) {
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = Address(ip, kTcpPort);
  if (bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(server, 4) != 0) {
    std::cerr << "cannot listen on " << ip << ":" << kTcpPort << "\n";
    return 1;
  }
  std::cout << "listening" << std::endl;
  std::vector<char> buffer(size_t{8} << 20);
  for (int rep = 0; rep < reps; ++rep) {
    const int conn = accept(server, nullptr, nullptr);
    if (conn < 0) return 1;
    while (read(conn, buffer.data(), buffer.size()) > 0) {
    }
    close(conn);
  }
  close(server);
  return 0;
}

// Host 0: sends `bytes` to the server and waits for its close; prints bytes per second.
int TcpClient(const std::string& ip, int64_t bytes) {
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = Address(ip, kTcpPort);
  std::vector<char> chunk(size_t{8} << 20, 7);
  const auto start = Clock::now();
  if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::cerr << "cannot connect to " << ip << ":" << kTcpPort << "\n";
    return 1;
  }
  int64_t sent = 0;
  while (sent < bytes) {
    const ssize_t n = write(
        client, chunk.data(),
        static_cast<size_t>(std::min<int64_t>(bytes - sent, static_cast<int64_t>(chunk.size()))));
    if (n <= 0) return 1;
    sent += n;
  }
  shutdown(client, SHUT_WR);
  char end = 0;
  while (read(client, &end, 1) > 0) {
  }
  std::cout << "rate " << static_cast<double>(bytes) / Seconds(start) << std::endl;
  close(client);
  return 0;
}

// Host 0: the driver. Prints one rate per rep.
int Driver(const std::string& address, const std::string& temp_dir, int64_t bytes, int reps) {
  lumen::InitOptions options;
  options.address = address;
  options.temp_dir = temp_dir;
  lumen::Init(options);
  for (int rep = 0; rep < reps; ++rep) {
    auto ref = lumen::Task(MakeBytes).SetResources({{"b", 1}}).Remote(bytes);
    lumen::Wait(std::vector{ref}, 1, -1);  // made over there; not moved yet
    const auto start = Clock::now();
    auto value = lumen::Get(ref);
    const double seconds = Seconds(start);
    if (static_cast<int64_t>(value->size()) != bytes || (*value)[bytes / 2] != 7) {
      std::cerr << "the object arrived wrong\n";
      return 1;
    }
    std::cout << "rate " << static_cast<double>(bytes) / seconds << std::endl;
  }
  lumen::Shutdown();
  return 0;
}

// The "rate X" lines of a role's output.
std::vector<double> Rates(const std::string& output) {
  std::vector<double> rates;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    double rate = 0;
    if (absl::ConsumePrefix(&line, "rate ") && absl::SimpleAtod(line, &rate)) {
      rates.push_back(rate);
    }
  }
  return rates;
}

int Orchestrate(int64_t bytes, int reps) {
  using lumen::testing::NetnsCluster;
  if (const std::string why = NetnsCluster::Unavailable(); !why.empty()) {
    std::cerr << "this benchmark needs network namespaces (root and `ip netns`): " << why << "\n";
    return 1;
  }
  const std::string self = lumen::internal::SelfExecutable();
  const std::string store = std::to_string(bytes + (int64_t{256} << 20));
  NetnsCluster cluster(2);
  const auto head = cluster.StartHead({"--num-cpus=1", "--object-store-memory=" + store});
  if (head.exit_code != 0) {
    std::cerr << "cannot start the head:\n" << head.output;
    return 1;
  }
  const auto node = cluster.StartNode(
      1, {"--num-cpus=1", "--resources={\"b\": 1}", "--object-store-memory=" + store});
  if (node.exit_code != 0) {
    std::cerr << "cannot start the second node:\n" << node.output;
    return 1;
  }
  const std::string n = std::to_string(bytes);
  auto server = cluster.Start(1, {self, "--role=tcp-server", "--ip=" + cluster.host(1).ip,
                                  "--reps=" + std::to_string(reps)});
  if (!server->WaitForOutput("listening", 30)) {
    std::cerr << "the TCP server did not start:\n" << server->Output();
    return 1;
  }
  // Each rep moves the object, then runs TCP: the machine's load drifts alike for both.
  std::vector<double> transfer;
  std::vector<double> tcp;
  for (int rep = 0; rep < reps; ++rep) {
    const auto driver = cluster.Run(
        0,
        {self, "--role=driver", "--address=" + cluster.HeadAddress(), "--bytes=" + n, "--reps=1"},
        300);
    const std::vector<double> rate = Rates(driver.output);
    if (driver.exit_code != 0 || rate.size() != 1) {
      std::cerr << "the driver failed:\n" << driver.output;
      return 1;
    }
    transfer.push_back(rate[0]);
    const auto client = cluster.Run(
        0, {self, "--role=tcp-client", "--ip=" + cluster.host(1).ip, "--bytes=" + n}, 300);
    const std::vector<double> tcp_rate = Rates(client.output);
    if (client.exit_code != 0 || tcp_rate.size() != 1) {
      std::cerr << "the TCP client failed:\n" << client.output;
      return 1;
    }
    tcp.push_back(tcp_rate[0]);
  }
  server->Wait(30);
  const double transfer_rate = Median(transfer);
  const double tcp_rate = Median(tcp);
  std::cout << absl::StrFormat(
                   "object_transfer_bytes %d (median of %d), between two namespace hosts over a "
                   "veth bridge\n",
                   bytes, reps)
            << absl::StrFormat("object_transfer_gbps %.3f GB/s\n", transfer_rate / 1e9)
            << absl::StrFormat("plain_tcp_gbps %.3f GB/s\n", tcp_rate / 1e9)
            << absl::StrFormat("ratio %.3f (target >= 0.7)\n", transfer_rate / tcp_rate);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("LUMEN_ROLE") != nullptr) lumen::Init(argc, argv);  // a worker: never returns
  std::map<std::string, std::string> flags = {
      {"bytes", "1073741824"}, {"reps", "3"}, {"role", ""},
      {"address", ""},         {"ip", ""},    {"temp-dir", ""}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos ||
        flags.count(arg.substr(2, eq - 2)) == 0) {
      std::cerr << "usage: lumen_object_transfer_bench [--bytes=N] [--reps=N]\n";
      return 2;
    }
    flags[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  int64_t bytes = 0;
  int reps = 0;
  if (!absl::SimpleAtoi(flags["bytes"], &bytes) || bytes <= 0 ||
      !absl::SimpleAtoi(flags["reps"], &reps) || reps <= 0) {
    std::cerr << "--bytes and --reps take positive integers\n";
    return 2;
  }
  try {
    const std::string& role = flags["role"];
    if (role.empty()) return Orchestrate(bytes, reps);
    if (role == "driver") return Driver(flags["address"], flags["temp-dir"], bytes, reps);
    if (role == "tcp-server") return TcpServer(flags["ip"], reps);
    if (role == "tcp-client") return TcpClient(flags["ip"], bytes);
    std::cerr << "unknown role " << role << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
