#include "bench/microbenchmarks.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench/baselines.h"
#include "bench/harness.h"
#include "cli/pi.h"
#include "lumen/lumen.h"

namespace lumen::bench {
namespace {

int SmallValue() { return 0; }

std::vector<ObjectRef<int>> CreateObjectContainingRefs() {
  std::vector<ObjectRef<int>> refs;
  refs.reserve(10000);
  for (int i = 0; i < 10000; ++i) refs.push_back(Put(1));
  return refs;
}

// multi_client_put_gigabytes's task: ten puts of 10 Mi int64 zeros (80 MB), each array made
// afresh as Ray's numpy.zeros is.
int DoPut() {
  for (int i = 0; i < 10; ++i) Put(std::vector<int64_t>(size_t{10} * 1024 * 1024, 0));
  return 0;
}

// Ray's benchmark Actor (zero CPUs).
class BenchActor {
 public:
  static BenchActor* Create() { return new BenchActor(); }
  int SmallValue() { return 0; }
  int SmallValueArg(int) { return 0; }
  // By value, as Ray's benchmark takes its argument.
  int BytesArg(std::string) { return 0; }  // NOLINT(performance-unnecessary-value-param)
};

// Ray's Client actor: fans calls out to its servers, or submits tasks.
class Client {
 public:
  static Client* Create(std::vector<ActorHandle<BenchActor>> servers) {
    return new Client(std::move(servers));
  }
  int SmallValueBatch(int n) {
    std::vector<ObjectRef<int>> refs;
    for (auto& server : servers_) {
      for (int i = 0; i < n; ++i) refs.push_back(server.Task(&BenchActor::SmallValue).Remote());
    }
    Get(refs);
    return n;
  }
  int SmallValueBatchArg(int n) {
    ObjectRef<int> x = Put(0);
    std::vector<ObjectRef<int>> refs;
    for (auto& server : servers_) {
      for (int i = 0; i < n; ++i) {
        refs.push_back(server.Task(&BenchActor::SmallValueArg).Remote(x));
      }
    }
    Get(refs);
    return n;
  }
  int TaskBatch(int n) {
    std::vector<ObjectRef<int>> refs;
    refs.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) refs.push_back(Task(SmallValue).Remote());
    Get(refs);
    return n;
  }

 private:
  explicit Client(std::vector<ActorHandle<BenchActor>> servers) : servers_(std::move(servers)) {}
  std::vector<ActorHandle<BenchActor>> servers_;
};

// n_n_actor_calls_async's task: n calls round-robin over the actors.
int Work(std::vector<ActorHandle<BenchActor>> actors, int n) {
  std::vector<ObjectRef<int>> refs;
  refs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    refs.push_back(
        actors[static_cast<size_t>(i) % actors.size()].Task(&BenchActor::SmallValue).Remote());
  }
  Get(refs);
  return n;
}

// Large objects read in place (not in Ray's suite; bench/ray_microbenchmarks.py runs the same
// with numpy arrays). The tasks touch their argument, as a user's would, without reading it all.
using Weights = std::map<std::string, Array<double>>;

double TouchArray(const Array<double>& array) { return array.front() + array.back(); }

double TouchWeights(const Weights& weights, int id) {
  double total = 0;
  for (const auto& [name, array] : weights) total += array.front();
  return total * id;
}

LUMEN_REMOTE(SmallValue, CreateObjectContainingRefs, BenchActor::Create, &BenchActor::SmallValue,
             &BenchActor::SmallValueArg, &BenchActor::BytesArg, Client::Create,
             &Client::SmallValueBatch, &Client::SmallValueBatchArg, &Client::TaskBatch, Work,
             TouchArray, TouchWeights, DoPut);

std::vector<ActorHandle<BenchActor>> NoServers() { return {}; }

std::vector<ActorHandle<BenchActor>> BenchActors(int k) {
  std::vector<ActorHandle<BenchActor>> actors;
  actors.reserve(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) actors.push_back(Actor(BenchActor::Create).Remote());
  return actors;
}

void ActorBatch(const ActorHandle<BenchActor>& actor, int n) {
  std::vector<ObjectRef<int>> refs;
  refs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) refs.push_back(actor.Task(&BenchActor::SmallValue).Remote());
  Get(refs);
}

// Submits `n` tasks made by `submit` and gets their results.
template <typename Submit>
void TaskBatch(int n, const Submit& submit) {
  std::vector<ObjectRef<double>> refs;
  refs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) refs.push_back(submit(i));
  Get(refs);
}

// The lab's weights dictionary: 50 arrays of 1,000,000 doubles (400 MB).
Weights LabWeights() {
  Weights weights;
  for (int i = 0; i < 50; ++i) {
    weights["layer" + std::to_string(i)] = std::vector<double>(1'000'000, 0.5);
  }
  return weights;
}

}  // namespace

