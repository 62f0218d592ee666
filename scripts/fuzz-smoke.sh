#!/usr/bin/env bash
# Part of the README's test command: builds the libFuzzer targets (tests/fuzz/fuzz_*.cpp) with
# clang, ASan and UBSan into ./build-fuzz and runs each for a fixed number of inputs from its
# seed corpus (ctest label fuzz-smoke). Long campaigns: docs/results.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "fuzz-smoke: clang++ not found (apt-get install clang)" >&2; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DLRC_FUZZ=ON \
  -DLRC_BUILD_TESTS=OFF -DLRC_BUILD_BENCH=OFF -DLRC_CUDA=OFF >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$//')
cmake --build build-fuzz -j "$(nproc)" --target fuzz_make_seeds $targets
cd build-fuzz && ctest --output-on-failure -L fuzz-smoke
