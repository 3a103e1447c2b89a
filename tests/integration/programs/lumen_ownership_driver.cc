// Ownership behaviours for the integration tests (refs inside values, actor creation arguments,
// owner and borrower deaths, subscriptions); the mode is argv[1], cluster flags follow. Every
// Get has a timeout, so that a lost reference shows as an error instead of a hang.
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "lumen/lumen.h"
#include "runtime/core_worker.h"
#include "tests/integration/programs/driver_main.h"

namespace {

constexpr int64_t kTimeoutMs = 20000;
constexpr size_t kKiB = 1024;

// The first byte of `bytes` and whether every byte equals it.
std::string Describe(const std::string& bytes) {
  if (bytes.empty()) return "empty";
  for (char c : bytes) {
    if (c != bytes[0]) return "mixed";
  }
  return std::to_string(bytes.size()) + " " + std::string(1, bytes[0]);
}

class Holder {
 public:
  static Holder* Create(std::string bytes) { return new Holder(std::move(bytes)); }
  std::string Read() const { return Describe(bytes_); }
  int Crash() {
    kill(getpid(), SIGKILL);
    return 0;
  }

 private:
  explicit Holder(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string bytes_;
};

// Owns objects (it Puts them) and borrows them (it keeps refs in its state).
class Keeper {
 public:
  static Keeper* Create() { return new Keeper(); }
  lumen::ObjectRef<std::string> Make(int size) { return lumen::Put(std::string(size, 'O')); }
  int Keep(std::vector<lumen::ObjectRef<std::string>> refs) {
    kept_ = std::move(refs);
    return static_cast<int>(kept_.size());
  }

