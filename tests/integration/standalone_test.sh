#!/usr/bin/env bash
# Installs Lumen into a temporary prefix, builds examples/standalone against it with
# find_package(Lumen), and runs the program on a cluster started by the installed lumen.
#   standalone_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$1
SOURCE=$2
WORK=$(mktemp -d /tmp/lumen-standalone-XXXXXX)
CLUSTER="$WORK/cluster"
cleanup() {
  if [[ -x "$WORK/prefix/bin/lumen" ]]; then
    "$WORK/prefix/bin/lumen" stop --temp-dir="$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
cmake -S "$SOURCE/examples/standalone" -B "$WORK/app" -G Ninja \
  -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/app" >/dev/null

"$WORK/prefix/bin/lumen" start --head --port=0 --dashboard-port=0 --num-cpus=2 \
  --object-store-memory=268435456 --temp-dir="$CLUSTER" >/dev/null
output=$(timeout 120 "$WORK/app/app" --temp-dir="$CLUSTER")
echo "$output"
grep -q "midpoint 1 2" <<<"$output"
grep -q "Hello, Lumen!" <<<"$output"
echo "standalone project built against the installed Lumen and ran on a cluster"
