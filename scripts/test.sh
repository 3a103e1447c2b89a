#!/usr/bin/env bash
# Installs, builds and runs every test: formatting, clang-tidy, the unit and integration
# suites, and the unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== formatting (clang-format) =="
mapfile -t sources < <(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run -Werror "${sources[@]}"; then
  echo "formatting differs: run clang-format -i on the files above" >&2
  exit 1
fi

echo "== build (warnings are errors) =="
LUMEN_BUILD_DIR=build scripts/build.sh -DLUMEN_WERROR=ON

echo "== static analysis (clang-tidy, .clang-tidy) =="
# Every source file the build compiles; any finding is an error (WarningsAsErrors in .clang-tidy).
mapfile -t tidy_sources < <(git ls-files '*.cc' | grep -vE '^(tests/compile_fail|examples/standalone|bench/ray_cpp)/')
if ! printf '%s\n' "${tidy_sources[@]}" |
    xargs -P "$(nproc)" -n 4 clang-tidy -p build --quiet 2>build/clang-tidy.log; then
  echo "clang-tidy found problems (above; its own log: build/clang-tidy.log)" >&2
  exit 1
fi

echo "== tests =="
scripts/setup-browser-test.sh build  # chromium, chromium-driver and Selenium for the browser test
(cd build && ctest --output-on-failure --timeout 600 -j1)

if [[ "${LUMEN_SKIP_SANITIZERS:-0}" != 1 ]]; then
  echo "== unit tests under address and undefined-behaviour sanitizers =="
  LUMEN_BUILD_DIR=build-asan LUMEN_BUILD_TYPE=Debug LUMEN_TARGETS=lumen_unit_tests scripts/build.sh \
    -DLUMEN_SANITIZE=ON -DLUMEN_WERROR=ON >/dev/null
  (cd build-asan && ctest --output-on-failure -L unit -j1)
fi
