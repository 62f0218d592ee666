#!/usr/bin/env bash
# One device call (issue 25 acceptance 4): prefill and decode tokens/s of a 4-layer
# Llama-2-7B-shaped model, FP16 through lrc's own GPU forward against its RTN W4A4 and LRC 10%
# checkpoints (--kernels real), and the kernel benchmark's M = 65,536 rows. Results in $OUT.
source scripts/device/unpack.sh
./lrc synth --preset llama2-7b --layers 4 --out /root/s > /dev/null 2> $OUT/synth.err
for m in rtn lrc; do
  R=""; [ $m = lrc ] && R="--rank 0.1"
  S=$(date +%s)
  ./lrc quantize --model /root/s --calib data/debtext-calib.txt --method $m $R --device cuda \
    --nsamples 32 --seq 2048 --out /root/q-$m --json > $OUT/q-$m.json 2> $OUT/q-$m.err
  echo "quantize $m rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt
done
for M in /root/s /root/q-rtn /root/q-lrc; do
  for P in 512 2048; do
    ./lrc speed --model $M --device cuda --kernels real --prefill $P --decode 64 --reps 3 --json \
      >> $OUT/speed.jsonl 2>> $OUT/speed.err
  done
done
timeout 200 ./bench_w4a4 --quick > $OUT/bench.txt 2>&1; echo "bench_w4a4 rc $?" >> $OUT/gpu.txt
cat $OUT/gpu.txt $OUT/speed.jsonl; tail -30 $OUT/bench.txt
bundle_out
