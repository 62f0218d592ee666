#!/usr/bin/env bash
# One device call (issue 24 acceptance 2): a synthetic model of a real shape (PRESET, default
# llama2-7b; llama3-8b: GQA, 14336 FFN, 128k vocabulary), 32 layers, LRC 10%, 128 x 2048
# calibration tokens, within the call's 600 s; with TESTS=1 test_cuda_solver runs first.
# GPU_MATH=tf32 runs the calibration forward on TF32 tensor cores (--gpu-math). Results in $OUT.
source scripts/device/unpack.sh
P=${PRESET:-llama2-7b}
T0=$(date +%s)
if [ "${TESTS:-0}" = 1 ]; then
  timeout 100 ./test_cuda_solver > $OUT/solver.log 2>&1; echo "test_cuda_solver rc $?" >> $OUT/gpu.txt
fi
S=$(date +%s)
./lrc synth --preset $P --out /root/s > /dev/null 2> $OUT/synth.err
echo "synth $P rc $? $(( $(date +%s) - S )) s" >> $OUT/gpu.txt
(nvidia-smi --query-gpu=memory.used --format=csv,noheader -l 5 > $OUT/smi.txt &)
LEFT=$(( 585 - ($(date +%s) - T0) ))
S=$(date +%s)
timeout $LEFT $TV ./lrc quantize --model /root/s --calib data/debtext-calib.txt --method lrc \
    --rank 0.1 --device cuda --gpu-math ${GPU_MATH:-fp32} --nsamples 128 --seq 2048 --out /root/q \
    --json > $OUT/q.json 2> $OUT/q.err
echo "quantize rc $? $(( $(date +%s) - S )) s (limit $LEFT)" >> $OUT/gpu.txt
pkill nvidia-smi; echo "peak nvidia-smi $(sort -n $OUT/smi.txt | tail -1)" >> $OUT/gpu.txt
cat $OUT/gpu.txt; [ -f $OUT/solver.log ] && grep -E "^\[  FAILED|Failure|Which is|Expected|PASSED" $OUT/solver.log | head -30
tail -c 2500 $OUT/q.err
bundle_out
