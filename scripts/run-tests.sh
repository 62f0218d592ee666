#!/usr/bin/env bash
# The README's test command: installs dependencies, fetches the second model, builds, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -x scripts/fetch-models.sh ] && scripts/fetch-models.sh
scripts/build.sh
(cd build && ctest --output-on-failure -j "$(nproc)" "$@")
scripts/fuzz-smoke.sh
