#!/usr/bin/env python3
"""Ray's core microbenchmarks, for the names Lumen implements.

The definitions and the timing harness are Ray's own, reproduced from
python/ray/_private/ray_perf.py (what `ray microbenchmark` runs) and
python/ray/_private/ray_microbenchmark_helpers.py::timeit:

  * sleep `warmup_time_sec` (10 s) before each benchmark, to avoid noisy neighbours;
  * warm up for about 1 s, counting calls;
  * step = count // 10 + 1; then 4 trials of about 2 s, each trial running
    `step` calls at a time until 2 s have passed;
  * each trial's figure is multiplier * calls / elapsed; print mean and
    numpy's std (population) as "<name> per second <mean> +- <std>".

Output lines use Ray's own benchmark names (e.g. "1:1 actor calls sync",
"single client put calls (Plasma Store)"), so this output and
`ray microbenchmark`'s output parse the same way; bench/compare_ray.py maps them
to Ray's metric names (1_1_actor_calls_sync, single_client_put_calls_Plasma_Store),
which are the names Lumen prints.

Differences from `ray microbenchmark`, all for a like-for-like comparison:
  * only the benchmarks Lumen implements are run (in Ray's order), then the
    large-object benchmarks that ray_perf.py does not have (single client get
    gigabytes, tasks sharing large object, weights dict put/get/20 tasks), with
    numpy arrays read in place from plasma;
  * the local cluster is started with num_cpus=--num-cpus on 127.0.0.1 with no
    dashboard and usage stats disabled, and shut down at the end;
  * Ray sizes the 1:n and n:n actor benchmarks by multiprocessing.cpu_count() // 2;
    here it is max(1, num_cpus // 2), which is the same when --num-cpus is the
    machine's CPU count (the default);
  * --quick shortens the harness for smoke runs (no sleep, 0.1 s warm-up,
    0.2 s trials); figures from a quick run are not comparable.

With --cpp-driver, no Python benchmark runs: the cluster is started the same way
and the given Ray C++ API benchmark binary is run against it (see bench/ray_cpp/).
"""

import argparse
import faulthandler
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

# Keep Ray on loopback and silent before it is imported.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray resolves "127.0.0.1" given as the node IP to the machine's outward address
# unless multi-node clusters are disabled; with this set, every Ray address,
# and the gRPC servers' bind addresses, stay on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")

import numpy as np  # noqa: E402
import ray  # noqa: E402

HARNESS = {"sleep": 10.0, "warmup": 1.0, "trial": 2.0, "trials": 4}
FILTER = None


def metric_name(name):
    """Ray's benchmark name -> the metric name used in perf_metrics and by Lumen."""
    out = name.replace(":", "_").replace("(", "").replace(")", "").replace(" ", "_")
    return out


def timeit(name, fn, multiplier=1):
    """ray._private.ray_microbenchmark_helpers.timeit, with tunable durations."""
    if FILTER and FILTER not in name and FILTER not in metric_name(name):
        return [None]
    time.sleep(HARNESS["sleep"])
    # warmup
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < HARNESS["warmup"]:
        fn()
        count += 1
    # real run
    step = count // 10 + 1
    stats = []
    for _ in range(HARNESS["trials"]):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < HARNESS["trial"]:
            for _ in range(step):
                fn()
            count += step
        end = time.perf_counter()
        stats.append(multiplier * count / (end - start))

    mean = np.mean(stats)
    sd = np.std(stats)
    print(name, "per second", round(mean, 2), "+-", round(sd, 2), flush=True)
    return [(name, mean, sd)]


# ---- Ray's definitions (ray_perf.py) ----


@ray.remote(num_cpus=0)
class Actor:
    def small_value(self):
        return b"ok"

    def small_value_arg(self, x):
        return b"ok"

    def small_value_batch(self, n):
        ray.get([small_value.remote() for _ in range(n)])


@ray.remote(num_cpus=0)
class Client:
    def __init__(self, servers):
        if not isinstance(servers, list):
            servers = [servers]
        self.servers = servers

    def small_value_batch(self, n):
        results = []
        for s in self.servers:
            results.extend([s.small_value.remote() for _ in range(n)])
        ray.get(results)

    def small_value_batch_arg(self, n):
        x = ray.put(0)
        results = []
        for s in self.servers:
            results.extend([s.small_value_arg.remote(x) for _ in range(n)])
        ray.get(results)


@ray.remote
def small_value():
    return b"ok"


@ray.remote
def do_put():
    for _ in range(10):
        ray.put(np.zeros(10 * 1024 * 1024, dtype=np.int64))


