#!/usr/bin/env bash
# One device call (issue 24 acceptance 2): the Llama-3-8B shape (GQA, 14336 FFN, 128k
# vocabulary), 32 layers, LRC 10%, 128 x 2048 calibration tokens. Results in $OUT.
# GPU_MATH=tf32 runs the calibration forward on TF32 tensor cores (--gpu-math).
source scripts/device/unpack.sh
T0=$(date +%s)
./lrc synth --preset llama3-8b --out /root/s8b > /dev/null 2> $OUT/synth.err
echo "synth rc $? $(( $(date +%s) - T0 )) s" >> $OUT/gpu.txt
(nvidia-smi --query-gpu=memory.used --format=csv,noheader -l 5 > $OUT/smi.txt &)
LEFT=$(( 585 - ($(date +%s) - T0) ))
S=$(date +%s)
timeout $LEFT $TV ./lrc quantize --model /root/s8b --calib data/debtext-calib.txt --method lrc \
    --rank 0.1 --device cuda --gpu-math ${GPU_MATH:-fp32} --nsamples 128 --seq 2048 --out /root/q8b --json > $OUT/q8b.json 2> $OUT/q8b.err
echo "quantize rc $? $(( $(date +%s) - S )) s (limit $LEFT)" >> $OUT/gpu.txt
pkill nvidia-smi; echo "peak nvidia-smi $(sort -n $OUT/smi.txt | tail -1)" >> $OUT/gpu.txt
cat $OUT/gpu.txt; tail -c 2500 $OUT/q8b.err
