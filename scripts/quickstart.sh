#!/usr/bin/env bash
# From a fresh clone: installs what is missing, builds, and estimates pi on an embedded
# local cluster (started and stopped by the job itself).
set -euo pipefail
cd "$(dirname "$0")/.."
# The same flags as scripts/test.sh, so that it reuses this build.
scripts/build.sh -DLUMEN_WERROR=ON
echo
echo "== lumen pi: Monte Carlo estimate on an embedded local cluster =="
build/bin/lumen pi --samples="${SAMPLES:-200000000}"
