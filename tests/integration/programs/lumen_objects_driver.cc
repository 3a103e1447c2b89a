// Objects that move between nodes, for the integration tests: the mode is argv[1], cluster flags
// follow. Tasks reach the other node through its custom resource {"b": 1}; everything else runs
// on the driver's node. Each task says where it ran, so that a test cannot pass on one node.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"
#include "tests/integration/programs/driver_main.h"

namespace {

std::string Here() { return lumen::GetRuntimeContext().node_id; }

// n doubles 0, 1, ..., n-1 (made where the task runs).
lumen::Array<double> MakeRamp(int64_t n) {
  std::vector<double> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), 0.0);
  return lumen::Array<double>(std::move(values));
}
LUMEN_REMOTE(MakeRamp);

// "<node> <sum>" of an array argument.
std::string SumWhere(const lumen::Array<double>& values) {
  const double sum = std::accumulate(values.begin(), values.end(), 0.0);
  return Here() + " " + std::to_string(static_cast<int64_t>(sum));
}
LUMEN_REMOTE(SumWhere);

std::string Where() { return Here(); }
LUMEN_REMOTE(Where);

int64_t Expected(int64_t n) { return n * (n - 1) / 2; }

int64_t Sum(const lumen::Array<double>& values) {
  return static_cast<int64_t>(std::accumulate(values.begin(), values.end(), 0.0));
}

void WaitForLine() {
  std::string line;
  std::getline(std::cin, line);
}

const std::map<std::string, double> kOtherNode = {{"b", 1}};

// argv[2]: elements of the large arrays.
int Cross(int64_t n) {
  const std::string here = Here();
  const std::string other = *lumen::Get(lumen::Task(Where).SetResources(kOtherNode).Remote());
  std::cout << "nodes distinct " << (here != other ? 1 : 0) << std::endl;
  {
    // A large result made on the other node, read here.
    auto remote = lumen::Task(MakeRamp).SetResources(kOtherNode).Remote(n);
    std::cout << "remote-get sum " << Sum(*lumen::Get(remote)) << " expected " << Expected(n)
              << std::endl;
    // Several readers at once of an object made over there: one transfer.
    auto shared = lumen::Task(MakeRamp).SetResources(kOtherNode).Remote(n);
    lumen::Wait(std::vector{shared}, 1, -1);
    std::vector<std::thread> readers;
    std::vector<int64_t> sums(4, 0);
    for (int64_t& sum : sums) {
      readers.emplace_back([&sum, &shared] { sum = Sum(*lumen::Get(shared)); });
    }
    for (auto& reader : readers) reader.join();
    bool all = true;
    for (int64_t sum : sums) all = all && sum == Expected(n);
    std::cout << "concurrent-get equal " << (all ? 1 : 0) << std::endl;
    // A ref made here, used by a task over there.
    auto local = lumen::Put(MakeRamp(n));
    std::cout << "ref-arg "
              << *lumen::Get(lumen::Task(SumWhere).SetResources(kOtherNode).Remote(local))
              << " expected " << other << " " << Expected(n) << std::endl;
    // A ref made over there, used by a task here.
    std::cout << "back-arg " << *lumen::Get(lumen::Task(SumWhere).Remote(remote)) << " expected "
              << here << " " << Expected(n) << std::endl;
  }
  // Every ref is gone: the test watches both stores empty.
  std::cout << "dropped" << std::endl;
  WaitForLine();
  return 0;
}

// An object larger than the other node's whole store, used there: a clear error, and the node
// still serves tasks.
int TooLarge(int64_t n) {
  auto big = lumen::Put(MakeRamp(n));
  try {
    std::cout << "unexpected "
              << *lumen::Get(lumen::Task(SumWhere).SetResources(kOtherNode).Remote(big))
              << std::endl;
  } catch (const lumen::TaskError& e) {
    std::cout << "too-large error: " << e.what() << std::endl;
  }
  std::cout << "after " << *lumen::Get(lumen::Task(Where).SetResources(kOtherNode).Remote())
            << std::endl;
  return 0;
}

