// lumen::Array and pinned zero-copy reads, for the integration tests; the mode is argv[1],
// cluster flags follow. Every process checks for itself whether an Array's elements lie inside
// its mapping of the node's shared-memory store (/proc/self/maps), so a copy cannot go unseen.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "lumen/lumen.h"
#include "tests/integration/programs/driver_main.h"

namespace {

using Weights = std::map<std::string, lumen::Array<double>>;

// A user struct holding arrays.
struct Layer {
  std::string name;
  lumen::Array<float> weights;
  lumen::Array<int32_t> shape;

  template <class A>
  void serialize(A& a) {
    a(name, weights, shape);
  }
};

// 1 if `p` lies in a mapping of a Lumen store region (/dev/shm/lumen-...) of this process.
int InStore(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("/dev/shm/lumen-") == std::string::npos) continue;
    std::istringstream fields(line);
    uintptr_t begin = 0;
    uintptr_t end = 0;
    char dash = 0;
    fields >> std::hex >> begin >> dash >> end;
    if (address >= begin && address < end) return 1;
  }
  return 0;
}

std::vector<double> Ramp(size_t n, double start) {
  std::vector<double> values(n);
  std::iota(values.begin(), values.end(), start);
  return values;
}

double Sum(const lumen::Array<double>& array) {
  return std::accumulate(array.begin(), array.end(), 0.0);
}

// What a task saw of its argument: whether it was read in place, and its sum.
std::string Inspect(lumen::Array<double> array) {
  return "in-store " + std::to_string(InStore(array.data())) + " sum " +
         std::to_string(static_cast<int64_t>(Sum(array)));
}

std::string InspectWeights(Weights weights) {
  int in_store = 1;
  double sum = 0;
  for (const auto& [name, array] : weights) {
    in_store &= InStore(array.data());
    sum += Sum(array);
  }
  return "in-store " + std::to_string(in_store) + " sum " +
         std::to_string(static_cast<int64_t>(sum));
}

// A large result holding arrays: it goes to the store and the caller reads it in place.
Layer MakeLayer(int32_t n) {
  std::vector<float> weights(static_cast<size_t>(n), 0.25F);
  return Layer{"dense", lumen::Array<float>(std::move(weights)), lumen::Array<int32_t>{n, 1}};
}

std::vector<double> MakeVector(int64_t n) { return Ramp(static_cast<size_t>(n), 0); }

int Pid() { return static_cast<int>(getpid()); }

// Keeps arrays it is given (a view per array) and reads them later.
class Holder {
 public:
  static Holder* Create(lumen::Array<double> initial) { return new Holder(std::move(initial)); }
  std::string Keep(lumen::Array<double> array) {
    kept_.push_back(array);
    return "in-store " + std::to_string(InStore(array.data()));
  }
  std::string Initial() { return Inspect(initial_); }
  int64_t SumKept() {
    double sum = 0;
    for (const auto& array : kept_) sum += Sum(array);
    return static_cast<int64_t>(sum);
  }
  int GetPid() { return Pid(); }

 private:
  explicit Holder(lumen::Array<double> initial) : initial_(std::move(initial)) {}
  lumen::Array<double> initial_;
  std::vector<lumen::Array<double>> kept_;
};

LUMEN_REMOTE(Inspect, InspectWeights, MakeLayer, MakeVector, Pid, Holder::Create, &Holder::Keep,
             &Holder::Initial, &Holder::SumKept, &Holder::GetPid);

constexpr size_t kBig = 1'000'000;  // 8 MB of doubles: far above the inline limit

void WaitForLine() {
  std::string line;
  std::getline(std::cin, line);
}

int64_t Expected(size_t n, double start) {
  return static_cast<int64_t>(static_cast<double>(n) * start +
                              static_cast<double>(n) * static_cast<double>(n - 1) / 2);
}

