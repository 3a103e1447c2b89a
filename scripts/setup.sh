#!/usr/bin/env bash
# Installs the Debian packages Lumen builds and tests with, if any is missing; packages named
# as arguments too (scripts/setup-browser-test.sh names the browser's).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format clang-tidy
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libasio-dev libcereal-dev catch2 libcli11-dev
  nlohmann-json3-dev libspdlog-dev libxxhash-dev libedit-dev
  libcpp-httplib-dev libbenchmark-dev libsqlite3-dev sqlite3 libjemalloc-dev iproute2 procps
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
