#!/usr/bin/env bash
# Builds the peer of issue 26, llama.cpp, from source for the CPU of this machine:
# llama-bench, llama-perplexity and llama-quantize (GGML_NATIVE, OpenMP, no curl, no GPU).
# The source is the llama.cpp that the PyPI source distribution llama-cpp-python==0.3.36
# vendors (pip download --no-binary :all: --no-deps), so no git clone is needed.
# Everything lives in a cache directory outside the repo:
#   $LLAMA_CPP_DIR (default ${LRC_CACHE:-~/.cache/lrc}/llama-cpp)
#     llama_cpp_python-0.3.36.tar.gz, src/ (unpacked), build/bin/llama-{bench,perplexity,quantize}
# Prints the bin directory on stdout (progress on stderr). A no-op when the binaries exist.
# Usage: scripts/build-llama-cpp.sh [-j JOBS]
set -euo pipefail

VERSION="0.3.36"
JOBS="$(nproc)"
while [ $# -gt 0 ]; do
  case "$1" in
    -j) JOBS="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-llama-cpp: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

CACHE="${LRC_CACHE:-${HOME:-/root}/.cache/lrc}"
DIR="${LLAMA_CPP_DIR:-$CACHE/llama-cpp}"
SDIST="$DIR/llama_cpp_python-$VERSION.tar.gz"
SRC="$DIR/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$DIR/build"
BIN="$BUILD/bin"
TARGETS=(llama-bench llama-perplexity llama-quantize)

die() { echo "build-llama-cpp: error: $*" >&2; exit 1; }
log() { echo "build-llama-cpp: $*" >&2; }

have_all() { for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || return 1; done; }
if have_all; then
  log "binaries already built in $BIN"
  echo "$BIN"
  exit 0
fi

command -v cmake >/dev/null || die "cmake not found"
command -v python3 >/dev/null || die "python3 not found (needed for pip download)"
mkdir -p "$DIR" || die "cannot create $DIR"

if [ ! -f "$SDIST" ]; then
  log "downloading llama-cpp-python==$VERSION (source distribution) from PyPI ..."
  python3 -m pip download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$DIR" >&2 \
    || die "pip download of llama-cpp-python==$VERSION failed"
fi
[ -f "$SDIST" ] || die "$SDIST missing after pip download"

if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "unpacking $SDIST ..."
  mkdir -p "$DIR/src"
  tar -xzf "$SDIST" -C "$DIR/src" || die "cannot unpack $SDIST"
fi
[ -f "$SRC/CMakeLists.txt" ] || die "no vendored llama.cpp at $SRC"

log "configuring (CPU, native) in $BUILD ..."
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=OFF >&2 || die "cmake configure failed"
log "building ${TARGETS[*]} with -j$JOBS (minutes on 2 cores) ..."
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >&2 || die "build failed"
have_all || die "build finished but a binary is missing in $BIN"
log "done"
echo "$BIN"
