// Lifecycle behaviours for the integration tests: actors on other nodes, jobs that end, many
// actors on one node, deep task trees. The mode is argv[1], its arguments follow, then the
// cluster flags.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"
#include "tests/integration/programs/driver_main.h"

namespace {

class Counter {
 public:
  static Counter* Create(int start) { return new Counter(start); }
  int Add(int x) { return value_ += x; }
  int Pid() const { return static_cast<int>(getpid()); }

 private:
  explicit Counter(int start) : value_(start) {}
  int value_;
};

int Square(int x) { return x * x; }

// Sums 1..depth through a chain of nested tasks, each blocked in Get on the next.
int Chain(int depth) {
  if (depth == 0) return 0;
  return depth + *lumen::Get(lumen::Task(Chain).Remote(depth - 1));
}

// Sums 1..n through a binary tree of tasks `levels` deep.
int64_t TreeSum(int64_t lo, int64_t hi, int levels) {
  if (levels == 0 || hi - lo < 2) {
    int64_t sum = 0;
    for (int64_t i = lo; i < hi; ++i) sum += i;
    return sum;
  }
  const int64_t mid = (lo + hi) / 2;
  auto left = lumen::Task(TreeSum).Remote(lo, mid, levels - 1);
  auto right = lumen::Task(TreeSum).Remote(mid, hi, levels - 1);
  return *lumen::Get(left) + *lumen::Get(right);
}

double SumAll(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum;
}

LUMEN_REMOTE(Counter::Create, &Counter::Add, &Counter::Pid, Square, Chain, TreeSum, SumAll);

std::map<std::string, double> Resources(const std::string& resource) {
  if (resource.empty() || resource == "-") return {};
  return {{resource, 0.01}};
}

// A non-detached actor (on the node with `resource`), whose pid is printed; then the driver
// exits, and its job with it.
int JobActor(const std::string& resource) {
  auto counter = lumen::Actor(Counter::Create).SetResources(Resources(resource)).Remote(1);
  std::cout << "actor-pid " << *lumen::Get(counter.Task(&Counter::Pid).Remote()) << std::endl;
  return 0;
}

// A detached named actor that restarts once, on the node with `resource`.
int CreateNamed(const std::string& name, const std::string& resource) {
  auto counter = lumen::Actor(Counter::Create)
                     .SetName(name)
                     .SetDetached()
                     .SetMaxRestarts(-1)
                     .SetResources(Resources(resource))
                     .Remote(100);
  std::cout << "created " << *lumen::Get(counter.Task(&Counter::Add).Remote(1)) << " pid "
            << *lumen::Get(counter.Task(&Counter::Pid).Remote()) << std::endl;
  return 0;
}

int CallNamed(const std::string& name) {
  auto counter = lumen::GetActor<Counter>(name);
  if (!counter) {
    std::cout << "missing " << name << std::endl;
    return 1;
  }
  const int value = *lumen::Get(counter->Task(&Counter::Add).Remote(1));
  std::cout << "value " << value << " pid " << *lumen::Get(counter->Task(&Counter::Pid).Remote())
            << std::endl;
  return 0;
}

// Calls the named actor for `seconds`, one call at a time; prints how many calls failed.
int CallLoop(const std::string& name, int seconds) {
  auto counter = lumen::GetActor<Counter>(name);
  if (!counter) {
    std::cout << "missing " << name << std::endl;
    return 1;
  }
  std::cout << "calling" << std::endl;
  int calls = 0;
  int failures = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    try {
      lumen::Get(counter->Task(&Counter::Add).Remote(1));
      ++calls;
    } catch (const lumen::Error& e) {
      if (failures++ == 0) std::cout << "first failure " << e.what() << std::endl;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::cout << "calls " << calls << " failures " << failures << std::endl;
  return 0;
}

// A stateful actor whose calls say which process ran them, so a caller can tell a restart
// (a new process starting from its constructor's state) from lost or repeated updates.
class Account {
 public:
  static Account* Create(int64_t start) { return new Account(start); }
  // {pid, balance after adding x}.
  std::vector<int64_t> Deposit(int64_t x) {
    balance_ += x;
    return {static_cast<int64_t>(getpid()), balance_};
  }

 private:
  explicit Account(int64_t start) : balance_(start) {}
  int64_t balance_;
};

// `values` times `factor`: a result as large as its argument.
std::vector<double> Scale(const std::vector<double>& values, double factor) {
  std::vector<double> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i] * factor;
  return out;
}

LUMEN_REMOTE(Account::Create, &Account::Deposit, Scale);

// What a caller of one Account expects next: the same process adds to its balance, a new
// process (a restart) starts again from zero. After a call that failed anything may have run.
struct AccountCheck {
  lumen::ActorHandle<Account> handle;
  int64_t pid = 0;
  int64_t balance = 0;
  bool unsure = true;  // no call answered yet, or one failed since the last answer

