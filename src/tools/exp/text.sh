#!/usr/bin/env bash
# text.sh [DIR]: section 2 of docs/results.md (`make exp-text`), the paper's Figure 2 in miniature.
#
# Byte-level language models on real text (src/tools/exp/corpus.sh: the libstdc++
# headers of Debian 12, split by file into train / validation / test), of equal
# parameter count (the plain models' MLP is wider by what the TTT parameters take)
# and trained on the same tokens: full attention, sliding window (64), sliding
# window + In-Place TTT with the learned target. The TTT parameters at 10x the
# model's rate (section 1's recipe gives them a large rate of their own).
#
# A sweep per model (lib.sh's sweeps): the rate search trains each model at every
# rate in RATES on seed 1 and scores it on corpus/valid.txt at the longest context
# (n = 1024); the model's best rate there is then trained at every seed in SEEDS
# (seed K: data seed K, weights seed K - 1) and reported on corpus/test.txt. Neither
# the choice nor the report reads heldout.txt (valid.txt + test.txt): the earlier
# one-run table was on heldout.txt at lr 3e-3, data seed 1, weights seed 0.
# Metric: the mean loss on the same final 64 bytes of test windows as the context
# before them grows from 0 to 960 bytes (tasks.md's text metric: score_last=64,
# max_length=1024); the table gives the mean over seeds and the range (min-max).
# Results: $DIR/results.json (every run's numbers), $DIR/table.md, $DIR/rates.md,
# $DIR/full.md (the full-attention model's attention caps and distances), $DIR/ttt.md (the
# TTT model with its fast-weight step eta scaled at inference), $DIR/long.md
# (every model at its best rate for LONG_STEPS, default 3000), $DIR/context.png.
# Section 5 (continual.sh) trains its own SWA model.
#
# Cost at full size: 3 models x (4 rates + 2 more seeds) = 18 training runs of
# 1500 steps and 3 x 3 of LONG_STEPS, plus about 120 evaluations (seconds each).
# Measured on a shared 2-core Intel Xeon with AVX-512, 2 threads (2026-12-07):
# 0:25:19 for the sweep (full about 100 s a run, swa 55 s, swa_ttt 80 s), 0:19:47
# for the evaluations, the attention measurements and the longer budget.
#   env: STEPS (default 1500), RATES (default "1e-3 3e-3 1e-2 3e-2"), SEEDS (default "1 2 3"),
#        EXP_EXTEND (rates tried below RATES while the lowest wins, default 2; lib.sh),
#        LONG_STEPS (default 3000)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-text}
steps=${STEPS:-$(exp_size 1500 4)}
rates=${RATES:-$(exp_size "1e-3 3e-3 1e-2 3e-2" "1e-3 3e-3")}
seeds=${SEEDS:-$(exp_size "1 2 3" "1 2")}
models="full swa swa_ttt"
caps=$(exp_size "64 128 256 512" "64")  # cap_evals' attention caps
long_steps=${LONG_STEPS:-$(exp_size 3000 8)}  # the longer budget's steps
etas=$(exp_size "0.15 0.2 0.3 0.45" "0.15 0.3")  # eta_evals' inference steps (0.3: the trained one)
eta_lengths=$(exp_size "448 640 832 1024" "64 128")
exp_begin text "$dir" 0
exp_text_setup bounded
# Per model: the search (a training and a validation score per rate), then every
# seed at the best rate (training, validation score, the test evaluations; seed 1's
# training and validation score are the search's, skipped and counted as done).
# Then the full model's caps and distances, and every model at its best rate and every seed
# for the longer budget.
EXP_UNITS=$((3 * ($(echo "$rates" | wc -w) * (steps + 5) + $(echo "$seeds" | wc -w) * (steps + 5 + 5 * n_len)) \
    + $(echo "$seeds" | wc -w) * (5 * ($(echo "$caps" | wc -w) + 1) + 3 * (long_steps + 5 * n_len) \
    + 5 * $(echo "$etas" | wc -w) * $(echo "$eta_lengths" | wc -w))))

# train_run RUN RATE SEED STEPS: train $m for STEPS at RATE, seed SEED.
train_run() {
    local scale=1
    [ "$m" = swa_ttt ] && scale=10
    # shellcheck disable=SC2046  # the seed flags are two words each
    exp_train "$1" "$4" --task text --task-opt "$train_opt" --config "data/configs/exp/text_$m.json" --steps "$4" \
        --batch "$batch" --seq-len "$seq" --lr "$2" --warmup 50 --ttt-lr-scale "$scale" $(exp_seed_flags "$3")
}
# search_run RUN RATE SEED: train $m at RATE, seed SEED; its validation score.
search_run() {
    train_run "$@" "$steps"
    exp_text_eval "$1" "$dir/runs/$1.valid.json" valid "$max_len"
}
# seed_run RUN RATE SEED: search_run, then the test evaluations at every length.
seed_run() {
    search_run "$@"
    exp_text_evals "$1" test
}

