#!/usr/bin/env bash
# size.sh [DIR]: the size trend of docs/results.md section 2 (`make exp-size`).
#
# The paper's gains grow from 500M to 14B parameters. In miniature: section 2's
# comparison of sliding window (swa) against sliding window + In-Place TTT
# (swa_ttt) on the byte-level text corpus, at three widths with the depth grown
# alongside, every other setting section 2's (window 64, chunk 64, eta 0.3, the
# learned target, the TTT parameters at 10x the rate, 1500 steps of 4 x 1024
# bytes, documents kept apart):
#
#   d = 32,  2 layers,  2 query / 1 KV heads of 16   (this script)
#   d = 64,  2 layers,  4 query / 2 KV heads         (section 2's models: text.sh's runs, read from TEXT_DIR)
#   d = 128, 3 layers,  8 query / 4 KV heads         (this script)
#
# Within a width the two models have the same parameter count up to a few
# hundred: the plain MLP is wider by (d + 5) / 3 (rounded down), what the TTT
# layers' conv and projection P take. Each model is swept as section 2's are
# (lib.sh's sweeps): every rate in RATES at seed 1, the best on corpus/valid.txt
# at n = 1024, that rate at every seed in SEEDS, reported on corpus/test.txt at
# n = 64 (no context before the scored block) and n = 1024 (960 bytes before
# it). The gain is swa's loss minus swa_ttt's at n = 1024, per seed pair.
#
# Where the budget was cut: d = 256 with 4 layers (3.5M parameters) trains at
# about a fifth of d = 128's speed on the 2-core machine, about 20 minutes a run
# and 2.7 hours for its sweep, so it is left out; SIZES adds it ("256:4").
#
# Results: $DIR/results.json, $DIR/table.md, $DIR/rates.md, $DIR/size.png.
#   env: TEXT_DIR (default: DIR's sibling exp-text; text.sh is run there first when
#   its results are missing), SIZES (default "32:2 128:3"), RATES, EXP_EXTEND, SEEDS, STEPS as text.sh's.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-size}
text_dir=${TEXT_DIR:-$(dirname "$dir")/exp-text}
steps=${STEPS:-$(exp_size 1500 4)}
rates=${RATES:-$(exp_size "1e-3 3e-3 1e-2 3e-2" "1e-3 3e-3")}
seeds=${SEEDS:-$(exp_size "1 2 3" "1 2")}
sizes=${SIZES:-$(exp_size "32:2 128:3" "32:2")}
arms="swa swa_ttt"

# d = 64 is section 2: its runs, at the same rates and seeds.
if [ ! -f "$text_dir/results.json" ]; then
    echo "exp-size: section 2's results are missing in $text_dir; running src/tools/exp/text.sh there first" >&2
    STEPS=$steps RATES=$rates SEEDS=$seeds src/tools/exp/text.sh "$text_dir" > /dev/null
fi

exp_begin size "$dir" 0
exp_text_setup bounded
lengths="64 $max_len"
n_len=2
EXP_UNITS=$(($(echo "$sizes" | wc -w) * 2 * ($(echo "$rates" | wc -w) * (steps + 5) + $(echo "$seeds" | wc -w) * (steps + 5 + 5 * n_len))))

# size_config ARM D L: the config of ARM at width D and L layers, $dir/configs/ARM.dD.json.
size_config() {
    local arm=$1 d=$2 l=$3 f types layers i out=$dir/configs/$1.d$2.json
    f=$((3 * d))
    [ "$arm" = swa ] && f=$((f + (d + 5) / 3))
    types="" layers=""
    for ((i = 0; i < l; i++)); do
        types+="${types:+, }\"sliding_attention\""
        layers+="${layers:+, }$i"
    done
    mkdir -p "$dir/configs"
    exp_config "data/configs/exp/text_$arm.json" "$out" hidden_size="$d" intermediate_size="$f" num_hidden_layers="$l" \
        num_attention_heads=$((d / 16)) num_key_value_heads=$((d / 32)) "layer_types=[$types]"
    if [ "$arm" = swa_ttt ]; then exp_config "$out" "$out" "ttt_layers=[$layers]"; fi
    echo "$out"
}

