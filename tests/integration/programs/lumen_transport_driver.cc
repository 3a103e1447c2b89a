// Fast-path behaviours for the transport integration tests; the mode is argv[1], cluster flags
// follow. Lines the test reads start with a keyword; "READY ..." lines wait for a line on stdin
// (the test does something to the cluster in between).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"
#include "runtime/core_worker.h"

namespace {

// A field of /proc/<pid>/status, e.g. "VmHWM" or "Threads" (kB for memory), or -1.
long StatusField(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

// This process's thread count, and their names.
long Threads(std::string* names = nullptr) {
  long n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    if (names != nullptr) {
      std::string name;
      std::getline(std::ifstream(entry.path() / "comm"), name);
      *names += name + ",";
    }
    ++n;
  }
  return n;
}

// The thread count at rest: gRPC's timer manager keeps a helper thread for a moment after a
// burst of calls, so this is the least count seen over one second.
long RestingThreads(std::string* names) {
  long least = Threads(names);
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::string now_names;
    const long now = Threads(&now_names);
    if (now < least) {
      least = now;
      *names = now_names;
    }
  }
  return least;
}

void WaitForGo() {
  std::string line;
  std::getline(std::cin, line);
}

// The fast-path address of the process this runs in.
std::string OwnAddress() { return lumen::internal::CurrentCoreWorker()->address(); }

class Sink {
 public:
  static Sink* Create() { return new Sink(); }
  long Take(std::string bytes) {
    total_ += static_cast<long>(bytes.size());
    return total_;
  }
  int Pid() { return static_cast<int>(getpid()); }
  std::string Address() { return OwnAddress(); }
  long PeakRssKb() { return StatusField(getpid(), "VmHWM"); }
  int Sleep(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }

 private:
  long total_ = 0;
};

// Appends "<i>" to `path` (one line per run), crashing the worker on the first run of `crash`.
int Record(std::string path, int i, int crash) {
  if (i == crash && !std::filesystem::exists(path + ".crashed")) {
    std::ofstream(path + ".crashed") << getpid();
    std::abort();
  }
  std::ofstream(path, std::ios::app) << i << "\n";
  return i;
}

// Reports where it runs, then takes a while: the test stops or cuts this worker meanwhile.
int SlowTask(std::string marker, int ms) {
  std::ofstream(marker + ".tmp") << getpid() << " " << OwnAddress() << "\n";
  std::filesystem::rename(marker + ".tmp", marker);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

std::vector<double> BigResult(int n) { return std::vector<double>(n, 1.5); }

LUMEN_REMOTE(Sink::Create, &Sink::Take, &Sink::Pid, &Sink::Address, &Sink::PeakRssKb, &Sink::Sleep,
             Record, SlowTask, BigResult);

// Threads of a driver calling one actor, then 300.
int ThreadCount(int actors) {
  std::vector<lumen::ActorHandle<Sink>> sinks;
  sinks.push_back(lumen::Actor(Sink::Create).Remote());
  lumen::Get(sinks[0].Task(&Sink::Pid).Remote());
  std::string names_one;
  const long one = RestingThreads(&names_one);
  for (int i = 1; i < actors; ++i) sinks.push_back(lumen::Actor(Sink::Create).Remote());
  std::vector<lumen::ObjectRef<int>> pids;
  for (auto& sink : sinks) pids.push_back(sink.Task(&Sink::Pid).Remote());
  lumen::Get(pids);
  std::string names_many;
  const long busy = Threads();
  const long many = RestingThreads(&names_many);
  // gRPC's global timer manager runs one or two helper threads by how many timers fired
  // at once lately; they are not per connection or actor, so they are counted apart.
  auto timer_helpers = [](const std::string& names) {
    long n = 0;
    for (size_t at = names.find("grpc_global_tim"); at != std::string::npos;
         at = names.find("grpc_global_tim", at + 1)) {
      ++n;
    }
    return n;
  };
  std::cout << "threads one=" << one - timer_helpers(names_one)
            << " many=" << many - timer_helpers(names_many)
            << " timers_one=" << timer_helpers(names_one)
            << " timers_many=" << timer_helpers(names_many) << " busy=" << busy
            << " actors=" << sinks.size() << "\nthread names with one actor: " << names_one
            << "\nthread names with all actors: " << names_many << std::endl;
  return 0;
}

// Streams `total_mb` MiB of 64 KiB arguments to one actor without waiting on any call.
int Stream(long total_mb) {
  auto sink = lumen::Actor(Sink::Create).Remote();
  const int actor_pid = *lumen::Get(sink.Task(&Sink::Pid).Remote());
  const std::string chunk(64 << 10, 'x');
  const long calls = total_mb * 16;
  const auto start = std::chrono::steady_clock::now();
  lumen::ObjectRef<long> last;
  for (long i = 0; i < calls; ++i) last = sink.Task(&Sink::Take).Remote(chunk);
  const long received = *lumen::Get(last);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "stream bytes=" << received << " expected=" << calls * (64 << 10)
            << " seconds=" << seconds
            << " mb_per_s=" << (static_cast<double>(received) / 1048576.0) / seconds
            << " caller_peak_kb=" << StatusField(getpid(), "VmHWM")
            << " actor_peak_kb=" << *lumen::Get(sink.Task(&Sink::PeakRssKb).Remote())
            << " actor_pid=" << actor_pid << std::endl;
  return 0;
}

// A pending Get with no timeout on an actor that the test stops with SIGSTOP.
int StoppedActor() {
  auto sink = lumen::Actor(Sink::Create).Remote();
  const int pid = *lumen::Get(sink.Task(&Sink::Pid).Remote());
  std::cout << "READY pid=" << pid << std::endl;
  WaitForGo();
  const auto start = std::chrono::steady_clock::now();
  try {
    lumen::Get(sink.Task(&Sink::Sleep).Remote(1));
    std::cout << "stopped-actor value" << std::endl;
  } catch (const lumen::ActorUnavailableError& e) {
    std::cout << "stopped-actor ActorUnavailableError: " << e.what() << std::endl;
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "stopped-actor ActorDiedError: " << e.what() << std::endl;
  }
  std::cout << "stopped-actor seconds="
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << std::endl;
  return 0;
}

// A task whose worker the test stops (SIGSTOP) or whose connection it cuts while it runs.
int InterruptedTask(const std::string& marker) {
  const auto start = std::chrono::steady_clock::now();
  const int value = *lumen::Get(lumen::Task(SlowTask).Remote(marker, 3000));
  std::cout << "interrupted-task value=" << value << " seconds="
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << std::endl;
  return 0;
}

// Tasks pipelined to one worker, one of which crashes it: the finished ones never run again.
int CrashMidBatch(const std::string& path) {
  // Warm up so that the submitter pipelines this function's tasks.
  for (int i = 0; i < 20; ++i) lumen::Get(lumen::Task(Record).Remote(path + ".warm", i, -1));
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 40; ++i) refs.push_back(lumen::Task(Record).Remote(path, i, 25));
  long sum = 0;
  for (auto& value : lumen::Get(refs)) sum += *value;
  std::cout << "crash-mid-batch sum=" << sum << std::endl;
  return 0;
}

