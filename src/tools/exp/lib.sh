# lib.sh: what every experiment section (src/tools/exp/*.sh, `make exp-*`) shares.
#
# A section is a list of runs (train, eval, probe). Each run writes its result
# file last, through a temporary name, so a result that exists is complete:
# an interrupted section started again skips every finished run, and a training
# run cut off mid-way continues from its newest checkpoint (`ittt train --resume`).
# Progress goes to stderr, one line per run, with the elapsed time and an ETA
# from the runs' declared costs; results are JSON under the section's folder.
#
#   source src/tools/exp/lib.sh
#   exp_begin learned out/exp-learned 14      # section name, folder, cost units planned
#   exp_train NAME COST --task .. --config ..   # ittt train flags, less --out/--json
#   exp_eval NAME OUT.json COST --task ..       # ittt eval flags, less --ckpt/--json
#   exp_end                                     # wall time, the summary line
#
# EXP_SMOKE=1 makes every section tiny (a few steps, one small batch): the smoke
# test of `make test` runs each section that way, to check the plumbing, not the
# numbers. Sections read their sizes through exp_size FULL SMOKE.

set -euo pipefail

EXP_BIN=${EXP_BIN:-build/ittt}
EXP_SMOKE=${EXP_SMOKE:-0}

# exp_size FULL SMOKE: FULL normally, SMOKE under EXP_SMOKE=1.
exp_size() { if [ "$EXP_SMOKE" = 1 ]; then echo "$2"; else echo "$1"; fi; }

exp_now() { date +%s; }

