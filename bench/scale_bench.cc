// Many nodes on one head: --nodes hosts (network namespaces on a bridge, the integration tests'
// fixture tests/integration/netns_cluster.h; needs root), each a node with 1 CPU and a small
// store, join a head that runs no tasks itself (0 CPUs, its own host), then a driver on the
// head's host runs --tasks tasks (trivial, or sleeping --task-ms) with the SPREAD strategy, twice:
// cold (each node starts its job's worker) and warm. Prints the registration's wall time (every
// `lumen start --address` launched at once, until the last returned: each returns once its node is
// registered), the head's CPU time (utime + stime of its process, /proc/<pid>/stat) for the
// registration, an idle window and each round, each round's wall time (first submit to the last
// Get) with when the first task's result came, how many nodes ran tasks with the fewest and most
// per node, and the nodes' memory.
//
//   lumen_scale_bench [--nodes=32] [--tasks=10000] [--store-bytes=33554432] [--max-workers=1]
//                     [--task-ms=0]       (each task sleeps this long; 0: trivial tasks)
//                     [--timeout=300]     (seconds for each round's Get)
//   lumen_scale_bench --nodes=4 --tasks=200          # a smoke run
//
// The same binary plays the driver inside the head's namespace (--role=driver).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/process.h"
#include "common/session.h"
#include "lumen/lumen.h"
#include "tests/integration/netns_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kIdleSeconds = 5;

// A task: sleeps `sleep_ms` (0: none, a trivial task) and says where it ran.
std::string WhereAmI(int sleep_ms) {
  if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  return lumen::GetRuntimeContext().node_id;
}
LUMEN_REMOTE(WhereAmI);

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// utime + stime of process `pid` in seconds (/proc/<pid>/stat fields 14 and 15), -1 if gone.
double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  int64_t utime = 0;
  int64_t stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::atoll(field.c_str());
    if (i == 15) stime = std::atoll(field.c_str());
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Resident memory of process `pid` in bytes (VmRSS; shared pages count in every process).
int64_t RssBytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return 0;
}

struct Options {
  int nodes = 32;
  int tasks = 10000;
  int64_t store_bytes = 32 << 20;
  int max_workers = 1;
  int task_ms = 0;
  int timeout = 300;  // seconds for each round's Get
  // The driver's role only.
  std::string address;
  std::string temp_dir;
  int head_pid = 0;
};

