#!/usr/bin/env bash
# lrc vs llama.cpp on SmolLM2-135M, same machine, same cores (issue 26, acceptance 3).
#
# llama.cpp side (runs now):
#   * models: the GGUF as shipped (Q4_1 linears, Q8_0 embedding), and requantized from it with
#     llama-quantize --allow-requantize to Q4_0 and Q8_0 (requantizing starts from the Q4_1
#     weights, not from fp16: the Q8_0 file holds the Q4_1 grid, its perplexity is Q4_1's);
#   * speed: llama-bench, prefill 512 tokens (pp512) and decode 128 tokens (tg128), tokens/s,
#     1 and 2 threads, $REPS repetitions (llama-bench reports mean ± sd);
#   * perplexity: llama-perplexity on $TEXT with context $CTX, the first $CHUNKS chunks.
#     Protocol: llama.cpp scores only the SECOND half of each $CTX-token window (the first
#     half is context), with a BOS token per window.
# lrc side: `lrc speed` (pp/tg as llama-bench) and `lrc eval`, --kernels real and sim, on the FP
# model and on each lrc checkpoint of SmolLM2 given with --ckpt (e.g. from `lrc quantize`);
# the checkpoints also with `--lm-head q8` (the LM head in 8 bits, as llama.cpp stores its
# output matrix: a change of the model, so its perplexity is measured too).
#
# Usage: bench/compare-llama-cpp.sh [--out DIR] [--reps N] [--chunks N] [--text FILE] [--ckpt DIR]...
# Results: DIR (default /tmp/lrc-compare-llama-cpp)/{bench.md,bench.json,ppl.md}, also on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT=/tmp/lrc-compare-llama-cpp
REPS=3
PP=512
TG=128
CKPTS=()
CHUNKS=20
CTX=512
TEXT="$ROOT/../shared/data/wikitext2-test.txt"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --chunks) CHUNKS="$2"; shift 2 ;;
    --text) TEXT="$2"; shift 2 ;;
    --ckpt) CKPTS+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "compare-llama-cpp: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

die() { echo "compare-llama-cpp: error: $*" >&2; exit 1; }
log() { echo "compare-llama-cpp: $*" >&2; }

CACHE="${LRC_CACHE:-${HOME:-/root}/.cache/lrc}"
GGUF="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$GGUF" ] || "$ROOT/scripts/fetch-models.sh" >&2 || die "cannot fetch $GGUF"
[ -f "$TEXT" ] || die "no evaluation text at $TEXT (--text FILE)"
BIN="$("$ROOT/scripts/build-llama-cpp.sh")" || die "llama.cpp build failed"
mkdir -p "$OUT" "$CACHE/llama-cpp/models"

declare -A MODELS=([Q4_1]="$GGUF")
for q in Q4_0 Q8_0; do
  f="$CACHE/llama-cpp/models/SmolLM2-135M-Instruct.from-Q4_1.$q.gguf"
  if [ ! -f "$f" ]; then
    log "requantizing to $q ..."
    "$BIN/llama-quantize" --allow-requantize "$GGUF" "$f" "$q" >"$OUT/quantize-$q.log" 2>&1 \
      || die "llama-quantize $q failed (see $OUT/quantize-$q.log)"
  fi
  MODELS[$q]="$f"
done

log "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
: >"$OUT/bench.md"
: >"$OUT/bench.json"
for q in Q4_1 Q4_0 Q8_0; do
  log "llama-bench $q (pp512, tg128, threads 1,2, $REPS reps; load $(cut -d' ' -f1-3 /proc/loadavg)) ..."
  # One run: the markdown table on stdout, the same results as JSON lines on stderr.
  "$BIN/llama-bench" -m "${MODELS[$q]}" -p "$PP" -n "$TG" -t 1,2 -r "$REPS" -o md -oe jsonl \
    2> >(grep '^{' >>"$OUT/bench.json") | tee -a "$OUT/bench.md"