// Every way an Array reaches user code, each saying whether it was read in place.
int ZeroCopy() {
  auto ref = lumen::Put(lumen::Array<double>(Ramp(kBig, 1)));
  auto got = lumen::Get(ref);
  std::cout << "get in-store " << InStore(got->data()) << " sum " << static_cast<int64_t>(Sum(*got))
            << " expected " << Expected(kBig, 1) << std::endl;
  std::cout << "ref-arg " << *lumen::Get(lumen::Task(Inspect).Remote(ref)) << std::endl;
  std::cout << "value-arg " << *lumen::Get(lumen::Task(Inspect).Remote(*got)) << std::endl;
  std::cout << "small-arg "
            << *lumen::Get(lumen::Task(Inspect).Remote(lumen::Array<double>{1, 2, 3})) << std::endl;

  Weights weights;
  for (int i = 0; i < 5; ++i) weights["w" + std::to_string(i)] = Ramp(kBig / 5, i);
  auto weights_ref = lumen::Put(weights);
  auto read = lumen::Get(weights_ref);
  int in_store = 1;
  bool equal = read->size() == weights.size();
  for (const auto& [name, array] : weights) {
    in_store &= InStore(read->at(name).data());
    equal = equal && read->at(name) == array;
  }
  std::cout << "map-get in-store " << in_store << " equal " << equal << std::endl;
  std::cout << "map-arg " << *lumen::Get(lumen::Task(InspectWeights).Remote(weights_ref))
            << std::endl;

  auto layer = lumen::Get(lumen::Task(MakeLayer).Remote(static_cast<int32_t>(kBig)));
  std::cout << "struct-result in-store " << InStore(layer->weights.data()) << " name "
            << layer->name << " size " << layer->weights.size() << " shape " << layer->shape[0]
            << "x" << layer->shape[1] << std::endl;

  auto holder = lumen::Actor(Holder::Create).Remote(ref);
  std::cout << "actor-creation-arg " << *lumen::Get(holder.Task(&Holder::Initial).Remote())
            << std::endl;
  std::cout << "actor-method-arg " << *lumen::Get(holder.Task(&Holder::Keep).Remote(ref))
            << std::endl;

  auto vector = lumen::Get(lumen::Task(MakeVector).Remote(static_cast<int64_t>(kBig)));
  std::cout << "vector-result in-store " << InStore(vector->data()) << " sum "
            << static_cast<int64_t>(std::accumulate(vector->begin(), vector->end(), 0.0))
            << " expected " << Expected(kBig, 0) << std::endl;
  return 0;
}

// A view that outlives every ref, in this driver and in an actor, then the actor is killed.
// Waits on stdin between steps so that the test can look at the store.
int Outlive() {
  auto holder = lumen::Actor(Holder::Create).Remote(lumen::Array<double>{0});
  const int actor_pid = *lumen::Get(holder.Task(&Holder::GetPid).Remote());
  std::shared_ptr<lumen::Array<double>> view;
  {
    auto mine = lumen::Put(lumen::Array<double>(Ramp(kBig, 1)));
    auto theirs = lumen::Put(lumen::Array<double>(Ramp(kBig, 2)));
    view = lumen::Get(mine);
    std::cout << "actor-keep " << *lumen::Get(holder.Task(&Holder::Keep).Remote(theirs))
              << std::endl;
  }  // both refs dropped: the owner (this driver) releases the objects
  std::cout << "dropped view in-store " << InStore(view->data()) << std::endl;
  WaitForLine();
  // If the released objects had been freed, these would be placed over them.
  std::vector<lumen::ObjectRef<lumen::Array<double>>> others;
  for (int i = 0; i < 4; ++i) others.push_back(lumen::Put(lumen::Array<double>(Ramp(kBig, -7))));
  std::cout << "view sum " << static_cast<int64_t>(Sum(*view)) << " expected " << Expected(kBig, 1)
            << std::endl;
  std::cout << "actor sum " << *lumen::Get(holder.Task(&Holder::SumKept).Remote()) << " expected "
            << Expected(kBig, 2) << std::endl;
  view.reset();
  std::cout << "actor-pid " << actor_pid << std::endl;
  WaitForLine();  // the test kills the actor and watches its pin go
  return 0;
}

// Holds a view of an object until killed.
int Hold() {
  auto ref = lumen::Put(lumen::Array<double>(Ramp(kBig, 1)));
  auto view = lumen::Get(ref);
  std::cout << "holding in-store " << InStore(view->data()) << std::endl;
  WaitForLine();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lumen::testing::DriverMain(
      argc, argv, {{"zero-copy", ZeroCopy}, {"outlive", Outlive}, {"hold", Hold}});
}