# exp_count NAME VALUE MIN: VALUE, a setting from the environment, when it is a whole number
# >= MIN; otherwise an error naming the setting (exit 2), e.g. "EXP_EXTEND must be a whole
# number >= 0, found 'abc'".
exp_count() {
    if [[ ! $2 =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ]; then
        echo "$(basename "$0"): $1 must be a whole number >= $3, found '$2'" >&2
        exit 2
    fi
    echo "$2"
}

exp_clock() {  # seconds -> h:mm:ss
    local s=$1
    printf '%d:%02d:%02d' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
}

# exp_begin SECTION DIR UNITS: UNITS is the section's planned cost (the sum of
# the COST arguments of its runs), so the ETA counts the skipped runs as done.
exp_begin() {
    EXP_SECTION=$1
    EXP_DIR=$2
    EXP_UNITS=$3
    EXP_EXTEND=$(exp_count EXP_EXTEND "${EXP_EXTEND:-$(exp_size 2 1)}" 0)  # exp_sweep_rates' extension
    EXP_DONE=0       # cost units finished or skipped
    EXP_RUN_UNITS=0  # cost units actually run by this invocation
    EXP_RUN_SECS=0   # and their seconds
    EXP_START=$(exp_now)
    EXP_SKIPPED=0
    EXP_RAN=0
    mkdir -p "$EXP_DIR/runs"
    [ -x "$EXP_BIN" ] || { echo "exp-$EXP_SECTION: $EXP_BIN not found; run make first" >&2; exit 1; }
    echo "exp-$EXP_SECTION: results under $EXP_DIR$([ "$EXP_SMOKE" = 1 ] && echo ' (smoke size)')" >&2
}

# exp_progress NAME WHAT: one line on stderr, with the ETA of what is left.
exp_progress() {
    local elapsed=$(($(exp_now) - EXP_START)) eta="?"
    if [ "$EXP_RUN_UNITS" -gt 0 ]; then
        eta=$(exp_clock $(((EXP_UNITS - EXP_DONE) * EXP_RUN_SECS / EXP_RUN_UNITS)))
    fi
    printf 'exp-%s [%3d%%] %s: %s  (elapsed %s, ETA %s)\n' "$EXP_SECTION" $((100 * EXP_DONE / (EXP_UNITS > 0 ? EXP_UNITS : 1))) \
        "$1" "$2" "$(exp_clock "$elapsed")" "$eta" >&2
}

# exp_account COST SECONDS RAN: books a finished (RAN=1) or skipped (RAN=0) run.
exp_account() {
    EXP_DONE=$((EXP_DONE + $1))
    if [ "$3" = 1 ]; then
        EXP_RUN_UNITS=$((EXP_RUN_UNITS + $1))
        EXP_RUN_SECS=$((EXP_RUN_SECS + $2))
        EXP_RAN=$((EXP_RAN + 1))
    else
        EXP_SKIPPED=$((EXP_SKIPPED + 1))
    fi
}

# exp_ittt ARGS...: `ittt ARGS` with its stderr (the "using checkpoint ..." notes) kept
# out of the progress lines, and shown when it fails.
exp_ittt() {
    local err=$EXP_DIR/runs/.ittt.stderr
    if ! "$EXP_BIN" "$@" 2> "$err"; then
        echo "exp-$EXP_SECTION: ittt $1 failed:" >&2
        tail -n 20 "$err" >&2
        exit 1
    fi
}

# exp_train NAME COST FLAGS...: `ittt train FLAGS --out runs/NAME --json`, its
# step log in runs/NAME.train.jsonl, and runs/NAME.done (the wall time) once the
# final checkpoint is published. A run directory without .done is resumed.
exp_train() {
    local name=$1 cost=$2
    shift 2
    local dir=$EXP_DIR/runs/$name
    if [ -f "$dir.done" ]; then
        exp_account "$cost" 0 0
        exp_progress "$name" "trained already, skipped"
        return
    fi
    local t0
    t0=$(exp_now)
    if ls -d "$dir"/step-* > /dev/null 2>&1; then
        exp_progress "$name" "resuming the interrupted training"
        "$EXP_BIN" train --resume --out "$dir" --json --checkpoint-every "$(exp_size 500 0)" "$@" >> "$dir.train.jsonl"
    else
        exp_progress "$name" "training"
        rm -rf "$dir"
        "$EXP_BIN" train --out "$dir" --json --checkpoint-every "$(exp_size 500 0)" "$@" > "$dir.train.jsonl"
    fi
    local secs=$(($(exp_now) - t0))
    echo "$secs" > "$dir.done.tmp" && mv "$dir.done.tmp" "$dir.done"
    exp_account "$cost" "$secs" 1
    exp_progress "$name" "trained in ${secs} s"
}

# exp_eval NAME OUT COST FLAGS...: `ittt eval --ckpt runs/NAME FLAGS --json` into OUT.
exp_eval() {
    local name=$1 out=$2 cost=$3
    shift 3
    if [ -f "$out" ]; then
        exp_account "$cost" 0 0
        return
    fi
    local t0
    t0=$(exp_now)
    exp_ittt eval --ckpt "$EXP_DIR/runs/$name" --json "$@" > "$out.tmp"
    mv "$out.tmp" "$out"
    exp_account "$cost" $(($(exp_now) - t0)) 1
}

# exp_field FILE KEY: a number or string field of a one-line JSON object (no jq needed).
exp_field() {
    sed -E -n "s/.*\"$2\": \"?([^\",}]*)\"?[,}].*/\1/p" "$1" | head -n 1
}

# exp_final_loss NAME: the loss of the last training step of runs/NAME.
exp_final_loss() {
    tail -n 1 "$EXP_DIR/runs/$1.train.jsonl" | sed -E 's/.*"loss": ([0-9.eE+-]+).*/\1/'
}

# exp_first_step_below NAME X: the first optimizer step of runs/NAME whose training
# loss is below X ("-" if none): how fast a run learned, when several end at 100%.
exp_first_step_below() {
    sed -E -n 's/^\{"step": ([0-9]+), "loss": ([0-9.eE+-]+).*/\1 \2/p' "$EXP_DIR/runs/$1.train.jsonl" |
        awk -v x="$2" '$2 < x && !found { print $1; found = 1 } END { if (!found) print "-" }'
}

# exp_wall NAME: the training wall time recorded in runs/NAME.done (0 when skipped before .done existed).
exp_wall() { cat "$EXP_DIR/runs/$1.done" 2> /dev/null || echo 0; }

# exp_machine_json: where and when, for the results' header.
exp_machine_json() {
    local cpu commit
    # The CPU's name is the one string here from outside: a quote or a backslash in it would break the JSON.
    cpu=$(sed -n -E 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo | head -n 1 | tr -d '"\\')
    commit=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
    # nproc --all: plain nproc counts OMP_NUM_THREADS, not the machine's cores.
    printf '{"date": "%s", "machine": "%s, %s cores", "omp_num_threads": "%s", "commit": "%s", "smoke": %s}' "$(date -u +%Y-%m-%dT%H:%MZ)" \
        "$cpu" "$(nproc --all)" "${OMP_NUM_THREADS:-unset}" "$commit" "$([ "$EXP_SMOKE" = 1 ] && echo true || echo false)"
}

# exp_plot SCRIPT: runs a gnuplot script (PNG output) when gnuplot is installed.
exp_plot() {
    if command -v gnuplot > /dev/null; then
        gnuplot "$1" || echo "exp-$EXP_SECTION: gnuplot failed on $1" >&2
    else
        echo "exp-$EXP_SECTION: gnuplot not installed, plot script left at $1" >&2
    fi
}

# exp_end: the wall time of this invocation and what it skipped.
exp_end() {
    local wall=$(($(exp_now) - EXP_START))
    # The wall time of the last invocation that ran something (a re-run that only
    # skips and rewrites the tables keeps the figure docs/results.md quotes).
    if [ "$EXP_RAN" -gt 0 ]; then echo "$wall" > "$EXP_DIR/wall_s.last"; fi
    echo "exp-$EXP_SECTION: done in $(exp_clock "$wall") ($wall s; $EXP_RAN runs run, $EXP_SKIPPED finished before and skipped); results in $EXP_DIR" >&2
}

# exp_config BASE OUT KEY=VALUE...: BASE (a config.json with one key per line) with
# each KEY set to the JSON VALUE, written to OUT; a KEY that BASE lacks is added.
#   exp_config data/configs/exp/mqar_swa_ttt.json "$dir/c16.json" ttt_chunk=16 'ttt_layers=[0]'
exp_config() {
    local base=$1 out=$2
    shift 2
    cp "$base" "$out.tmp"
    local kv key value
    for kv in "$@"; do
        key=${kv%%=*}
        value=${kv#*=}
        if grep -q "^  \"$key\": " "$out.tmp"; then
            sed -i -E "s|^(  \"$key\": ).*[^,](,?)$|\1$value\2|" "$out.tmp"
        else
            sed -i "1a\\  \"$key\": $value," "$out.tmp"
        fi
    done
    mv "$out.tmp" "$out"
}

# ---- sweeps: one arm at several learning rates and seeds
#
# One comparison at one rate and one seed says little (issue 22): an arm can win
# because the rate suits it, or by the luck of one draw. A sweep runs each arm
# at several rates on seed 1, picks the rate on a validation measure, and runs
# that rate at more seeds; the tables report the mean and the spread over seeds.
#
#   exp_sweep_rates ARM "RATES" RUN MEASURE     RUN NAME RATE 1 per rate: the search, at seed 1,
#                                               extended below the grid while its lowest rate wins
#   rate=$(exp_best_rate ARM "RATES" MEASURE)   the rate whose run has the lowest MEASURE NAME
#   exp_arm_rates ARM "RATES"                   the rates ARM's search ran: RATES and its extension
#   exp_sweep_seeds ARM RATE "SEEDS" RUN        RUN NAME RATE K per seed K
#   exp_per_seed ARM RATE FN [ARGS]             FN RUN [ARGS] for ARM's run at RATE at every seed in $seeds
#   exp_valid_loss RUN                          the usual MEASURE: the loss in runs/RUN.valid.json
#   exp_rate_search_json ARM "RATES"            the search for results.json
#   exp_seed_stats X...                         "mean min max std" over the seeds' values
#
# RUN is a function of the section's: exp_train, then its evaluations, under the
# name it is given. Each of those skips what is finished, so a sweep resumes as
# a single run does, and the ETA stays honest when the section's exp_begin counts
# every (arm, rate, seed) it will visit, the best rate's seed 1 twice (the
# second visit is skipped and counted as done). MEASURE prints a number from
# VALIDATION data, never from the held-out test set the tables report: a rate
# chosen on the test set would report the best of several draws as one.
#
# A best rate at the bottom of the grid is not a tuned rate: a lower one might do
# better still. So when the lowest rate wins, the search runs the next rate down
# on the ladder 1, 3, 10, 30, ... (3e-4 after 1e-3, 1e-4 after 3e-4), up to
# EXP_EXTEND times (default 2; 1 at smoke size), and records those rates in
# runs/ARM.rates-below, which exp_arm_rates reads. It does not extend upward: the
# grids' tops already sit where most arms do worse, and a higher rate risks a
# diverging run, which stops the section (ittt train refuses a non-finite loss).
#
# Run names: ARM, then .lrRATE when the section sweeps rates (RATE "" does not),
# then .sK for seeds K > 1, so a section's earlier single runs (seed 1) keep
# their paths and are skipped. Seed K is the data seed K and the weights seed
# K - 1: seed 1 is what the sections ran before (--seed 1, the default --init-seed 0).

# exp_run_name ARM RATE SEED: the run's name under runs/.
exp_run_name() {
    printf '%s%s%s\n' "$1" "${2:+.lr$2}" "$([ "$3" = 1 ] || echo ".s$3")"
}

# exp_seed_flags SEED: ittt train's seed flags for seed index SEED.
exp_seed_flags() { echo "--seed $1 --init-seed $(($1 - 1))"; }

# exp_rate_below RATE: the next rate down on the half-decade ladder: 1e-3 -> 3e-4 -> 1e-4.
exp_rate_below() {
    awk -v r="$1" 'BEGIN { x = 2 * log(r) / log(10); k = (x < 0 ? int(x - 0.5) : int(x + 0.5)) - 1
        if (k % 2 == 0) printf "1e%d\n", k / 2; else printf "3e%d\n", (k - 1) / 2 }'
}

# exp_rate_list RATES...: the rates (words, in any number of arguments) once each, lowest first, on one line.
exp_rate_list() {
    # shellcheck disable=SC2048,SC2086  # one rate per word
    printf '%s\n' $* | sort -g -u | tr '\n' ' ' | sed 's/ $//'
}

# exp_arm_rates ARM "RATES" [DIR]: the rates of ARM's search in DIR (default the section's),
# lowest first: RATES and the rates its extension ran below them (runs/ARM.rates-below).
exp_arm_rates() { exp_rate_list "$2" "$(cat "${3:-${EXP_DIR:-.}}/runs/$1.rates-below" 2> /dev/null)"; }

# exp_sweep_rates ARM "RATES" RUN [MEASURE]: the rate search, every rate at seed 1; with
# MEASURE (and more than one rate), the extension below the grid described above.
exp_sweep_rates() {
    local rate grid lowest below=$EXP_DIR/runs/$1.rates-below done_before=${EXP_DONE:-0} n_grid units
    n_grid=$(echo "$2" | wc -w)
    for rate in $2; do "$3" "$(exp_run_name "$1" "$rate" 1)" "$rate" 1; done
    [ -n "${4:-}" ] && [ "$n_grid" -gt 1 ] || return 0
    # a search run's cost units (the grid's runs are alike): what an extension adds to the plan
    units=$(((${EXP_DONE:-0} - done_before) / n_grid))
    while true; do
        grid=$(exp_arm_rates "$1" "$2")
        lowest=${grid%% *}
        [ "$(exp_best_rate "$1" "$2" "$4")" = "$lowest" ] || break
        [ $(($(echo "$grid" | wc -w) - n_grid)) -lt "$EXP_EXTEND" ] || break
        rate=$(exp_rate_below "$lowest")
        EXP_UNITS=$((${EXP_UNITS:-0} + units))  # not in the section's plan: the ETA counts it from here
        exp_progress "$1" "the best rate is the grid's lowest, $lowest; trying $rate"
        "$3" "$(exp_run_name "$1" "$rate" 1)" "$rate" 1
        echo "$rate $(cat "$below" 2> /dev/null)" > "$below.tmp" && mv "$below.tmp" "$below"
    done
}

# exp_sweep_seeds ARM RATE "SEEDS" RUN: RATE at every seed (RATE "": the section's one rate).
exp_sweep_seeds() {
    local seed
    for seed in $3; do "$4" "$(exp_run_name "$1" "$2" "$seed")" "$2" "$seed"; done
}

# exp_best_rate ARM "RATES" MEASURE [DIR]: the rate of the lowest MEASURE at seed 1 among
# exp_arm_rates ARM "RATES" [DIR] (the lowest rate on a tie).
exp_best_rate() {
    local rate
    for rate in $(exp_arm_rates "$1" "$2" "${4:-}"); do echo "$rate $("$3" "$(exp_run_name "$1" "$rate" 1)")"; done |
        awk 'NR == 1 || $2 < best { best = $2; rate = $1 } END { print rate }'
}

# exp_per_seed ARM RATE FUNCTION [ARGS]: FUNCTION RUN [ARGS] for ARM's run at RATE ("": the
# section's one rate) at every seed in the section's $seeds, in order: a table cell's values.
# shellcheck disable=SC2154  # seeds: set by the section
exp_per_seed() {
    local arm=$1 rate=$2 fn=$3 seed
    shift 3
    for seed in $seeds; do "$fn" "$(exp_run_name "$arm" "$rate" "$seed")" "$@"; done
}

# exp_eval_field RUN KEY: KEY of the run's evaluation, runs/RUN.eval.json.
exp_eval_field() { exp_field "$EXP_DIR/runs/$1.eval.json" "$2"; }

# exp_valid_loss RUN: the loss of the run's validation score, runs/RUN.valid.json (the
# MEASURE of exp_best_rate and exp_rates_row in every section that searches rates).
exp_valid_loss() { exp_field "$EXP_DIR/runs/$1.valid.json" loss; }

# exp_rate_search_json ARM "RATES": the search as a JSON array for results.json: per rate
# {"lr": RATE, "run": RUN, "valid": RUN's validation score}, at seed 1.
exp_rate_search_json() {
    local rate run out=""
    for rate in $(exp_arm_rates "$1" "$2"); do
        run=$(exp_run_name "$1" "$rate" 1)
        out+="${out:+, }{\"lr\": $rate, \"run\": \"$run\", \"valid\": $(cat "$EXP_DIR/runs/$run.valid.json")}"
    done
    echo "[$out]"
}

# exp_seed_stats X...: "mean min max std" of the values (std: the sample standard
# deviation, n - 1; 0 for one value). Tables quote mean and min-max: with 3 seeds
# the range is every draw there is, where a standard deviation would be a guess.
exp_seed_stats() {
    printf '%s\n' "$@" | awk '{ x[NR] = $1; s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
        END { m = s / NR; for (i = 1; i <= NR; i++) v += (x[i] - m) ^ 2
              printf "%.9g %.9g %.9g %.9g\n", m, lo, hi, (NR > 1 ? sqrt(v / (NR - 1)) : 0) }'
}

# exp_mean_range FORMAT X...: "mean (min-max)" of the values, each printed with the
# printf FORMAT (e.g. %.3f); just the value when all are equal in that format; "(min to
# max)" when either is negative.
exp_mean_range() {
    local format=$1
    shift
    exp_seed_stats "$@" | awk -v f="$format" '{ m = sprintf(f, $1); lo = sprintf(f, $2); hi = sprintf(f, $3)
        sep = (lo ~ /^-/ || hi ~ /^-/) ? " to " : "-"  # "(-0.26 to 0.05)", not "(-0.26-0.05)"
        if (lo == hi) print m; else print m " (" lo sep hi ")" }'
}