done
echo "load average after llama-bench: $(cat /proc/loadavg)" | tee -a "$OUT/bench.md"

echo "| model | tool | text | ctx | chunks | PPL |" | tee "$OUT/ppl.md"
echo "|---|---|---|---|---|---|" | tee -a "$OUT/ppl.md"
for q in Q4_1 Q4_0 Q8_0; do
  log "llama-perplexity $q ..."
  "$BIN/llama-perplexity" -m "${MODELS[$q]}" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$(nproc)" \
    >"$OUT/ppl-$q.log" 2>&1 || die "llama-perplexity $q failed (see $OUT/ppl-$q.log)"
  ppl="$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/ppl-$q.log")"
  echo "| SmolLM2-135M $q | llama.cpp | $(basename "$TEXT") | $CTX | $CHUNKS | $ppl |" | tee -a "$OUT/ppl.md"
done

# ---------------------------------------------------------------------------------------------
# lrc side: `lrc speed` measures what llama-bench does (pp: one pass over $PP tokens from an
# empty cache; tg: $TG single-token steps), same reps, threads 1 and 2, --kernels real and sim,
# on the FP model (the GGUF dequantized to fp32) and on each lrc checkpoint given with --ckpt.
# Perplexity: lrc's own protocol (consecutive non-overlapping windows of $CTX+1 tokens, every
# position after the first scored) on the same text, $CHUNKS windows.
LRC="$ROOT/build/lrc"
[ -x "$LRC" ] || die "no $LRC: build lrc first (scripts/build.sh)"
echo "| model | tool | backend | lm head | threads | pp$PP tok/s | tg$TG tok/s |" | tee "$OUT/lrc-bench.md"
echo "|---|---|---|---|---|---|---|" | tee -a "$OUT/lrc-bench.md"
# (kernels, lm head) per model: the FP model has no quantized linear (real = sim) and its head
# stays fp32; a checkpoint runs real and sim with the stored head, and real with the 8-bit one.
variants() { if [ "$1" = "$GGUF" ]; then echo "real:fp"; else echo "real:fp real:q8 sim:fp"; fi; }
for m in "$GGUF" "${CKPTS[@]}"; do
  for v in $(variants "$m"); do
    k="${v%%:*}"; h="${v##*:}"
    for t in 1 2; do
      j="$(OMP_NUM_THREADS=$t OMP_WAIT_POLICY=PASSIVE "$LRC" speed --model "$m" --kernels $k \
           --lm-head $h --prefill "$PP" --decode "$TG" --reps "$REPS" --json 2>/dev/null)" \
        || die "lrc speed failed on $m"
      echo "$j" >>"$OUT/lrc-bench.json"
      python3 -c "import json,sys; j=json.loads(sys.argv[1]); print('| %s | lrc | %s | %s | %d | %.1f ± %.1f | %.1f ± %.1f |' % (sys.argv[2], j['backend'], j['lm_head'], j['threads'], j['prefill_tok_s'], j['prefill_sd'], j['decode_tok_s'], j['decode_sd']))" "$j" "$(basename "$m")" | tee -a "$OUT/lrc-bench.md"
    done
  done
done
for m in "$GGUF" "${CKPTS[@]}"; do
  for v in $(variants "$m") sim:q8; do
    [ "$m" = "$GGUF" ] && [ "$v" = sim:q8 ] && continue
    k="${v%%:*}"; h="${v##*:}"
    ppl="$("$LRC" eval --model "$m" --kernels $k --lm-head $h --data "$TEXT" --seq "$CTX" \
           --max-chunks "$CHUNKS" --json 2>/dev/null | python3 -c "import json,sys; print('%.4f' % json.load(sys.stdin)['ppl'])")"
    echo "| $(basename "$m") ($k, lm head $h) | lrc | $(basename "$TEXT") | $CTX | $CHUNKS | $ppl |" | tee -a "$OUT/ppl.md"
  done
done
log "results in $OUT"
