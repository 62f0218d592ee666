#!/usr/bin/env bash
# Long fuzz campaigns (issue 27, acceptance 2): each libFuzzer target in ./build-fuzz (built by
# scripts/fuzz-smoke.sh) runs until 1,000,000 executions or 30 minutes, one after another, from
# a working corpus seeded with build-fuzz/fuzz-seeds/<target>. Prints one line per target:
# executions, seconds, corpus files, and any crash file. Usage: scripts/fuzz-campaign.sh [target...]
set -uo pipefail
cd "$(dirname "$0")/../build-fuzz" || { echo "fuzz-campaign: run scripts/fuzz-smoke.sh first" >&2; exit 1; }
RUNS="${FUZZ_RUNS:-1000000}"
SECONDS_MAX="${FUZZ_SECONDS:-1800}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_tokenizer fuzz_checkpoint fuzz_tasks fuzz_hf_model fuzz_gguf fuzz_llama2c)
mkdir -p campaign
for t in "${targets[@]}"; do
  corpus="campaign/$t-corpus"
  mkdir -p "$corpus" "campaign/$t-crashes"
  start=$(date +%s)
  ./"$t" "$corpus" "fuzz-seeds/$t" -runs="$RUNS" -max_total_time="$SECONDS_MAX" -rss_limit_mb=2048 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="campaign/$t-crashes/" >"campaign/$t.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "campaign/$t.log" | grep -o '[0-9]*$')
  echo "$t rc=$rc executions=${execs:-?} seconds=$(( $(date +%s) - start )) corpus=$(ls "$corpus" | wc -l) crashes=$(ls "campaign/$t-crashes" | wc -l)"
done
