#!/usr/bin/env bash
# gpu-check.sh: everything a first GPU run should do, in one command, within a time budget
# (docs/profiling.md, "The first GPU run"). Made for the device machine of the device tool
# (one H100, nvcc, ncu and compute-sanitizer; no make promised, no network, no nsys), where it
# runs from the bundle that `make gpu-bundle` packs, and exercised in CI on the CUDA emulator.
#
#   bash BUNDLE/gpu-check.sh [options]                   on the GPU machine (BUNDLE: build-gpu/bundle)
#   make gpu-check BIN=DIR [GPU_CHECK_MODE=emu]          the same from a checkout
#
#   --bin DIR      ittt, ittt_tests and ittt_bench, or a bundle (ittt-gpu.tar.gz, unpacked to
#                  $TMPDIR first); default: this script's folder
#   --mode gpu     (default) a real GPU: the [cuda] tests fail when no case ran on a GPU
#   --mode emu     the emulated build (make CUDA=emu): small test subset, --tiny benchmarks,
#                  GPU-only tools skipped with a line saying what would run
#   --out DIR      results (default: $OUT when set, as the device tool sets it, else ./gpu-check-out)
#   --budget S     seconds for everything (default 500); each stage has its own cap within it
#   --only LIST    stages to run, comma-separated: tests,bench,ncu,sanitizers (default: all)
#   --tools DIR    compute-sanitizer and ncu from DIR, also on the emulator (CI: tests/gpu/stand-ins,
#                  which run the program and print the real tools' summary lines, so that those
#                  stages' logic runs before a GPU does; with the emulator's small shapes)
#
# Stages, in this order, each under `timeout` (one that runs out is TIMEOUT, with its partial log):
#   tests       the [cuda] tests (cap 120 s); FAIL unless "[cuda] cases run: N on the CUDA emulator
#               (CPU), M on a GPU" shows M > 0 (emu: N > 0) and every case passed
#   bench       ittt_bench's GPU benchmarks, one process each (caps 90, 20, 45, 30, 20 s), rows
#               appended to bench.csv; then the CSV check: header, field counts, numbers,
#               comparators, every CUDA gemm version of the op table in NN, NT and TN, max_rel_diff
#               within 1e-2 (emu: also that broken copies of the CSV are refused)
#   ncu         Nsight Compute sections of every CUDA gemm version (ittt info --kernels) at 2048^3
#               NN (cap 25 s each)
#   sanitizers  compute-sanitizer memcheck, racecheck, synccheck, initcheck on the small-shape
#               [cuda] op tests (ITTT_TEST_SHAPES=small, tests/test_util.h); last, so each tool gets
#               an equal share of what is left (at most 60 s)
# Output (at most 8 files, the device tool's limit): summary.txt, bench.csv, tests.log,
# sanitizers.log, bench.log, ncu.txt, logs.tar.gz (every log in full and the .ncu-rep reports).
# Last line: "N passed, M failed" over the stages (skipped ones not counted); exit 1 if any failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$here
mode=${GPU_CHECK_MODE:-gpu}
out=${OUT:-$PWD/gpu-check-out}
budget=500
only=tests,bench,ncu,sanitizers
tools=''

usage() { sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --tools) tools=$(cd "$2" && pwd) || exit 2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
done
case $mode in gpu|emu) ;; *) echo "gpu-check: --mode must be gpu or emu, found '$mode'" >&2; exit 2 ;; esac
case $budget in ''|*[!0-9]*) echo "gpu-check: --budget must be whole seconds, found '$budget'" >&2; exit 2 ;; esac
for s in ${only//,/ }; do
    case $s in tests|sanitizers|bench|ncu) ;; *) echo "gpu-check: --only: unknown stage '$s' (tests, bench, ncu, sanitizers)" >&2; exit 2 ;; esac
done

start=$(date +%s)
deadline=$((start + budget))
mkdir -p "$out" || { echo "gpu-check: cannot create the output folder $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ittt-gpu-check.XXXXXX")
mkdir -p "$work/logs" "$work/ncu"
summary=$work/summary.txt
results=$work/stages.txt   # one line per stage: STATUS<TAB>name<TAB>seconds<TAB>detail
: > "$results"

