#!/usr/bin/env bash
# needle.sh [DIR]: section 4 of docs/results.md (`make exp-needle`), RULER-style needles in miniature.
#
# The needle task of docs/tasks.md: [MAGIC] key [IS] value(s) hidden in a repeated-
# pattern haystack, queried at the end. Three models of equal parameter count and
# training (the MQAR model of section 1, window 32): full attention, sliding window,
# sliding window + In-Place TTT with the learned target (its TTT parameters at 30x
# the rate, section 1's recipe). Every model's rate is searched (lib.sh's sweeps):
# every rate in RATES at seed 1, scored by the loss on validation data (the training
# task at the training length, --seed 999: neither a training stream nor the held-out
# test), then the best rate at every seed. One training task for all (4 needles of 4 values, all 4
# queried, at uniform random depths, n = 256: 16 scored tokens per sequence; a
# single needle scores 1, too few to learn from in this budget), then held-out
# scoring of three variants: single (one needle, one value), multi-key (4 needles,
# one queried), multi-value (one needle with 4 values, all to recall), at depths
# 0, 25, 50, 75, 100% and lengths from below the window (24) to 8x it (256).
# Then the edge probe (below, at cells=): single needles at the training length around the
# last position a training needle can start. Results: $DIR/results.json, $DIR/table.md (its
# last table is the edge probe), $DIR/rates.md (the search), $DIR/heatmaps.png.
# FILLER=random: the haystack is random tokens (never a key or a value) instead of
# a repeated pattern; `make exp-needle` runs both (out/exp-needle, out/exp-needle-random).
# TRAIN_LEN=64 STEPS=24000: the long budget on short sequences, under which full attention
# learns the format too (`make exp-needle-train` found it; `make exp-needle` runs it as its
# third part, out/exp-needle-long): the baselines then work inside their reach.
# INIT_FROM=out/exp-needle-long TRAIN_LEN=256 STEPS=3000 (the fourth part, out/exp-needle-long256):
# those models continued on n = 256, whether the format learned at 64 carries to 8x the window.
# Every model trains at each seed in SEEDS: seed K is the data seed K and the weights seed
# K - 1 (exp_seed_flags), its runs named MODEL.lrRATE.sK (seed 1: MODEL.lrRATE); with
# INIT_FROM there is no search: seed K continues INIT_FROM's run of the same name, at
# the rate INIT_FROM chose.
# The cells are the mean over seeds; the summary table (accuracy averaged over the depths)
# gives mean (min-max) over seeds; results.json has every seed.
#   env: STEPS (default 1500), FILLER (pattern | random, default pattern), TRAIN_LEN (default 256),
#        INIT_FROM (default: none, each model from its config), SEEDS (default "1 2 3"),
#        RATES (default "3e-4 1e-3 3e-3 1e-2"), EXP_EXTEND (rates tried below RATES while the lowest wins, default 2; lib.sh),
#        MODELS (default "full swa swa_ttt"), TRAIN_QUERIES (the training task's queries, default 4;
#        MODELS=full TRAIN_QUERIES=2 is the fifth part: does the edge move with the training layout?)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-needle}
steps=${STEPS:-$(exp_size 1500 4)}
train_len=${TRAIN_LEN:-256}
batch=$(exp_size 16 2)
eval_batches=$(exp_size 2 1)
eval_batch=$(exp_size 16 2)
depths=$(exp_size "0 25 50 75 100" "0 100")
lengths=$(exp_size "24 64 128 256" "24 64")
models=${MODELS:-full swa swa_ttt}
n_models=$(echo "$models" | wc -w)
variants="single multikey multivalue"
opts_of() {
    case $1 in
        single) echo "keys=1,values=1,queries=1" ;;
        multikey) echo "keys=4,values=1,queries=1" ;;
        multivalue) echo "keys=1,values=4,queries=1" ;;
    esac
}
cells=$(($(echo "$depths" | wc -w) * $(echo "$lengths" | wc -w)))
train_queries=$(exp_count TRAIN_QUERIES "${TRAIN_QUERIES:-4}" 1)
# The edge probe. The training task's needles (7 tokens each) lie in the haystack
# before its Q queries (7 tokens each), so a training needle starts at position
# train_len - 7 Q - 6 at the latest (train_len - 34 for Q = 4): the edge. A model that has
# learned where needles stand in the training sequences, not how to match their keys,
# recalls none past the edge. Single needles at n = train_len, placed from 16
# positions before the edge to 16 after it, as far as a single needle fits (the depth
# that puts a needle nearest there; positions are whole percent of the filler, so
# near, not exact).
edge=$((train_len - 7 * train_queries - 6))
edge_fill=$((train_len - 8))  # filler tokens of a single needle's sequence (8: its needle and query)
edge_offsets=$(for off in $(exp_size "-16 -8 -4 0 2 4 8 16" "-4 4"); do
    [ $((edge + off)) -lt 1 ] || [ $((edge + off)) -gt $((edge_fill + 1)) ] || printf '%s ' "$off"
done)
n_edge=$(echo "$edge_offsets" | wc -w)
# edge_depth OFFSET: the depth (%) nearest edge + OFFSET; edge_position DEPTH: where that needle starts.
edge_depth() { echo $((((edge + $1 - 1) * 100 + edge_fill / 2) / edge_fill)); }
edge_position() { echo $((1 + ($1 * edge_fill + 50) / 100)); }
filler=${FILLER:-pattern}
train_opt="keys=4,values=4,queries=$train_queries,depth=-1,filler=$filler"
seeds=${SEEDS:-$(exp_size "1 2 3" "1 2")}
n_seeds=$(echo "$seeds" | wc -w)
rates=${RATES:-$(exp_size "3e-4 1e-3 3e-3 1e-2" "1e-3 3e-3")}
n_searched=$(echo "$rates" | wc -w)
[ -z "${INIT_FROM:-}" ] || n_searched=0
exp_begin needle "$dir" $((n_models * (n_searched + n_seeds) * (steps + 2) + n_seeds * n_models * (3 * cells + n_edge)))