 private:
  std::vector<lumen::ObjectRef<std::string>> kept_;
};

lumen::ObjectRef<std::string> ReturnFirst(std::vector<lumen::ObjectRef<std::string>> refs) {
  return refs[0];
}

// A borrower that passes its borrowed ref on to another task and returns what that one returned.
lumen::ObjectRef<std::string> PassOn(std::vector<lumen::ObjectRef<std::string>> refs) {
  return *lumen::Get(lumen::Task(ReturnFirst).Remote(refs), kTimeoutMs);
}

std::string MakeBig(int size) { return std::string(size, 'B'); }
std::string CheckBig(const std::string& bytes) { return Describe(bytes); }

std::string Slow(int ms) {
  usleep(static_cast<useconds_t>(ms) * 1000);
  return "slow";
}

LUMEN_REMOTE(ReturnFirst, PassOn, Slow, MakeBig, CheckBig, Holder::Create, &Holder::Read,
             &Holder::Crash, Keeper::Create, &Keeper::Make, &Keeper::Keep);

// Polls `condition` every 20 ms for up to 20 s.
bool WaitUntil(const std::function<bool()>& condition) {
  for (int i = 0; i < 1000; ++i) {
    if (condition()) return true;
    usleep(20 * 1000);
  }
  return false;
}

// Fills the store with other objects, so that freed memory would be reused.
std::vector<lumen::ObjectRef<std::string>> Churn(char fill) {
  std::vector<lumen::ObjectRef<std::string>> refs;
  for (int i = 0; i < 8; ++i) refs.push_back(lumen::Put(std::string(300 * kKiB, fill)));
  return refs;
}

int ActorArgument() {
  lumen::ActorHandle<Holder> holder;
  {
    auto arg = lumen::Put(std::string(300 * kKiB, 'A'));
    holder = lumen::Actor(Holder::Create).SetMaxRestarts(1).Remote(arg);
  }
  auto churn = Churn('B');
  std::cout << "actor-arg " << *lumen::Get(holder.Task(&Holder::Read).Remote(), kTimeoutMs)
            << std::endl;
  try {
    lumen::Get(holder.Task(&Holder::Crash).Remote(), kTimeoutMs);
  } catch (const lumen::Error&) {
    // The actor died as asked; it restarts from the same arguments.
  }
  auto more = Churn('C');
  std::cout << "after-restart " << *lumen::Get(holder.Task(&Holder::Read).Remote(), kTimeoutMs)
            << std::endl;
  return 0;
}

int LargeActorArgument() {
  auto holder = lumen::Actor(Holder::Create).Remote(std::string(200 * kKiB, 'L'));
  std::cout << "large-arg " << *lumen::Get(holder.Task(&Holder::Read).Remote(), kTimeoutMs)
            << std::endl;
  auto huge = lumen::Actor(Holder::Create).Remote(std::string(3 << 20, 'H'));
  std::cout << "huge-arg " << *lumen::Get(huge.Task(&Holder::Read).Remote(), kTimeoutMs)
            << std::endl;
  return 0;
}

int ReturnedBorrow() {
  for (const size_t size : {size_t{16}, 300 * kKiB}) {
    lumen::ObjectRef<lumen::ObjectRef<std::string>> outer;
    lumen::ObjectRef<lumen::ObjectRef<std::string>> passed;
    {
      auto inner = lumen::Put(std::string(size, 'R'));
      outer = lumen::Task(ReturnFirst).Remote(std::vector{inner});
      passed = lumen::Task(PassOn).Remote(std::vector{inner});
    }
    auto churn = Churn('X');
    try {
      auto ref = *lumen::Get(outer, kTimeoutMs);
      std::cout << "returned " << Describe(*lumen::Get(ref, kTimeoutMs)) << std::endl;
      auto via = *lumen::Get(passed, kTimeoutMs);
      std::cout << "passed-on " << Describe(*lumen::Get(via, kTimeoutMs)) << std::endl;
    } catch (const lumen::Error& e) {
      std::cout << "error " << e.what() << std::endl;
    }
  }
  std::cout << "owned-left " << lumen::internal::CurrentCoreWorker()->objects().NumOwned()
            << std::endl;
  return 0;
}

int OwnerDeath() {
  auto keeper = lumen::Actor(Keeper::Create).Remote();
  auto big = *lumen::Get(keeper.Task(&Keeper::Make).Remote(300 * 1024), kTimeoutMs);
  std::cout << "before " << Describe(*lumen::Get(big, kTimeoutMs)) << std::endl;
  lumen::Kill(keeper);
  // Until the death is noticed a read may still find the object; never other bytes.
  int stale = 0;
  std::string outcome = "none";
  WaitUntil([&] {
    auto churn = Churn('Z');
    try {
      if (Describe(*lumen::Get(big, kTimeoutMs)) != "307200 O") ++stale;
      return false;
    } catch (const lumen::OwnerDiedError&) {
      outcome = "OwnerDiedError";
    } catch (const lumen::Error& e) {
      outcome = e.what();
      return false;
    }
    return true;
  });
  std::cout << "after " << outcome << std::endl;
  std::cout << "stale " << stale << std::endl;
  return 0;
}

int BorrowerDeath() {
  auto& objects = lumen::internal::CurrentCoreWorker()->objects();
  const size_t before = objects.NumOwned();
  auto keeper = lumen::Actor(Keeper::Create).Remote();
  {
    auto kept = lumen::Put(std::string(300 * kKiB, 'K'));
    std::cout << "kept " << *lumen::Get(keeper.Task(&Keeper::Keep).Remote(std::vector{kept}))
              << std::endl;
  }
  std::cout << "held-by-borrower " << objects.NumOwned() - before << std::endl;
  lumen::Kill(keeper);
  const bool released = WaitUntil([&] { return objects.NumOwned() == before; });
  std::cout << "released " << released << std::endl;
  return 0;
}

// Objects made on the node with resource "special", which the test replaces by another one.
int RebuildLost() {
  auto on_special = [](auto caller) { return caller.SetResources({{"special", 1}}); };
  auto big = on_special(lumen::Task(MakeBig)).Remote(300 * 1024);
  auto lost = on_special(lumen::Task(MakeBig)).SetMaxRetries(0).Remote(300 * 1024);
  auto check = [&](const lumen::ObjectRef<std::string>& ref) {
    return *lumen::Get(on_special(lumen::Task(CheckBig)).SetMaxRetries(0).Remote(ref), kTimeoutMs);
  };
  std::cout << "made " << check(big) << " " << check(lost) << std::endl;
  std::string line;
  std::getline(std::cin, line);  // the node that holds them is gone now
  std::string rebuilt = "none";
  WaitUntil([&] {
    try {
      rebuilt = check(big);
      return true;
    } catch (const lumen::Error& e) {
      rebuilt = e.what();  // until the owner hears of the death, the old copy is unreachable
      return false;
    }
  });
  std::cout << "rebuilt " << rebuilt << std::endl;
  std::string error = "none";
  WaitUntil([&] {
    try {
      lumen::Get(lost, kTimeoutMs);
    } catch (const lumen::ObjectLostError& e) {
      error = std::string("ObjectLostError: ") + e.what();
    }
    return error.find("was lost with node") != std::string::npos;
  });
  std::cout << "lost " << error << std::endl;
  return 0;
}

int WaitLoop() {
  auto slow = lumen::Task(Slow).Remote(3000);
  auto& objects = lumen::internal::CurrentCoreWorker()->objects();
  const size_t before = objects.NumSubscriptions();
  int timeouts = 0;
  for (int i = 0; i < 2000; ++i) {
    auto result = lumen::Wait(std::vector{slow}, 1, 0);
    if (result.ready.empty()) ++timeouts;
    try {
      lumen::Get(slow, 0);
    } catch (const lumen::GetTimeoutError&) {
      ++timeouts;
    }
  }
  std::cout << "timeouts " << timeouts << std::endl;
  std::cout << "subscriptions " << before << " " << objects.NumSubscriptions() << std::endl;
  std::cout << "value " << *lumen::Get(slow, kTimeoutMs) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lumen::testing::DriverMain(argc, argv,
                                    {{"actor-arg", ActorArgument},
                                     {"large-actor-arg", LargeActorArgument},
                                     {"returned-borrow", ReturnedBorrow},
                                     {"wait-loop", WaitLoop},
                                     {"owner-death", OwnerDeath},
                                     {"borrower-death", BorrowerDeath},
                                     {"rebuild-lost", RebuildLost}});
}