# exp_table_head COLUMNS LABEL "VALUES" [MORE]: a table's head and rule: "| COLUMNS |", a
# column " LABEL v |" for every v in VALUES, then " MORE |" if given; COLUMNS and MORE may
# be several columns ("d | model"), e.g. exp_table_head model "n =" "64 128" "final train loss".
exp_table_head() {
    local v i n
    n=$(($(printf '%s' "$1" | tr -cd '|' | wc -c) + 1))
    printf '| %s |' "$1"
    for v in $3; do printf ' %s %s |' "$2" "$v"; done
    if [ -n "${4:-}" ]; then
        printf ' %s |' "$4"
        n=$((n + $(printf '%s' "$4" | tr -cd '|' | wc -c) + 1))
    fi
    printf '\n|'
    for ((i = 0; i < n; i++)); do printf -- '---|'; done
    for _ in $3; do printf -- '---|'; done
    echo
}

# exp_rates_columns "ARMS" "RATES": every rate any of ARMS ran in its search, lowest first:
# the columns of a rate-search table.
exp_rates_columns() {
    local arm
    exp_rate_list "$(for arm in $1; do exp_arm_rates "$arm" "$2"; echo; done)"
}

# exp_rates_head COLUMNS "RATES": the head of a rate-search table, e.g. COLUMNS "d | model":
# "| d | model | lr 1e-3 | ... |" and its rule.
exp_rates_head() { exp_table_head "$1" lr "$2"; }