# searched_loss RUN: RUN's validation loss in the folder whose search chose the rates.
searched_loss() { exp_field "${INIT_FROM:-$dir}/runs/$1.valid.json" loss; }
# best_of MODEL: the rate chosen for MODEL: the search's here, or INIT_FROM's (run with the same RATES).
best_of() { exp_best_rate "$1" "$rates" searched_loss "${INIT_FROM:-$dir}"; }

# search_run RUN RATE SEED: train model $m ($scale set by the loop below) at RATE, seed SEED; its validation loss.
search_run() {
    local run=$1 seed=$3
    local start=(--config "data/configs/exp/mqar_$m.json") seed_flags
    read -r -a seed_flags <<< "$(exp_seed_flags "$seed")"
    # INIT_FROM=DIR: continue DIR's trained model of the same name and seed (a longer-sequence phase)
    if [ -n "${INIT_FROM:-}" ]; then
        start=(--ckpt "$(exp_last_step "$INIT_FROM/runs/$run")")
        seed_flags=(--seed "$seed")  # the weights come from the checkpoint
    fi
    exp_train "$run" "$steps" --task needle --task-opt "$train_opt" "${start[@]}" \
        --steps "$steps" --batch "$batch" --seq-len "$train_len" --lr "$2" --warmup 30 --ttt-lr-scale "$scale" "${seed_flags[@]}"
    exp_eval "$run" "$dir/runs/$run.valid.json" 2 --task needle --task-opt "$train_opt" --seed 999 --batches "$eval_batches" \
        --batch "$eval_batch" --seq-len "$train_len"
}

# seed_run RUN RATE SEED: search_run, then score every cell and the edge probe.
seed_run() {
    local run=$1 v n dp off
    search_run "$@"
    for v in $variants; do
        for n in $lengths; do
            for dp in $depths; do
                exp_eval "$run" "$dir/runs/${v}_$run.n$n.d$dp.eval.json" 1 --task needle --task-opt "$(opts_of "$v"),depth=$dp,filler=$filler" \
                    --seed 1000 --batches "$eval_batches" --batch "$eval_batch" --seq-len "$n"
            done
        done
    done
    for off in $edge_offsets; do
        dp=$(edge_depth "$off")
        exp_eval "$run" "$dir/runs/edge_$run.d$dp.eval.json" 1 --task needle --task-opt "$(opts_of single),depth=$dp,filler=$filler" \
            --seed 1000 --batches "$eval_batches" --batch "$eval_batch" --seq-len "$train_len"
    done
}

for m in $models; do
    scale=1
    if [ "$m" = swa_ttt ]; then scale=30; fi  # section 1's recipe: the TTT parameters at 30x
    if [ -z "${INIT_FROM:-}" ]; then
        exp_sweep_rates "$m" "$rates" search_run exp_valid_loss
        exp_progress "$m" "best rate on the validation data: $(best_of "$m")"
    fi
    exp_sweep_seeds "$m" "$(best_of "$m")" "$seeds" seed_run
