#!/usr/bin/env bash
# run_experiments.sh: the MQAR comparison behind docs/results.md (`make experiments`).
#
# Models of equal size trained for equal steps on MQAR whose GAP (pair -> query
# distance) is larger than the sliding window, so attention alone cannot answer:
#   full attention | sliding window | SWA + TTT with each target.
# Accuracy is measured on held-out seeded batches (a different data stream from
# training). Everything is seeded: the same command gives the same numbers on
# the same machine and thread count.
#
#   src/tools/run_experiments.sh [OUT_DIR]     env: STEPS, BATCH, SEQ, PAIRS, GAP, SEED, MODELS
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/experiments}
steps=${STEPS:-400}; batch=${BATCH:-16}; seq=${SEQ:-256}; pairs=${PAIRS:-8}; gap=${GAP:-96}; seed=${SEED:-1}
models=${MODELS:-"mqar_full mqar_swa mqar_swa_ttt mqar_swa_ttt_lr3 mqar_swa_ttt_noproj mqar_swa_ttt_recon mqar_swa_ttt_next mqar_swa_ttt_recon_fixed"}
task_opt="pairs=$pairs,gap=$gap"
mkdir -p "$out"
table="$out/results.md"
{
  echo "| model | config | steps | final train loss | held-out accuracy | held-out loss | wall time (s) |"
  echo "|---|---|---|---|---|---|---|"
} > "$table"
for m in $models; do
  cfg=data/configs/$m.json
  [ -f "$cfg" ] || { echo "missing $cfg"; exit 1; }
  echo "== $m"
  rm -rf "${out:?}/$m"  # a fresh run: ittt train refuses an --out that already holds checkpoints
  start=$(date +%s.%N)
  build/ittt train --task mqar --task-opt "$task_opt" --config "$cfg" --out "$out/$m" --steps "$steps" \
    --batch "$batch" --seq-len "$seq" --lr 3e-3 --warmup 30 --seed "$seed" --json > "$out/$m.train.jsonl"
  end=$(date +%s.%N)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
  final=$(tail -n 1 "$out/$m.train.jsonl" | sed -E 's/.*"loss": ([0-9.eE+-]+).*/\1/')
  build/ittt eval --ckpt "$out/$m" --task mqar --task-opt "$task_opt" --seed 1000 --batches 8 --batch 16 --seq-len "$seq" --json \
    > "$out/$m.eval.json"
  acc=$(sed -E 's/.*"accuracy": ([0-9.]+).*/\1/' "$out/$m.eval.json")
  loss=$(sed -E 's/.*"loss": ([0-9.]+).*/\1/' "$out/$m.eval.json")
  echo "| $m | data/configs/$m.json | $steps | $final | $acc | $loss | $wall |" >> "$table"
  cat "$out/$m.eval.json"
done
echo
cat "$table"
echo "(written to $table)"
