#!/usr/bin/env bash
# Installs what the dashboard's browser test needs, if missing: Debian's chromium and
# chromium-driver, and Selenium from PyPI in a venv under the build folder. Kept out of
# scripts/setup.sh so that the quick start never pulls a browser.
#   scripts/setup-browser-test.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${LUMEN_BUILD_DIR:-build}}
VENV="$BUILD_DIR/test-venv"

scripts/setup.sh chromium chromium-driver python3-venv

if [[ ! -x "$VENV/bin/python" ]]; then
  mkdir -p "$BUILD_DIR"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import selenium" 2>/dev/null; then
  echo "setup-browser-test: installing selenium into $VENV"
  "$VENV/bin/pip" install --quiet "selenium>=4.10,<5"
fi
