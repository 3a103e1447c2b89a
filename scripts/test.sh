#!/usr/bin/env bash
# Installs, builds and runs every test: formatting, clang-tidy, the unit and integration
# suites, and the unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    the inner loop: formatting, the build and the unit tests only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
case "${1:-}" in
  "") ;;
  --quick) quick=1 ;;
  *)
    echo "usage: scripts/test.sh [--quick]" >&2
    exit 2
    ;;
esac
# Each phase's heading says how long the script has run, to keep an eye on its time budget.
phase() { printf '== %s (at %dm%02ds) ==\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)); }
scripts/setup.sh

phase "formatting (clang-format)"
mapfile -t sources < <(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run -Werror "${sources[@]}"; then
  echo "formatting differs: run clang-format -i on the files above" >&2
  exit 1
fi

phase "build (warnings are errors)"
LUMEN_BUILD_DIR=build scripts/build.sh -DLUMEN_WERROR=ON

if ((quick)); then
  phase "unit tests"
  (cd build && ctest --output-on-failure -L unit -j1)
  phase "done"
  exit 0
fi

phase "static analysis (clang-tidy, .clang-tidy), in the background while the tests run"
# Every source file of the product, its examples and benchmarks (not the tests: they are held
# to the compiler's warnings only, which halves the analysis time); any finding is an error
# (WarningsAsErrors in .clang-tidy). It runs at the lowest priority beside CTest (whose
# integration tests mostly wait on their clusters); its verdict is taken after the tests.
mapfile -t tidy_sources < <(git ls-files '*.cc' | grep -vE '^(tests|examples/standalone|bench/ray_cpp)/')
printf '%s\n' "${tidy_sources[@]}" |
  nice -n 19 xargs -P "$(nproc)" -n 4 clang-tidy -p build --quiet >build/clang-tidy.out 2>build/clang-tidy.log &
tidy_pid=$!

phase "tests"
scripts/setup-browser-test.sh build  # chromium, chromium-driver and Selenium for the browser test
tests_status=0
(cd build && ctest --output-on-failure --timeout 600 -j1) || tests_status=$?

phase "static analysis: verdict"
if ! wait "$tidy_pid"; then
  cat build/clang-tidy.out >&2
  echo "clang-tidy found problems (above; its own log: build/clang-tidy.log)" >&2
  exit 1
fi
if ((tests_status != 0)); then
  echo "tests failed (above)" >&2
  exit "$tests_status"
fi

if [[ "${LUMEN_SKIP_SANITIZERS:-0}" != 1 ]]; then
  phase "unit tests under address and undefined-behaviour sanitizers"
  LUMEN_BUILD_DIR=build-asan LUMEN_BUILD_TYPE=Debug LUMEN_TARGETS=lumen_unit_tests scripts/build.sh \
    -DLUMEN_SANITIZE=ON -DLUMEN_WERROR=ON >/dev/null
  (cd build-asan && ctest --output-on-failure -L unit -j1)
fi
phase "done"
