// Actor behaviours for the integration tests; the mode is argv[1], cluster flags follow.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"
#include "tests/integration/programs/driver_main.h"

namespace {

int Double(int x) { return 2 * x; }

class Counter {
 public:
  static Counter* Create(int start) { return new Counter(start); }
  int Add(int x) { return value_ += x; }
  int Get() const { return value_; }
  int Pid() const { return static_cast<int>(getpid()); }
  bool Restarted() const { return lumen::WasCurrentActorRestarted(); }
  int Crash() {
    kill(getpid(), SIGKILL);
    return 0;
  }
  int Fail(int code) { throw std::runtime_error("counter failed " + std::to_string(code)); }
  // An actor method that creates an actor, calls it, and submits a task.
  int SpawnChild(int x) {
    auto child = lumen::Actor(Counter::Create).Remote(x);
    const int added = *lumen::Get(child.Task(&Counter::Add).Remote(1));
    return added + *lumen::Get(lumen::Task(Double).Remote(added));
  }
  // Gets a ref produced by an earlier call to this same actor (pipelined behind it).
  int Consume(std::vector<lumen::ObjectRef<int>> refs) { return *lumen::Get(refs[0]) + 1; }
  int SlowAdd(int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return value_ += x;
  }

 private:
  explicit Counter(int start) : value_(start) {}
  int value_;
};

class Broken {
 public:
  static Broken* Create() { throw std::logic_error("no way"); }
  int Nothing() { return 0; }
};

// A factory that takes a while, so that the actor can be killed while it is still starting.
class SlowStart {
 public:
  static SlowStart* Create(std::string pid_file) {
    std::ofstream(pid_file) << getpid() << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return new SlowStart();
  }
  int Nothing() { return 0; }
};

// A task that holds an actor handle and calls it.
int AddThrough(lumen::ActorHandle<Counter> counter, int x) {
  return *lumen::Get(counter.Task(&Counter::Add).Remote(x));
}

LUMEN_REMOTE(Counter::Create, &Counter::Add, &Counter::Get, &Counter::Pid, &Counter::Restarted,
             &Counter::Crash, &Counter::Fail, &Counter::SlowAdd, &Counter::SpawnChild,
             &Counter::Consume, Double, Broken::Create, &Broken::Nothing, SlowStart::Create,
             &SlowStart::Nothing, AddThrough);

int Basic() {
  auto a = lumen::Actor(Counter::Create).Remote(0);
  auto b = lumen::Actor(Counter::Create).Remote(0);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 5; ++i) {
    refs.push_back(a.Task(&Counter::Add).Remote(1));
    refs.push_back(b.Task(&Counter::Add).Remote(1));
  }
  std::cout << "alternating";
  for (auto& v : lumen::Get(refs)) std::cout << " " << *v;
  std::cout << std::endl;
  std::vector<lumen::ObjectRef<int>> ordered;
  for (int i = 0; i < 1000; ++i) ordered.push_back(a.Task(&Counter::Add).Remote(1));
  auto values = lumen::Get(ordered);
  bool in_order = true;
  for (int i = 0; i < 1000; ++i) in_order = in_order && *values[i] == 6 + i;
  std::cout << "ordered " << in_order << std::endl;
  std::cout << "through-task " << *lumen::Get(lumen::Task(AddThrough).Remote(a, 10)) << std::endl;
  std::cout << "own-process "
            << (*lumen::Get(a.Task(&Counter::Pid).Remote()) !=
                *lumen::Get(b.Task(&Counter::Pid).Remote()))
            << std::endl;
  try {
    lumen::Get(a.Task(&Counter::Fail).Remote(3));
  } catch (const lumen::TaskError& e) {
    std::cout << "method-error " << e.remote_message() << std::endl;
  }
  std::cout << "still-alive " << *lumen::Get(a.Task(&Counter::Get).Remote()) << std::endl;
  std::cout << "nested " << *lumen::Get(a.Task(&Counter::SpawnChild).Remote(40)) << std::endl;
  // A call whose argument failed fails, and later calls on the handle still run.
  auto failed = a.Task(&Counter::Fail).Remote(9);
  try {
    lumen::Get(a.Task(&Counter::Add).Remote(failed));
  } catch (const lumen::TaskError& e) {
    std::cout << "failed-arg " << e.remote_message() << std::endl;
  }
  std::cout << "after-failed-arg " << *lumen::Get(a.Task(&Counter::Add).Remote(0), 20000)
            << std::endl;
  auto produced = a.Task(&Counter::Add).Remote(0);
  auto consumed = a.Task(&Counter::Consume).Remote(std::vector<lumen::ObjectRef<int>>{produced});
  std::cout << "pipelined-consume " << *lumen::Get(consumed, 20000) << std::endl;
  return 0;
}

int Named() {
  auto c = lumen::Actor(Counter::Create).SetName("shared").Remote(100);
  lumen::Get(c.Task(&Counter::Get).Remote());
  try {
    lumen::Actor(Counter::Create).SetName("shared").Remote(0);
    std::cout << "duplicate accepted" << std::endl;
  } catch (const lumen::Error& e) {
    std::cout << "duplicate-name " << e.what() << std::endl;
  }
  auto found = lumen::GetActor<Counter>("shared");
  std::cout << "found " << found.has_value() << " "
            << (found ? *lumen::Get(found->Task(&Counter::Add).Remote(1)) : -1) << std::endl;
  std::cout << "missing " << lumen::GetActor<Counter>("nobody").has_value() << std::endl;
  // Names live in namespaces: the same name elsewhere is a different actor.
  auto other = lumen::Actor(Counter::Create).SetName("shared", "elsewhere").Remote(500);
  auto found_other = lumen::GetActor<Counter>("shared", "elsewhere");
  std::cout << "namespaced "
            << (found_other ? *lumen::Get(found_other->Task(&Counter::Get).Remote()) : -1)
            << std::endl;
  auto d = lumen::Actor(Counter::Create).SetName("keeper").SetDetached().Remote(7);
  std::cout << "detached " << *lumen::Get(d.Task(&Counter::Get).Remote()) << std::endl;
  return 0;
}

