// Ray C++ API versions of the Lumen/Ray core microbenchmarks, so that Lumen's C++
// runtime can be compared with Ray's C++ API as well as with Ray's Python API.
//
// Built only by bench/compare_ray.sh (never by CMake), against the headers and
// libray_api.so that the `ray-cpp` wheel ships. The same source is built twice:
// as the driver executable and as a shared library that Ray's C++ default_worker
// loads from the code search path (this is how Ray's own C++ template works).
//
// The harness reproduces ray._private.ray_microbenchmark_helpers.timeit:
// sleep, warm up for ~1 s counting calls, step = count / 10 + 1, then 4 trials
// of ~2 s each; each trial's figure is multiplier * calls / elapsed; print the
// mean and the population standard deviation (numpy's np.std) as
// "<name> per second <mean> +- <std>".
//
// Usage: ray_cpp_microbenchmarks --address=HOST:PORT --code-search-path=PATH
//            [--filter=SUBSTRING] [--only=NAME,NAME,...] [--sleep=SECONDS]
//            [--warmup=SECONDS] [--trial=SECONDS] [--trials=N] [--num-cpus=N]
// --only runs exactly the named benchmarks (bench/ray_microbenchmarks.py uses it to
// retry the benchmarks left when a run of Ray's C++ API hangs).

#include <ray/api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

// ray::Get without a timeout sometimes never returns in Ray's C++ API (seen with
// Ray 2.60 on 2 cores, a few times per full run: every task reply had arrived,
// yet the driver stayed blocked in CoreWorkerMemoryStore's GetRequest::Wait).
// Python's ray.get does not hang there because it waits in short slices (to
// check for signals) and looks again. Do the same: wait in 1 s slices. The
// number of slices that timed out is reported, so a stall is never hidden.
// Remote functions that wait return how many slices timed out in their process, so that the
// driver reports those too.
long g_get_retries = 0;

template <typename T>
void GetAll(const std::vector<ray::ObjectRef<T>>& refs) {
  while (true) {
    try {
      ray::Get(refs, 1000);
      return;
    } catch (const ray::internal::RayTimeoutException&) {
      ++g_get_retries;
    }
  }
}

template <typename T>
void GetOne(const ray::ObjectRef<T>& ref) {
  while (true) {
    try {
      ray::Get(ref, 1000);
      return;
    } catch (const ray::internal::RayTimeoutException&) {
      ++g_get_retries;
    }
  }
}

}  // namespace

// ---- remote functions and actors (same shapes as ray_perf.py) ----

std::string SmallValue() { return "ok"; }

class Actor {
 public:
  static Actor* FactoryCreate() { return new Actor(); }
  std::string SmallValue() { return "ok"; }
  std::string SmallValueArg(int /*x*/) { return "ok"; }
  // multi_client_tasks_async: n tasks from inside the actor.
  long SmallValueBatch(int n) {
    const long before = g_get_retries;
    std::vector<ray::ObjectRef<std::string>> refs;
    refs.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      refs.push_back(ray::Task(::SmallValue).SetResource("CPU", 1.0).Remote());
    }
    GetAll(refs);
    return g_get_retries - before;
  }
};

// Ray 2.60's C++ API passes an ActorHandle only as a direct argument: inside a std::vector it
// arrives as a bare id that the receiving worker cannot call ("Cannot find an actor handle").
// So handle lists travel as the bytes Ray itself sends for a direct handle argument
// (SerializeActorHandle), and the receiver registers them with ActorHandle::FromBytes.
using HandleBytes = std::vector<std::string>;

HandleBytes ToBytes(const std::vector<ray::ActorHandle<Actor>>& handles) {
  HandleBytes bytes;
  for (const auto& h : handles) {
    bytes.push_back(ray::internal::GetRayRuntime()->SerializeActorHandle(h.ID()));
  }
  return bytes;
}

