#!/usr/bin/env bash
# Configures and builds Lumen into build/ (or $LUMEN_BUILD_DIR) with CMake, Ninja and ccache.
#   scripts/build.sh [extra cmake -D options...]     (LUMEN_TARGETS="a b": only those targets)
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/setup.sh"
BUILD_DIR=${LUMEN_BUILD_DIR:-build}
# Paths relative to the checkout in the cache key: worktrees and fresh clones share hits.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
# Debug info would otherwise put the checkout's directory into every key and defeat the above.
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
if [[ ! -f "$BUILD_DIR/build.ninja" ]] || (($# > 0)); then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${LUMEN_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
fi
# One build at a time on this machine: a shared lock serializes concurrent invocations.
# shellcheck disable=SC2086
flock /tmp/lumen-build.lock ninja -C "$BUILD_DIR" ${LUMEN_TARGETS:-}