int FindDetached() {
  auto found = lumen::GetActor<Counter>("keeper");
  std::cout << "keeper " << (found ? *lumen::Get(found->Task(&Counter::Add).Remote(1)) : -1)
            << std::endl;
  // The creator's exit ends its non-detached actor; the head hears of it within moments.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = !lumen::GetActor<Counter>("shared").has_value();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "shared-gone " << gone << std::endl;
  if (found) lumen::Kill(*found);
  return 0;
}

// Kill before the factory has returned: the call fails and the half-started process is ended.
int KillWhileStarting() {
  const std::string pid_file = "/tmp/lumen-slow-start-" + std::to_string(getpid());
  auto slow = lumen::Actor(SlowStart::Create).Remote(pid_file);
  int pid = 0;
  for (int i = 0; i < 200 && pid == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream(pid_file) >> pid;
  }
  std::remove(pid_file.c_str());
  lumen::Kill(slow);
  try {
    lumen::Get(slow.Task(&SlowStart::Nothing).Remote(), 20000);
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "killed-while-starting ActorDiedError: " << e.what() << std::endl;
  }
  bool gone = false;
  for (int i = 0; i < 100 && pid > 0 && !gone; ++i) {
    gone = kill(pid, 0) != 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "killed-while-starting process-gone " << gone << std::endl;
  return 0;
}

int Failures() {
  auto a = lumen::Actor(Counter::Create).Remote(0);
  lumen::Get(a.Task(&Counter::Add).Remote(1));
  try {
    lumen::Get(a.Task(&Counter::Crash).Remote());
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "crash ActorDiedError: " << e.what() << std::endl;
  }
  try {
    lumen::Get(a.Task(&Counter::Add).Remote(1), 20000);
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "after-crash ActorDiedError: " << e.what() << std::endl;
  }
  auto k = lumen::Actor(Counter::Create).Remote(0);
  lumen::Get(k.Task(&Counter::Add).Remote(1));
  lumen::Kill(k);
  try {
    lumen::Get(k.Task(&Counter::Add).Remote(1), 20000);
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "killed ActorDiedError: " << e.what() << std::endl;
  }
  auto broken = lumen::Actor(Broken::Create).Remote();
  try {
    lumen::Get(broken.Task(&Broken::Nothing).Remote(), 20000);
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "broken ActorDiedError: " << e.what() << std::endl;
  }
  auto r = lumen::Actor(Counter::Create).SetMaxRestarts(1).SetMaxTaskRetries(1).Remote(5);
  std::cout << "restartable " << *lumen::Get(r.Task(&Counter::Restarted).Remote()) << std::endl;
  lumen::Get(r.Task(&Counter::Add).Remote(1));
  const int first_pid = *lumen::Get(r.Task(&Counter::Pid).Remote());
  kill(first_pid, SIGKILL);
  std::cout << "restarted-state " << *lumen::Get(r.Task(&Counter::Get).Remote(), 30000)
            << " restarted " << *lumen::Get(r.Task(&Counter::Restarted).Remote()) << std::endl;
  auto again = lumen::Actor(Counter::Create).SetMaxRestarts(1).SetMaxTaskRetries(1).Remote(3);
  lumen::Get(again.Task(&Counter::Add).Remote(1));
  lumen::Kill(again, /*no_restart=*/false);
  std::cout << "kill-with-restart " << *lumen::Get(again.Task(&Counter::Get).Remote(), 30000)
            << std::endl;
  return KillWhileStarting();
}

// An actor that needs a resource only the second node has; the test stops that node.
int OnOtherNode() {
  auto c = lumen::Actor(Counter::Create).SetResource("special", 1).Remote(10);
  std::cout << "remote " << *lumen::Get(c.Task(&Counter::Add).Remote(1), 30000) << std::endl;
  std::string line;
  std::getline(std::cin, line);  // the test stops the node now
  try {
    lumen::Get(c.Task(&Counter::Add).Remote(1), 60000);
    std::cout << "node-died none" << std::endl;
  } catch (const lumen::ActorDiedError& e) {
    std::cout << "node-died ActorDiedError: " << e.what() << std::endl;
  }
  return 0;
}

int Concurrent() {
  auto c = lumen::Actor(Counter::Create).SetMaxConcurrency(4).Remote(0);
  lumen::Get(c.Task(&Counter::Get).Remote());
  const auto start = std::chrono::steady_clock::now();
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 4; ++i) refs.push_back(c.Task(&Counter::SlowAdd).Remote(1));
  lumen::Get(refs);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "concurrent " << (seconds < 0.6) << " " << seconds << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lumen::testing::DriverMain(argc, argv,
                                    {{"basic", Basic},
                                     {"named", Named},
                                     {"find-detached", FindDetached},
                                     {"failures", Failures},
                                     {"concurrent", Concurrent},
                                     {"other-node", OnOtherNode}});
}