std::vector<ray::ActorHandle<Actor>> FromBytes(const HandleBytes& bytes) {
  std::vector<ray::ActorHandle<Actor>> handles;
  for (const auto& b : bytes) handles.push_back(ray::ActorHandle<Actor>::FromBytes(b));
  return handles;
}

// Ray's Client actor: n calls to each of its servers, optionally with a ref argument.
class Client {
 public:
  static Client* FactoryCreate(HandleBytes servers) { return new Client(FromBytes(servers)); }
  long SmallValueBatch(int n) {
    const long before = g_get_retries;
    std::vector<ray::ObjectRef<std::string>> refs;
    for (auto& server : servers_) {
      for (int i = 0; i < n; ++i) refs.push_back(server.Task(&Actor::SmallValue).Remote());
    }
    GetAll(refs);
    return g_get_retries - before;
  }
  long SmallValueBatchArg(int n) {
    const long before = g_get_retries;
    auto x = ray::Put(0);
    std::vector<ray::ObjectRef<std::string>> refs;
    for (auto& server : servers_) {
      for (int i = 0; i < n; ++i) refs.push_back(server.Task(&Actor::SmallValueArg).Remote(x));
    }
    GetAll(refs);
    return g_get_retries - before;
  }

 private:
  explicit Client(std::vector<ray::ActorHandle<Actor>> servers) : servers_(std::move(servers)) {}
  std::vector<ray::ActorHandle<Actor>> servers_;
};

// n_n_actor_calls_async's task: n calls round-robin over the actors.
long Work(HandleBytes actor_bytes, int n) {
  const long before = g_get_retries;
  auto actors = FromBytes(actor_bytes);
  std::vector<ray::ObjectRef<std::string>> refs;
  refs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    refs.push_back(
        actors[static_cast<size_t>(i) % actors.size()].Task(&Actor::SmallValue).Remote());
  }
  GetAll(refs);
  return g_get_retries - before;
}

RAY_REMOTE(SmallValue, Work);
RAY_REMOTE(Actor::FactoryCreate, &Actor::SmallValue, &Actor::SmallValueArg,
           &Actor::SmallValueBatch);
RAY_REMOTE(Client::FactoryCreate, &Client::SmallValueBatch, &Client::SmallValueBatchArg);

// ---- harness ----

namespace {

struct Options {
  std::string address;
  std::string code_search_path;
  std::string filter;
  std::vector<std::string> only;
  double sleep_s = 10.0;  // Ray's warmup_time_sec default: a pause before each.
  double warmup_s = 1.0;
  double trial_s = 2.0;
  int trials = 4;
  int num_cpus = 1;  // the cluster's CPUs: the fan-out benchmarks use half
};

Options g_opts;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool Want(const std::string& name) {
  if (!g_opts.filter.empty() && name.find(g_opts.filter) == std::string::npos) {
    return false;
  }
  if (!g_opts.only.empty()) {
    for (const auto& n : g_opts.only) {
      if (n == name) return true;
    }
    return false;
  }
  return true;
}

void TimeItOrThrow(const std::string& name, const std::function<void()>& fn, double multiplier) {
  if (g_opts.sleep_s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(g_opts.sleep_s));
  }
  double start = Now();
  long count = 0;
  while (Now() - start < g_opts.warmup_s) {
    fn();
    ++count;
  }
  long step = count / 10 + 1;
  std::vector<double> stats;
  for (int t = 0; t < g_opts.trials; ++t) {
    start = Now();
    count = 0;
    while (Now() - start < g_opts.trial_s) {
      for (long i = 0; i < step; ++i) fn();
      count += step;
    }
    double end = Now();
    stats.push_back(multiplier * static_cast<double>(count) / (end - start));
  }
  double mean = 0;
  for (double s : stats) mean += s;
  mean /= static_cast<double>(stats.size());
  double var = 0;
  for (double s : stats) var += (s - mean) * (s - mean);
  double sd = std::sqrt(var / static_cast<double>(stats.size()));
  std::printf("%s per second %.2f +- %.2f\n", name.c_str(), mean, sd);
  if (g_get_retries > 0) {
    std::printf(
        "Ray C++: %s: %ld ray::Get wait(s) of 1 s timed out (a stall, or a batch over 1 s) and "
        "were repeated\n",
        name.c_str(), g_get_retries);
    g_get_retries = 0;
  }
  std::fflush(stdout);
}

