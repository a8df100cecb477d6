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
# Every row runs at each seed in SEEDS: seed K is the data seed K and the weights seed K - 1
# (seed 1 is the one-seed run of earlier reports; its runs keep their names, seed K's are
# ROW.sK); the curriculum row continues the short row of its own seed. The table gives
# mean (min-max) over seeds, results.json every seed.
#   env: SEEDS (default "1 2 3"; every row's size is in the table below)
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
    "longest_256|needle|$needle|256|24000|16|3e-3||n = 256, 16x the steps: the longest budget without the short haystack"
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
seeds=${SEEDS:-$(exp_size "1 2 3" "1 2")}
n_seeds=$(echo "$seeds" | wc -w)
units=0
for r in "${rows[@]}"; do
    field "$r"
    units=$((units + n_seeds * (f_n * f_steps * f_batch / 16384 + 1)))
done
exp_begin needle-train "$dir" "$units"
mkdir -p "$dir/configs"
exp_config "$base" "$dir/configs/large.json" hidden_size=128 intermediate_size=430 num_hidden_layers=4 num_attention_heads=8 \
    num_key_value_heads=4 'layer_types=["full_attention", "full_attention", "full_attention", "full_attention"]'

# row_run RUN "" SEED: one seed of the row in f_* (set by the loop below).
row_run() {
    local run=$1 seed=$3 steps batch start extra opt seed_flags
    steps=$(exp_size "$f_steps" 4)
    batch=$(exp_size "$f_batch" 2)
    start=(--config "$base")
    read -r -a seed_flags <<< "$(exp_seed_flags "$seed")"
    extra=()
    case $f_flags in
        from:*) start=(--ckpt "$(exp_last_step "$dir/runs/$(exp_run_name "${f_flags#from:}" "" "$seed")")")
                seed_flags=(--seed "$seed") ;;  # the weights come from the checkpoint
        config:*) start=(--config "$dir/configs/${f_flags#config:}.json") ;;
        ?*) read -r -a extra <<< "$f_flags" ;;
    esac
    opt=()
    [ -n "$f_opt" ] && opt=(--task-opt "$f_opt")
    exp_train "$run" $((f_n * f_steps * f_batch / 16384)) --task "$f_task" "${opt[@]}" "${start[@]}" --steps "$steps" \
        --batch "$batch" --seq-len "$f_n" --lr "$f_lr" --warmup 30 "${seed_flags[@]}" --log-every "$(exp_size 250 1)" "${extra[@]}"
    exp_eval "$run" "$dir/runs/$run.eval.json" 1 --task "$f_task" "${opt[@]}" --seed 1000 --batches "$(exp_size 4 1)" \
        --batch "$(exp_size 16 2)" --seq-len "$f_n"
}
for r in "${rows[@]}"; do
    field "$r"
    exp_sweep_seeds "$f_name" "" "$seeds" row_run
done

# loss_at RUN STEP: the training loss logged at STEP (nothing when the run is shorter).
loss_at() { grep -m 1 "\"step\": $2," "$dir/runs/$1.train.jsonl" | sed -E 's/.*"loss": ([0-9.eE+-]+).*/\1/' || true; }
# mean_of FORMAT: the mean of the values on stdin, or - when there are none.
mean_of() { awk -v f="$1" '{ s += $1; n++ } END { if (n) printf f, s / n; else printf "-" }'; }
# shellcheck disable=SC2046  # one value per seed
{
    echo "Mean over $n_seeds seeds ($seeds), (min-max) when they differ; every seed in results.json. The training loss at a step: that step's batch, the mean over seeds."
    echo
    echo "| row | what changes | task | n | steps | batch | lr | train loss at step 500 / 1500 / 3000 | final train loss | held-out loss | held-out accuracy | train wall (s), mean |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
        field "$r"
        printf '| `%s` | %s | %s %s | %s | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s |\n' "$f_name" "$f_what" "$f_task" "$f_opt" \
            "$f_n" "$(exp_size "$f_steps" 4)" "$(exp_size "$f_batch" 2)" "$f_lr" "$(exp_per_seed "$f_name" "" loss_at 500 | mean_of %.3f)" \
            "$(exp_per_seed "$f_name" "" loss_at 1500 | mean_of %.3f)" "$(exp_per_seed "$f_name" "" loss_at 3000 | mean_of %.3f)" \
            "$(exp_mean_range %.3f $(exp_per_seed "$f_name" "" exp_final_loss))" "$(exp_mean_range %.3f $(exp_per_seed "$f_name" "" exp_eval_field loss))" \
            "$(exp_mean_range %.1f%% $(exp_per_seed "$f_name" "" exp_eval_field accuracy | awk '{ print 100 * $1 }'))" \
            "$(exp_per_seed "$f_name" "" exp_wall | mean_of %.0f)"
    done
} > "$dir/table.md"
json_rows=""
for r in "${rows[@]}"; do
    field "$r"
    for seed in $seeds; do
        run=$(exp_run_name "$f_name" "" "$seed")
        json_rows+="${json_rows:+,}
  {\"row\": \"$f_name\", \"seed\": $seed, \"run\": \"$run\", \"what\": \"$f_what\", \"task\": \"$f_task\", \"task_opt\": \"$f_opt\", \"seq_len\": $f_n, \"steps\": $(exp_size "$f_steps" 4), \"batch\": $(exp_size "$f_batch" 2), \"lr\": $f_lr, \"final_train_loss\": $(exp_final_loss "$run"), \"train_wall_s\": $(exp_wall "$run"), \"eval\": $(cat "$dir/runs/$run.eval.json")}"
    done
done
printf '{"section": "needle-train", "run": %s, "seeds": "%s", "chance_loss": %s, "rows": [%s\n]}\n' "$(exp_machine_json)" "$seeds" \
    "$(awk 'BEGIN { printf "%.4f", log(32) }')" "$json_rows" > "$dir/results.json"
cat "$dir/table.md"
exp_end
