#!/usr/bin/env bash
# Builds lrc with its Python package and installs the package into the virtual environment
# build/venv (Debian's python3; the system Python is left alone, PEP 668). Afterwards:
#   . build/venv/bin/activate && python3 -c "import lrc; print(lrc.__version__)"
# The package is `pip install .` (scikit-build-core + nanobind from PyPI) run on the main build
# directory, so the extension links the very lrc_lib the CLI links (lrc.solve = lrc solve, bit
# for bit) and nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
VENV="$PWD/build/venv"
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p build
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
"${PIP[@]}" "scikit-build-core>=0.10" "nanobind>=2.0" numpy pytest
scripts/build.sh -DLRC_PYTHON=ON -DPython_EXECUTABLE="$VENV/bin/python"
# --no-build-isolation: the build tools installed above, whose paths stay valid in the cache
# of build/ between runs; the generator is the one build/ was made with.
CMAKE_GENERATOR="Unix Makefiles" "${PIP[@]}" --no-build-isolation --no-deps \
  --config-settings=build-dir="$PWD/build" --config-settings=cmake.define.LRC_PYTHON=ON .
"$VENV/bin/python" -c "import lrc; print('python package lrc', lrc.__version__, 'in', '$VENV')"
