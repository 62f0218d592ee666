# Sourced by the run-*.sh scripts on the device: the pack under /root/p, its libraries first.
cd /root && rm -rf p && tar xJf "$OLDPWD/.dev-gpu/pack.tar.xz" && cd /root/p || exit 3
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv > $OUT/gpu.txt
TV=""; [ -x /usr/bin/time ] && TV="/usr/bin/time -v"