# exp_rates_row CELLS ARM "RATES" MEASURE ["COLUMNS"]: one row of that table: "| CELLS |",
# then ARM's MEASURE (exp_best_rate's) at every rate of COLUMNS (default RATES) on seed 1,
# 5 characters (3 significant digits below 0.01, where 5 characters would read 0.000 or
# cut an exponent off), * on the best, - where ARM's search did not run that rate.
exp_rates_row() {
    local best rate grid
    best=$(exp_best_rate "$2" "$3" "$4")
    grid=" $(exp_arm_rates "$2" "$3") "
    printf '| %s |' "$1"
    for rate in ${5:-$3}; do
        if [ "${grid#* "$rate" }" = "$grid" ]; then printf ' - |'; continue; fi
        printf ' %s%s |' "$("$4" "$(exp_run_name "$2" "$rate" 1)" | awk '{ if ($1 < 0.01) printf "%.3g\n", $1; else print substr($1, 1, 5) }')" \
            "$([ "$rate" = "$best" ] && echo ' *')"
    done
    echo
}

# exp_last_step RUN_DIR: the newest checkpoint (step-N, zero-padded, so the last in
# order) of a training run's folder.
exp_last_step() { ls -d "$1"/step-* | tail -n 1; }

# ---- what sections share

# exp_mqar_setup: section 1's task and model, which section 3 ablates: MQAR with 8
# pairs queried at least 96 tokens later, past the window of 32.
exp_mqar_setup() {
    steps=${STEPS:-$(exp_size 1000 4)}
    batch=$(exp_size 16 2)
    seq=$(exp_size 256 128)
    eval_batches=$(exp_size 8 1)
    task_opt=pairs=8,gap=96
    base=data/configs/exp/mqar_swa_ttt.json
}