done
# chosen[MODEL]: the rate chosen for MODEL, looked up once for the tables below (each
# lookup reads every rate's validation score); per_seed MODEL FUNCTION [ARGS]: exp_per_seed at it.
declare -A chosen
for m in $models; do chosen[$m]=$(best_of "$m"); done
per_seed() { exp_per_seed "$1" "${chosen[$1]}" "${@:2}"; }

# cell_accuracy RUN V N DP: RUN's held-out accuracy on variant V at length N and depth DP.
cell_accuracy() { exp_field "$dir/runs/${2}_$1.n$3.d$4.eval.json" accuracy; }
# edge_accuracy RUN DP: RUN's accuracy in the edge probe at depth DP, in %.
edge_accuracy() { awk -v a="$(exp_field "$dir/runs/edge_$1.d$2.eval.json" accuracy)" 'BEGIN { print 100 * a }'; }
# cell_mean V M N DP: the cell's mean accuracy over seeds.
# shellcheck disable=SC2046  # one value per seed
cell_mean() { exp_seed_stats $(per_seed "$2" cell_accuracy "$1" "$3" "$4") | cut -d' ' -f1; }
# length_accuracy RUN V N: RUN's accuracy on variant V at length N averaged over the depths, in %.
length_accuracy() {
    local dp
    for dp in $depths; do cell_accuracy "$1" "$2" "$3" "$dp"; done | awk '{ s += $1 } END { print 100 * s / NR }'
}

# ---- tables (accuracy, %), heat map data, plot, results.json
# shellcheck disable=SC2046  # one value per seed
{
    echo "Held-out accuracy (%) averaged over the depths ($depths), mean over $n_seeds seeds ($seeds), (min-max) when they differ"
    echo
    exp_table_head "variant | model" "n =" "$lengths" "lr | final train loss"
    for v in $variants; do
        for m in $models; do
            printf '| %s | %s |' "$v" "$m"
            for n in $lengths; do printf ' %s |' "$(exp_mean_range '%.0f%%' $(per_seed "$m" length_accuracy "$v" "$n"))"; done
            printf ' %s | %s |\n' "${chosen[$m]}" "$(exp_mean_range '%.3f' $(per_seed "$m" exp_final_loss))"
        done
    done
    echo
    echo "Per cell, the mean over seeds:"
    echo
    for v in $variants; do
        echo "**$v** ($(opts_of "$v")): held-out accuracy (%), rows = depth, columns = context length"
        echo
        for m in $models; do
            printf '| %s | ' "$m"
            for n in $lengths; do printf 'n = %s | ' "$n"; done
            printf '\n|---|'
            for _ in $lengths; do printf -- '---|'; done
            echo
            for dp in $depths; do
                printf '| depth %s%% |' "$dp"
                for n in $lengths; do
                    printf ' %s |' "$(awk -v a="$(cell_mean "$v" "$m" "$n" "$dp")" 'BEGIN { printf "%.0f", 100 * a }')"
                done
                echo
            done
            echo
        done
    done
    echo "**Edge probe**: single needles at n = $train_len starting near the last position a training needle can start ($edge), held-out accuracy (%), mean (min-max) over seeds; trained on needle $train_opt"
    echo
    printf '| model |'
    for off in $edge_offsets; do printf ' position %s (%+d) |' "$(edge_position "$(edge_depth "$off")")" "$(($(edge_position "$(edge_depth "$off")") - edge))"; done
    printf '\n|---|'
    for _ in $edge_offsets; do printf -- '---|'; done
    echo
    for m in $models; do
        printf '| %s |' "$m"
        for off in $edge_offsets; do printf ' %s |' "$(exp_mean_range '%.0f%%' $(per_seed "$m" edge_accuracy "$(edge_depth "$off")"))"; done
        echo
    done
} > "$dir/table.md"
{
    if [ -n "${INIT_FROM:-}" ]; then
        echo "No search: each model continues $(basename "$INIT_FROM")'s at the rate chosen there."
    else
        echo "Validation loss (the training task at n = $train_len, --seed 999, $eval_batches x $eval_batch sequences, seed 1) per learning rate; * the best."
        echo
        columns=$(exp_rates_columns "$models" "$rates")
        exp_rates_head model "$columns"
        for m in $models; do exp_rates_row "$m" "$m" "$rates" exp_valid_loss "$columns"; done
    fi
} > "$dir/rates.md"
for v in $variants; do
    for m in $models; do
        {
            for dp in $depths; do
                i=0
                for n in $lengths; do
                    printf '%d %d %s\n' "$i" "$dp" "$(cell_mean "$v" "$m" "$n" "$dp")"
                    i=$((i + 1))
                done
                echo
            done
        } > "$dir/${v}_$m.dat"
    done
