#!/usr/bin/env bash
# needle-train.sh [DIR]: section 4's second question (`make exp-needle-train`): what makes the
# needle task trainable for full attention in miniature?
#
# Section 4's full-attention model ends its training at chance (loss ln 32 = 3.466, 32 values)
# with the repeated-pattern haystack. This section changes one thing at a time from that run
# and measures whether the model leaves chance: a short haystack (n = 64, the needles and
# queries nearly fill it), a curriculum (the short model continued at n = 256), more needles
# per sequence, a longer budget, a larger learning rate, 4x the batch, a single needle, a
# random haystack, a larger model (d = 128, 4 layers), no weight decay. Two controls on the
# same model and budget tell the task from the training: MQAR (a key and its value adjacent)
# and the plain induction task (a random sequence repeated), which need only an induction head.
# Each row: the training loss logged at steps 500, 1500, 3000 (one batch's) and the end, and held-out accuracy and
# loss at its own length (--seed 1000). Results: $DIR/results.json, $DIR/table.md.
#   env: none (every row's size is in the table below)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-needle-train}
base=data/configs/exp/mqar_full.json
needle="keys=4,values=4,queries=4,depth=-1,filler=pattern"  # section 4's training task

# name | task | task options | n | steps | batch | lr | flags | what changes
rows=(
    "base|needle|$needle|256|1500|16|3e-3||section 4's full-attention training"
    "short|needle|$needle|64|1500|16|3e-3||a short haystack: n = 64"
    "curriculum|needle|$needle|256|1500|16|3e-3|from:short|the short model, continued at n = 256"
    "more_needles|needle|keys=8,values=2,queries=8,depth=-1,filler=pattern|256|1500|16|3e-3||8 needles of 2 values, all queried"
    "longer|needle|$needle|64|6000|16|3e-3||n = 64, 4x the steps"
    "longest|needle|$needle|64|24000|16|3e-3||n = 64, 16x the steps"
    "lr_1e-2|needle|$needle|64|3000|16|1e-2||n = 64, lr 1e-2"
    "batch_64|needle|$needle|64|3000|64|3e-3||n = 64, 4x the batch"
    "one_needle|needle|keys=1,values=4,queries=1,depth=-1,filler=pattern|64|3000|16|3e-3||n = 64, one needle of 4 values"
    "random|needle|keys=4,values=4,queries=4,depth=-1,filler=random|64|3000|16|3e-3||n = 64, a random haystack"
    "larger|needle|$needle|64|3000|16|1e-3|config:large|n = 64, d = 128, 4 layers, 8 heads (lr 1e-3)"
    "no_decay|needle|$needle|64|3000|16|3e-3|--weight-decay 0|n = 64, weight decay 0"
    "mqar|mqar|pairs=4,gap=8|64|3000|16|3e-3||control: MQAR, 4 pairs (the value right after its key)"
    "induction|induction||64|3000|16|3e-3||control: a random sequence repeated"
)
field() { IFS='|' read -r f_name f_task f_opt f_n f_steps f_batch f_lr f_flags f_what <<< "$1"; }
units=0
for r in "${rows[@]}"; do
    field "$r"
    units=$((units + f_n * f_steps * f_batch / 16384 + 1))
done
exp_begin needle-train "$dir" "$units"
mkdir -p "$dir/configs"
exp_config "$base" "$dir/configs/large.json" hidden_size=128 intermediate_size=430 num_hidden_layers=4 num_attention_heads=8 \
    num_key_value_heads=4 'layer_types=["full_attention", "full_attention", "full_attention", "full_attention"]'

for r in "${rows[@]}"; do
    field "$r"
    steps=$(exp_size "$f_steps" 4)
    batch=$(exp_size "$f_batch" 2)
    start=(--config "$base")
    extra=()
    case $f_flags in
        from:*) start=(--ckpt "$(exp_last_step "$dir/runs/${f_flags#from:}")") ;;
        config:*) start=(--config "$dir/configs/${f_flags#config:}.json") ;;
        ?*) read -r -a extra <<< "$f_flags" ;;
    esac
    opt=()
    [ -n "$f_opt" ] && opt=(--task-opt "$f_opt")
    exp_train "$f_name" $((f_n * f_steps * f_batch / 16384)) --task "$f_task" "${opt[@]}" "${start[@]}" --steps "$steps" \
        --batch "$batch" --seq-len "$f_n" --lr "$f_lr" --warmup 30 --seed 1 --log-every "$(exp_size 250 1)" "${extra[@]}"
    exp_eval "$f_name" "$dir/runs/$f_name.eval.json" 1 --task "$f_task" "${opt[@]}" --seed 1000 --batches "$(exp_size 4 1)" \
        --batch "$(exp_size 16 2)" --seq-len "$f_n"
done

# The training loss logged at STEP (- when the run is shorter).
loss_at() {
    local line
    line=$(grep -m 1 "\"step\": $2," "$dir/runs/$1.train.jsonl" || true)
    if [ -n "$line" ]; then sed -E 's/.*"loss": ([0-9.eE+-]+).*/\1/' <<< "$line" | awk '{ printf "%.3f", $1 }'; else echo -; fi
}
{
    echo "| row | what changes | task | n | steps | batch | lr | train loss at step 500 / 1500 / 3000 | final train loss | held-out loss | held-out accuracy | train wall (s) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
        field "$r"
        ev=$dir/runs/$f_name.eval.json
        printf '| `%s` | %s | %s %s | %s | %s | %s | %s | %s / %s / %s | %.3f | %.3f | %.1f%% | %s |\n' "$f_name" "$f_what" "$f_task" "$f_opt" \
            "$f_n" "$(exp_size "$f_steps" 4)" "$(exp_size "$f_batch" 2)" "$f_lr" "$(loss_at "$f_name" 500)" "$(loss_at "$f_name" 1500)" \
            "$(loss_at "$f_name" 3000)" "$(exp_final_loss "$f_name")" "$(exp_field "$ev" loss)" \
            "$(awk -v a="$(exp_field "$ev" accuracy)" 'BEGIN { printf "%.1f", 100 * a }')" "$(exp_wall "$f_name")"
    done
} > "$dir/table.md"
json_rows=""
for r in "${rows[@]}"; do
    field "$r"
    json_rows+="${json_rows:+,}
  {\"row\": \"$f_name\", \"what\": \"$f_what\", \"task\": \"$f_task\", \"task_opt\": \"$f_opt\", \"seq_len\": $f_n, \"steps\": $(exp_size "$f_steps" 4), \"batch\": $(exp_size "$f_batch" 2), \"lr\": $f_lr, \"final_train_loss\": $(exp_final_loss "$f_name"), \"train_wall_s\": $(exp_wall "$f_name"), \"eval\": $(cat "$dir/runs/$f_name.eval.json")}"
done
printf '{"section": "needle-train", "run": %s, "chance_loss": %s, "rows": [%s\n]}\n' "$(exp_machine_json)" \
    "$(awk 'BEGIN { printf "%.4f", log(32) }')" "$json_rows" > "$dir/results.json"
cat "$dir/table.md"
exp_end