# derived_ckpt RUN NAME KEY=VALUE...: runs/RUN.NAME, RUN's final weights under its config
# with each KEY set (exp_config), for an evaluation that changes a setting at inference
# only; written once, through a temporary name.
derived_ckpt() {
    local last ck=$dir/runs/$1.$2
    last=$(exp_last_step "$dir/runs/$1")
    shift 2
    if [ ! -f "$ck/model.safetensors" ]; then
        rm -rf "$ck.tmp" && mkdir -p "$ck.tmp"
        cp "$last/model.safetensors" "$ck.tmp/"
        exp_config "$last/config.json" "$ck.tmp/config.json" "$@"
        mv "$ck.tmp" "$ck"
    fi
}

# How far does the trained full-attention model look? cap_evals RUN scores RUN's final
# weights on test.txt at n = max_len with attention capped at W tokens (a sliding window
# of W in the checkpoint's config, nothing else changed), for every W in $caps: if the
# loss barely rises as W shrinks, the model uses little of the context it can see.
cap_evals() {
    local run=$1 w sliding
    sliding=$(sed -n -E 's/^  "layer_types": (.*[^,]),?$/\1/p' "$(exp_last_step "$dir/runs/$run")/config.json" | sed 's/"full_attention"/"sliding_attention"/g')
    for w in $caps; do
        derived_ckpt "$run" "cap$w" use_sliding_window=true sliding_window="$w" layer_types="$sliding"
        exp_text_eval "$run.cap$w" "$dir/runs/$run.cap$w.test.json" test "$max_len"
    done
    # And how far its attention reads: per layer and head, the mean distance and the share
    # of the attention at >= 64 and >= 256 bytes back, over the scored final 64 bytes.
    exp_eval "$run" "$dir/runs/$run.distance.json" 5 --task text --task-opt "path=$EXP_DIR/corpus/test.txt,score_last=64,max_length=$max_len,docs=$text_docs" \
        --seed 1000 --batches "$eval_batches" --batch "$eval_batch" --seq-len "$max_len" --attention-distance 64,256
}

# Why does the TTT model's loss rise again when the context grows past about 576 bytes?
# eta_evals RUN scores RUN's final weights on test.txt at every length in $eta_lengths with
# the fast weight's step eta (ttt_lr) set to each of $etas at inference (nothing else
# changed; the model trained with 0.3, so that row repeats the table's). If the rise comes
# from the fast weight summing ever more chunk updates (there is no decay), a smaller eta
# moves the rise to longer contexts and a larger one to shorter.
eta_evals() {
    local run=$1 e n
    for e in $etas; do
        derived_ckpt "$run" "eta$e" ttt_lr="$e"
        for n in $eta_lengths; do exp_text_eval "$run.eta$e" "$dir/runs/$run.eta$e.n$n.test.json" test "$n"; done
    done
}

for m in $models; do
    exp_sweep_rates "$m" "$rates" search_run exp_valid_loss
    best=$(exp_best_rate "$m" "$rates" exp_valid_loss)
    exp_progress "$m" "best rate on valid.txt at n = $max_len: $best"
    exp_sweep_seeds "$m" "$best" "$seeds" seed_run
done
for seed in $seeds; do cap_evals "$(exp_run_name full "$(exp_best_rate full "$rates" exp_valid_loss)" "$seed")"; done
for seed in $seeds; do eta_evals "$(exp_run_name swa_ttt "$(exp_best_rate swa_ttt "$rates" exp_valid_loss)" "$seed")"; done
# Is a model still catching up at $steps steps? Every model again at its best rate and
# every seed, for $long_steps steps (the schedule stretched to them), tested the same:
# runs/<the seed's run>.long.
for m in $models; do
    best=$(exp_best_rate "$m" "$rates" exp_valid_loss)
    for seed in $seeds; do
        run=$(exp_run_name "$m" "$best" "$seed").long
        train_run "$run" "$best" "$seed" "$long_steps"
        exp_text_evals "$run" test
    done
done

