#!/usr/bin/env bash
# Installs the Debian 12 packages lrc builds and tests with. Safe to run again.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
PKGS="build-essential clang cmake pkg-config git python3 python3-pip python3-venv python3-dev unzip
  libopenblas-dev libopenblas-openmp-dev liblapacke-dev libomp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libbenchmark-dev libsentencepiece-dev libpcre2-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
