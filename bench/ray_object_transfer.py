#!/usr/bin/env python3
"""Ray's side of the large-object transfer between two namespace hosts.

The same measurement as bench/object_transfer_bench.cc (Lumen's side), with Ray:
two hosts are network namespaces joined by veth pairs to a bridge in a namespace
of its own (the addresses and names of tests/integration/netns_cluster.cc:
10.231.0.1 and 10.231.0.2, namespaces lumt<pid>-r{br,h0,h1}), `ray start --head`
runs on host 0 and `ray start --address` on host 1, each with its own temp dir
and an object store large enough for two objects of --bytes.

A driver on host 0 runs a task pinned to host 1 (NodeAffinitySchedulingStrategy,
hard) that returns a numpy uint8 array of --bytes, waits until the object exists
there without moving it (ray.wait with fetch_local=False), then times ray.get:
the pull from host 1's object store into host 0's (Ray's object manager) and the
zero-copy numpy view of it. The value is checked after the clock stops. Then one
plain TCP connection from host 0 to host 1 carries --bytes, with the TCP roles of
lumen_object_transfer_bench (the same code as Lumen's baseline). Both figures are
the median of --reps; every trial is printed.

  sudo build/bench/ray-venv/bin/python bench/ray_object_transfer.py \
      [--bytes=1073741824] [--reps=3] [--tcp-bench=build/bin/lumen_object_transfer_bench]
      [--json=FILE]

Needs root and `ip netns`. Every process it starts runs inside the two
namespaces, whose only route is the bridge's /24: nothing reaches another host.
At the end, and on failure or SIGTERM/SIGINT, every process in the namespaces is
stopped by pid (SIGTERM, then SIGKILL after 10 s) and the namespaces and temp
dirs are removed. `ray stop` is not used: it kills Ray processes by name on the
whole machine, namespaces or not.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time

SUBNET = "10.231.0."
GCS_PORT = 6379
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(*args):
    print(*args, flush=True)


def ip_tool():
    for path in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        if os.access(path, os.X_OK):
            return path
    return None


class Hosts:
    """Two namespace hosts on a bridge; close() stops everything in them and removes them."""

    def __init__(self, count):
        self.ip = ip_tool()
        self.prefix = f"lumt{os.getpid()}-r"
        self.root = f"/tmp/{self.prefix}"
        self.bridge = self.prefix + "br"
        self.names = []
        self.ips = []
        self.temp_dirs = []
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        try:
            self._must("netns", "add", self.bridge)
            self._must("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            self._must("-n", self.bridge, "link", "set", "br0", "up")
            for i in range(count):
                ns = f"{self.prefix}h{i}"
                self.names.append(ns)  # before it exists: a failure below still deletes it
                self.ips.append(SUBNET + str(i + 1))
                self.temp_dirs.append(f"{self.root}/h{i}")
                os.makedirs(self.temp_dirs[-1])
                veth = f"v{i}"
                self._must("netns", "add", ns)
                self._must("-n", self.bridge, "link", "add", veth, "type", "veth",
                           "peer", "name", "eth0", "netns", ns)
                self._must("-n", self.bridge, "link", "set", veth, "master", "br0")
                self._must("-n", self.bridge, "link", "set", veth, "up")
                self._must("-n", ns, "addr", "add", self.ips[i] + "/24", "dev", "eth0")
                self._must("-n", ns, "link", "set", "eth0", "up")
                self._must("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def _must(self, *args):
        subprocess.run([self.ip, *args], check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wrap(self, host, argv):
        return [self.ip, "netns", "exec", self.names[host], *argv]

    def run(self, host, argv, timeout, env=None):
        """Runs argv in `host`'s namespace; returns (exit code, output). Raises on timeout."""
        r = subprocess.run(self.wrap(host, argv), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
        return r.returncode, r.stdout

    def pids(self, ns):
        r = subprocess.run([self.ip, "netns", "pids", ns], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=10)
        return [int(w) for w in r.stdout.split() if w.isdigit()]

    def stop_processes(self, grace_seconds=10):
        """SIGTERM to every process in the namespaces, SIGKILL to what is left after the grace."""
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5)):
            pids = [p for ns in self.names for p in self.pids(ns)]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(self.pids(ns) for ns in self.names):
                time.sleep(0.1)
            if not any(self.pids(ns) for ns in self.names):
                return

    def close(self):
        try:
            self.stop_processes()
        finally:
            for ns in self.names + [self.bridge]:
                subprocess.run([self.ip, "netns", "del", ns], timeout=10,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.names = []
            shutil.rmtree(self.root, ignore_errors=True)


def listening_summary(hosts, host):
    """`ss -tlnpH` inside a host: each local address with the processes listening on it."""
    code, out = hosts.run(host, ["ss", "-tlnpH"], 10)
    if code != 0:
        return f"ss failed: {out.strip()}"
    by_address = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            address = fields[3].rsplit(":", 1)[0]
            names = re.findall(r'\(\("([^"]+)"', line)
            by_address.setdefault(address, []).extend(names or ["?"])
    return "; ".join(f"{a}: {' '.join(sorted(n))}" for a, n in sorted(by_address.items()))


def ray_env(token_path):
    env = dict(os.environ)
    # Token authentication, as Lumen's cluster token: a token of this run for every Ray process
    # (otherwise a head finding ~/.ray/auth_token turns it on and the joining node has none).
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN_PATH"] = token_path
    env.pop("RAY_AUTH_TOKEN", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_DISABLE_DOCKER_CPU_WARNING"] = "1"
    # Set on these machines for an older OpenBLAS; slows a current numpy (as in compare_ray.sh).
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def rates_in(output, prefix="rate "):
    return [float(l[len(prefix):]) for l in output.splitlines() if l.startswith(prefix)]


def tcp_rates(hosts, tcp_bench, nbytes, reps):
    """lumen_object_transfer_bench's TCP roles: server on host 1, a client per rep on host 0."""
    server = subprocess.Popen(
        hosts.wrap(1, [tcp_bench, "--role=tcp-server", f"--ip={hosts.ips[1]}", f"--reps={reps}"]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = server.stdout.readline()  # "listening", or the error and EOF
        if "listening" not in first:
            raise RuntimeError(f"the TCP server did not start: {first}{server.stdout.read()}")
        rates = []
        for _ in range(reps):
            code, out = hosts.run(0, [tcp_bench, "--role=tcp-client", f"--ip={hosts.ips[1]}",
                                      f"--bytes={nbytes}"], 300)
            rate = rates_in(out)
            if code != 0 or len(rate) != 1:
                raise RuntimeError(f"the TCP client failed ({code}):\n{out}")
            rates.append(rate[0])
        server.wait(timeout=30)
        return rates
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def orchestrate(args):
    if os.geteuid() != 0 or ip_tool() is None:
        sys.exit("ray_object_transfer.py needs root and the `ip` tool (network namespaces)")
    if not os.access(args.tcp_bench, os.X_OK):
        sys.exit(f"{args.tcp_bench} not found: build lumen_object_transfer_bench first "
                 "(its TCP roles are the baseline)")
    venv_bin = os.path.dirname(sys.executable)
    ray_cli = os.path.join(venv_bin, "ray")
    store = 2 * args.bytes + (256 << 20)  # an object made while the last one is being freed

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hosts = Hosts(2)
    try:
        token_path = os.path.join(hosts.root, "auth_token")
        with open(token_path, "w") as f:
            f.write(secrets.token_hex(32))
        env = ray_env(token_path)
        common = ["--num-cpus=1", f"--object-store-memory={store}", "--disable-usage-stats"]
        code, out = hosts.run(0, [ray_cli, "start", "--head", f"--node-ip-address={hosts.ips[0]}",
                                  f"--port={GCS_PORT}", "--include-dashboard=false",
                                  f"--temp-dir={hosts.temp_dirs[0]}", *common], 120, env)
        if code != 0:
            raise RuntimeError(f"ray start --head failed ({code}):\n{out}")
        code, out = hosts.run(1, [ray_cli, "start", f"--address={hosts.ips[0]}:{GCS_PORT}",
                                  f"--node-ip-address={hosts.ips[1]}",
                                  f"--temp-dir={hosts.temp_dirs[1]}", *common], 120, env)
        if code != 0:
            raise RuntimeError(f"ray start --address failed ({code}):\n{out}")
        for h in range(2):
            log(f"host {h} ({hosts.ips[h]}) listens on: {listening_summary(hosts, h)}")
        code, out = hosts.run(
            0, [sys.executable, os.path.abspath(__file__), "--role=driver",
                f"--address={hosts.ips[0]}:{GCS_PORT}", f"--ip={hosts.ips[0]}",
                f"--remote-ip={hosts.ips[1]}", f"--bytes={args.bytes}", f"--reps={args.reps}"],
            args.timeout, env)
        sys.stdout.write(out)
        transfer = rates_in(out)
        if code != 0 or len(transfer) != args.reps:
            raise RuntimeError(f"the Ray driver failed ({code})")
        for h in range(2):
            log(f"after the driver, host {h} listens on: {listening_summary(hosts, h)}")
        tcp = tcp_rates(hosts, args.tcp_bench, args.bytes, args.reps)
    finally:
        hosts.close()
    t, p = statistics.median(transfer), statistics.median(tcp)
    log(f"ray_object_transfer_bytes {args.bytes} (median of {args.reps}), between two namespace "
        "hosts over a veth bridge")
    log("ray_object_transfer_trials_gbps " + " ".join(f"{r / 1e9:.3f}" for r in transfer))
    log("plain_tcp_trials_gbps " + " ".join(f"{r / 1e9:.3f}" for r in tcp))
    log(f"ray_object_transfer_gbps {t / 1e9:.3f} GB/s")
    log(f"plain_tcp_gbps {p / 1e9:.3f} GB/s")
    log(f"ratio {t / p:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bytes": args.bytes, "reps": args.reps, "transfer_rates": transfer,
                       "tcp_rates": tcp, "transfer_median": t, "tcp_median": p}, f, indent=1)
    return 0


def driver(args):
    """Host 0: makes the object on host 1 and times its ray.get here; prints one rate per rep."""
    import numpy as np
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=args.address, _node_ip_address=args.ip, log_to_driver=False)
    deadline = time.monotonic() + 60
    remote = None
    while remote is None:
        remote = next((n["NodeID"] for n in ray.nodes()
                       if n["Alive"] and n["NodeManagerAddress"] == args.remote_ip), None)
        if remote is None:
            if time.monotonic() > deadline:
                sys.exit(f"the node at {args.remote_ip} did not register within 60 s")
            time.sleep(0.2)

    @ray.remote(num_cpus=1)
    def make_bytes(n):
        return np.full(n, 7, dtype=np.uint8)

    pinned = make_bytes.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=remote, soft=False))
    for _ in range(args.reps):
        ref = pinned.remote(args.bytes)
        ready, _ = ray.wait([ref], timeout=300, fetch_local=False)  # made there, not moved yet
        if not ready:
            sys.exit("the object was not made within 300 s")
        start = time.perf_counter()
        value = ray.get(ref, timeout=300)
        seconds = time.perf_counter() - start
        if value.size != args.bytes or value[args.bytes // 2] != 7:
            sys.exit("the object arrived wrong")
        print(f"rate {args.bytes / seconds}", flush=True)
        del value, ref
    ray.shutdown()
    return 0


def run_role(args, driver_fn, orchestrate_fn):
    """--role=driver runs driver_fn, no role orchestrate_fn; their errors exit 1 with a message."""
    try:
        return driver_fn(args) if args.role == "driver" else orchestrate_fn(args)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bytes", type=int, default=1 << 30)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tcp-bench",
                   default=os.path.join(ROOT, "build/bin/lumen_object_transfer_bench"))
    p.add_argument("--json", default="")
    p.add_argument("--timeout", type=float, default=600, help="seconds for the driver")
    p.add_argument("--role", default="", choices=["", "driver"])
    p.add_argument("--address", default="")
    p.add_argument("--ip", default="")
    p.add_argument("--remote-ip", default="")
    args = p.parse_args()
    if args.bytes <= 0 or args.reps <= 0:
        p.error("--bytes and --reps take positive integers")
    return run_role(args, driver, orchestrate)


if __name__ == "__main__":
    sys.exit(main())
