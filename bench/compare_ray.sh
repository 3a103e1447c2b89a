#!/usr/bin/env bash
# Lumen vs Ray: runs Ray's own core microbenchmarks and `lumen microbenchmark` on
# the same machine with the same CPU count and harness, and prints one table
# (benchmark, Ray, Lumen, Lumen ÷ Ray, plus Ray's C++ API where it builds, and
# the machine baselines that Lumen measures: gRPC unary echo and memcpy).
#
#   bench/compare_ray.sh [--filter=SUBSTRING] [--num-cpus=N] [--skip-ray-cpp] [--quick]
#   bench/compare_ray.sh --transfer [--transfer-bytes=N] [--transfer-reps=N] [--quick]
#   bench/compare_ray.sh --scale [--scale-nodes=32] [--scale-tasks=10000] [--quick]
#
#   --filter=S      only benchmarks whose name contains S (both systems)
#   --num-cpus=N    CPUs given to Ray's cluster and to Lumen's (default: nproc)
#   --skip-ray-cpp  do not build or run the Ray C++ API benchmarks
#   --quick         smoke run of the script: Ray's harness shortened to 0.2 s trials
#                   and no pause (Lumen runs its full harness); figures not comparable;
#                   with --transfer: 64 MiB, 2 reps
#   --transfer      instead of the microbenchmarks: an object of --transfer-bytes (1 GiB)
#                   moved between two network-namespace hosts, Lumen's
#                   (build/bin/lumen_object_transfer_bench) and Ray's
#                   (bench/ray_object_transfer.py: `ray start --head` in one namespace,
#                   `ray start --address` in the other), each beside plain TCP between
#                   the same hosts in the same run; median of --transfer-reps (3). Needs root.
#                   Outputs: lumen_transfer.txt, ray_transfer.txt, compare_transfer.{md,json}
#   --scale         instead of the microbenchmarks: --scale-nodes (32) namespace hosts join a
#                   head and run --scale-tasks (10,000) SPREAD tasks, cold then warm, on Lumen
#                   (build/bin/lumen_scale_bench) and on Ray (bench/ray_scale.py); prints each
#                   side's registration and round times, head CPU time and nodes used. Needs
#                   root; Ray's nodes take ~260 MiB each. --quick: 4 nodes, 200 tasks.
#                   Outputs: lumen_scale.txt, ray_scale.txt
#
# This is a benchmark, not a test, and CI never runs it. It needs PyPI (pip) once:
# a virtual environment build/bench/ray-venv gets a pinned Ray (and ray-cpp).
# Everything it starts listens and talks on 127.0.0.1 only (with --transfer: inside the
# namespace hosts, on their 10.231.0.x addresses only), and it stops all of it.
# Outputs, all under build/bench/: ray_python.txt, ray_cpp.txt, lumen.txt,
# lumen.json (raw outputs and logs) and compare.md, compare.json (the table).
#
# Fairness: Ray runs its own harness (ray/_private/ray_microbenchmark_helpers.py:
# sleep 10 s, warm up ~1 s, 4 trials of ~2 s, mean and std of the trials) on
# bench/ray_microbenchmarks.py, a copy of ray_perf.py's definitions for the names
# Lumen implements; Lumen's harness (bench/harness.h) is the same without the
# pause. Both get --num-cpus CPUs. The C++ comparison uses the same harness
# (bench/ray_cpp/ray_cpp_microbenchmarks.cc).
set -euo pipefail

RAY_VERSION=2.60.0   # pinned; has cp311 manylinux x86_64 wheels (ray and ray-cpp)
NUMPY_VERSION=2.4.6  # ray_perf.py's benchmarks use numpy; the ray wheel does not require it

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/bench
VENV=$OUT/ray-venv
LUMEN=${LUMEN_BIN:-$ROOT/build/bin/lumen}
CXX=${CXX:-g++}

FILTER=""
NUM_CPUS=$(nproc)
SKIP_CPP=0
QUICK=0
TRANSFER=0
TRANSFER_BYTES=$((1 << 30))
TRANSFER_REPS=3
SCALE=0
SCALE_NODES=32
SCALE_TASKS=10000

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --filter=*) FILTER=${1#*=} ;;
    --filter) FILTER=${2:?--filter needs a value}; shift ;;
    --num-cpus=*) NUM_CPUS=${1#*=} ;;
    --num-cpus) NUM_CPUS=${2:?--num-cpus needs a value}; shift ;;
    --skip-ray-cpp) SKIP_CPP=1 ;;
    --quick) QUICK=1 ;;
    --transfer) TRANSFER=1 ;;
    --transfer-bytes=*) TRANSFER_BYTES=${1#*=} ;;
    --transfer-reps=*) TRANSFER_REPS=${1#*=} ;;
    --scale) SCALE=1 ;;
    --scale-nodes=*) SCALE_NODES=${1#*=} ;;
    --scale-tasks=*) SCALE_TASKS=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare_ray.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ! [[ $NUM_CPUS =~ ^[1-9][0-9]*$ ]]; then
  echo "compare_ray.sh: --num-cpus must be a positive integer, not '$NUM_CPUS'" >&2
  exit 2