# ---- tables, data, plot, results.json
# per_seed MODEL FUNCTION [ARGS]: FUNCTION RUN [ARGS] for every seed's run of MODEL at its best rate.
per_seed() { exp_per_seed "$1" "$(exp_best_rate "$1" "$rates" exp_valid_loss)" "${@:2}"; }
# test_loss RUN WHAT: the loss of runs/RUN.WHAT.test.json (the caps' and etas' evaluations).
test_loss() { exp_field "$dir/runs/$1.$2.test.json" loss; }
# mean_loss_at MODEL N: the test loss at length N, mean over seeds (context.dat's cells).
# shellcheck disable=SC2046  # one value per seed
mean_loss_at() { exp_seed_stats $(per_seed "$1" exp_loss_at "$2") | cut -d' ' -f1; }
{
    echo "Validation loss (corpus/valid.txt, docs=$text_docs, n = $max_len, seed 1) per learning rate; * the best, used for the seeds."
    echo
    columns=$(exp_rates_columns "$models" "$rates")
    exp_rates_head model "$columns"
    for m in $models; do exp_rates_row "$m" "$m" "$rates" exp_valid_loss "$columns"; done
} > "$dir/rates.md"
{
    echo "Test loss (corpus/test.txt, docs=$text_docs) at each model's best rate: mean over seeds $seeds, (min-max) when they differ."
    echo
    exp_table_head "model | config | parameters | best lr" "n =" "$lengths" "final train loss | train wall (s), mean"
    for m in $models; do
        params=$("$EXP_BIN" init --config "data/configs/exp/text_$m.json" --out "$dir/params.tmp" | sed -E 's/.*: ([0-9]+) parameters.*/\1/')
        rm -rf "$dir/params.tmp"
        printf '| %s | `data/configs/exp/text_%s.json` | %s | %s |' "$m" "$m" "$params" "$(exp_best_rate "$m" "$rates" exp_valid_loss)"
        # shellcheck disable=SC2046  # one value per seed
        for n in $lengths; do printf ' %s |' "$(exp_mean_range %.3f $(per_seed "$m" exp_loss_at "$n"))"; done
        # shellcheck disable=SC2046
        printf ' %s | %s |\n' "$(exp_mean_range %.3f $(per_seed "$m" exp_final_loss))" \
            "$(exp_seed_stats $(per_seed "$m" exp_wall) | awk '{ printf "%.0f", $1 }')"
    done
} > "$dir/table.md"
# The full-attention model under its attention caps, and its attention distances.
full_best=$(exp_best_rate full "$rates" exp_valid_loss)
# distance_stats RUN LAYER: "mean_distance share64 share256" averaged over LAYER's heads.
distance_stats() {
    tr '{' '\n' < "$dir/runs/$1.distance.json" | awk -v l="$2" '
        /"layer": / { split($0, a, /"layer": /); split(a[2], b, /[,}]/); layer = b[1] + 0 }
        /"mean_distance": / && layer == l {
            split($0, a, /"mean_distance": /); split(a[2], b, /,/); d += b[1]
            split($0, a, /"share_beyond": \[/); split(a[2], b, /[],]/); s64 += b[1]; s256 += b[2]; h++ }
        END { printf "%.9g %.9g %.9g\n", d / h, s64 / h, s256 / h }'
}
{
    echo "The full-attention model (lr $full_best) with its attention capped at W bytes at inference (test.txt, n = $max_len; mean over seeds $seeds, (min-max)); swa for reference."
    echo
    exp_table_head model cap "$caps" "no cap"
    printf '| full |'
    # shellcheck disable=SC2046  # one value per seed
    for w in $caps; do printf ' %s |' "$(exp_mean_range %.3f $(per_seed full test_loss "cap$w"))"; done
    # shellcheck disable=SC2046
    printf ' %s |\n' "$(exp_mean_range %.3f $(per_seed full exp_loss_at "$max_len"))"
    # shellcheck disable=SC2046
    printf '| swa (window 64) |'
    for _ in $caps; do printf ' |'; done
    printf ' %s |\n' "$(exp_mean_range %.3f $(per_seed swa exp_loss_at "$max_len"))"
    echo
    echo "Where its attention reads (the scored final 64 bytes of test windows of $max_len; per layer, the mean over heads, then over seeds, (min-max) over seeds)."
    echo
    echo "| layer | mean distance (bytes) | share at >= 64 bytes | share at >= 256 bytes |"
    echo "|---|---|---|---|"
    layers=$(sed -n -E 's/.*"num_hidden_layers": ([0-9]+).*/\1/p' data/configs/exp/text_full.json)
    for ((l = 0; l < layers; l++)); do
        printf '| %s |' "$l"
        for f in 1 2 3; do
            # shellcheck disable=SC2046
            printf ' %s |' "$(exp_mean_range "$([ $f = 1 ] && echo %.1f || echo %.3f)" $(per_seed full distance_stats "$l" | cut -d' ' -f$f))"
        done
        echo
    done
} > "$dir/full.md"
# The TTT model with its eta scaled at inference.
ttt_best=$(exp_best_rate swa_ttt "$rates" exp_valid_loss)
{
    echo "The SWA + TTT model (lr $ttt_best, trained with eta 0.3) with the fast weight's step eta set at inference (test.txt; mean over seeds $seeds, (min-max)); n - 64 bytes of context before the scored block."
    echo
    exp_table_head eta "n =" "$eta_lengths"
    for e in $etas; do
        printf '| %s |' "$e"
        # shellcheck disable=SC2046  # one value per seed
        for n in $eta_lengths; do printf ' %s |' "$(exp_mean_range %.3f $(per_seed swa_ttt test_loss "eta$e.n$n"))"; done
        echo
    done
} > "$dir/ttt.md"
# band_at MODEL N: the lowest and highest seed's test loss at length N (the plot's bands).
# shellcheck disable=SC2046  # one value per seed
band_at() { exp_seed_stats $(per_seed "$1" exp_loss_at "$2") | cut -d' ' -f2,3; }
# The longer budget next to the sweep's, per model (seed mean, (min-max)).
long_loss_at() { exp_loss_at "$1.long" "$2"; }
long_final() { exp_final_loss "$1.long"; }
{
    echo "Every model at its best rate for $steps and for $long_steps steps (test.txt; mean over seeds $seeds, (min-max))."
    echo
    echo "| model | best lr | steps | n = 64 | n = $max_len | final train loss |"
    echo "|---|---|---|---|---|---|"
    for m in $models; do
        # shellcheck disable=SC2046  # one value per seed
        printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$(exp_best_rate "$m" "$rates" exp_valid_loss)" "$steps" "$(exp_mean_range %.3f $(per_seed "$m" exp_loss_at 64))" \
            "$(exp_mean_range %.3f $(per_seed "$m" exp_loss_at "$max_len"))" "$(exp_mean_range %.3f $(per_seed "$m" exp_final_loss))"
        # shellcheck disable=SC2046
        printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$(exp_best_rate "$m" "$rates" exp_valid_loss)" "$long_steps" "$(exp_mean_range %.3f $(per_seed "$m" long_loss_at 64))" \
            "$(exp_mean_range %.3f $(per_seed "$m" long_loss_at "$max_len"))" "$(exp_mean_range %.3f $(per_seed "$m" long_final))"
    done
} > "$dir/long.md"
EXP_LOSS_AT=mean_loss_at EXP_BAND_AT=band_at exp_context_plot "Test loss on the final 64 bytes vs the context before them (window 64): mean of seeds, band min-max" \
    full="full attention" swa="sliding window" swa_ttt="SWA + TTT (learned target)"
