#!/usr/bin/env bash
# text.sh [DIR]: section 2 of docs/results.md (`make exp-text`), the paper's Figure 2 in miniature.
#
# Byte-level language models on real text (src/tools/exp/corpus.sh: the libstdc++
# headers of Debian 12, split train / held-out by file), of equal parameter count
# (the plain models' MLP is wider by what the TTT parameters take) and trained on
# the same tokens: full attention, sliding window (64), sliding window + In-Place
# TTT with the learned target. Every model at lr 3e-3; the TTT parameters at 10x
# (3e-2, the absolute rate of section 1's recipe). Metric: the mean loss on the same final 64 bytes of held-out
# windows as the context before them grows from 0 to 960 bytes (tasks.md's text
# metric: score_last=64, max_length=1024). Results: $DIR/results.json, $DIR/table.md,
# $DIR/context.png. Section 5 (continual.sh) starts from this section's SWA model.
#   env: STEPS (default 1500)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-text}
steps=${STEPS:-$(exp_size 1500 4)}
models="full swa swa_ttt"
exp_begin text "$dir" 0
exp_text_setup
EXP_UNITS=$((3 * (steps + 5 * n_len)))

for m in $models; do
    scale=1
    [ "$m" = swa_ttt ] && scale=10
    exp_train "$m" "$steps" --task text --task-opt "$train_opt" --config "data/configs/exp/text_$m.json" --steps "$steps" \
        --batch "$batch" --seq-len "$seq" --lr 3e-3 --warmup 50 --ttt-lr-scale "$scale" --seed 1
    exp_text_evals "$m"
done

# ---- table, data, plot, results.json
{
    printf '| model | config | parameters |'
    for n in $lengths; do printf ' n = %s |' "$n"; done
    printf ' final train loss | train wall (s) |\n|---|---|---|'
    for _ in $lengths; do printf -- '---|'; done
    printf -- '---|---|\n'
    for m in $models; do
        params=$("$EXP_BIN" init --config "data/configs/exp/text_$m.json" --out "$dir/params.tmp" | sed -E 's/.*: ([0-9]+) parameters.*/\1/')
        rm -rf "$dir/params.tmp"
        printf '| %s | `data/configs/exp/text_%s.json` | %s |' "$m" "$m" "$params"
        exp_text_losses "$m"
        printf ' %s | %s |\n' "$(exp_final_loss "$m")" "$(exp_wall "$m")"
    done
} > "$dir/table.md"
exp_context_plot "Held-out loss on the final 64 bytes vs the context before them (window 64)" \
    full="full attention" swa="sliding window" swa_ttt="SWA + TTT (learned target)"
json_rows=""
for m in $models; do
    json_rows+="${json_rows:+,}
  {\"model\": \"$m\", \"config\": \"data/configs/exp/text_$m.json\", \"final_train_loss\": $(exp_final_loss "$m"), \"train_wall_s\": $(exp_wall "$m"), \"evals\": [$(exp_text_evals_json "$m")]}"
done
printf '{"section": "text", "run": %s, "corpus": %s, "steps": %s, "batch": %s, "seq_len": %s, "models": [%s\n]}\n' \
    "$(exp_machine_json)" "$(cat "$dir/corpus/corpus.json")" "$steps" "$batch" "$seq" "$json_rows" > "$dir/results.json"
cat "$dir/table.md"
exp_end