done
xtics=$(i=0; for n in $lengths; do printf '%s"%s" %d' "$([ $i -gt 0 ] && echo ', ')" "$n" "$i"; i=$((i + 1)); done)
{
    echo 'set terminal pngcairo size 1200,1000 font ",9" noenhanced'
    echo "set output \"$dir/heatmaps.png\""
    echo "set multiplot layout 3,3 title \"Needle accuracy (held out, mean of $n_seeds seeds), $filler haystack, trained at n = $train_len for $steps steps${INIT_FROM:+ after $(basename "$INIT_FROM")}: depth (y, %) x context length (x, tokens); window 32\""
    echo 'set cbrange [0:1]'
    echo 'set palette defined (0 "#f7fbff", 0.5 "#6baed6", 1 "#08306b")'
    echo "set xtics ($xtics)"
    echo 'set ytics ("0" 0, "25" 25, "50" 50, "75" 75, "100" 100)'
    echo 'set yrange [-12.5:112.5] reverse'
    echo "set xrange [-0.5:$(($(echo "$lengths" | wc -w) - 1)).5]"
    echo 'unset key'
    for v in $variants; do
        for m in $models; do
            echo "set title \"$v, $m\""
            echo "plot \"$dir/${v}_$m.dat\" using 1:2:(0.5):(12.5):3 with boxxyerror lc palette fs solid 1.0 notitle, \\"
            echo "     \"\" using 1:2:(sprintf(\"%.0f\", 100*\$3)) with labels tc rgb \"#d62728\" notitle"
        done
    done
    echo 'unset multiplot'
} > "$dir/heatmaps.gp"
exp_plot "$dir/heatmaps.gp"
json_rows=""
for v in $variants; do
    for m in $models; do
        for seed in $seeds; do
            run=$(exp_run_name "$m" "${chosen[$m]}" "$seed")
            cells_json=""
            for n in $lengths; do
                for dp in $depths; do cells_json+="${cells_json:+, }{\"n\": $n, \"depth\": $dp, \"eval\": $(cat "$dir/runs/${v}_$run.n$n.d$dp.eval.json")}"; done
            done
            json_rows+="${json_rows:+,}
  {\"variant\": \"$v\", \"task_opt\": \"$(opts_of "$v")\", \"model\": \"$m\", \"lr\": ${chosen[$m]}, \"seed\": $seed, \"run\": \"$run\", \"valid_loss\": $(exp_valid_loss "$run"), \"final_train_loss\": $(exp_final_loss "$run"), \"train_wall_s\": $(exp_wall "$run"), \"cells\": [$cells_json]}"
        done
    done
done
edge_json=""
for m in $models; do
    for seed in $seeds; do
        run=$(exp_run_name "$m" "${chosen[$m]}" "$seed")
        cells_json=""
        for off in $edge_offsets; do
            dp=$(edge_depth "$off")
            cells_json+="${cells_json:+, }{\"depth\": $dp, \"position\": $(edge_position "$dp"), \"eval\": $(cat "$dir/runs/edge_$run.d$dp.eval.json")}"
        done
        edge_json+="${edge_json:+,}
  {\"model\": \"$m\", \"seed\": $seed, \"run\": \"$run\", \"cells\": [$cells_json]}"
    done
done
rates_json=""
[ -n "${INIT_FROM:-}" ] || for m in $models; do
    rates_json+="${rates_json:+, }{\"model\": \"$m\", \"lr\": ${chosen[$m]}, \"search\": $(exp_rate_search_json "$m" "$rates")}"
done
printf '{"section": "needle", "run": %s, "seeds": "%s", "steps": %s, "train_task": "needle %s", "train_seq_len": %s, "init_from": "%s", "rate_search": [%s], "rows": [%s\n], "edge_probe": {"edge": %s, "rows": [%s\n]}}\n' "$(exp_machine_json)" "$seeds" "$steps" "$train_opt" "$train_len" "${INIT_FROM:-}" "$rates_json" "$json_rows" "$edge" "$edge_json" \
    > "$dir/results.json"
cat "$dir/rates.md" "$dir/table.md"
exp_end