json_rows=""
for m in $models; do
    runs=""
    best=$(exp_best_rate "$m" "$rates" exp_valid_loss)
    for seed in $seeds; do
        run=$(exp_run_name "$m" "$best" "$seed")
        extra=""
        if [ "$m" = full ]; then
            caps_json=""
            for w in $caps; do caps_json+="${caps_json:+, }{\"cap\": $w, \"test\": $(cat "$dir/runs/$run.cap$w.test.json")}"; done
            extra=", \"capped\": [$caps_json], \"attention_distance\": $(cat "$dir/runs/$run.distance.json")"
        fi
        if [ "$m" = swa_ttt ]; then
            etas_json=""
            for e in $etas; do
                for n in $eta_lengths; do etas_json+="${etas_json:+, }{\"eta\": $e, \"n\": $n, \"test\": $(cat "$dir/runs/$run.eta$e.n$n.test.json")}"; done
            done
            extra=", \"eta_at_inference\": [$etas_json]"
        fi
        extra+=", \"long\": {\"steps\": $long_steps, \"final_train_loss\": $(exp_final_loss "$run.long"), \"test_evals\": [$(exp_text_evals_json "$run.long")]}"
        runs+="${runs:+,}
    {\"seed\": $seed, \"run\": \"$run\", \"final_train_loss\": $(exp_final_loss "$run"), \"train_wall_s\": $(exp_wall "$run"), \"valid\": $(cat "$dir/runs/$run.valid.json"), \"test_evals\": [$(exp_text_evals_json "$run")]$extra}"
    done
    json_rows+="${json_rows:+,}
  {\"model\": \"$m\", \"config\": \"data/configs/exp/text_$m.json\", \"rate_search\": $(exp_rate_search_json "$m" "$rates"), \"best_lr\": $best, \"seeds\": [$runs]}"
done
printf '{"section": "text", "run": %s, "corpus": %s, "docs": "%s", "steps": %s, "batch": %s, "seq_len": %s, "rates": [%s], "seeds": [%s], "seed_flags": "seed K: --seed K --init-seed K-1", "models": [%s\n]}\n' \
    "$(exp_machine_json)" "$(cat "$dir/corpus/corpus.json")" "$text_docs" "$steps" "$batch" "$seq" "$(echo "$rates" | tr -s ' ' ',')" \
    "$(echo "$seeds" | tr -s ' ' ',')" "$json_rows" > "$dir/results.json"
cat "$dir/rates.md" "$dir/table.md" "$dir/full.md" "$dir/ttt.md" "$dir/long.md"
exp_end
