#!/usr/bin/env bash
# For the lent GPU machine (no Debian libraries there): the CUDA build's binaries, the non-CUDA
# libraries `ldd` names, and the small data files, into .dev-gpu/pack.tar.xz (~12 MB; pass it to
# the device tool's `carry`: .gitignore keeps it out of git). The run-*.sh scripts
# beside this one unpack it under /root/p on the device.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=$(mktemp -d)
mkdir -p $T/p/lib $T/p/data .dev-gpu
for b in lrc test_cuda_solver test_cuda_backend test_cuda_w4a4 bench_w4a4; do
  [ -f build/$b ] && cp build/$b $T/p/
done
for b in $T/p/lrc $T/p/test_cuda_*; do ldd $b; done | awk '/=>/ {print $3}' | sort -u | \
  grep -v -E 'libc\.so|libm\.so|libstdc|libgcc_s|ld-linux|libpthread|libdl|librt|libcuda|libcublas|libcudart|libcusolver|libnccl|libnvJitLink|libcusparse|libnvrtc|libcufft|libcurand' | \
  while read -r l; do cp -L "$l" $T/p/lib/; done
for f in debtext-calib debtext-valid wikitext2-test wikitext2-valid; do cp ../shared/data/$f.txt $T/p/data/; done
tar -C $T -cJf .dev-gpu/pack.tar.xz p
rm -rf $T
ls -la .dev-gpu/pack.tar.xz