say() { echo "gpu-check: $*" | tee -a "$summary"; }
elapsed() { echo $(($(date +%s) - start)); }

# timeout_for WANT: WANT seconds, or what is left of the budget (less 5 s for the summary) if that is less.
timeout_for() {
    local left=$((deadline - $(date +%s) - 5))
    [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

# record STATUS NAME SECONDS DETAIL: a stage's result (PASS, FAIL, TIMEOUT, SKIP).
record() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$results"
    say "$(printf '%-7s %-26s %4ss  %s' "$1" "$2" "$3" "$4")"
}

# run_timed LOG SECONDS COMMAND...: runs COMMAND under timeout, its output appended to LOG; prints
# its exit status (124: timed out; 137: killed 10 s after that).
run_timed() {
    local log=$1 seconds=$2
    shift 2
    echo "\$ $*" >> "$log"
    timeout --kill-after=10 "$seconds" "$@" >> "$log" 2>&1
    echo $?
}

wants() { [[ ",$only," == *",$1,"* ]]; }

# ---- the programs: a folder of them, or a bundle to unpack ----
if [ -f "$bin/ittt-gpu.tar.gz" ]; then
    unpacked=${GPU_CHECK_UNPACK:-${TMPDIR:-/tmp}/ittt-gpu-bundle}
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    if ! tar -xzf "$bin/ittt-gpu.tar.gz" -C "$unpacked"; then
        echo "gpu-check: cannot unpack $bin/ittt-gpu.tar.gz into $unpacked" >&2
        exit 2
    fi
    say "unpacked $bin/ittt-gpu.tar.gz into $unpacked"
    bin=$unpacked
fi
bin=$(cd "$bin" && pwd)
for p in ittt ittt_tests ittt_bench; do
    if [ ! -x "$bin/$p" ]; then
        echo "gpu-check: $bin/$p is missing: give --bin a folder with ittt, ittt_tests and ittt_bench (make gpu-bundle packs one)" >&2
        exit 2
    fi
done

say "mode $mode, programs in $bin, results in $out, budget ${budget}s"
[ -f "$bin/BUILD-INFO.txt" ] && sed 's/^/  build: /' "$bin/BUILD-INFO.txt" | head -12 | tee -a "$summary"

# cuBLAS comes from the machine's CUDA (the bundle leaves it out: 600 MB). Where the loader does
# not find it, look in the usual places and put the first hit on LD_LIBRARY_PATH.
if ldd "$bin/ittt_bench" 2>/dev/null | grep -q 'libcublas.*not found'; then
    found=
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu; do
        if [ -e "$d/libcublas.so.13" ]; then found=$d; break; fi
    done
    if [ -z "$found" ]; then
        hit=$(timeout 30 find / -xdev -name 'libcublas.so.13*' -print -quit 2>/dev/null)
        [ -n "$hit" ] && found=$(dirname "$hit")
    fi
    if [ -n "$found" ]; then
        export LD_LIBRARY_PATH=$found${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        say "cuBLAS: libcublas.so.13 from $found (put on LD_LIBRARY_PATH)"
    else
        say "cuBLAS: libcublas.so.13 not found on this machine: ittt_bench cannot start, so the bench and ncu stages will fail"
    fi
fi
missing=$(for p in ittt ittt_tests ittt_bench; do ldd "$bin/$p" 2>/dev/null | grep 'not found' | sed "s|^|$p: |"; done)
[ -n "$missing" ] && say "libraries the loader cannot find:" && echo "$missing" | sed 's/^/  /' | tee -a "$summary"

# ---- the device ----
if command -v nvidia-smi > /dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/  nvidia-smi: /' | tee -a "$summary"
fi
info=$("$bin/ittt" info 2>&1)
echo "$info" | sed 's/^/  ittt info: /' | tee -a "$summary"
emulated=0
echo "$info" | grep -q 'EMULATED' && emulated=1
if [ "$mode" = gpu ] && [ "$emulated" = 1 ]; then
    say "this build's CUDA device is the CPU emulator: use --mode emu (or bundle an nvcc build: make gpu-bundle)"
    exit 2
fi
if [ "$mode" = gpu ] && ! echo "$info" | grep -qE '^cuda: .*\(sm_[0-9]+'; then
    say "no GPU for this build (ittt info above): nothing here can run; on the device machine, check nvidia-smi and the driver"
    exit 2
fi
if [ "$mode" = emu ] && [ "$emulated" = 0 ]; then
    say "--mode emu needs the emulated build (make CUDA=emu: build-emu/); this one is not emulated"
    exit 2
fi

# The tools, each found on PATH or in CUDA's folders; a missing one is said once, here.
find_tool() {
    local t
    t=$(command -v "$1" 2>/dev/null) || t=
    if [ -z "$t" ]; then
        for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer /opt/nvidia/nsight-compute/*; do
            [ -x "$d/$1" ] && t=$d/$1 && break
        done
    fi
    echo "$t"
}
sanitizer=$(find_tool compute-sanitizer)
ncu=$(find_tool ncu)
nsys=$(command -v nsys 2>/dev/null || true)
if [ -n "$tools" ]; then
    sanitizer=$tools/compute-sanitizer ncu=$tools/ncu
    say "compute-sanitizer and ncu: $tools's (--tools)"
else
    for pair in "compute-sanitizer:$sanitizer" "ncu:$ncu"; do
        name=${pair%%:*} path=${pair#*:}
        if [ "$mode" = emu ]; then say "$name: not used on the CUDA emulator (a GPU-only tool)"
        elif [ -n "$path" ]; then say "$name: $path"
        else say "$name: not found on this machine (PATH, /usr/local/cuda/bin): its stage is skipped"; fi
    done
fi
# GPU-only tools run on a GPU, or on the emulator with --tools' stand-ins.
gpu_tools=0
[ "$mode" = gpu ] || [ -n "$tools" ] && gpu_tools=1
if [ "$mode" = gpu ] && [ -z "$nsys" ]; then say "nsys: not on this machine: no Nsight Systems timeline (make profile takes one where nsys exists)"
elif [ "$mode" = gpu ]; then say "nsys: $nsys (gpu-check takes no timeline; make profile does)"; fi

# The CUDA gemm versions of the op table, as "number<TAB>kernels", from `ittt info --kernels`
# (lines "  cuda  4* name: idea  [regex]", "cuda-emu" on the emulator, under the "gemm  (kernels/gemm)..."
# block). CI runs this on the emulator, and the CSV check compares it with the benchmark's rows.
gemm_versions=$("$bin/ittt" info --kernels 2>/dev/null | awk '
    /^[a-z_]+ +\(kernels\// { in_gemm = ($1 == "gemm"); next }
    in_gemm && ($1 == "cuda" || $1 == "cuda-emu") && $2 ~ /^[0-9]+\*?$/ {
        v = $2; sub(/\*$/, "", v)
        k = $0; sub(/.*\[/, "", k); sub(/\][ \t]*$/, "", k)
        print v "\t" k
    }')
if [ -z "$gemm_versions" ]; then
    say "ittt info --kernels lists no CUDA gemm version: the bench check and ncu stage have nothing to compare with"
fi

# ---- stage: tests ----
if wants tests; then
    log=$work/logs/tests.log
    t0=$(date +%s)
    if [ "$mode" = gpu ]; then filter=${GPU_CHECK_TESTS:-[cuda]}; shapes=${ITTT_TEST_SHAPES:-}
    else filter=${GPU_CHECK_TESTS:-[cuda][prefix_scan],[cuda][rmsnorm]}; shapes=small; fi
    rc=$(ITTT_TEST_SHAPES=$shapes run_timed "$log" "$(timeout_for 120)" "$bin/ittt_tests" "$filter")
    tail -n 3 "$log" | sed "s/^/  ittt_tests: /"
    counts=$(grep -E '^\[cuda\] cases run: [0-9]+ on the CUDA emulator \(CPU\), [0-9]+ on a GPU' "$log" | tail -n 1)
    on_emu=$(echo "$counts" | sed -E 's/.*run: ([0-9]+) on the CUDA emulator.*/\1/')
    on_gpu=$(echo "$counts" | sed -E 's/.*, ([0-9]+) on a GPU.*/\1/')
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        record TIMEOUT tests $(($(date +%s) - t0)) "'$filter' ran out of time (tests.log has the cases that finished)"
    elif [ -z "$counts" ]; then
        record FAIL tests $(($(date +%s) - t0)) "no '[cuda] cases run' line (exit $rc): see tests.log"
    elif [ "$mode" = gpu ] && [ "$on_gpu" -eq 0 ]; then
        record FAIL tests $(($(date +%s) - t0)) "zero [cuda] cases ran on a GPU ($on_emu on the emulator): $line"
    elif [ "$mode" = emu ] && [ "$on_emu" -eq 0 ]; then
        record FAIL tests $(($(date +%s) - t0)) "zero [cuda] cases ran on the emulator: $line"
    elif [ "$rc" != 0 ]; then
        record FAIL tests $(($(date +%s) - t0)) "'$filter': $line (exit $rc)"
    else
        record PASS tests $(($(date +%s) - t0)) "'$filter': $line; [cuda] cases: $on_gpu on a GPU, $on_emu on the emulator"
    fi
fi

# ---- stage: benchmarks, then the CSV check ----
# check_csv FILE MODE: the CSV's shape and content; prints one line per problem, exit 1 if any.
check_csv() {
    local file=$1 check_mode=$2
    local header="benchmark,op,variant,version,name,kernels,shape,device,ms,calls,rate,unit,comparator,comparator_ms,comparator_rate,fraction,max_rel_diff"
    if [ ! -s "$file" ]; then echo "$(basename "$file"): missing or empty"; return 1; fi
    awk -F, -v name="$(basename "$file")" -v header="$header" -v mode="$check_mode" -v versions="$gemm_versions_list" \
        -v expect="${GPU_CHECK_EXPECT:-gemm_cuda membw_cuda attention_cuda ttt_cuda cross_entropy_cuda}" '
        function bad(msg) { print name ":" NR ": " msg; problems++ }
        function number(x) { return x ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
        NR == 1 { if ($0 != header) bad("header is \"" $0 "\", expected \"" header "\""); nf = split(header, h, ","); next }
        {
            if (NF != nf) { bad(NF " fields, expected " nf); next }
            rows[$1]++
            if (!number($4) || $4 < 1) bad("version \"" $4 "\" is not a table version (1, 2, ...)")
            if (!number($9) || !($9 > 0)) bad("ms \"" $9 "\" is not a positive number")
            if (!number($10) || $10 < 1) bad("calls \"" $10 "\" is not a count")
            if (!number($11) || $11 < 0) bad("rate \"" $11 "\" is not a number")
            if ($12 != "GFLOP/s" && $12 != "GB/s") bad("unit \"" $12 "\" is neither GFLOP/s nor GB/s")
            if ($13 == "none" || $13 == "-") bad("no comparator")
            else if (!number($14) || !(number($15)) || !number($16)) bad("comparator " $13 " without its ms, rate and fraction")
            if ($17 != "" && (!number($17) || $17 > 1e-2)) bad("max_rel_diff \"" $17 "\" above 1e-2: the kernel and its comparator disagree")
            emu = ($8 ~ /EMULATED/)
            if (mode == "gpu" && emu) bad("device \"" $8 "\" is the emulator in a GPU run")
            if (mode == "emu" && !emu) bad("device \"" $8 "\" is not the emulator in an emulator run")
            if ($1 == "gemm_cuda") seen[$3 " " $4]++
        }
        END {
            n = split(expect, want, " ")
            for (i = 1; i <= n; i++) if (!(want[i] in rows)) { print name ": no rows of " want[i]; problems++ }
            if ("gemm_cuda" in rows) {
                nv = split(versions, v, " ")
                if (nv == 0) { print name ": no CUDA gemm versions to look for (ittt info --kernels)"; problems++ }
                for (i = 1; i <= nv; i++) for (l = 1; l <= 3; l++) {
                    layout = substr("NN NT TN", 3 * l - 2, 2)
                    if (!((layout " " v[i]) in seen)) { print name ": gemm version " v[i] " has no " layout " row"; problems++ }
                }
            }
            exit problems > 0
        }' "$file"
}
gemm_versions_list=$(echo "$gemm_versions" | cut -f1 | paste -sd ' ' -)
# ittt_bench's shapes: the model's, or on the emulator toy ones (--tiny, its only mode there)
size_flags=()
[ "$mode" = emu ] && size_flags=(--tiny)

if wants bench; then
    log=$work/logs/bench.log
    csv=$work/bench.csv
    rm -f "$csv"
    # One process per benchmark, each with its own cap: one that hangs or fails costs only its rows.
    for pair in gemm_cuda:90 membw_cuda:20 attention_cuda:45 ttt_cuda:30 cross_entropy_cuda:20; do
        name=${pair%%:*} cap=${pair#*:}
        t0=$(date +%s)
        seconds=$(timeout_for "$cap")
        if [ "$seconds" -lt 5 ]; then
            record SKIP "bench $name" 0 "no time left in the ${budget}s budget"
            continue
        fi
        rc=$(run_timed "$log" "$seconds" "$bin/ittt_bench" "${size_flags[@]}" --filter "$name" --csv "$csv")
        rows=$(grep -c "^$name," "$csv" 2>/dev/null)
        failed_rows=$(grep -c ': failed: ' "$log")
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then record TIMEOUT "bench $name" $(($(date +%s) - t0)) "ran out of ${seconds}s: no rows written"
        elif [ "$rc" != 0 ]; then record FAIL "bench $name" $(($(date +%s) - t0)) "exit $rc, $rows rows; bench.log has the 'failed:' lines ($failed_rows so far)"
        elif [ "${rows:-0}" -eq 0 ]; then record FAIL "bench $name" $(($(date +%s) - t0)) "no rows: $(grep -E "^$name: " "$log" | tail -n 1)"
        else record PASS "bench $name" $(($(date +%s) - t0)) "$rows rows"; fi
    done
    t0=$(date +%s)
    if problems=$(check_csv "$csv" "$mode" 2>&1); then
        record PASS "bench.csv check" $(($(date +%s) - t0)) "$(($(wc -l < "$csv") - 1)) rows, well-formed, every CUDA gemm version ($gemm_versions_list) in NN, NT, TN"
    else
        echo "$problems" | head -n 20 | tee -a "$log"
        record FAIL "bench.csv check" $(($(date +%s) - t0)) "$(echo "$problems" | grep -c .) problems, the first: $(echo "$problems" | head -n 1)"
    fi
    # The check must be able to fail: a few broken copies of the CSV are each refused (emu mode,
    # where CI runs this, so that a check that accepts anything cannot pass unnoticed).
    if [ "$mode" = emu ] && [ -s "$csv" ]; then
        t0=$(date +%s)
        broken=$work/broken.csv
        refused=0 tried=0
        for mutation in 's/^benchmark,/bench,/' '2s/,[^,]*$//' '2s/^\([^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*\),[^,]*,/\1,fast,/' \
                        '2s/,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*$/,none,,,,/' '/^gemm_cuda,gemm,TN,/d' '/^ttt_cuda,/d' \
                        '2s/EMULATED/GPU/' '2s/,[^,]*$/,0.5/'; do
            tried=$((tried + 1))
            sed "$mutation" "$csv" > "$broken"
            if check_csv "$broken" "$mode" > /dev/null 2>&1; then echo "the CSV check accepted a broken CSV (sed '$mutation')" | tee -a "$log"
            else refused=$((refused + 1)); fi
        done
        if [ "$refused" = "$tried" ]; then record PASS "bench.csv check fails" $(($(date +%s) - t0)) "all $tried broken copies refused"
        else record FAIL "bench.csv check fails" $(($(date +%s) - t0)) "$((tried - refused)) of $tried broken copies accepted"; fi
    fi
fi

# ---- stage: Nsight Compute, every CUDA gemm version ----
ncu_size=${GPU_CHECK_NCU_SIZE:-2048}
[ "$mode" = emu ] && ncu_size=${GPU_CHECK_NCU_SIZE:-64}
sections=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section Occupancy
          --section LaunchStats --section WarpStateStats)
if wants ncu; then
    txt=$work/ncu.txt
    : > "$txt"
    if [ -z "$gemm_versions" ]; then
        record FAIL ncu 0 "no CUDA gemm versions from ittt info --kernels"
    else
        while IFS=$'\t' read -r -u 3 v kernels; do
            t0=$(date +%s)
            cmd=("${ncu:-ncu}" "${sections[@]}" -k "regex:$kernels" -s 1 -c 1 -f -o "$work/ncu/gemm_v$v" "$bin/ittt_bench" "${size_flags[@]}"
                 --filter gemm_cuda)
            if [ "$gpu_tools" = 0 ]; then
                [ -n "$kernels" ] && status=SKIP || status=FAIL
                record "$status" "ncu gemm v$v" 0 "on the emulator; would run: ITTT_KERNEL=gemm=$v ITTT_GEMM_SIZE=$ncu_size ITTT_GEMM_LAYOUT=NN ncu ... -k 'regex:$kernels'"
                continue
            fi
            if [ -z "$ncu" ]; then record SKIP "ncu gemm v$v" 0 "ncu not found on this machine"; continue; fi
            seconds=$(timeout_for 25)
            if [ "$seconds" -lt 10 ]; then record SKIP "ncu gemm v$v" 0 "no time left in the ${budget}s budget"; continue; fi
            vlog=$work/logs/ncu-gemm-v$v.log
            rc=$(ITTT_KERNEL=gemm=$v ITTT_GEMM_SIZE=$ncu_size ITTT_GEMM_LAYOUT=NN run_timed "$vlog" "$seconds" "${cmd[@]}")
            if [ "$rc" = 0 ] && [ -f "$work/ncu/gemm_v$v.ncu-rep" ]; then
                { echo "==== gemm version $v ($kernels), ${ncu_size}^3 NN"; "$ncu" --import "$work/ncu/gemm_v$v.ncu-rep" --page details 2>&1; } >> "$txt"
                sol=$("$ncu" --import "$work/ncu/gemm_v$v.ncu-rep" --page details 2>/dev/null |
                      grep -E '^\s*(Compute \(SM\) Throughput|Memory Throughput|Duration)\s' | awk '{ $1 = $1; print }' | paste -sd ';' -)
                record PASS "ncu gemm v$v" $(($(date +%s) - t0)) "${sol:-report written}"
            elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
                record TIMEOUT "ncu gemm v$v" $(($(date +%s) - t0)) "ran out of ${seconds}s (ncu-gemm-v$v.log)"
            else
                record FAIL "ncu gemm v$v" $(($(date +%s) - t0)) "exit $rc: $(grep -E '==ERROR==|==WARNING==|error' "$vlog" | head -n 1)"
            fi
        done 3<<< "$gemm_versions"
    fi
fi

# ---- stage: compute-sanitizer, four tools on the small-shape op tests ----
# The [cuda] op tests without the whole-model ones; small shapes (every kind of case, fewer of each).
sanitize_filter=${GPU_CHECK_SANITIZE_TESTS:-[cuda]~[model]}
[ "$mode" = emu ] && sanitize_filter=${GPU_CHECK_SANITIZE_TESTS:-[cuda][prefix_scan]}  # the emulator is slow: one op
if wants sanitizers; then
    log=$work/logs/sanitizers.log
    # the names Catch2 lists, without test_main.cpp's closing count lines
    cases=$("$bin/ittt_tests" "$sanitize_filter" --list-test-names-only 2>/dev/null | grep -vE '^\[cuda\] cases run|^[0-9]+ passed, ' | grep -c .)
    checks=(memcheck racecheck synccheck initcheck)
    for i in "${!checks[@]}"; do
        tool=${checks[$i]}
        t0=$(date +%s)
        if [ "${cases:-0}" -eq 0 ]; then
            record FAIL "sanitizer $tool" 0 "the test filter '$sanitize_filter' selects no case"
            continue
        fi
        if [ "$gpu_tools" = 0 ]; then
            record SKIP "sanitizer $tool" 0 "on the emulator; would run: compute-sanitizer --tool $tool ittt_tests '$sanitize_filter' ($cases cases, small shapes)"
            continue
        fi
        if [ -z "$sanitizer" ]; then
            record SKIP "sanitizer $tool" 0 "compute-sanitizer not found on this machine"
            continue
        fi
        # the last stage: each tool gets an equal share of what is left, at most 60 s
        share=$(((deadline - $(date +%s) - 5) / (${#checks[@]} - i)))
        seconds=$(timeout_for $((share < 60 ? share : 60)))
        if [ "$seconds" -lt 10 ]; then
            record SKIP "sanitizer $tool" 0 "no time left in the ${budget}s budget"
            continue
        fi
        tool_log=$work/logs/sanitizer-$tool.log
        # --error-exitcode: a finding fails the run even when every test passes.
        rc=$(ITTT_TEST_SHAPES=small run_timed "$tool_log" "$seconds" "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 20 \
             "$bin/ittt_tests" "$sanitize_filter" --durations yes)
        { echo "==== $tool (exit $rc)"; cat "$tool_log"; } >> "$log"
        verdict=$(grep -E '(ERROR|RACECHECK) SUMMARY' "$tool_log" | tail -n 1 | sed 's/^=* *//')
        done_cases=$(grep -cE '^[0-9.]+ s: ' "$tool_log")
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            record TIMEOUT "sanitizer $tool" $(($(date +%s) - t0)) "ran out of ${seconds}s after $done_cases of $cases cases, ${verdict:-no summary yet}; sanitizers.log has what it printed"
        elif [ "$rc" = 0 ]; then
            record PASS "sanitizer $tool" $(($(date +%s) - t0)) "$cases cases: ${verdict:-no summary line}"
        else
            record FAIL "sanitizer $tool" $(($(date +%s) - t0)) "exit $rc over $cases cases: ${verdict:-see sanitizers.log}"
        fi
    done
fi

# ---- the summary: the benchmarks' fractions, then the stages ----
if [ -s "$work/bench.csv" ]; then
    {
        echo
        echo "benchmarks (bench.csv): rate, and the fraction of the comparator's rate in the same run"
        awk -F, 'NR > 1 { printf "  %-18s %-13s %-9s v%-2s %-44s %10.1f %-7s %6.1f%% of %s\n", $1, $2, $3, $4, $7, $11, $12, 100 * $16, $13 }' "$work/bench.csv"
    } | tee -a "$summary"
fi
passed=$(grep -c '^PASS' "$results")
failed=$(grep -cE '^(FAIL|TIMEOUT)' "$results")
skipped=$(grep -c '^SKIP' "$results")
{
    echo
    echo "stages (mode $mode, $(elapsed)s of the ${budget}s budget):"
    awk -F'\t' '{ printf "  %-7s %-26s %4ss  %s\n", $1, $2, $3, $4 }' "$results"
} | tee -a "$summary"

# ---- the output folder: at most 8 files (the device tool brings back no more) ----
cap() {  # cap FILE DEST: a copy of at most 4 MiB (its first and last 2 MiB when larger)
    [ -f "$1" ] || return 0
    if [ "$(wc -c < "$1")" -le 4194304 ]; then cp "$1" "$2"
    else { head -c 2097152 "$1"; printf '\n[... cut: the whole file is in logs.tar.gz ...]\n'; tail -c 2097152 "$1"; } > "$2"; fi
}
cp "$summary" "$out/summary.txt"
[ -f "$work/bench.csv" ] && cp "$work/bench.csv" "$out/bench.csv"
cap "$work/logs/tests.log" "$out/tests.log"
cap "$work/logs/sanitizers.log" "$out/sanitizers.log"
cap "$work/logs/bench.log" "$out/bench.log"
cap "$work/ncu.txt" "$out/ncu.txt"
packed=(logs ncu summary.txt)
[ -f "$work/bench.csv" ] && packed+=(bench.csv)
tar -czf "$out/logs.tar.gz" -C "$work" "${packed[@]}"
if [ "$(wc -c < "$out/logs.tar.gz")" -gt 15728640 ]; then  # the device tool brings back files up to 16 MiB
    tar -czf "$out/logs.tar.gz" -C "$work" --exclude='*.ncu-rep' "${packed[@]}"
    echo "gpu-check: logs.tar.gz without the .ncu-rep reports (over 15 MiB with them); ncu.txt has their details pages"
fi
rm -rf "$work"
echo "gpu-check: results in $out: $(cd "$out" && find . -maxdepth 1 -type f -printf '%f ')"
[ "$skipped" -gt 0 ] && echo "gpu-check: $skipped stages skipped (SKIP lines above say why)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