# exp_text_setup [DOCS]: sections 2 and 5's training shape and metric, and their corpus in
# $EXP_DIR/corpus: the loss on the final 64 held-out bytes (score_last=64) of windows of
# n bytes ending at the same offsets for every n (max_length), n in $lengths.
# DOCS (default packed) is how windows treat the corpus's files, which it lists
# (train.txt.docs, ...): bounded keeps every window inside its documents (the CLI's
# default), packed runs the files end to end as one stream. Sections 2 and 5 run
# bounded (section 5's one-seed table of 2026-12-01 was measured packed).
# EXP_TEXT_DOCS overrides either.
exp_text_setup() {
    batch=$(exp_size 4 1)
    seq=$(exp_size 1024 128)
    # 16 x 16 windows per evaluation (262k bytes read, 16k scored): at 4 x 16 the difference
    # between two context lengths moved by up to 0.04 nats from one set of windows to another
    # (n = 512 against 1024 on test.txt, valid.txt and heldout.txt, 2026-12-07).
    eval_batches=$(exp_size 16 1)
    eval_batch=$(exp_size 16 2)
    lengths=$(exp_size "64 128 256 512 1024" "64 128")
    max_len=$(exp_size 1024 128)
    n_len=$(echo "$lengths" | wc -w)
    src/tools/exp/corpus.sh "$EXP_DIR/corpus"
    text_docs=${EXP_TEXT_DOCS:-${1:-packed}}
    train_opt="path=$EXP_DIR/corpus/train.txt,docs=$text_docs"
}

