#!/usr/bin/env bash
# The README's main job: installs dependencies, builds, runs `lrc demo` on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/lrc demo "$@"
