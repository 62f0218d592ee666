#!/usr/bin/env bash
# The README's test command: installs dependencies, fetches the second model, builds lrc and its
# Python package (into build/venv), runs ctest, then the Python tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -x scripts/fetch-models.sh ] && scripts/fetch-models.sh
scripts/build-python.sh
(cd build && ctest --output-on-failure -j "$(nproc)" "$@")
OMP_WAIT_POLICY=PASSIVE build/venv/bin/python -m pytest -q python/tests
scripts/fuzz-smoke.sh
