#!/usr/bin/env bash
# Configures and builds lrc into ./build (Release, warnings as errors when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
WERROR=OFF
[ "${CI:-}" = "true" ] && WERROR=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLRC_WERROR=$WERROR "$@" >/dev/null
cmake --build build -j "$(nproc)"