# exp_text_eval MODEL OUT SPLIT N: the metric at length N on corpus/SPLIT.txt, into OUT.
exp_text_eval() {
    exp_eval "$1" "$2" 5 --task text --task-opt "path=$EXP_DIR/corpus/$3.txt,score_last=64,max_length=$max_len,docs=$text_docs" --seed 1000 \
        --batches "$eval_batches" --batch "$eval_batch" --seq-len "$4"
}

# exp_text_evals MODEL [SPLIT]: the metric at every n in $lengths on corpus/SPLIT.txt
# (default heldout), runs/MODEL.nN.eval.json.
exp_text_evals() {
    local n
    for n in $lengths; do exp_text_eval "$1" "$EXP_DIR/runs/$1.n$n.eval.json" "${2:-heldout}" "$n"; done
}

# exp_text_losses MODEL: " loss" per n (the table's cells, 3 decimals).
exp_text_losses() {
    local n
    for n in $lengths; do printf ' %s |' "$(exp_field "$EXP_DIR/runs/$1.n$n.eval.json" loss | cut -c1-5)"; done
}

# exp_text_evals_json MODEL: the evals of exp_text_evals as a JSON array's items.
exp_text_evals_json() {
    local n out=""
    for n in $lengths; do out+="${out:+, }$(cat "$EXP_DIR/runs/$1.n$n.eval.json")"; done
    echo "$out"
}

