// Moving a large object between two nodes, beside plain TCP between the same addresses in the
// same run. Starts a head on 127.0.0.1 and a node on 127.0.0.2 (its own store, custom resource
// {"b": 1}) with `lumen start` in a temporary folder; a task on the second node makes an object
// of --bytes, and this driver on the head's node times its Get (pulled over the data plane,
// then read in place). Then it times --bytes sent over one plain TCP connection from 127.0.0.1
// to 127.0.0.2 (read into a reused buffer), and prints both rates and their ratio.
//
//   lumen_object_transfer_bench [--bytes=1073741824] [--reps=3]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/process.h"
#include "lumen/lumen.h"

namespace {

using Clock = std::chrono::steady_clock;

// An array of `bytes` bytes, made on the node that runs this.
lumen::Array<uint8_t> MakeBytes(int64_t bytes) {
  std::vector<uint8_t> values(static_cast<size_t>(bytes), 7);
  return lumen::Array<uint8_t>(std::move(values));
}
LUMEN_REMOTE(MakeBytes);

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Run(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& arg : argv) absl::StrAppend(&command, command.empty() ? "" : " ", "'", arg, "'");
  return std::system(command.c_str());
}

// Bytes per second of one plain TCP connection 127.0.0.1 -> 127.0.0.2 carrying `bytes`.
double PlainTcp(int64_t bytes) {
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.2", &addr.sin_addr);
  socklen_t len = sizeof(addr);
  if (bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(server, 1) != 0 ||
      getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::cerr << "cannot listen on 127.0.0.2\n";
    return 0;
  }
  std::thread receiver([server, bytes] {
    const int conn = accept(server, nullptr, nullptr);
    std::vector<char> buffer(size_t{8} << 20);
    int64_t got = 0;
    while (got < bytes) {
      const ssize_t n = read(conn, buffer.data(), buffer.size());
      if (n <= 0) break;
      got += n;
    }
    close(conn);
  });
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in self{};
  self.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &self.sin_addr);
  if (bind(client, reinterpret_cast<sockaddr*>(&self), sizeof(self)) != 0) {
    std::cerr << "cannot bind to 127.0.0.1\n";
  }
  const auto start = Clock::now();
  if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::cerr << "cannot connect to 127.0.0.2\n";
  }
  std::vector<char> chunk(size_t{8} << 20, 7);
  int64_t sent = 0;
  while (sent < bytes) {
    const ssize_t n = write(
        client, chunk.data(),
        static_cast<size_t>(std::min<int64_t>(bytes - sent, static_cast<int64_t>(chunk.size()))));
    if (n <= 0) break;
    sent += n;
  }
  shutdown(client, SHUT_WR);
  receiver.join();
  const double seconds = Seconds(start);
  close(client);
  close(server);
  return static_cast<double>(bytes) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("LUMEN_ROLE") != nullptr) lumen::Init(argc, argv);  // a worker: never returns
  int64_t bytes = int64_t{1} << 30;
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--bytes=", 0) == 0 && absl::SimpleAtoi(arg.substr(8), &bytes) && bytes > 0) {
      continue;
    }
    if (arg.rfind("--reps=", 0) == 0 && absl::SimpleAtoi(arg.substr(7), &reps) && reps > 0) {
      continue;
    }
    std::cerr << "usage: lumen_object_transfer_bench [--bytes=N] [--reps=N]\n";
    return 2;
  }
  char dir_template[] = "/tmp/lumen-transfer-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::string self = lumen::internal::SelfExecutable();
  const std::string lumen_bin = self.substr(0, self.rfind('/')) + "/lumen";
  const std::string store = std::to_string(bytes + (int64_t{256} << 20));
  const std::string temp = "--temp-dir=" + dir;
  const int port = 20000 + static_cast<int>(getpid() % 20000);
  const std::string head = absl::StrCat("127.0.0.1:", port);
  if (Run({lumen_bin, "start", "--head", "--ip=127.0.0.1", absl::StrCat("--port=", port),
           "--num-cpus=1", "--object-store-memory=" + store, "--dashboard-port=0", temp}) != 0 ||
      Run({lumen_bin, "start", "--address=" + head, "--ip=127.0.0.2", "--num-cpus=1",
           "--resources={\"b\": 1}", "--object-store-memory=" + store, temp}) != 0) {
    std::cerr << "cannot start the two nodes\n";
    Run({lumen_bin, "stop", temp});
    return 1;
  }
  int rc = 0;
  try {
    lumen::InitOptions options;
    options.address = head;
    options.temp_dir = dir;
    lumen::Init(options);
    std::vector<double> rates;
    for (int rep = 0; rep < reps; ++rep) {
      auto ref = lumen::Task(MakeBytes).SetResources({{"b", 1}}).Remote(bytes);
      lumen::Wait(std::vector{ref}, 1, -1);  // made over there; not moved yet
      const auto start = Clock::now();
      auto value = lumen::Get(ref);
      const double seconds = Seconds(start);
      if (static_cast<int64_t>(value->size()) != bytes || (*value)[bytes / 2] != 7) {
        throw std::runtime_error("the object arrived wrong");
      }
      rates.push_back(static_cast<double>(bytes) / seconds);
    }
    lumen::Shutdown();
    std::sort(rates.begin(), rates.end());
    const double transfer = rates[rates.size() / 2];
    std::vector<double> tcp_rates;
    tcp_rates.reserve(static_cast<size_t>(reps));
    for (int rep = 0; rep < reps; ++rep) tcp_rates.push_back(PlainTcp(bytes));
    std::sort(tcp_rates.begin(), tcp_rates.end());
    const double tcp = tcp_rates[tcp_rates.size() / 2];
    std::cout << absl::StrFormat("object_transfer_bytes %d (median of %d)\n", bytes, reps)
              << absl::StrFormat("object_transfer_gbps %.3f GB/s\n", transfer / 1e9)
              << absl::StrFormat("plain_tcp_gbps %.3f GB/s\n", tcp / 1e9)
              << absl::StrFormat("ratio %.3f\n", transfer / tcp);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    rc = 1;
  }
  Run({lumen_bin, "stop", temp});
  return rc;
}