// n doubles k, k+1, ..., k+n-1, made here.
lumen::Array<double> Shifted(int64_t n, int64_t k) {
  std::vector<double> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), static_cast<double>(k));
  return lumen::Array<double>(std::move(values));
}

// More referenced objects than the store holds: some spill to disk and come back on Get.
int Spill(int64_t n) {
  constexpr int kObjects = 4;
  for (int round = 0; round < 2; ++round) {
    std::vector<lumen::ObjectRef<lumen::Array<double>>> refs;
    for (int k = 0; k < kObjects; ++k) refs.push_back(lumen::Put(Shifted(n, k)));
    std::cout << "put " << kObjects << " round " << round << std::endl;
    WaitForLine();
    if (round == 1) return 0;  // the test stops the cluster now
    bool all = true;
    for (int k = 0; k < kObjects; ++k) {
      all = all && Sum(*lumen::Get(refs[static_cast<size_t>(k)])) == Expected(n) + k * n;
    }
    // And through a task, which pins its argument in the worker.
    const std::string summed = *lumen::Get(lumen::Task(SumWhere).Remote(refs[0]));
    all = all && summed.substr(summed.find(' ') + 1) == std::to_string(Expected(n));
    std::cout << "restored equal " << (all ? 1 : 0) << std::endl;
    refs.clear();
    std::cout << "dropped" << std::endl;
    WaitForLine();
  }
  return 0;
}

LUMEN_REMOTE(Shifted);

// Three objects of n doubles made on the other node fill most of its store, each referenced
// here; then a ref made here, larger than the room left there, is used by a task over there:
// that node spills to make room, and what it spilled comes back on Get.
int FullPull(int64_t n) {
  const std::string other = *lumen::Get(lumen::Task(Where).SetResources(kOtherNode).Remote());
  std::vector<lumen::ObjectRef<lumen::Array<double>>> fill;
  for (int64_t k = 0; k < 3; ++k) {
    fill.push_back(lumen::Task(Shifted).SetResources(kOtherNode).Remote(n, k));
  }
  lumen::Wait(fill, static_cast<int>(fill.size()), -1);
  auto local = lumen::Put(MakeRamp(2 * n));
  std::cout << "full-pull "
            << *lumen::Get(lumen::Task(SumWhere).SetResources(kOtherNode).Remote(local))
            << " expected " << other << " " << Expected(2 * n) << std::endl;
  bool all = true;
  for (int64_t k = 0; k < 3; ++k) {
    all = all && Sum(*lumen::Get(fill[static_cast<size_t>(k)])) == Expected(n) + k * n;
  }
  std::cout << "fill-restored equal " << (all ? 1 : 0) << std::endl;
  return 0;
}

// An object of n doubles made on the other node; once it is ready the test stops that node's
// manager: a Get with a timeout must end at its timeout, and after the node goes on, the value
// is whole.
int SilentHolder(int64_t n) {
  auto remote = lumen::Task(MakeRamp).SetResources(kOtherNode).Remote(n);
  lumen::Wait(std::vector{remote}, 1, -1);
  std::cout << "READY" << std::endl;
  WaitForLine();
  const auto start = std::chrono::steady_clock::now();
  try {
    lumen::Get(remote, 1500);
    std::cout << "silent-get returned" << std::endl;
  } catch (const lumen::GetTimeoutError& e) {
    std::cout << "silent-get GetTimeoutError: " << e.what() << std::endl;
  }
  std::cout << "seconds "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << std::endl;
  WaitForLine();
  std::cout << "after sum " << Sum(*lumen::Get(remote, 60000)) << " expected " << Expected(n)
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto n = [&] { return argc > 2 ? std::stoll(argv[2]) : int64_t{1} << 20; };
  return lumen::testing::DriverMain(argc, argv,
                                    {{"cross", [&] { return Cross(n()); }},
                                     {"too-large", [&] { return TooLarge(n()); }},
                                     {"spill", [&] { return Spill(n()); }},
                                     {"full-pull", [&] { return FullPull(n()); }},
                                     {"silent-holder", [&] { return SilentHolder(n()); }}});
}