// The head's host: waits for the nodes' CPUs in the cluster, then runs the rounds.
int Driver(const Options& o) {
  lumen::InitOptions init;
  init.address = o.address;
  init.temp_dir = o.temp_dir;
  lumen::Init(init);
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (lumen::ClusterResources()["CPU"] < o.nodes) {
    if (Clock::now() > deadline) {
      std::cerr << "the cluster has " << lumen::ClusterResources()["CPU"] << " CPUs, not "
                << o.nodes << ", after 60 s\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const char* round : {"cold", "warm"}) {
    const double cpu_before = CpuSeconds(o.head_pid);
    const auto start = Clock::now();
    std::vector<lumen::ObjectRef<std::string>> refs;
    refs.reserve(static_cast<size_t>(o.tasks));
    double first = -1;          // when the first task's result came, while the others are submitted
    std::jthread first_waiter;  // joins also when a Get below throws
    for (int i = 0; i < o.tasks; ++i) {
      refs.push_back(lumen::Task(WhereAmI)
                         .SetSchedulingStrategy(lumen::SchedulingStrategy::Spread())
                         .Remote(o.task_ms));
      if (i == 0) {
        first_waiter = std::jthread([ref = refs.front(), &first, start, &o] {
          try {
            lumen::Get(ref, int64_t{o.timeout} * 1000);
            first = Seconds(start);
          } catch (const std::exception& e) {
            std::cerr << "the first task failed: " << e.what() << "\n";
          }
        });
      }
    }
    const double submitted = Seconds(start);
    const auto values = lumen::Get(refs, int64_t{o.timeout} * 1000);
    const double seconds = Seconds(start);
    first_waiter.join();
    const double head_cpu = CpuSeconds(o.head_pid) - cpu_before;
    std::map<std::string, int> per_node;
    for (const auto& value : values) ++per_node[*value];
    int fewest = o.tasks;
    int most = 0;
    for (const auto& [node, count] : per_node) {
      fewest = std::min(fewest, count);
      most = std::max(most, count);
    }
    std::cout << absl::StrFormat(
                     "tasks_%s %d tasks of %d ms in %.3f s (%.0f tasks/s; all submitted at %.3f "
                     "s, the first one's result at %.3f s), head CPU %.3f s; ran on %d of %d "
                     "nodes, %d to %d tasks per node\n",
                     round, o.tasks, o.task_ms, seconds, o.tasks / seconds, submitted, first,
                     head_cpu, per_node.size(), o.nodes, fewest, most)
              << std::flush;
  }
  lumen::Shutdown();
  return 0;
}

int Orchestrate(const Options& o) {
  using lumen::testing::NetnsCluster;
  if (const std::string why = NetnsCluster::Unavailable(); !why.empty()) {
    std::cerr << "this benchmark needs network namespaces (root and `ip netns`): " << why << "\n";
    return 1;
  }
  const std::string self = lumen::internal::SelfExecutable();
  const auto setup_start = Clock::now();
  NetnsCluster cluster(o.nodes + 1);
  std::cout << absl::StrFormat("made %d namespace hosts in %.2f s\n", o.nodes + 1,
                               Seconds(setup_start))
            << std::flush;
  const auto head = cluster.StartHead({"--num-cpus=0", "--object-store-memory=134217728"});
  if (head.exit_code != 0) {
    std::cerr << "cannot start the head:\n" << head.output;
    return 1;
  }
  auto session = lumen::internal::Session::OpenLatest(cluster.host(0).temp_dir);
  const auto head_record =
      session.ok() ? session->LiveHead() : std::optional<lumen::internal::ProcessRecord>();
  if (!head_record.has_value()) {
    std::cerr << "cannot find the head's process in " << cluster.host(0).temp_dir << "\n";
    return 1;
  }
  const int head_pid = head_record->pid;

  const double cpu_before = CpuSeconds(head_pid);
  const auto start = Clock::now();
  std::vector<std::unique_ptr<lumen::testing::Child>> joins;
  for (int i = 1; i <= o.nodes; ++i) {
    joins.push_back(
        cluster.Start(i, {"lumen", "start", "--address=" + cluster.HeadAddress(),
                          "--token=" + cluster.Token(), "--ip=" + cluster.host(i).ip,
                          "--num-cpus=1", "--object-store-memory=" + std::to_string(o.store_bytes),
                          "--max-workers=" + std::to_string(o.max_workers)}));
  }
  for (size_t i = 0; i < joins.size(); ++i) {
    if (joins[i]->Wait(120) != 0) {
      std::cerr << "node " << i + 1 << " did not join:\n" << joins[i]->Output();
      return 1;
    }
  }
  const double registration = Seconds(start);
  const double registration_cpu = CpuSeconds(head_pid) - cpu_before;
  std::cout << absl::StrFormat("registration %d nodes in %.3f s, head CPU %.3f s\n", o.nodes,
                               registration, registration_cpu)
            << std::flush;

  const double idle_before = CpuSeconds(head_pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(kIdleSeconds));  // a measured window
  std::cout << absl::StrFormat("idle with %d nodes: head CPU %.3f s per s\n", o.nodes,
                               (CpuSeconds(head_pid) - idle_before) / kIdleSeconds)
            << std::flush;

  const auto driver = cluster.Run(
      0,
      {self, "--role=driver", "--address=" + cluster.HeadAddress(),
       "--nodes=" + std::to_string(o.nodes), "--tasks=" + std::to_string(o.tasks),
       "--task-ms=" + std::to_string(o.task_ms), "--timeout=" + std::to_string(o.timeout),
       "--head-pid=" + std::to_string(head_pid)},
      2 * o.timeout + 120);
  std::cout << driver.output << std::flush;
  if (driver.exit_code != 0) {
    std::cerr << "the driver failed (exit code " << driver.exit_code << "); lumen status:\n"
              << cluster.Run(0, {"lumen", "status"}, 30).output;
    return 1;
  }
  int64_t rss = 0;
  int processes = 0;
  for (int i = 1; i <= o.nodes; ++i) {
    for (int pid : cluster.Pids(i)) {
      rss += RssBytes(pid);
      ++processes;
    }
  }
  std::cout << absl::StrFormat(
      "nodes' memory: %d processes, %.0f MiB resident in all (shared store pages counted in "
      "each process), head %.0f MiB\n",
      processes, static_cast<double>(rss) / (1 << 20),
      static_cast<double>(RssBytes(head_pid)) / (1 << 20));
  return 0;
}

// Parses --name=value flags into `o` and `role`; false (with a message) on a bad one.
bool ParseFlags(int argc, char** argv, Options& o, std::string& role) {
  // Numbers are positive, except --task-ms and --head-pid, which may be 0.
  const std::map<std::string, std::pair<int*, int>> ints = {{"nodes", {&o.nodes, 1}},
                                                            {"tasks", {&o.tasks, 1}},
                                                            {"max-workers", {&o.max_workers, 1}},
                                                            {"task-ms", {&o.task_ms, 0}},
                                                            {"timeout", {&o.timeout, 1}},
                                                            {"head-pid", {&o.head_pid, 0}}};
  const std::map<std::string, std::string*> strings = {
      {"role", &role}, {"address", &o.address}, {"temp-dir", &o.temp_dir}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "not a --name=value flag: " << arg << "\n";
      return false;
    }
    const std::string name = arg.substr(2, eq - 2);
    const std::string value = arg.substr(eq + 1);
    bool ok = true;
    if (auto it = ints.find(name); it != ints.end()) {
      auto [target, least] = it->second;
      ok = absl::SimpleAtoi(value, target) && *target >= least;
    } else if (name == "store-bytes") {
      ok = absl::SimpleAtoi(value, &o.store_bytes) && o.store_bytes > 0;
    } else if (auto sit = strings.find(name); sit != strings.end()) {
      *sit->second = value;
    } else {
      std::cerr << "unknown flag --" << name << "\n";
      return false;
    }
    if (!ok) {
      std::cerr << "--" << name << " takes a " << (name == "task-ms" ? "non-negative" : "positive")
                << " integer, not '" << value << "'\n";
      return false;
    }
  }
  if (o.nodes > 250) {
    std::cerr << "--nodes: at most 250 (the hosts share one /24)\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("LUMEN_ROLE") != nullptr) lumen::Init(argc, argv);  // a worker: never returns
  Options o;
  std::string role;
  if (!ParseFlags(argc, argv, o, role)) {
    std::cerr << "usage: lumen_scale_bench [--nodes=32] [--tasks=10000] "
                 "[--store-bytes=33554432] [--max-workers=1] [--task-ms=0] [--timeout=300]\n";
    return 2;
  }
  try {
    if (role.empty()) return Orchestrate(o);
    if (role == "driver") return Driver(o);
    std::cerr << "unknown role " << role << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
