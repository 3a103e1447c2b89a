#!/usr/bin/env python3
"""Ray's side of lumen_scale_bench: many namespace nodes join a head and run SPREAD tasks.

The same scenario as bench/scale_bench.cc, with Ray: --nodes + 1 hosts (network namespaces
on a bridge, as bench/ray_object_transfer.py makes them), `ray start --head` with 0 CPUs on
host 0, then every other host's `ray start --address` (1 CPU, a --store-bytes object store),
--join-parallel (4) at a time: all 32 at once time out in Ray's node startup on a 2-core
machine. Registration is the wall time until the last returned. A driver on host 0 runs
--tasks tasks with scheduling_strategy="SPREAD" (trivial, or sleeping --task-ms) twice, cold
and warm, and counts on which node each ran.
The head's CPU time is utime + stime of the head host's gcs_server and of all its Ray
processes (gcs_server, raylet, agents), from /proc, for the registration and each round.

  sudo build/bench/ray-venv/bin/python bench/ray_scale.py [--nodes=32] [--tasks=10000]
      [--task-ms=0] [--store-bytes=78643200] [--join-parallel=4] [--min-available-gib=4]

Needs root and `ip netns`; everything runs inside the namespaces and is stopped by pid. A Ray
node takes about 260 MiB (raylet, agents, a worker): the run stops and tears everything down if
the machine's available memory falls below --min-available-gib (4) while the nodes join or the
driver runs.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ray_object_transfer import GCS_PORT, Hosts, ip_tool, log, ray_env, run_role  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of `pid` in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def mem_available():
    """MemAvailable of /proc/meminfo in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def check_memory(min_available):
    if mem_available() < min_available:
        raise RuntimeError(f"stopped: the machine has less than {min_available / 2**30:.1f} GiB "
                           "available (--min-available-gib); the cluster is torn down")


def head_cpu(hosts, driver_pid=None):
    """(gcs_server's CPU seconds, CPU seconds of every Ray process on host 0 but the driver)."""
    gcs = total = 0.0
    for pid in hosts.pids(hosts.names[0]):
        if pid == driver_pid:
            continue
        seconds = cpu_seconds(pid)
        total += seconds
        if comm(pid) == "gcs_server":
            gcs += seconds
    return gcs, total