@ray.remote
def create_object_containing_ref():
    obj_refs = []
    for _ in range(10000):
        obj_refs.append(ray.put(1))
    return obj_refs


def run_python_benchmarks(num_cpus):
    results = []

    value = ray.put(0)

    def get_small():
        ray.get(value)

    def put_small():
        ray.put(0)

    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)

    results += timeit("single client get calls (Plasma Store)", get_small)

    results += timeit("single client put calls (Plasma Store)", put_small)

    def put_large():
        ray.put(arr)

    results += timeit("single client put gigabytes", put_large, 8 * 0.1)

    def small_value_batch():
        submitted = [small_value.remote() for _ in range(1000)]
        ray.get(submitted)
        return 0

    results += timeit("single client tasks and get batch", small_value_batch)

    def put_multi():
        ray.get([do_put.remote() for _ in range(10)])

    results += timeit("multi client put gigabytes", put_multi, 10 * 8 * 0.1)

    obj_containing_ref = create_object_containing_ref.remote()

    def get_containing_object_ref():
        ray.get(obj_containing_ref)

    results += timeit(
        "single client get object containing 10k refs", get_containing_object_ref
    )

    def wait_multiple_refs():
        num_objs = 1000
        not_ready = [small_value.remote() for _ in range(num_objs)]
        # Ray: only trigger the fetch_local once for each object (ray#30375).
        fetch_local = True
        for _ in range(num_objs):
            _ready, not_ready = ray.wait(not_ready, fetch_local=fetch_local)
            if fetch_local:
                fetch_local = False

    results += timeit("single client wait 1k refs", wait_multiple_refs)

    def small_task():
        ray.get(small_value.remote())

    results += timeit("single client tasks sync", small_task)

    def small_task_async():
        ray.get([small_value.remote() for _ in range(1000)])

    results += timeit("single client tasks async", small_task_async, 1000)

    n = 10000
    m = 4
    actors = [Actor.remote() for _ in range(m)]

    def multi_task():
        submitted = [a.small_value_batch.remote(n) for a in actors]
        ray.get(submitted)

    results += timeit("multi client tasks async", multi_task, n * m)

    a = Actor.remote()

    def actor_sync():
        ray.get(a.small_value.remote())

    results += timeit("1:1 actor calls sync", actor_sync)

    a = Actor.remote()

    def actor_async():
        ray.get([a.small_value.remote() for _ in range(1000)])

    results += timeit("1:1 actor calls async", actor_async, 1000)

    a = Actor.options(max_concurrency=16).remote()

    def actor_concurrent():
        ray.get([a.small_value.remote() for _ in range(1000)])

    results += timeit("1:1 actor calls concurrent", actor_concurrent, 1000)

    # Not one of ray_perf.py's: 1,000 calls with a 64 KiB argument each, in MB/s.
    a = Actor.remote()
    arg = b"x" * 65536

    def actor_64kib_args():
        ray.get([a.small_value_arg.remote(arg) for _ in range(1000)])

    results += timeit("1:1 actor calls 64KiB args async", actor_64kib_args, 1000 * 65536 / 1e6)

    n = 5000
    # Ray: multiprocessing.cpu_count() // 2 (equal when num_cpus == cpu_count).
    n_cpu = max(1, num_cpus // 2)
    actors = [Actor._remote() for _ in range(n_cpu)]
    client = Client.remote(actors)

    def actor_async_direct():
        ray.get(client.small_value_batch.remote(n))

    results += timeit("1:n actor calls async", actor_async_direct, n * len(actors))

    a = [Actor.remote() for _ in range(n_cpu)]

    @ray.remote
    def work(actors):
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    def actor_multi2():
        ray.get([work.remote(a) for _ in range(m)])

    results += timeit("n:n actor calls async", actor_multi2, m * n)

    n = 1000
    actors = [Actor._remote() for _ in range(n_cpu)]
    clients = [Client.remote(a) for a in actors]

    def actor_multi2_direct_arg():
        ray.get([c.small_value_batch_arg.remote(n) for c in clients])

    results += timeit(
        "n:n actor calls with arg async", actor_multi2_direct_arg, n * len(clients)
    )

    # ray_perf.py: 100 groups of one bundle of a tiny custom resource, waited for, then
    # removed (the cluster has {"custom": 100}, see main).
    def placement_group_create_removal(num_pgs):
        pgs = [
            ray.util.placement_group(bundles=[{"custom": 0.001}]) for _ in range(num_pgs)
        ]
        [pg.wait(timeout_seconds=30) for pg in pgs]
        for pg in pgs:
            ray.util.remove_placement_group(pg)

    results += timeit(
        "placement group create/removal",
        lambda: placement_group_create_removal(100),
        100,
    )
    return [r for r in results if r is not None]


# ---- Large objects read in place (not in ray_perf.py) ----
#
# The same shapes as Lumen's rows of these names: a 400 MB float64 array, and the lab's
# weights dictionary of 50 arrays of 1,000,000 float64 (400 MB), written with numpy the way
# Ray's users write them. ray.get returns numpy arrays that read plasma in place; the tasks
# touch their argument without reading all of it.

LARGE_OBJECT_NAMES = [
    "single client get gigabytes",
    "tasks sharing large object",
    "weights dict put",
    "weights dict get",
    "weights dict 20 tasks",
]


def wanted(name):
    return not FILTER or FILTER in name or FILTER in metric_name(name)


@ray.remote
def touch_array(array):
    return float(array[0] + array[-1])


@ray.remote
def touch_weights(weights, i):
    return sum(float(w[0]) for w in weights.values()) * i


def run_large_object_benchmarks():
    results = []
    if wanted("single client get gigabytes") or wanted("tasks sharing large object"):
        big = ray.put(np.ones(50_000_000, dtype=np.float64))

        def get_big():
            ray.get(big)

        results += timeit("single client get gigabytes", get_big, 0.4)

        def tasks_sharing():
            ray.get([touch_array.remote(big) for _ in range(20)])

        results += timeit("tasks sharing large object", tasks_sharing)
        del big
    if any(wanted(n) for n in LARGE_OBJECT_NAMES if n.startswith("weights dict")):
        weights = {f"layer{i}": np.full(1_000_000, 0.5) for i in range(50)}

        def put_weights():
            ray.put(weights)

        results += timeit("weights dict put", put_weights)
        ref = ray.put(weights)

        def get_weights():
            ray.get(ref)

        results += timeit("weights dict get", get_weights)

        def weights_tasks():
            ray.get([touch_weights.remote(ref, i) for i in range(20)])

        results += timeit("weights dict 20 tasks", weights_tasks)
    return [r for r in results if r is not None]


def _terminate(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so that `finally: ray.shutdown()` runs.
    raise SystemExit(128 + signum)


def main(argv=None):
    global FILTER
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-cpus", type=int, default=multiprocessing.cpu_count())
    p.add_argument("--filter", default=None, help="run benchmarks whose name has this")
    p.add_argument("--quick", action="store_true", help="short smoke-run harness")
    p.add_argument("--sleep", type=float, default=None, help="pause before each")
    p.add_argument("--json", default=None, help="also write results here")
    p.add_argument("--temp-dir", default=None, help="Ray's temp/session dir")
    p.add_argument("--cpp-driver", default=None, help="Ray C++ benchmark binary")
    p.add_argument("--cpp-lib", default=None, help="its shared library (code path)")
    args = p.parse_args(argv)

    FILTER = args.filter or None
    if args.quick:
        HARNESS.update(sleep=0.0, warmup=0.1, trial=0.2)
    if args.sleep is not None:
        HARNESS["sleep"] = args.sleep

    faulthandler.register(signal.SIGUSR1)  # dump stacks if it ever hangs
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    print(f"ray version {ray.__version__} (commit {ray.__commit__[:12]})", flush=True)
    print(
        "harness: sleep {sleep:g}s, warm-up {warmup:g}s, {trials} trials of "
        "{trial:g}s, num_cpus {n}".format(n=args.num_cpus, **HARNESS),
        flush=True,
    )

    init_kwargs = dict(
        num_cpus=args.num_cpus,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=True,
        # ray_perf.py's cluster: placement_group_create/removal reserves this resource.
        resources={"custom": 100},
    )
    if args.temp_dir:
        init_kwargs["_temp_dir"] = args.temp_dir
    results = []
    rc = 0
    ray.init(**init_kwargs)
    try:
        if args.cpp_driver:
            rc = run_cpp_driver(args)
        else:
            results = run_python_benchmarks(args.num_cpus)
            results += run_large_object_benchmarks()
    finally:
        ray.shutdown()

    if args.json and not args.cpp_driver:
        with open(args.json, "w") as f:
            json.dump(
                [
                    {
                        "name": metric_name(name),
                        "mean": float(mean),
                        "stddev": float(sd),
                        "unit": "GB/s" if "gigabytes" in name else "ops/s",
                    }
                    for name, mean, sd in results
                ],
                f,
                indent=2,
            )
    return rc


# The benchmarks bench/ray_cpp/ray_cpp_microbenchmarks.cc implements, in its order.
CPP_NAMES = [
    "single_client_get_calls_Plasma_Store",
    "single_client_put_calls_Plasma_Store",
    "single_client_tasks_and_get_batch",
    "single_client_tasks_sync",
    "single_client_tasks_async",
    "1_1_actor_calls_sync",
    "1_1_actor_calls_async",
    "1_1_actor_calls_concurrent",
    "multi_client_tasks_async",
    "n_n_actor_calls_with_arg_async",
]

# Implemented there too (run them with the driver's --only=NAME), but not run here: in
# Ray 2.60's C++ API a worker that waits on batches of 5,000 actor calls stops getting
# results after some 10,000-16,000 calls (ray::Get never returns; checked with a probe:
# batches of 1,000-5,000 from a C++ actor take 0.1-0.35 s, then one waits forever).
CPP_NOT_RUN = {
    "1_n_actor_calls_async": "a C++ actor's ray::Get on 5,000 actor calls stalls for good",
    "n_n_actor_calls_async": "a C++ task's ray::Get on 5,000 actor calls stalls for good",
}


def _run_cpp_once(args, address, names, budget):
    """Run the C++ driver for `names`; return (names printed, exit code or None if
    it stalled: no new result within `budget` seconds, so it was stopped)."""
    cmd = [
        args.cpp_driver,
        f"--address={address}",
        f"--code-search-path={args.cpp_lib}",
        "--only=" + ",".join(names),
        "--sleep={:g}".format(HARNESS["sleep"]),
        "--warmup={:g}".format(HARNESS["warmup"]),
        "--trial={:g}".format(HARNESS["trial"]),
        "--trials={}".format(HARNESS["trials"]),
        f"--num-cpus={args.num_cpus}",
    ]
    # Ray's crash dumps are not always UTF-8; a decoding error must not stop the reader.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, errors="replace", bufsize=1
    )
    done = []
    last = [time.monotonic()]

    def pump():
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            parts = line.split(" per second ")
            if len(parts) == 2:
                done.append(parts[0].strip())
            last[0] = time.monotonic()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if time.monotonic() - last[0] > budget:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                reader.join(timeout=5)
                return done, None
            time.sleep(0.5)
        reader.join(timeout=5)
        return done, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_cpp_driver(args):
    """Run the Ray C++ API benchmark against the cluster this process started.

    Ray's C++ API now and then stops making progress in one benchmark (the driver
    waits in ray::Get for actor results that never come). A watchdog stops the
    driver when no result appears within the time one benchmark can take plus a
    minute, reports it, and runs the benchmarks that were left with a fresh
    driver. A benchmark gets two attempts; one that stalls (or crashes the driver)
    twice is given up and the rest still run, so the loop ends after at most two
    attempts per benchmark. Returns 0 when every wanted benchmark printed a result."""
    address = ray.get_runtime_context().gcs_address
    wanted = [
        n for n in CPP_NAMES if not FILTER or FILTER in n
    ]
    for name, why in CPP_NOT_RUN.items():
        if not FILTER or FILTER in name:
            print(f"Ray C++: {name} not run: {why} in Ray {ray.__version__}", flush=True)
    if not wanted:
        print("Ray C++: no benchmark matches the filter", flush=True)
        return 0
    budget = (
        HARNESS["sleep"] + HARNESS["warmup"] + HARNESS["trials"] * HARNESS["trial"] + 60
    )
    print("running Ray C++ driver against", address, flush=True)
    remaining = list(wanted)
    failures = {}
    given_up = []
    while remaining:
        done, rc = _run_cpp_once(args, address, remaining, budget)
        remaining = [n for n in remaining if n not in done]
        if not remaining:
            break
        stuck = remaining[0]
        failures[stuck] = failures.get(stuck, 0) + 1
        attempt = failures[stuck]
        if rc is None:
            print(
                f"Ray C++: driver made no progress for {budget:g}s in {stuck} "
                f"(attempt {attempt}); stopped it",
                flush=True,
            )
        else:
            print(f"Ray C++: driver exited with status {rc} in {stuck} (attempt {attempt})",
                  flush=True)
        if attempt == 2:
            given_up.append(stuck)
            remaining.remove(stuck)
        if remaining:
            print("Ray C++: running again for", ",".join(remaining), flush=True)
    if given_up:
        print("Ray C++: no result for", ",".join(given_up), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