int RunMicrobenchmarks(const MicrobenchmarkOptions& options) {
  HarnessOptions harness;
  if (options.quick) {
    harness.warmup_seconds = 0.1;
    harness.trial_seconds = 0.2;
  }
  std::vector<Result> results;
  auto wanted = [&](const std::string& name) {
    return options.filter.empty() || name.find(options.filter) != std::string::npos;
  };
  auto report = [&](const Result& result) {
    results.push_back(result);
    std::cout << FormatRayLine(result) << std::endl;
  };
  auto run = [&](const std::string& name, const std::function<void()>& fn, double multiplier) {
    if (wanted(name)) report(TimeIt(name, fn, multiplier, harness));
  };

  // Baselines first: the echo server must be started before this process creates gRPC objects.
  if (wanted("baseline_grpc_unary_echo")) report(MeasureGrpcEcho(harness));
  if (wanted("baseline_memcpy_gigabytes")) report(MeasureMemcpy(harness));

  InitOptions init;
  init.address = options.address;
  init.temp_dir = options.temp_dir;
  init.num_cpus = options.num_cpus;
  init.resources = {{"custom", 100}};  // as ray_perf.py's cluster, for placement groups
  try {
    Init(init);
    {
      ObjectRef<int> value = Put(0);
      run(
          "single_client_get_calls_Plasma_Store", [&] { Get(value); }, 1);
    }
    run(
        "single_client_put_calls_Plasma_Store", [] { Put(0); }, 1);
    if (wanted("single_client_put_gigabytes")) {
      std::vector<int64_t> array(size_t{100} * 1024 * 1024, 0);
      run(
          "single_client_put_gigabytes", [&] { Put(array); }, 8 * 0.1);
    }
    run(
        "single_client_tasks_and_get_batch",
        [] {
          std::vector<ObjectRef<int>> refs;
          refs.reserve(1000);
          for (int i = 0; i < 1000; ++i) refs.push_back(Task(SmallValue).Remote());
          Get(refs);
        },
        1);
    run(
        "multi_client_put_gigabytes",
        [] {
          std::vector<ObjectRef<int>> refs;
          refs.reserve(10);
          for (int i = 0; i < 10; ++i) refs.push_back(Task(DoPut).Remote());
          Get(refs);
        },
        10 * 8 * 0.1);
    if (wanted("single_client_get_object_containing_10k_refs")) {
      auto containing = Task(CreateObjectContainingRefs).Remote();
      Get(containing);
      run(
          "single_client_get_object_containing_10k_refs", [&] { Get(containing); }, 1);
    }
    run(
        "single_client_wait_1k_refs",
        [] {
          std::vector<ObjectRef<int>> not_ready;
          not_ready.reserve(1000);
          for (int i = 0; i < 1000; ++i) not_ready.push_back(Task(SmallValue).Remote());
          for (int i = 0; i < 1000; ++i) not_ready = Wait(not_ready, 1).unready;
        },
        1);
    run(
        "single_client_tasks_sync", [] { Get(Task(SmallValue).Remote()); }, 1);
    run(
        "single_client_tasks_async",
        [] {
          std::vector<ObjectRef<int>> refs;
          refs.reserve(1000);
          for (int i = 0; i < 1000; ++i) refs.push_back(Task(SmallValue).Remote());
          Get(refs);
        },
        1000);
    if (wanted("multi_client_tasks_async")) {
      std::vector<ActorHandle<Client>> clients;
      clients.reserve(4);
      for (int i = 0; i < 4; ++i) clients.push_back(Actor(Client::Create).Remote(NoServers()));
      run(
          "multi_client_tasks_async",
          [&] {
            std::vector<ObjectRef<int>> refs;
            refs.reserve(clients.size());
            for (auto& client : clients)
              refs.push_back(client.Task(&Client::TaskBatch).Remote(10000));
            Get(refs);
          },
          40000);
    }
    // Ray sizes the fan-out benchmarks by half the machine's CPUs.
    const int n_cpu = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2);
    if (wanted("1_1_actor_calls_sync") || wanted("1_1_actor_calls_async") ||
        wanted("1_1_actor_calls_concurrent")) {
      auto actor = Actor(BenchActor::Create).Remote();
      Get(actor.Task(&BenchActor::SmallValue).Remote());
      run(
          "1_1_actor_calls_sync", [&] { Get(actor.Task(&BenchActor::SmallValue).Remote()); }, 1);
      run(
          "1_1_actor_calls_async", [&] { ActorBatch(actor, 1000); }, 1000);
      auto concurrent = Actor(BenchActor::Create).SetMaxConcurrency(16).Remote();
      run(
          "1_1_actor_calls_concurrent", [&] { ActorBatch(concurrent, 1000); }, 1000);
    }
    if (wanted("1_1_actor_calls_64KiB_args_async")) {
      // Not one of Ray's: 1,000 calls with a 64 KiB argument each, in MB/s.
      auto actor = Actor(BenchActor::Create).Remote();
      const std::string arg(64 << 10, 'x');
      run(
          "1_1_actor_calls_64KiB_args_async",
          [&] {
            std::vector<ObjectRef<int>> refs;
            refs.reserve(1000);
            for (int i = 0; i < 1000; ++i)
              refs.push_back(actor.Task(&BenchActor::BytesArg).Remote(arg));
            Get(refs);
          },
          1000 * 65536 / 1e6);
    }
    if (wanted("1_n_actor_calls_async")) {
      auto actors = BenchActors(n_cpu);
      auto client = Actor(Client::Create).Remote(actors);
      const int n = 5000;
      run(
          "1_n_actor_calls_async", [&] { Get(client.Task(&Client::SmallValueBatch).Remote(n)); },
          n * n_cpu);
    }
    if (wanted("n_n_actor_calls_async")) {
      auto actors = BenchActors(n_cpu);
      const int m = 4;
      const int n = 5000;
      run(
          "n_n_actor_calls_async",
          [&] {
            std::vector<ObjectRef<int>> refs;
            refs.reserve(m);
            for (int i = 0; i < m; ++i) refs.push_back(Task(Work).Remote(actors, n));
            Get(refs);
          },
          m * n);
    }
    if (wanted("n_n_actor_calls_with_arg_async")) {
      std::vector<ActorHandle<Client>> clients;
      clients.reserve(static_cast<size_t>(n_cpu));
      for (int i = 0; i < n_cpu; ++i) {
        clients.push_back(
            Actor(Client::Create)
                .Remote(std::vector<ActorHandle<BenchActor>>{Actor(BenchActor::Create).Remote()}));
      }
      const int n = 1000;
      run(
          "n_n_actor_calls_with_arg_async",
          [&] {
            std::vector<ObjectRef<int>> refs;
            refs.reserve(clients.size());
            for (auto& client : clients) {
              refs.push_back(client.Task(&Client::SmallValueBatchArg).Remote(n));
            }
            Get(refs);
          },
          n * static_cast<int>(clients.size()));
    }
    if (wanted("placement_group_create/removal")) {
      // ray_perf.py: 100 groups of one bundle of a tiny custom resource, each waited for, then
      // all removed. The cluster needs {"custom": 100} (an embedded one gets it, see above).
      PlacementGroup probe = CreatePlacementGroup({{{"custom", 0.001}}});
      const bool placeable = probe.Wait(5000);
      RemovePlacementGroup(probe);
      if (!placeable) {
        std::cout << "placement_group_create/removal skipped: the cluster has no 'custom' "
                     "resource (start it with --resources='{\"custom\": 100}')"
                  << std::endl;
      } else {
        run(
            "placement_group_create/removal",
            [] {
              std::vector<PlacementGroup> groups;
              groups.reserve(100);
              for (int i = 0; i < 100; ++i) {
                groups.push_back(CreatePlacementGroup({{{"custom", 0.001}}}));
              }
              for (const PlacementGroup& group : groups) group.Wait(30000);
              for (const PlacementGroup& group : groups) RemovePlacementGroup(group);
            },
            100);
      }
    }
    // Large objects, read in place: a 400 MB array and the lab's 400 MB weights dictionary.
    if (wanted("single_client_get_gigabytes") || wanted("tasks_sharing_large_object")) {
      auto big = Put(Array<double>(std::vector<double>(50'000'000, 1.0)));
      run(
          "single_client_get_gigabytes", [&] { Get(big); }, 0.4);
      run(
          "tasks_sharing_large_object",
          [&] { TaskBatch(20, [&](int) { return Task(TouchArray).Remote(big); }); }, 1);
    }
    if (wanted("weights_dict_put") || wanted("weights_dict_get") ||
        wanted("weights_dict_20_tasks")) {
      const Weights weights = LabWeights();
      run(
          "weights_dict_put", [&] { Put(weights); }, 1);
      auto ref = Put(weights);
      run(
          "weights_dict_get", [&] { Get(ref); }, 1);
      run(
          "weights_dict_20_tasks",
          [&] { TaskBatch(20, [&](int id) { return Task(TouchWeights).Remote(ref, id); }); }, 1);
    }
    if (wanted("pi_kernel_single_thread_samples") || wanted("pi_actor_job_samples")) {
      // Not one of Ray's: the pi job's sampling rate against its kernel on one thread.
      run(
          "pi_kernel_single_thread_samples", [] { cli::CountInsideQuarterCircle(1'000'000, 7); },
          1e6);
      run(
          "pi_actor_job_samples", [] { cli::EstimatePi(1'000'000'000, -1, 7, nullptr); }, 1e9);
    }
    Shutdown();
  } catch (const std::exception& e) {
    std::cerr << "lumen microbenchmark: " << e.what() << "\n";
    Shutdown();
    return 1;
  }
  if (!options.json_path.empty()) {
    std::ofstream out(options.json_path);
    out << ResultsToJson(results) << "\n";
    if (!out) {
      std::cerr << "lumen microbenchmark: cannot write " << options.json_path << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace lumen::bench