// A healthy actor whose connection the test cuts (ss -K): later calls still reach it.
int CutConnection() {
  auto sink = lumen::Actor(Sink::Create).Remote();
  lumen::Get(sink.Task(&Sink::Take).Remote(std::string("a")));
  std::cout << "READY address=" << *lumen::Get(sink.Task(&Sink::Address).Remote()) << std::endl;
  auto in_flight = sink.Task(&Sink::Sleep).Remote(3000);
  WaitForGo();
  try {
    lumen::Get(in_flight);
    std::cout << "cut in-flight value" << std::endl;
  } catch (const lumen::ActorUnavailableError& e) {
    std::cout << "cut in-flight ActorUnavailableError: " << e.what() << std::endl;
  }
  std::cout << "cut after " << *lumen::Get(sink.Task(&Sink::Take).Remote(std::string("bb")), 30000)
            << std::endl;
  return 0;
}

// An actor whose fast-path port the test floods with unauthenticated connections.
int Flooded() {
  auto sink = lumen::Actor(Sink::Create).Remote();
  const int pid = *lumen::Get(sink.Task(&Sink::Pid).Remote());
  std::cout << "READY pid=" << pid << " address=" << *lumen::Get(sink.Task(&Sink::Address).Remote())
            << std::endl;
  WaitForGo();
  std::cout << "flooded actor="
            << *lumen::Get(sink.Task(&Sink::Take).Remote(std::string("abc")), 30000) << " task="
            << *lumen::Get(lumen::Task(Record).Remote(std::string("/dev/null"), 7, -1), 30000)
            << std::endl;
  return 0;
}

// A large task result whose first attempt's worker dies after storing it (the test sets
// LUMEN_TESTING_EXIT_AFTER_STORE for the cluster): the retry finds it stored and succeeds.
int RetryStored() {
  const auto value = lumen::Get(lumen::Task(BigResult).Remote(1 << 16), 60000);
  std::cout << "retry-stored size=" << value->size() << " first=" << value->front() << std::endl;
  return 0;
}

// An actor that needs a resource only the second node has; the test stops that whole node.
int ActorOnStoppedNode() {
  auto sink = lumen::Actor(Sink::Create).SetResource("special", 1).Remote();
  std::cout << "READY pid=" << *lumen::Get(sink.Task(&Sink::Pid).Remote(), 30000) << std::endl;
  WaitForGo();
  const auto start = std::chrono::steady_clock::now();
  try {
    lumen::Get(sink.Task(&Sink::Sleep).Remote(1));
    std::cout << "node-stopped value" << std::endl;
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "node-stopped ActorDiedError: " << e.what() << std::endl;
  }
  std::cout << "node-stopped seconds="
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  const std::string arg = argc > 2 ? argv[2] : "";
  int rc = 2;
  try {
    if (mode == "threads") rc = ThreadCount(std::stoi(arg));
    if (mode == "stream") rc = Stream(std::stol(arg));
    if (mode == "stopped-actor") rc = StoppedActor();
    if (mode == "interrupted-task") rc = InterruptedTask(arg);
    if (mode == "crash-mid-batch") rc = CrashMidBatch(arg);
    if (mode == "cut-connection") rc = CutConnection();
    if (mode == "flooded") rc = Flooded();
    if (mode == "retry-stored") rc = RetryStored();
    if (mode == "actor-on-stopped-node") rc = ActorOnStoppedNode();
  } catch (const std::exception& e) {
    std::cout << "unexpected " << e.what() << std::endl;
    rc = 1;
  }
  lumen::Shutdown();
  return rc;
}