fi

for n in "$TRANSFER_BYTES" "$TRANSFER_REPS" "$SCALE_NODES" "$SCALE_TASKS"; do
  if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
    echo "compare_ray.sh: --transfer-* and --scale-* take positive integers, not '$n'" >&2
    exit 2
  fi
done
((TRANSFER && QUICK)) && TRANSFER_BYTES=$((64 << 20)) TRANSFER_REPS=2
((SCALE && QUICK)) && SCALE_NODES=4 SCALE_TASKS=200
if ((TRANSFER && SCALE)); then
  echo "compare_ray.sh: --transfer and --scale are separate runs" >&2
  exit 2
fi

mkdir -p "$OUT"
((TRANSFER || SCALE)) || rm -f "$OUT"/ray_python.txt "$OUT"/ray_python.json "$OUT"/ray_cpp.txt \
      "$OUT"/lumen.txt "$OUT"/lumen.json "$OUT"/compare.md "$OUT"/compare.json
export PYTHONUNBUFFERED=1

# ---- every process this script starts is a child whose pid is in CHILD ----
CHILD=""
cleanup() {
  if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
    echo "compare_ray.sh: stopping pid $CHILD" >&2
    kill -TERM "$CHILD" 2>/dev/null || true   # Ray's driver calls ray.shutdown()
    for _ in $(seq 60); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  CHILD=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Lines worth showing live; the full output goes to the log file.
SHOW='per second|^ray version|^harness|^Ray C\+\+|^running Ray|^lumen|Error|error:|Traceback'

# run_logged LOG CMD...: runs CMD in the background with its output in LOG, shows the
# interesting lines as they come, and sets RC to its exit status.
run_logged() {
  local log=$1; shift
  : >"$log"
  "$@" >"$log" 2>&1 &
  CHILD=$!
  # The viewer runs in the background too, so that `wait` (which a trapped signal
  # interrupts) is what this shell blocks in; tail ends when the child does.
  { tail -n +1 -s 0.5 -f --pid="$CHILD" "$log" | grep --line-buffered -E "$SHOW" || true; } &
  local viewer=$!
  RC=0
  wait "$CHILD" || RC=$?
  CHILD=""
  wait "$viewer" 2>/dev/null || true
}

((TRANSFER || SCALE)) || echo "== Lumen vs Ray microbenchmarks: $NUM_CPUS CPUs each${FILTER:+, filter '$FILTER'}$( ((QUICK)) && echo ', QUICK smoke run')"

# ---- Ray, pinned, in its own virtual environment ----
if [[ ! -x $VENV/bin/python ]]; then
  echo "creating $VENV"
  python3 -m venv "$VENV"
fi
PY=$VENV/bin/python
have=$("$PY" -c 'import ray; print(ray.__version__)' 2>/dev/null || true)
if [[ $have != "$RAY_VERSION" ]] || ! "$PY" -c 'import numpy' 2>/dev/null; then
  echo "installing ray==$RAY_VERSION numpy==$NUMPY_VERSION into $VENV (from PyPI)"
  "$VENV/bin/pip" install --disable-pip-version-check -q \
    "ray==$RAY_VERSION" "numpy==$NUMPY_VERSION"
  have=$("$PY" -c 'import ray; print(ray.__version__)')
fi
echo "Ray version: $have (pinned $RAY_VERSION), Python $("$PY" -c 'import platform; print(platform.python_version())')"

# run_side NAME LOG BIN CMD...: one side of --transfer or --scale (BIN must exist), its output
# in LOG; a failure sets FAILED.
FAILED=0
run_side() {
  local name=$1 log=$2 bin=$3; shift 3
  echo
  echo "== $name: $*"
  if [[ ! -x $bin ]]; then
    echo "compare_ray.sh: $bin not found: build it first" >&2
    FAILED=1
    return
  fi
  run_logged "$log" timeout 1200 "$@"
  ((RC == 0)) || { FAILED=$RC; echo "$name exited with status $RC; log: $log"; }
}

# ---- --transfer: the object transfer between two namespace hosts, then the table ----
if ((TRANSFER)); then
  SHOW='_gbps|^ratio|listens on|Error|error:|Traceback'
  TRANSFER_BENCH=${LUMEN_TRANSFER_BENCH:-$ROOT/build/bin/lumen_object_transfer_bench}
  rm -f "$OUT"/lumen_transfer.txt "$OUT"/ray_transfer.txt "$OUT"/compare_transfer.md \
        "$OUT"/compare_transfer.json
  run_side Lumen "$OUT/lumen_transfer.txt" "$TRANSFER_BENCH" "$TRANSFER_BENCH" \
    --bytes="$TRANSFER_BYTES" --reps="$TRANSFER_REPS"
  run_side "Ray $have" "$OUT/ray_transfer.txt" "$TRANSFER_BENCH" "$PY" \
    "$ROOT/bench/ray_object_transfer.py" --bytes="$TRANSFER_BYTES" --reps="$TRANSFER_REPS" \
    --tcp-bench="$TRANSFER_BENCH"
  echo
  python3 "$ROOT/bench/compare_transfer.py" --lumen "$OUT/lumen_transfer.txt" \
    --ray "$OUT/ray_transfer.txt" --ray-version "$have" --out-dir "$OUT"
  exit $((FAILED != 0))
fi

# ---- --scale: many namespace nodes on one head, SPREAD tasks ----
if ((SCALE)); then
  SHOW='^registration|^tasks_|^idle|memory|Error|error:|Traceback'
  SCALE_BENCH=${LUMEN_SCALE_BENCH:-$ROOT/build/bin/lumen_scale_bench}
  rm -f "$OUT"/lumen_scale.txt "$OUT"/ray_scale.txt
  run_side Lumen "$OUT/lumen_scale.txt" "$SCALE_BENCH" "$SCALE_BENCH" \
    --nodes="$SCALE_NODES" --tasks="$SCALE_TASKS"
  run_side "Ray $have" "$OUT/ray_scale.txt" "$PY" "$PY" "$ROOT/bench/ray_scale.py" \
    --nodes="$SCALE_NODES" --tasks="$SCALE_TASKS"
  exit $((FAILED != 0))
fi

RAY_ARGS=(--num-cpus="$NUM_CPUS")
[[ -n $FILTER ]] && RAY_ARGS+=(--filter="$FILTER")
if ((QUICK)); then
  RAY_ARGS+=(--quick)
  HARNESS="QUICK smoke run (Ray: no pause, 0.1 s warm-up, 4 trials of 0.2 s; Lumen: its full harness): not a comparison"
else
  HARNESS="Ray's timeit: warm-up ~1 s, 4 trials of ~2 s, mean and std of the trials (Ray also pauses 10 s before each benchmark, Lumen does not)"
fi

echo
echo "== Ray $have (Python API): bench/ray_microbenchmarks.py"
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on these machines for an older OpenBLAS, slow a
# current numpy (Ray's array benchmarks): unset in this command only.
run_logged "$OUT/ray_python.txt" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
  "$PY" "$ROOT/bench/ray_microbenchmarks.py" "${RAY_ARGS[@]}" --json="$OUT/ray_python.json"
if ((RC != 0)); then
  echo "Ray (Python) exited with status $RC; log: $OUT/ray_python.txt"
fi

# ---- Ray's C++ API (ray-cpp), built here if it can be ----
CPP_STATUS=""
build_ray_cpp() {
  local log=$OUT/ray_cpp_build.log
  : >"$log"
  if ! "$PY" -c 'import os, ray; assert os.path.exists(os.path.join(os.path.dirname(ray.__file__), "cpp", "lib", "libray_api.so"))' 2>/dev/null; then
    echo "installing ray-cpp==$RAY_VERSION into $VENV (from PyPI)"
    if ! "$VENV/bin/pip" install --disable-pip-version-check -q "ray-cpp==$RAY_VERSION" >>"$log" 2>&1; then
      CPP_STATUS="not run: 'pip install ray-cpp==$RAY_VERSION' failed: $(grep -m1 -E 'ERROR|error' "$log" || tail -n1 "$log")"
      return 1
    fi
  fi
  RAY_CPP_DIR=$("$PY" -c 'import os, ray; print(os.path.join(os.path.dirname(ray.__file__), "cpp"))')
  local inc=$RAY_CPP_DIR/include lib=$RAY_CPP_DIR/lib
  if [[ ! -f $inc/ray/api.h || ! -f $lib/libray_api.so ]]; then
    CPP_STATUS="not run: the ray-cpp $RAY_VERSION wheel has no $inc/ray/api.h or $lib/libray_api.so"
    return 1
  fi
  if ! command -v "$CXX" >/dev/null; then
    CPP_STATUS="not run: no C++ compiler ('$CXX' not found; set CXX)"
    return 1
  fi
  local src=$ROOT/bench/ray_cpp/ray_cpp_microbenchmarks.cc dir=$OUT/ray_cpp
  RAY_CPP_BIN=$dir/ray_cpp_microbenchmarks
  RAY_CPP_LIB=$dir/ray_cpp_microbenchmarks.so
  mkdir -p "$dir"
  if [[ -x $RAY_CPP_BIN && -f $RAY_CPP_LIB && $RAY_CPP_BIN -nt $src && $RAY_CPP_BIN -nt $lib/libray_api.so ]]; then
    return 0
  fi
  echo "building $RAY_CPP_BIN against ray-cpp $RAY_VERSION"
  # Ray's C++ template builds with -std=c++17 and the old libstdc++ string ABI,
  # which libray_api.so uses. The same object is linked twice: as the driver and
  # as the library Ray's default_worker loads the remote functions from.
  if ! nice -n 10 "$CXX" -std=c++17 -O2 -fPIC -D_GLIBCXX_USE_CXX11_ABI=0 -I"$inc" \
      -c "$src" -o "$dir/bench.o" >>"$log" 2>&1; then
    CPP_STATUS="not run: compiling bench/ray_cpp/ray_cpp_microbenchmarks.cc with '$CXX' against ray-cpp $RAY_VERSION's headers failed: $(grep -m1 -E 'error' "$log" || tail -n1 "$log") (full log: $log)"
    return 1
  fi
  if ! "$CXX" -o "$RAY_CPP_BIN" "$dir/bench.o" -L"$lib" -lray_api -Wl,-rpath,"$lib" -pthread >>"$log" 2>&1 ||
     ! "$CXX" -shared -o "$RAY_CPP_LIB" "$dir/bench.o" -L"$lib" -lray_api -Wl,-rpath,"$lib" >>"$log" 2>&1; then
    CPP_STATUS="not run: linking against ray-cpp $RAY_VERSION's libray_api.so failed: $(grep -m1 -E 'error|undefined' "$log" || tail -n1 "$log") (full log: $log)"
    return 1
  fi
}

echo
if ((SKIP_CPP)); then
  CPP_STATUS="not run: --skip-ray-cpp"
  echo "== Ray C++ API: skipped (--skip-ray-cpp)"
else
  echo "== Ray $have (C++ API, ray-cpp): bench/ray_cpp/ray_cpp_microbenchmarks.cc"
  if build_ray_cpp; then
    run_logged "$OUT/ray_cpp.txt" "$PY" "$ROOT/bench/ray_microbenchmarks.py" \
      "${RAY_ARGS[@]}" --cpp-driver="$RAY_CPP_BIN" --cpp-lib="$RAY_CPP_LIB"
    notes=$(grep -E '^Ray C\+\+:' "$OUT/ray_cpp.txt" | sed 's/^Ray C++: //' | paste -sd ';' - | sed 's/;/; /g' || true)
    if ((RC == 0)); then
      CPP_STATUS="ok${notes:+ ($notes)}"
    else
      CPP_STATUS="ran with failures (exit status $RC): $notes (log: $OUT/ray_cpp.txt)"
    fi
  fi
  echo "Ray C++ API: $CPP_STATUS"
fi

# ---- Lumen ----
echo
echo "== Lumen: $LUMEN microbenchmark"
if [[ -x $LUMEN ]]; then
  LUMEN_ARGS=(microbenchmark --num-cpus="$NUM_CPUS" --json="$OUT/lumen.json")
  [[ -n $FILTER ]] && LUMEN_ARGS+=(--filter="$FILTER")
  run_logged "$OUT/lumen.txt" "$LUMEN" "${LUMEN_ARGS[@]}"
  if ((RC != 0)); then
    echo "Lumen exited with status $RC; log: $OUT/lumen.txt"
  fi
else
  echo "Lumen: $LUMEN not found (build it first); its column shows —"
fi

# ---- the table ----
TABLE_ARGS=()
[[ -n $FILTER ]] && TABLE_ARGS+=(--filter "$FILTER")
python3 "$ROOT/bench/compare_ray.py" "${TABLE_ARGS[@]}" \
  --ray "$OUT/ray_python.txt" \
  --ray-cpp "$OUT/ray_cpp.txt" \
  --ray-cpp-status "$CPP_STATUS" \
  --lumen "$OUT/lumen.txt" \
  --lumen-json "$OUT/lumen.json" \
  --ray-version "$have" \
  --num-cpus "$NUM_CPUS" \
  --harness "$HARNESS" \
  --out-dir "$OUT"