  bool Check(const std::vector<int64_t>& reply) {
    if (reply.size() != 2) return false;
    bool right = false;
    if (reply[0] == pid) {
      right = unsure ? reply[1] > balance : reply[1] == balance + 1;
    } else {
      right = unsure ? reply[1] >= 1 : reply[1] == 1;
    }
    pid = reply[0];
    balance = reply[1];
    unsure = false;
    return right;
  }
};

// A mixed workload for `seconds` while something kills workers, actors and whole nodes: task
// trees, stateful actors that restart and retry calls, and objects of several MiB passed between
// hosts (put here, scaled on a node with the `node` resource, summed on another). Every result
// must be right or one of the documented system errors; anything else is counted as unexpected.
int Chaos(int seconds) {
  int ok = 0;
  int errors = 0;
  int unexpected = 0;
  std::map<std::string, int> error_kinds;
  auto check = [&](const std::function<bool()>& step, const char* what) {
    auto documented = [&](const char* kind) {
      ++errors;
      ++error_kinds[kind];
    };
    try {
      if (step()) {
        ++ok;
      } else {
        ++unexpected;
        std::cout << "wrong result from " << what << std::endl;
      }
    } catch (const lumen::WorkerCrashedError&) {
      documented("WorkerCrashedError");
    } catch (const lumen::ActorDiedError&) {
      documented("ActorDiedError");
    } catch (const lumen::ObjectLostError&) {
      documented("ObjectLostError");
    } catch (const lumen::OwnerDiedError&) {
      documented("OwnerDiedError");
    } catch (const std::exception& e) {
      ++unexpected;
      std::cout << "unexpected from " << what << ": " << e.what() << std::endl;
    }
  };
  const std::map<std::string, double> on_a_node = {{"node", 1}};
  std::vector<AccountCheck> accounts;
  for (int i = 0; i < 3; ++i) {
    accounts.push_back({lumen::Actor(Account::Create)
                            .SetMaxRestarts(-1)
                            .SetMaxTaskRetries(3)
                            .SetResources(i < 2 ? on_a_node : std::map<std::string, double>{})
                            .SetSchedulingStrategy(lumen::SchedulingStrategy::Spread())
                            .Remote(int64_t{0})});
  }
  std::cout << "chaos started" << std::endl;
  constexpr size_t kBigDoubles = size_t{1} << 20;  // 8 MiB
  // The last few large results stay referenced, so the nodes' stores fill up and spill.
  std::deque<lumen::ObjectRef<std::vector<double>>> kept;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (int round = 0; std::chrono::steady_clock::now() < until; ++round) {
    check([] { return *lumen::Get(lumen::Task(TreeSum).Remote(0, 1000, 3)) == 499500; },
          "a task tree");
    for (AccountCheck& account : accounts) {
      check(
          [&] {
            try {
              return account.Check(*lumen::Get(account.handle.Task(&Account::Deposit).Remote(1)));
            } catch (const lumen::Error&) {
              account.unsure = true;
              throw;
            }
          },
          "an actor");
    }
    if (round % 2 == 0) {
      check(
          [&] {
            const double fill = 1 + round % 7;
            auto big = lumen::Put(std::vector<double>(kBigDoubles, fill));
            auto scaled = lumen::Task(Scale).SetResources({{"node", 0.01}}).Remote(big, 2.0);
            auto sum = lumen::Task(SumAll).SetResources({{"node", 0.01}}).Remote(scaled);
            const double expected = 2 * fill * static_cast<double>(kBigDoubles);
            if (*lumen::Get(sum) != expected) return false;
            kept.push_back(scaled);
            if (kept.size() > 10) kept.pop_front();
            const std::vector<double> back = *lumen::Get(scaled);
            return back.size() == kBigDoubles && back.front() == 2 * fill &&
                   back.back() == 2 * fill;
          },
          "a large object");
    }
  }
  std::cout << "ok " << ok << " errors " << errors << " unexpected " << unexpected << std::endl;
  for (const auto& [kind, count] : error_kinds) std::cout << kind << " " << count << std::endl;
  return 0;
}

void WritePid(const std::string& path) {
  std::ofstream(path + ".tmp") << getpid() << std::endl;
  std::filesystem::rename(path + ".tmp", path);
}

// Writes its pid to `path`, then holds its worker (and lease) for `seconds`.
int Hold(const std::string& path, int seconds) {
  WritePid(path);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return static_cast<int>(getpid());
}

// Writes its pid to `dir`/spawner, then runs Hold on the node with the `held` resource (another
// node): this task's process holds Hold's lease there.
int Spawn(const std::string& dir) {
  WritePid(dir + "/spawner");
  return *lumen::Get(lumen::Task(Hold).SetResources({{"held", 1}}).Remote(dir + "/held", 600));
}

LUMEN_REMOTE(Hold, Spawn);

// Runs Spawn once on the node with the `spawn` resource and says how it ended; then keeps its
// job alive until a line arrives on stdin.
int RemoteHolder(const std::string& dir) {
  try {
    lumen::Get(lumen::Task(Spawn).SetResources({{"spawn", 1}}).SetMaxRetries(0).Remote(dir));
    std::cout << "spawn returned" << std::endl;
  } catch (const lumen::Error& e) {
    std::cout << "spawn failed: " << e.what() << std::endl;
  }
  std::string line;
  std::getline(std::cin, line);
  return 0;
}

// `actors` actors alive at once, then tasks and a chain of nested tasks `depth` deep.
int Crowd(int actors, int depth) {
  std::vector<lumen::ActorHandle<Counter>> crowd;
  std::vector<lumen::ObjectRef<int>> pids;
  for (int i = 0; i < actors; ++i) {
    crowd.push_back(lumen::Actor(Counter::Create).Remote(i));
    pids.push_back(crowd.back().Task(&Counter::Pid).Remote());
  }
  lumen::Get(pids);
  std::cout << "actors " << crowd.size() << std::endl;
  std::vector<lumen::ObjectRef<int>> squares;
  for (int i = 0; i < 20; ++i) squares.push_back(lumen::Task(Square).Remote(i));
  int sum = 0;
  for (const auto& v : lumen::Get(squares)) sum += *v;
  std::cout << "squares " << sum << std::endl;
  std::cout << "chain " << *lumen::Get(lumen::Task(Chain).Remote(depth)) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i) { return argc > i ? std::string(argv[i]) : std::string(); };
  auto number = [&](int i) { return std::atoi(arg(i).c_str()); };
  return lumen::testing::DriverMain(argc, argv,
                                    {{"job-actor", [&] { return JobActor(arg(2)); }},
                                     {"create-named", [&] { return CreateNamed(arg(2), arg(3)); }},
                                     {"call-named", [&] { return CallNamed(arg(2)); }},
                                     {"call-loop", [&] { return CallLoop(arg(2), number(3)); }},
                                     {"chaos", [&] { return Chaos(number(2)); }},
                                     {"remote-holder", [&] { return RemoteHolder(arg(2)); }},
                                     {"crowd", [&] { return Crowd(number(2), number(3)); }}});
}
