#!/usr/bin/env bash
# ablate.sh [DIR]: section 3 of docs/results.md (`make exp-ablate`), the paper's Figure 3 in miniature.
#
# Section 1's task (MQAR, gap 96 > window 32) and recipe (learned target, the
# model at lr 1e-3, the TTT parameters at 30x that), one thing changed per row:
#   chunk size C        8, 16, 32 (base), 64
#   TTT layers          layer 0 only, layer 1 only, both (base)
#   target parts        conv only (no P), P only (no conv: one learned offset-0 tap), both (base)
#   state size f        96, 192 (base), 384  (the fast weight is d x f)
# Every row's rate is searched (lib.sh's sweeps): every rate in RATES at seed 1,
# scored on validation data (the MQAR generator at --seed 999, a fork that neither
# the training streams nor the held-out test use), then the best rate at every seed
# in SEEDS (seed K is the data seed K and the weights seed K - 1; runs/NAME.lrRATE,
# NAME.lrRATE.s2, ...). The TTT parameters stay at 30x the rate, as in the recipe.
# Held-out accuracy and loss (--seed 1000): the table gives the mean over seeds and
# the range (min-max); results.json has every seed's numbers. Results:
# $DIR/results.json, $DIR/table.md, $DIR/rates.md (the search),
# $DIR/ablate_<group>.png (one plot per group).
#   env: STEPS (default 600), SEEDS (default "1 2 3"), RATES (default "3e-4 1e-3 3e-3 1e-2"),
#        EXP_EXTEND (rates tried below RATES while the lowest wins, default 2; lib.sh)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-ablate}
exp_mqar_setup
steps=${STEPS:-$(exp_size 600 4)}  # the recipe is past a loss of 0.5 by about step 160 (section 1)

# group | name | label | config edits
rows=(
    "chunk|c8|8|ttt_chunk=8"
    "chunk|c16|16|ttt_chunk=16"
    "chunk|base|32|"
    "chunk|c64|64|ttt_chunk=64"
    "layers|l0|layer 0|ttt_layers=[0]"
    "layers|l1|layer 1|ttt_layers=[1]"
    "layers|base|both|"
    "target|conv_only|conv only|ttt_proj=false"
    "target|proj_only|P only|ttt_conv_offsets=[0]"
    "target|base|conv + P|"
    "state|f96|96|intermediate_size=96"
    "state|base|192|"
    "state|f384|384|intermediate_size=384"
)
names=$(for r in "${rows[@]}"; do IFS='|' read -r _ n _ _ <<< "$r"; echo "$n"; done | sort -u)
seeds=${SEEDS:-1 2 3}
n_seeds=$(echo "$seeds" | wc -w)
rates=${RATES:-$(exp_size "3e-4 1e-3 3e-3 1e-2" "1e-3 3e-3")}
n_rates=$(echo "$rates" | wc -w)
exp_begin ablate "$dir" $(($(echo "$names" | wc -l) * ((n_rates + n_seeds) * (steps + 2) + 3 * n_seeds)))
mkdir -p "$dir/configs"

# search_run RUN RATE SEED: train config $name (set by the loop below) at RATE, seed SEED; its validation score.
search_run() {
    # shellcheck disable=SC2046  # the seed flags are two words each
    exp_train "$1" "$steps" --task mqar --task-opt "$task_opt" --config "$dir/configs/$name.json" --steps "$steps" \
        --batch "$batch" --seq-len "$seq" --lr "$2" --warmup 30 --ttt-lr-scale 30 $(exp_seed_flags "$3")
    exp_eval "$1" "$dir/runs/$1.valid.json" 2 --task mqar --task-opt "$task_opt" --seed 999 --batches "$eval_batches" \
        --batch 16 --seq-len "$seq"
}
# seed_run RUN RATE SEED: search_run, then the held-out evaluation the tables report.
seed_run() {
    search_run "$@"
    exp_eval "$1" "$dir/runs/$1.eval.json" 3 --task mqar --task-opt "$task_opt" --seed 1000 --batches "$eval_batches" \
        --batch 16 --seq-len "$seq"
}
# best_of NAME: the rate the search chose for NAME; per_seed NAME FUNCTION [ARGS]: exp_per_seed at it.
best_of() { exp_best_rate "$1" "$rates" exp_valid_loss; }
per_seed() { exp_per_seed "$1" "$(best_of "$1")" "${@:2}"; }

for name in $names; do
    edits=""
    for r in "${rows[@]}"; do
        IFS='|' read -r _ n _ e <<< "$r"
        if [ "$n" = "$name" ]; then edits=$e; fi
    done
    # shellcheck disable=SC2086
    exp_config "$base" "$dir/configs/$name.json" $edits
    exp_sweep_rates "$name" "$rates" search_run exp_valid_loss
    exp_progress "$name" "best rate on the validation data: $(best_of "$name")"
    exp_sweep_seeds "$name" "$(best_of "$name")" "$seeds" seed_run
done

