// A driver program for the integration tests: each mode exercises one user-visible behaviour
// and prints what a user would look at. Modes are chosen by argv[1]; cluster flags
// (--address=, --temp-dir=, --token=) follow and go to lumen::Init.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"
#include "tests/integration/programs/driver_main.h"

namespace {

int Plus(int a, int b) { return a + b; }
double Sum(std::vector<double> values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}
std::vector<int64_t> MakeBig(int64_t n) { return std::vector<int64_t>(static_cast<size_t>(n), 7); }
int Sleepy(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int Thrower(int code) { throw std::invalid_argument("bad input " + std::to_string(code)); }

// Crashes the worker the first time it runs (the marker file remembers), then returns 42.
int CrashOnce(std::string how, std::string marker) {
  struct stat st {};
  if (stat(marker.c_str(), &st) != 0) {
    std::ofstream(marker) << "crashed\n";
    if (how == "abort") std::abort();
    if (how == "segfault") {
      volatile int* null = nullptr;
      *null = 1;
    }
    if (how == "kill") kill(getpid(), SIGKILL);
  }
  return 42;
}
int AlwaysCrash(int) { std::abort(); }

// Parallel merge sort with nested tasks and a sequential cutoff.
std::vector<int> MergeSort(std::vector<int> values, int depth) {
  if (depth == 0 || values.size() < 10000) {
    std::sort(values.begin(), values.end());
    return values;
  }
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  auto left = lumen::Task(MergeSort).Remote(std::vector<int>(values.begin(), middle), depth - 1);
  auto right = lumen::Task(MergeSort).Remote(std::vector<int>(middle, values.end()), depth - 1);
  auto sorted = lumen::Get(std::vector<lumen::ObjectRef<std::vector<int>>>{left, right});
  std::vector<int> out(values.size());
  std::merge(sorted[0]->begin(), sorted[0]->end(), sorted[1]->begin(), sorted[1]->end(),
             out.begin());
  return out;
}

LUMEN_REMOTE(Plus, Sum, MakeBig, Sleepy, Thrower, CrashOnce, AlwaysCrash, MergeSort);

void WaitForLine() {
  std::string line;
  std::getline(std::cin, line);
}

int Basic() {
  auto sum = lumen::Task(Plus).Remote(1, 2);
  auto next = lumen::Task(Plus).Remote(sum, 10);
  std::cout << "chain " << *lumen::Get(next) << std::endl;
  auto put = lumen::Put(std::string("hello"));
  std::cout << "put " << *lumen::Get(put) << std::endl;
  std::vector<double> ones(1 << 20, 1.0);
  auto big = lumen::Put(ones);
  std::cout << "big-arg " << *lumen::Get(lumen::Task(Sum).Remote(big)) << std::endl;
  std::cout << "big-inline-arg " << *lumen::Get(lumen::Task(Sum).Remote(ones)) << std::endl;
  auto result = lumen::Get(lumen::Task(MakeBig).Remote(int64_t{1} << 20));
  std::cout << "big-result " << result->size() << " " << (*result)[12345] << std::endl;
  std::vector<lumen::ObjectRef<int>> many;
  for (int i = 0; i < 100; ++i) many.push_back(lumen::Task(Plus).Remote(i, i));
  auto values = lumen::Get(many);
  int total = 0;
  for (const auto& v : values) total += *v;
  std::cout << "many " << total << std::endl;
  std::vector<lumen::ObjectRef<int>> sleepers = {lumen::Task(Sleepy).Remote(3000),
                                                 lumen::Task(Sleepy).Remote(10),
                                                 lumen::Task(Sleepy).Remote(20)};
  auto [ready, unready] = lumen::Wait(sleepers, 2, 10000);
  std::cout << "wait " << ready.size() << " " << unready.size() << " first-slow-ready "
            << (std::find(ready.begin(), ready.end(), sleepers[0]) != ready.end()) << std::endl;
  auto none =
      lumen::Wait(std::vector<lumen::ObjectRef<int>>{lumen::Task(Sleepy).Remote(2000)}, 1, 100);
  std::cout << "wait-timeout " << none.ready.size() << " " << none.unready.size() << std::endl;
  try {
    lumen::Get(lumen::Task(Sleepy).Remote(2000), 100);
    std::cout << "get-timeout none" << std::endl;
  } catch (const lumen::GetTimeoutError& e) {
    std::cout << "get-timeout GetTimeoutError: " << e.what() << std::endl;
  }
  return 0;
}

int Errors() {
  try {
    lumen::Get(lumen::Task(Thrower).Remote(7));
  } catch (const lumen::TaskError& e) {
    std::cout << "type=" << e.remote_type() << "\nmessage=" << e.remote_message()
              << "\nfunction=" << e.function() << "\nwhat=" << e.what() << std::endl;
  }
  // A failed task's error reaches tasks that take its result as an argument.
  try {
    lumen::Get(lumen::Task(Plus).Remote(lumen::Task(Thrower).Remote(8), 1));
  } catch (const lumen::TaskError& e) {
    std::cout << "propagated=" << e.remote_message() << std::endl;
  }
  return 0;
}

int Crash(const std::string& how, const std::string& marker) {
  std::cout << "crash-once " << *lumen::Get(lumen::Task(CrashOnce).Remote(how, marker))
            << std::endl;
  try {
    lumen::Get(lumen::Task(AlwaysCrash).SetMaxRetries(1).Remote(0));
    std::cout << "always-crash none" << std::endl;
  } catch (const lumen::WorkerCrashedError& e) {
    std::cout << "always-crash WorkerCrashedError: " << e.what() << std::endl;
  }
  std::cout << "after " << *lumen::Get(lumen::Task(Plus).Remote(2, 3)) << std::endl;
  return 0;
}

int Infeasible() {
  auto ref = lumen::Task(Plus).SetResources({{"CPU", 1}, {"GPU", 1}}).Remote(1, 1);
  std::cout << "submitted" << std::endl;
  try {
    lumen::Get(ref, 3000);
    std::cout << "infeasible ran" << std::endl;
  } catch (const lumen::GetTimeoutError& e) {
    std::cout << "infeasible GetTimeoutError" << std::endl;
  }
  auto custom = lumen::Task(Plus).SetResources({{"CPU", 1}, {"widget", 1}}).Remote(2, 2);
  std::cout << "custom " << *lumen::Get(custom, 10000) << std::endl;
  return 0;
}

int Sort() {
  std::vector<int> values(1'000'000);
  std::mt19937 rng(7);
  for (auto& v : values) v = static_cast<int>(rng());
  auto sorted = lumen::Get(lumen::Task(MergeSort).Remote(values, 4), 120000);
  std::sort(values.begin(), values.end());
  std::cout << "sorted " << (*sorted == values ? "ok" : "WRONG") << " " << sorted->size()
            << std::endl;
  return 0;
}

int RefCount() {
  {
    std::vector<lumen::ObjectRef<std::vector<int64_t>>> refs;
    for (int i = 0; i < 20; ++i) refs.push_back(lumen::Put(std::vector<int64_t>(1 << 19, i)));
    for (int i = 0; i < 10; ++i) refs.push_back(lumen::Task(MakeBig).Remote(int64_t{1} << 19));
    lumen::Get(refs);
    std::cout << "holding" << std::endl;
    WaitForLine();
  }
  std::cout << "dropped" << std::endl;
  WaitForLine();
  return 0;
}

int StoreFull() {
  auto first = lumen::Put(std::vector<char>(150 << 20, 'a'));
  // The store holds 256 MiB: the first object spills to disk to make room for the second, and
  // comes back when it is read.
  auto second = lumen::Put(std::vector<char>(150 << 20, 'b'));
  std::cout << "second-put ok" << std::endl;
  std::cout << "first-get " << (*lumen::Get(first))[100] << std::endl;
  // Nothing can make room for an object larger than the whole store.
  try {
    auto huge = lumen::Put(std::vector<char>(300 << 20, 'h'));
    std::cout << "huge-put ok" << std::endl;
  } catch (const lumen::ObjectStoreFullError& e) {
    std::cout << "huge-put ObjectStoreFullError: " << e.what() << std::endl;
  }
  first = lumen::ObjectRef<std::vector<char>>();
  second = lumen::ObjectRef<std::vector<char>>();
  // The freed space is reused once the objects' last references are gone.
  for (int attempt = 0;; ++attempt) {
    try {
      auto third = lumen::Put(std::vector<char>(150 << 20, 'c'));
      std::cout << "third-put " << (*lumen::Get(third))[100] << std::endl;
      break;
    } catch (const lumen::ObjectStoreFullError& e) {
      if (attempt == 2) throw;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lumen::testing::DriverMain(
      argc, argv,
      {{"basic", Basic},
       {"errors", Errors},
       {"crash",
        [&] { return Crash(argc > 2 ? argv[2] : "abort", argc > 3 ? argv[3] : "/tmp/x"); }},
       {"infeasible", Infeasible},
       {"sort", Sort},
       {"refcount", RefCount},
       {"storefull", StoreFull}});
}
