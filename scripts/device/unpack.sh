# Sourced by the run-*.sh scripts on the device: the pack under /root/p, its libraries first.
# The device tool brings back only a few files of $OUT: bundle_out (the scripts' last step)
# packs them into $OUT/out.tgz.
REPO=$PWD  # the checkout the device tool runs in
cd /root && rm -rf p && tar xJf "$REPO/.dev-gpu/pack.tar.xz" && cd /root/p || exit 3
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv > $OUT/gpu.txt
TV=""; [ -x /usr/bin/time ] && TV="/usr/bin/time -v"
bundle_out() {
  (cd "$OUT" && tar czf /root/out.tgz . && find . -mindepth 1 -delete && mv /root/out.tgz .)
}
