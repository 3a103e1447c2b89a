#!/usr/bin/env bash
# Task events' cost on the fast path: single_client_tasks_async with recording on and off,
# alternating in one run (each on an embedded cluster of its own), and the ratio on / off.
# The issue's bar: on >= 0.8 x off.
#   bench/task_events_overhead.sh [--rounds=N] [--quick] [--num-cpus=N]
set -euo pipefail
cd "$(dirname "$0")/.."
LUMEN=${LUMEN:-build/bin/lumen}
ROUNDS=3
EXTRA=()
for arg in "$@"; do
  case "$arg" in
    --rounds=*) ROUNDS=${arg#--rounds=} ;;
    --quick) EXTRA+=(--quick) ;;
    --num-cpus=*) EXTRA+=("$arg") ;;
    *) echo "usage: $0 [--rounds=N] [--quick] [--num-cpus=N]" >&2; exit 2 ;;
  esac
done
TEMP=$(mktemp -d /tmp/lumen-events-bench-XXXXXX)
trap 'rm -rf "$TEMP"' EXIT

run() {  # run ON|OFF -> prints the tasks/s figure
  local value=1
  [[ $1 == OFF ]] && value=0
  LUMEN_TASK_EVENTS=$value "$LUMEN" microbenchmark --filter=single_client_tasks_async \
    --temp-dir="$TEMP" "${EXTRA[@]}" | awk '/^single_client_tasks_async per second/ {print $4}'
}

on=()
off=()
for ((i = 1; i <= ROUNDS; i++)); do
  off+=("$(run OFF)")
  on+=("$(run ON)")
  echo "round $i: events off ${off[-1]}/s, events on ${on[-1]}/s"
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
mean_off, mean_on = statistics.mean(off), statistics.mean(on)
ratio = mean_on / mean_off
print(f"single_client_tasks_async: events off {mean_off:,.0f}/s, events on {mean_on:,.0f}/s, "
      f"on/off = {ratio:.2f} (target >= 0.8): {'met' if ratio >= 0.8 else 'NOT met'}")
PY
