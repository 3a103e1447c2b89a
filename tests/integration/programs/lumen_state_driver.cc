// A driver for the state API, CLI and dashboard tests: runs a small, known workload (tasks that
// finish, fail, crash once and are retried, an actor and its calls, a large object in the
// store), prints DONE, then keeps its actor and object alive until a line arrives on stdin.
//   lumen_state_driver <marker file> [--temp-dir=...]
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lumen/lumen.h"

namespace {

int Square(int x) { return x * x; }

int Shout(int i) {
  std::cout << "shout " << i << " from a task" << std::endl;
  return i;
}

int Fail(int code) { throw std::runtime_error("failing on purpose " + std::to_string(code)); }

// Kills its worker the first time (the marker file remembers), then returns 7.
int CrashOnce(std::string marker) {
  struct stat st {};
  if (stat(marker.c_str(), &st) != 0) {
    std::ofstream(marker) << "crashed\n";
    kill(getpid(), SIGKILL);
  }
  return 7;
}

class Counter {
 public:
  static Counter* Create(int start) {
    std::cout << "counter starting at " << start << std::endl;
    return new Counter(start);
  }
  int Add(int x) { return value_ += x; }

 private:
  explicit Counter(int start) : value_(start) {}
  int value_;
};

LUMEN_REMOTE(Square, Shout, Fail, CrashOnce, Counter::Create, &Counter::Add);

}  // namespace

int main(int argc, char** argv) {
  // First: in a worker process of this program, Init serves tasks and never returns.
  lumen::Init(argc, argv);
  if (argc < 2) {
    std::cerr << "usage: lumen_state_driver MARKER [--temp-dir=...]\n";
    lumen::Shutdown();
    return 2;
  }
  try {
    // First, so that the worker it kills has run nothing else: a worker killed by a crash
    // takes the events it had not yet reported (under a second's worth) with it.
    const int crashed = *lumen::Get(lumen::Task(CrashOnce).SetMaxRetries(2).Remote(argv[1]));
    std::vector<lumen::ObjectRef<int>> squares;
    for (int i = 0; i < 20; ++i) squares.push_back(lumen::Task(Square).Remote(i));
    int sum = 0;
    for (const auto& value : lumen::Get(squares)) sum += *value;
    const int shouted = *lumen::Get(lumen::Task(Shout).Remote(5));
    try {
      lumen::Get(lumen::Task(Fail).Remote(3));
    } catch (const lumen::TaskError& e) {
      std::cout << "fail raised: " << e.what() << "\n";
    }
    auto counter = lumen::Actor(Counter::Create).SetName("state-counter").Remote(10);
    int total = 0;
    for (int i = 1; i <= 3; ++i) total = *lumen::Get(counter.Task(&Counter::Add).Remote(i));
    // 8 MiB: lives in the node's shared-memory store while this driver holds it.
    auto big = lumen::Put(std::vector<int64_t>(size_t{1} << 20, 3));
    std::cout << "sum " << sum << " shouted " << shouted << " crashed " << crashed << " total "
              << total << std::endl;
    std::cout << "DONE" << std::endl;
    std::string line;
    std::getline(std::cin, line);
  } catch (const std::exception& e) {
    std::cerr << "lumen_state_driver: " << e.what() << "\n";
    lumen::Shutdown();
    return 1;
  }
  lumen::Shutdown();
  return 0;
}