def orchestrate(args):
    if os.geteuid() != 0 or ip_tool() is None:
        sys.exit("ray_scale.py needs root and the `ip` tool (network namespaces)")
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    start = time.monotonic()
    hosts = Hosts(args.nodes + 1)
    log(f"made {args.nodes + 1} namespace hosts in {time.monotonic() - start:.2f} s")
    try:
        token_path = os.path.join(hosts.root, "auth_token")
        with open(token_path, "w") as f:
            f.write(os.urandom(32).hex())
        env = ray_env(token_path)
        common = ["--disable-usage-stats", f"--object-store-memory={args.store_bytes}"]
        code, out = hosts.run(0, [ray_cli, "start", "--head", f"--node-ip-address={hosts.ips[0]}",
                                  f"--port={GCS_PORT}", "--include-dashboard=false",
                                  "--num-cpus=0", f"--temp-dir={hosts.temp_dirs[0]}", *common],
                              120, env)
        if code != 0:
            raise RuntimeError(f"ray start --head failed ({code}):\n{out}")
        gcs0, total0 = head_cpu(hosts)
        start = time.monotonic()
        pending = list(range(1, args.nodes + 1))
        running = {}
        try:
            while pending or running:
                check_memory(args.min_available_gib * 2**30)
                if time.monotonic() - start > 600:
                    raise RuntimeError("the nodes did not all join within 600 s")
                while pending and len(running) < args.join_parallel:
                    i = pending.pop(0)
                    running[i] = subprocess.Popen(
                        hosts.wrap(i, [ray_cli, "start", f"--address={hosts.ips[0]}:{GCS_PORT}",
                                       f"--node-ip-address={hosts.ips[i]}", "--num-cpus=1",
                                       f"--temp-dir={hosts.temp_dirs[i]}", *common]),
                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for i, join in list(running.items()):
                    if join.poll() is not None:
                        out = join.stdout.read()
                        del running[i]
                        if join.returncode != 0:
                            raise RuntimeError(f"node {i} did not join ({join.returncode}):\n{out}")
                time.sleep(0.1)
        finally:
            for join in running.values():
                join.kill()
                join.wait()
        registration = time.monotonic() - start
        gcs1, total1 = head_cpu(hosts)
        log(f"registration {args.nodes} nodes in {registration:.3f} s ({args.join_parallel} ray "
            "start at a time, until the last returned), "
            f"head CPU: gcs_server {gcs1 - gcs0:.3f} s, all head-host Ray processes "
            f"{total1 - total0:.3f} s")
        driver = subprocess.Popen(
            hosts.wrap(0, [sys.executable, os.path.abspath(__file__), "--role=driver",
                           f"--address={hosts.ips[0]}:{GCS_PORT}", f"--ip={hosts.ips[0]}",
                           f"--nodes={args.nodes}", f"--tasks={args.tasks}",
                           f"--task-ms={args.task_ms}", f"--timeout={args.timeout}"]),
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        try:
            # The driver asks for the head's CPU before and after each round ("cpu?" lines).
            for line in driver.stdout:
                check_memory(args.min_available_gib * 2**30)
                if line.strip() == "cpu?":
                    gcs, total = head_cpu(hosts, driver.pid)
                    driver.stdin.write(f"{gcs} {total}\n")
                    driver.stdin.flush()
                elif not line.startswith("("):  # worker output relayed by Ray
                    sys.stdout.write(line)
            driver.wait(timeout=30)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        if driver.returncode != 0:
            raise RuntimeError(f"the Ray driver failed ({driver.returncode})")
        rss, count = 0, 0
        for ns in hosts.names[1:]:
            for pid in hosts.pids(ns):
                rss += rss_bytes(pid)
                count += 1
        head_rss = sum(rss_bytes(p) for p in hosts.pids(hosts.names[0]))
        log(f"nodes' memory: {count} processes, {rss / 2**20:.0f} MiB resident in all; head host "
            f"{head_rss / 2**20:.0f} MiB")
    finally:
        hosts.close()
    return 0


def driver(args):
    """Host 0: waits for the nodes' CPUs, runs the rounds, prints one line per round."""
    import ray

    def ask_cpu():
        print("cpu?", flush=True)
        gcs, total = sys.stdin.readline().split()
        return float(gcs), float(total)

    ray.init(address=args.address, _node_ip_address=args.ip, log_to_driver=False)
    deadline = time.monotonic() + 120
    while ray.cluster_resources().get("CPU", 0) < args.nodes:
        if time.monotonic() > deadline:
            sys.exit(f"the cluster has {ray.cluster_resources().get('CPU', 0)} CPUs, "
                     f"not {args.nodes}, after 120 s")
        time.sleep(0.1)

    @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
    def where_am_i(sleep_ms):
        if sleep_ms:
            time.sleep(sleep_ms / 1000)
        return ray.get_runtime_context().get_node_id()

    for name in ("cold", "warm"):
        gcs0, total0 = ask_cpu()
        start = time.perf_counter()
        refs = [where_am_i.remote(args.task_ms) for _ in range(args.tasks)]
        nodes = ray.get(refs, timeout=args.timeout)
        seconds = time.perf_counter() - start
        gcs1, total1 = ask_cpu()
        counts = {}
        for node in nodes:
            counts[node] = counts.get(node, 0) + 1
        print(f"tasks_{name} {args.tasks} tasks of {args.task_ms} ms in {seconds:.3f} s "
              f"({args.tasks / seconds:.0f} tasks/s), head CPU: gcs_server {gcs1 - gcs0:.3f} s, "
              f"all head-host Ray processes {total1 - total0:.3f} s; ran on {len(counts)} of "
              f"{args.nodes} nodes, {min(counts.values())} to {max(counts.values())} tasks per "
              "node", flush=True)
    ray.shutdown()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=32)
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--task-ms", type=int, default=0)
    p.add_argument("--store-bytes", type=int, default=75 << 20,
                   help="each node's object store (Ray's minimum is 75 MiB)")
    p.add_argument("--timeout", type=float, default=300, help="seconds for each round's get")
    p.add_argument("--join-parallel", type=int, default=4,
                   help="how many `ray start --address` run at once (all 32 at once time out "
                        "on a 2-core machine)")
    p.add_argument("--min-available-gib", type=float, default=4,
                   help="tear everything down if the machine's available memory drops below this")
    p.add_argument("--role", default="", choices=["", "driver"])
    p.add_argument("--address", default="")
    p.add_argument("--ip", default="")
    args = p.parse_args()
    if (not 0 < args.nodes <= 250 or args.tasks <= 0 or args.join_parallel <= 0
            or args.task_ms < 0 or args.store_bytes <= 0):
        p.error("--nodes (1 to 250), --tasks, --join-parallel and --store-bytes take positive "
                "integers, "
                "--task-ms a non-negative one")
    return run_role(args, driver, orchestrate)


if __name__ == "__main__":
    sys.exit(main())
