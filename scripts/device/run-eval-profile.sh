#!/usr/bin/env bash
# One device call (issue 24 acceptance 1): where a SmolLM2-sized evaluation's time goes. A
# SmolLM2-135M-shaped synthetic model (its speed does not depend on the weights), the whole
# wikitext2-test at 2048 tokens, FP and after RTN and LRC 10% quantizations (128 x 2048), each
# under LRC_CUDA_PROFILE=1 (per-operation device times on stderr).
source scripts/device/unpack.sh
./lrc synth --preset smollm2-135m --out /root/s135 > /dev/null 2> $OUT/synth.err
for row in fp rtn lrc; do
  S=$(date +%s); M=/root/s135
  if [ $row != fp ]; then
    R=""; [ $row = lrc ] && R="--rank 0.1"
    LRC_CUDA_PROFILE=1 ./lrc quantize --model /root/s135 --calib data/wikitext2-valid.txt --method $row $R \
      --device cuda --nsamples 128 --seq 2048 --out /root/q-$row --json > $OUT/q-$row.json 2> $OUT/q-$row.err
    echo "quantize $row rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt; M=/root/q-$row; S=$(date +%s)
  fi
  LRC_CUDA_PROFILE=1 ./lrc eval --model $M --data data/wikitext2-test.txt --seq 2048 --device cuda \
    --kernels sim --json > $OUT/e-$row.json 2> $OUT/e-$row.err
  echo "eval $row rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt
done
S=$(date +%s)
./lrc eval --model /root/s135 --data data/wikitext2-test.txt --seq 2048 --device cuda --kernels sim \
  --gpu-math tf32 --json > $OUT/e-fp-tf32.json 2> $OUT/e-fp-tf32.err
echo "eval fp --gpu-math tf32 rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt
cat $OUT/gpu.txt
for f in $OUT/e-*.err $OUT/q-*.err; do echo "== $f"; grep -A30 "LRC_CUDA_PROFILE" $f | tail -30; done
bundle_out
