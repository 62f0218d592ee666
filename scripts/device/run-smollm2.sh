#!/usr/bin/env bash
# Issue 24 acceptance 1 on the real SmolLM2 (98 MB GGUF: more than one call's carry beside the
# pack). Here: `split -n 2 -d ~/.cache/lrc/SmolLM2-135M-Instruct.Q4_1.gguf .dev-gpu/g`; call 1
# carries .dev-gpu/g00 with the command `cp .dev-gpu/g00 /root/g00` (the machine must still be
# warm for call 2: within 30 s); call 2 carries .dev-gpu/pack.tar.xz and .dev-gpu/g01 and runs
# this script: the six rows (acceptance setting) and the paper's setting, fp32 and tf32.
source scripts/device/unpack.sh
cat /root/g00 "$REPO/.dev-gpu/g01" > /root/smol.gguf || exit 4
sha256sum /root/smol.gguf >> $OUT/gpu.txt
A="--model /root/smol.gguf --calib data/wikitext2-valid.txt --data data/wikitext2-test.txt --device cuda --jobs 1 --json"
for math in fp32 tf32; do
  S=$(date +%s)
  timeout 120 ./lrc demo $A --nsamples 32 --seq 2048 --max-chunks 16 --gpu-math $math \
    > $OUT/six-$math.json 2> $OUT/six-$math.err
  echo "six rows $math rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt
  S=$(date +%s)
  timeout 150 ./lrc demo $A --nsamples 128 --seq 2048 --max-chunks 0 --gpu-math $math \
    > $OUT/paper-$math.json 2> $OUT/paper-$math.err
  echo "paper setting $math rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt
done
cat $OUT/gpu.txt
bundle_out
