#include "bench/microbenchmarks.h"

#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <vector>

#include "bench/baselines.h"
#include "bench/harness.h"
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

// Stands in for Ray's Client actor until actors exist: submits n tasks and gets them all.
int SmallValueBatch(int n) {
  std::vector<ObjectRef<int>> refs;
  refs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) refs.push_back(Task(SmallValue).Remote());
  Get(refs);
  return n;
}

LUMEN_REMOTE(SmallValue, CreateObjectContainingRefs, SmallValueBatch);

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
      std::vector<int64_t> array(100 * 1024 * 1024, 0);
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
    run(
        "multi_client_tasks_async",
        [] {
          std::vector<ObjectRef<int>> clients;
          for (int i = 0; i < 4; ++i) {
            clients.push_back(Task(SmallValueBatch).SetResources({{"CPU", 0}}).Remote(10000));
          }
          Get(clients);
        },
        40000);
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