# exp_loss_at MODEL N: the loss of runs/MODEL.nN.eval.json (exp_context_plot's cells;
# a section sets EXP_LOSS_AT to its own function to plot something else, e.g. a mean).
exp_loss_at() { exp_field "$EXP_DIR/runs/$1.n$2.eval.json" loss; }

# exp_context_plot TITLE MODEL=LABEL...: context.dat (loss per context length, one
# column per model) and context.png, the curve per model. With EXP_BAND_AT set (a
# function MODEL N printing "min max", e.g. over seeds), each model gets two more
# columns and a shaded band between them around its curve.
exp_context_plot() {
    local title=$1 n m i=2 plot="" band=${EXP_BAND_AT:-}
    shift
    {
        echo "# context_bytes(before the final 64) ${*%%=*}  (held-out loss, nats per byte$([ -n "$band" ] && echo '; per model: loss min max'))"
        for n in $lengths; do
            printf '%d' $((n - 64))
            for m in "$@"; do
                printf ' %s' "$("${EXP_LOSS_AT:-exp_loss_at}" "${m%%=*}" "$n")"
                if [ -n "$band" ]; then printf ' %s' "$("$band" "${m%%=*}" "$n")"; fi
            done
            echo
        done
    } > "$EXP_DIR/context.dat"
    for m in "$@"; do
        if [ -n "$band" ]; then
            plot+="${plot:+, }\"$EXP_DIR/context.dat\" using 1:$((i + 1)):$((i + 2)) with filledcurves linecolor $(((i + 1) / 3)) fillstyle transparent solid 0.2 notitle"
            plot+=", \"$EXP_DIR/context.dat\" using 1:$i with linespoints linecolor $(((i + 1) / 3)) title \"${m#*=}\""
            i=$((i + 3))
        else
            plot+="${plot:+, }\"$EXP_DIR/context.dat\" using 1:$i with linespoints title \"${m#*=}\""
            i=$((i + 1))
        fi
    done
    cat > "$EXP_DIR/context.gp" << EOF
set terminal pngcairo size 800,480 font ",10"
set output "$EXP_DIR/context.png"
set title "$title"
set xlabel "bytes of context before the final block"
set ylabel "loss (nats per byte)"
set key top right
set grid
set arrow from 64, graph 0 to 64, graph 1 nohead dashtype 2
set label "window" at 64, graph 0.95 offset 1,0
plot $plot
EOF
    exp_plot "$EXP_DIR/context.gp"
}