# solved_step RUN: the first step with train loss < 0.5, steps + 1 when never (for means and plots).
solved_step() { local s; s=$(exp_first_step_below "$1" 0.5); [ "$s" = - ] && s=$((steps + 1)); echo "$s"; }
json_seeds() {  # json_seeds NAME: the seeds' runs as a JSON array
    local seed run out=""
    for seed in $seeds; do
        run=$(exp_run_name "$1" "$(best_of "$1")" "$seed")
        out+="${out:+, }{\"seed\": $seed, \"run\": \"$run\", \"eval\": $(cat "$dir/runs/$run.eval.json"), \"final_train_loss\": $(exp_final_loss "$run"), \"first_step_loss_below_0.5\": \"$(exp_first_step_below "$run" 0.5)\", \"train_wall_s\": $(exp_wall "$run")}"
    done
    echo "[$out]"
}

json_rows=""
{
    echo "Mean over $n_seeds seeds ($seeds), (min-max) when the seeds differ; per seed in results.json."
    echo
    echo "| group | value | run | config edits | lr | held-out accuracy | held-out loss | final train loss | first step with train loss < 0.5, per seed | train wall (s), mean |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
        IFS='|' read -r group name label edits <<< "$r"
        # shellcheck disable=SC2046  # one value per seed
        acc=$(exp_mean_range '%.1f%%' $(per_seed "$name" exp_eval_field accuracy | awk '{ print 100 * $1 }'))
        # shellcheck disable=SC2046
        echo "| $group | $label | \`$name\` | ${edits:--} | $(best_of "$name") | $acc | $(exp_mean_range %.3g $(per_seed "$name" exp_eval_field loss)) |" \
            "$(exp_mean_range %.3g $(per_seed "$name" exp_final_loss)) | $(per_seed "$name" exp_first_step_below 0.5 | paste -sd/ | sed 's|/| / |g') |" \
            "$(exp_seed_stats $(per_seed "$name" exp_wall) | awk '{ printf "%.0f", $1 }') |"
        json_rows+="${json_rows:+,}
  {\"group\": \"$group\", \"value\": \"$label\", \"name\": \"$name\", \"edits\": \"$edits\", \"lr\": $(best_of "$name"), \"rate_search\": $(exp_rate_search_json "$name" "$rates"), \"seeds\": $(json_seeds "$name")}"
    done
} > "$dir/table.md"
{
    echo "Validation loss (MQAR --seed 999, $eval_batches x 16 sequences, seed 1) per learning rate; * the best."
    echo
    columns=$(exp_rates_columns "$names" "$rates")
    exp_rates_head "group | value | run" "$columns"
    for r in "${rows[@]}"; do
        IFS='|' read -r group name label _ <<< "$r"
        exp_rates_row "$group | $label | \`$name\`" "$name" "$rates" exp_valid_loss "$columns"
    done
} > "$dir/rates.md"
for group in chunk layers target state; do
    {
        echo "# index label accuracy(mean min max over seeds) loss(mean) first_step_loss_below_0.5(mean min max; steps+1 when never)"
        i=0
        for r in "${rows[@]}"; do
            IFS='|' read -r g name label _ <<< "$r"
            if [ "$g" != "$group" ]; then continue; fi
            # shellcheck disable=SC2046  # one value per seed
            printf '%d "%s" %s %s %s\n' "$i" "$label" "$(exp_seed_stats $(per_seed "$name" exp_eval_field accuracy) | cut -d' ' -f1-3)" \
                "$(exp_seed_stats $(per_seed "$name" exp_eval_field loss) | cut -d' ' -f1)" "$(exp_seed_stats $(per_seed "$name" solved_step) | cut -d' ' -f1-3)"
            i=$((i + 1))
        done
    } > "$dir/ablate_$group.dat"
    case $group in
        chunk) title="chunk size C" ;; layers) title="which layers have TTT" ;; target) title="parts of the learned target" ;; state) title="state size f (fast weight d x f)" ;;
    esac
    cat > "$dir/ablate_$group.gp" << EOF
set terminal pngcairo size 640,400 font ",10"
set output "$dir/ablate_$group.png"
set title "MQAR gap 96, $steps steps, $n_seeds seeds (mean, bars min-max): $title"
set ylabel "held-out accuracy"
set y2label "first step with train loss < 0.5 (top: never)"
set yrange [0:1.05]
set y2range [0:$((steps + 1))]
set ytics nomirror
set y2tics
set boxwidth 0.5
set style fill solid 0.7
set grid ytics
set key below
plot "$dir/ablate_$group.dat" using 1:3:xtic(2) with boxes title "accuracy", \
     "" using 1:3:4:5 with yerrorbars lc black pt 0 notitle, \
     "" using 1:7:8:9 axes x1y2 with yerrorlines lw 2 pt 7 title "steps to train loss < 0.5"
EOF
    exp_plot "$dir/ablate_$group.gp"
done
printf '{"section": "ablate", "run": %s, "task": "mqar %s", "steps": %s, "rates": [%s], "rate_search": "seed 1, validation loss at --seed 999", "ttt_lr_scale": 30, "seeds": [%s], "seed_flags": "seed K: --seed K --init-seed K-1", "rows": [%s\n]}\n' \
    "$(exp_machine_json)" "$task_opt" "$steps" "$(echo "$rates" | tr -s ' ' ',')" "$(echo "$seeds" | tr -s ' ' ',')" "$json_rows" > "$dir/results.json"
cat "$dir/rates.md" "$dir/table.md"
exp_end