// A benchmark that fails (an exception from Ray) is reported and skipped; no figure for it.
void TimeIt(const std::string& name, const std::function<void()>& fn, double multiplier = 1.0) {
  if (!Want(name)) return;
  try {
    TimeItOrThrow(name, fn, multiplier);
  } catch (const std::exception& e) {
    std::printf("Ray C++: %s failed: %s\n", name.c_str(), e.what());
    std::fflush(stdout);
  }
}

bool TakeFlag(const std::string& arg, const std::string& flag, std::string* value) {
  std::string prefix = "--" + flag + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  *value = arg.substr(prefix.size());
  return true;
}

void ParseArgs(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    if (TakeFlag(a, "address", &v)) {
      g_opts.address = v;
    } else if (TakeFlag(a, "code-search-path", &v)) {
      g_opts.code_search_path = v;
    } else if (TakeFlag(a, "filter", &v)) {
      g_opts.filter = v;
    } else if (TakeFlag(a, "only", &v)) {
      size_t pos = 0;
      while (pos <= v.size()) {
        size_t comma = v.find(',', pos);
        if (comma == std::string::npos) comma = v.size();
        if (comma > pos) g_opts.only.push_back(v.substr(pos, comma - pos));
        pos = comma + 1;
      }
    } else if (TakeFlag(a, "sleep", &v)) {
      g_opts.sleep_s = std::atof(v.c_str());
    } else if (TakeFlag(a, "warmup", &v)) {
      g_opts.warmup_s = std::atof(v.c_str());
    } else if (TakeFlag(a, "trial", &v)) {
      g_opts.trial_s = std::atof(v.c_str());
    } else if (TakeFlag(a, "trials", &v)) {
      g_opts.trials = std::atoi(v.c_str());
    } else if (TakeFlag(a, "num-cpus", &v)) {
      g_opts.num_cpus = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "unknown argument: %s\n", a.c_str());
      std::exit(2);
    }
  }
  if (g_opts.address.empty() || g_opts.code_search_path.empty()) {
    std::fprintf(stderr, "--address and --code-search-path are required\n");
    std::exit(2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ParseArgs(argc, argv);

  ray::RayConfig config;
  config.address = g_opts.address;
  config.code_search_path = {g_opts.code_search_path};
  ray::Init(config);

  // single_client_put_calls_Plasma_Store / single_client_get_calls_Plasma_Store
  if (Want("single_client_get_calls_Plasma_Store")) {
    auto value = ray::Put(0);
    TimeIt("single_client_get_calls_Plasma_Store", [&] { GetOne(value); });
  }
  TimeIt("single_client_put_calls_Plasma_Store", [] { ray::Put(0); });

  // Ray's Python tasks default to num_cpus=1; say so explicitly for C++ tasks.
  auto small_task = [] { return ray::Task(SmallValue).SetResource("CPU", 1.0).Remote(); };

  auto task_batch = [&] {
    std::vector<ray::ObjectRef<std::string>> refs;
    refs.reserve(1000);
    for (int i = 0; i < 1000; ++i) refs.push_back(small_task());
    GetAll(refs);
  };

  TimeIt("single_client_tasks_and_get_batch", task_batch);

  TimeIt("single_client_tasks_sync", [&] { GetOne(small_task()); });

  TimeIt("single_client_tasks_async", task_batch, 1000);

  // Ray's benchmark actor is declared with num_cpus=0. The C++ API's default
  // actor resource request is empty (needs no CPU), which is the same thing.
  // (Actors are created only for benchmarks that will run.)
  if (Want("1_1_actor_calls_sync")) {
    auto a = ray::Actor(Actor::FactoryCreate).Remote();
    TimeIt("1_1_actor_calls_sync", [&] { GetOne(a.Task(&Actor::SmallValue).Remote()); });
  }

  auto actor_batch = [](ray::ActorHandle<Actor>& a) {
    std::vector<ray::ObjectRef<std::string>> refs;
    refs.reserve(1000);
    for (int i = 0; i < 1000; ++i) refs.push_back(a.Task(&Actor::SmallValue).Remote());
    GetAll(refs);
  };

  if (Want("1_1_actor_calls_async")) {
    auto a = ray::Actor(Actor::FactoryCreate).Remote();
    TimeIt(
        "1_1_actor_calls_async", [&] { actor_batch(a); }, 1000);
  }

  if (Want("1_1_actor_calls_concurrent")) {
    auto a = ray::Actor(Actor::FactoryCreate).SetMaxConcurrency(16).Remote();
    TimeIt(
        "1_1_actor_calls_concurrent", [&] { actor_batch(a); }, 1000);
  }

  // Ray's actors here are num_cpus=0 (Actor, Client); its tasks take one CPU.
  // The fan-out benchmarks use half the CPUs, as ray_perf.py does.
  const int n_cpu = std::max(1, g_opts.num_cpus / 2);
  auto make_actors = [](int k) {
    std::vector<ray::ActorHandle<Actor>> actors;
    for (int i = 0; i < k; ++i) actors.push_back(ray::Actor(Actor::FactoryCreate).Remote());
    return actors;
  };
  // Adds the retries the remote side reports to the driver's own.
  auto get_batches = [](const std::vector<ray::ObjectRef<long>>& refs) {
    GetAll(refs);
    for (const auto& value : ray::Get(refs)) g_get_retries += *value;
  };

  if (Want("multi_client_tasks_async")) {
    const int n = 10000, m = 4;
    auto actors = make_actors(m);
    TimeIt(
        "multi_client_tasks_async",
        [&] {
          std::vector<ray::ObjectRef<long>> refs;
          for (auto& a : actors) refs.push_back(a.Task(&Actor::SmallValueBatch).Remote(n));
          get_batches(refs);
        },
        n * m);
  }

  if (Want("1_n_actor_calls_async")) {
    const int n = 5000;
    auto client = ray::Actor(Client::FactoryCreate).Remote(ToBytes(make_actors(n_cpu)));
    TimeIt(
        "1_n_actor_calls_async",
        [&] { get_batches({client.Task(&Client::SmallValueBatch).Remote(n)}); }, n * n_cpu);
  }

  if (Want("n_n_actor_calls_async")) {
    const int n = 5000, m = 4;
    const HandleBytes actors = ToBytes(make_actors(n_cpu));
    TimeIt(
        "n_n_actor_calls_async",
        [&] {
          std::vector<ray::ObjectRef<long>> refs;
          for (int i = 0; i < m; ++i) {
            refs.push_back(ray::Task(Work).SetResource("CPU", 1.0).Remote(actors, n));
          }
          get_batches(refs);
        },
        m * n);
  }

  if (Want("n_n_actor_calls_with_arg_async")) {
    const int n = 1000;
    std::vector<ray::ActorHandle<Client>> clients;
    for (int i = 0; i < n_cpu; ++i) {
      auto server = ray::Actor(Actor::FactoryCreate).Remote();
      clients.push_back(ray::Actor(Client::FactoryCreate).Remote(ToBytes({server})));
    }
    TimeIt(
        "n_n_actor_calls_with_arg_async",
        [&] {
          std::vector<ray::ObjectRef<long>> refs;
          for (auto& c : clients) refs.push_back(c.Task(&Client::SmallValueBatchArg).Remote(n));
          get_batches(refs);
        },
        n * n_cpu);
  }

  ray::Shutdown();
  return 0;
}