# search_run RUN RATE SEED: train $arm at width $d, RATE, seed SEED; its validation score.
search_run() {
    local scale=1
    [ "$arm" = swa_ttt ] && scale=10
    # shellcheck disable=SC2046  # the seed flags are two words each
    exp_train "$1" "$steps" --task text --task-opt "$train_opt" --config "$(size_config "$arm" "$d" "$l")" --steps "$steps" \
        --batch "$batch" --seq-len "$seq" --lr "$2" --warmup 50 --ttt-lr-scale "$scale" $(exp_seed_flags "$3")
    exp_text_eval "$1" "$dir/runs/$1.valid.json" valid "$max_len"
}
seed_run() {
    search_run "$@"
    exp_text_evals "$1" test
}

for size in $sizes; do
    d=${size%%:*} l=${size#*:}
    for arm in $arms; do
        exp_sweep_rates "d$d.$arm" "$rates" search_run exp_valid_loss
        best=$(exp_best_rate "d$d.$arm" "$rates" exp_valid_loss)
        exp_progress "d$d.$arm" "best rate on valid.txt at n = $max_len: $best"
        exp_sweep_seeds "d$d.$arm" "$best" "$seeds" seed_run
    done
done

# ---- tables, plot, results.json. Every width as (RUNS_DIR PREFIX D L): d = 64 from section 2.
widths() {
    local size
    for size in $sizes; do echo "$dir/runs d${size%%:*}. ${size%%:*} ${size#*:}"; done
    echo "$text_dir/runs '' 64 2"
}
# loss_in RUNS FILE: the loss in RUNS/FILE.
loss_in() { exp_field "$1/$2" loss; }
# valid_in NAME: the validation loss of run NAME in $search_runs (best_of's, the rate table's measure).
valid_in() { loss_in "$search_runs" "$1.valid.json"; }
# best_of RUNS PREFIX ARM: the arm's best rate in that folder's search.
best_of() {
    search_runs=$1
    exp_best_rate "$2$3" "$rates" valid_in "${1%/runs}"
}
# losses RUNS PREFIX ARM N: the test loss at n = N of every seed at the arm's best rate.
losses() {
    local best seed
    best=$(best_of "$1" "$2" "$3")
    for seed in $seeds; do loss_in "$1" "$2$3$(exp_run_name "" "$best" "$seed").n$4.eval.json"; done
}
# gains RUNS PREFIX: swa's minus swa_ttt's loss at n = max_len, per seed.
gains() { paste <(losses "$1" "$2" swa "$max_len") <(losses "$1" "$2" swa_ttt "$max_len") | awk '{ printf "%.9g\n", $1 - $2 }'; }
# percents RUNS PREFIX: the gain as a percentage of swa's loss, per seed.
percents() { paste <(losses "$1" "$2" swa "$max_len") <(gains "$1" "$2") | awk '{ printf "%.9g\n", 100 * $2 / $1 }'; }
params_of() {  # CONFIG: the parameter count of a model of that config
    "$EXP_BIN" init --config "$1" --out "$dir/params.tmp" | sed -E 's/.*: ([0-9]+) parameters.*/\1/'
    rm -rf "$dir/params.tmp"
}
config_of() {  # ARM D L: the config the width's runs trained
    if [ "$2" = 64 ]; then echo "data/configs/exp/text_$1.json"; else size_config "$1" "$2" "$3"; fi
}

: > "$dir/size.dat"
json_rows=""
{
    echo "Test loss (corpus/test.txt, docs=$text_docs) at each model's best rate, mean over seeds $seeds (min-max); gain = swa - swa_ttt at n = $max_len, per seed."
    echo
    echo "| d | layers | parameters (swa / swa_ttt) | best lr (swa / swa_ttt) | swa n = 64 | swa_ttt n = 64 | swa n = $max_len | swa_ttt n = $max_len | gain at n = $max_len | gain, % of swa |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$dir/table.md"
{
    echo "Validation loss (corpus/valid.txt, docs=$text_docs, n = $max_len, seed 1) per learning rate; * the best."
    echo
    # the columns: every rate of any width's search (d = 64's in section 2's folder)
    columns=$(exp_rate_list "$(while read -r runs prefix _; do
        for arm in $arms; do exp_arm_rates "${prefix//\'/}$arm" "$rates" "${runs%/runs}"; echo; done
    done < <(widths))")
    exp_rates_head "d | model" "$columns"
} > "$dir/rates.md"
while read -r runs prefix d l; do
    prefix=${prefix//\'/}
    p_swa=$(params_of "$(config_of swa "$d" "$l")")
    p_ttt=$(params_of "$(config_of swa_ttt "$d" "$l")")
    # shellcheck disable=SC2046  # one value per seed
    {
        printf '| %s | %s | %s / %s | %s / %s |' "$d" "$l" "$p_swa" "$p_ttt" "$(best_of "$runs" "$prefix" swa)" "$(best_of "$runs" "$prefix" swa_ttt)"
        for n in 64 "$max_len"; do
            for arm in $arms; do printf ' %s |' "$(exp_mean_range %.3f $(losses "$runs" "$prefix" "$arm" "$n"))"; done
        done
        printf ' %s |' "$(exp_mean_range %.3f $(gains "$runs" "$prefix"))"
        printf ' %s |\n' "$(exp_mean_range %.1f $(percents "$runs" "$prefix"))"
    } >> "$dir/table.md"
    search_runs=$runs
    # shellcheck disable=SC2030,SC2031  # EXP_DIR: the width's folder, for this row only
    for arm in $arms; do (EXP_DIR=${runs%/runs} && exp_rates_row "$d | $arm" "$prefix$arm" "$rates" valid_in "$columns"); done >> "$dir/rates.md"
    # shellcheck disable=SC2046
    read -r g_mean g_lo g_hi _ <<< "$(exp_seed_stats $(gains "$runs" "$prefix"))"
    echo "$p_ttt $g_mean $g_lo $g_hi $d" >> "$dir/size.dat"
    json_rows+="${json_rows:+,}
  {\"d\": $d, \"layers\": $l, \"parameters\": {\"swa\": $p_swa, \"swa_ttt\": $p_ttt}, \"runs\": \"$runs\", \"best_lr\": {\"swa\": $(best_of "$runs" "$prefix" swa), \"swa_ttt\": $(best_of "$runs" "$prefix" swa_ttt)}, \"test_loss_n64\": {\"swa\": [$(losses "$runs" "$prefix" swa 64 | paste -sd,)], \"swa_ttt\": [$(losses "$runs" "$prefix" swa_ttt 64 | paste -sd,)]}, \"test_loss_n$max_len\": {\"swa\": [$(losses "$runs" "$prefix" swa "$max_len" | paste -sd,)], \"swa_ttt\": [$(losses "$runs" "$prefix" swa_ttt "$max_len" | paste -sd,)]}, \"gain\": [$(gains "$runs" "$prefix" | paste -sd,)]}"
done < <(widths | sort -n -k3)
sort -n -o "$dir/size.dat" "$dir/size.dat"
sed -i '1i # parameters gain_mean gain_min gain_max d  (gain: swa - swa_ttt test loss at n = '"$max_len"', nats per byte)' "$dir/size.dat"
cat > "$dir/size.gp" << EOF
set terminal pngcairo size 800,480 font ",10"
set output "$dir/size.png"
set title "The TTT gain at n = $max_len vs model size: SWA's loss minus SWA + TTT's (mean, min-max of seeds)" noenhanced
set xlabel "parameters"
set ylabel "gain (nats per byte)"
set logscale x
set grid
set key off
set offsets graph 0.05, graph 0.05, graph 0.12, graph 0.05
plot "$dir/size.dat" using 1:2:3:4 with yerrorlines lw 2, "" using 1:2:(sprintf("d = %d", \$5)) with labels offset 0,1.5
EOF
exp_plot "$dir/size.gp"
printf '{"section": "size", "run": %s, "docs": "%s", "steps": %s, "batch": %s, "seq_len": %s, "rates": [%s], "seeds": [%s], "seed_flags": "seed K: --seed K --init-seed K-1", "widths": [%s\n]}\n' \
    "$(exp_machine_json)" "$text_docs" "$steps" "$batch" "$seq" "$(echo "$rates" | tr -s ' ' ',')" "$(echo "$seeds" | tr -s ' ' ',')" \
    "$json_rows" > "$dir/results.json"
cat "$dir/rates.md" "$dir/table.md"
exp_end
