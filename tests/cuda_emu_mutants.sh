#!/usr/bin/env bash
# cuda_emu_mutants.sh (make cuda-mutants): proves the CUDA emulator's checks can fail.
#
# Each mutant is a test build in which one object is recompiled with a planted bug,
# through a macro seam (no source file is edited), and a run that must catch it:
#   barrier        gemm version 2 (gemm_smem_kernel) without the __syncthreads that stops
#                  the next K step from overwriting tiles still being read
#                  -> the [cuda][gemm] tests must fail, and the dropped barrier must have been reached
#   shared         every block's dynamic shared memory one float (4 bytes) short, so the
#                  naive attention kernel writes one past the end of its score row
#                  -> the emulator's own bounds check must report it
#   shared-asan    the same in the AddressSanitizer build -> ASan must report the overflow
#   barrier-tsan   (only with MUTANTS_TSAN=1) the barrier mutant under ThreadSanitizer
#                  -> TSan must report the race
# A mutant build is a copy of build-emu (or build-emu-asan / -tsan: built first if absent)
# with hard links, in which only the mutant object, the library and the binaries are rebuilt.
# Last line: "N passed, M failed", N = mutants caught.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
passed=0 failed=0

asan_flags=(ARCH= CXXFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
            LDFLAGS="-fsanitize=address,undefined")
tsan_flags=(ARCH= CXXFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" EMU_ENGINE_FLAGS="-fno-sanitize=thread -DITTT_EMU_TSAN=1")

# build_mutant NAME BASE OBJECT FLAGS [make args...]: BASE's build with OBJECT rebuilt with FLAGS,
# in build-emu-mutant-NAME/, which also holds the logs: base.log (BASE's build), build.log
# (the mutant's) and test.log (the run that must catch it).
build_mutant() {
    local name=$1 base=$2 object=$3 flags=$4
    shift 4
    local dir=build-emu-mutant-$name
    rm -rf "$dir"
    local base_log
    base_log=$(mktemp)
    if ! "$MAKE" -j2 CUDA=emu BUILD="$base" "$@" "$base/ittt_tests" > "$base_log" 2>&1; then
        tail -20 "$base_log"
        mkdir -p "$dir" && mv "$base_log" "$dir/base.log"
        return 1
    fi
    cp -al "$base" "$dir"
    mv "$base_log" "$dir/base.log"
    # new files, never writes through the links into $base
    rm -f "$dir/obj/$object.o" "$dir/obj/$object.d" "$dir/libittt.a" "$dir/ittt_tests" "$dir/ittt" "$dir"/labs/*
    "$MAKE" -j2 CUDA=emu BUILD="$dir" EMU_MUTANT_OBJ="$dir/obj/$object.o" EMU_MUTANT_FLAGS="$flags" "$@" "$dir/ittt_tests" \
        > "$dir/build.log" 2>&1 || { tail -20 "$dir/build.log"; return 1; }
}

# verdict NAME CAUGHT EVIDENCE
verdict() {
    if [ "$2" = 1 ]; then
        echo "mutant $1: caught ($3)"
        passed=$((passed + 1))
    else
        echo "mutant $1: SURVIVED ($3)"
        failed=$((failed + 1))
    fi
}

# The barrier is found by its comment, so the mutant follows the line if gemm.cu changes.
barrier_line=$(grep -n '__syncthreads();  // before the next step overwrites the tiles' kernels/gemm/gemm.cu | head -n 1 | cut -d: -f1)
if [ -z "$barrier_line" ]; then
    verdict barrier 0 "the second barrier of gemm_smem_kernel was not found in kernels/gemm/gemm.cu"
else
    echo "== mutant barrier: kernels/gemm/gemm.cu:$barrier_line compiled out"
    if build_mutant barrier build-emu kernels/gemm/gemm.cu "-DITTT_EMU_MUTANT_DROP_BARRIER_LINE=$barrier_line"; then
        log=build-emu-mutant-barrier/test.log
        build-emu-mutant-barrier/ittt_tests "[cuda][gemm]" > "$log" 2>&1
        rc=$?
        reached=$(grep -o "kernels/gemm/gemm.cu:$barrier_line was dropped [0-9]* times" "$log")
        failures=$(grep -oE 'assertions: .*failed' "$log" | tail -n 1)
        [ $rc -ne 0 ] && [ -n "$reached" ] && caught=1 || caught=0
        verdict barrier $caught "exit $rc; ${failures:-no assertion count}; ${reached:-the dropped barrier was never reached}"
    else
        verdict barrier 0 "the mutant did not build"
    fi
fi

echo "== mutant shared: dynamic shared memory 4 bytes short"
if build_mutant shared build-emu src/runtime/cuda_emu/emulator.cpp -DITTT_EMU_MUTANT_SHORT_DYNAMIC_SHARED=4; then
    log=build-emu-mutant-shared/test.log
    build-emu-mutant-shared/ittt_tests "attention CUDA worked example (docs/attention.md)" > "$log" 2>&1
    rc=$?
    report=$(grep -o "attention_naive_forward_kernel (launched at [^)]*), block ([0-9, ]*)[^:]*wrote past the end of its [0-9]* bytes" "$log" | head -n 1)
    [ $rc -ne 0 ] && [ -n "$report" ] && caught=1 || caught=0
    verdict shared $caught "exit $rc; ${report:-no overrun report}"
else
    verdict shared 0 "the mutant did not build"
fi

echo "== mutant shared-asan: the same under AddressSanitizer"
if build_mutant shared-asan build-emu-asan src/runtime/cuda_emu/emulator.cpp -DITTT_EMU_MUTANT_SHORT_DYNAMIC_SHARED=4 "${asan_flags[@]}"; then
    log=build-emu-mutant-shared-asan/test.log
    ASAN_OPTIONS=detect_leaks=0 build-emu-mutant-shared-asan/ittt_tests "attention CUDA worked example (docs/attention.md)" > "$log" 2>&1
    rc=$?
    kind=$(grep -oE "AddressSanitizer: [a-z-]+" "$log" | head -n 1)
    where=$(grep -m 1 -oE "in attention_naive_forward_kernel [^ ]*" "$log")
    [ $rc -ne 0 ] && [ -n "$kind" ] && [ -n "$where" ] && caught=1 || caught=0
    verdict shared-asan $caught "exit $rc; ${kind:-no ASan report} ${where}"
else
    verdict shared-asan 0 "the mutant did not build"
fi

if [ "${MUTANTS_TSAN:-0}" = 1 ] && [ -n "$barrier_line" ]; then
    echo "== mutant barrier-tsan: the barrier mutant under ThreadSanitizer"
    if build_mutant barrier-tsan build-emu-tsan kernels/gemm/gemm.cu "-DITTT_EMU_MUTANT_DROP_BARRIER_LINE=$barrier_line" "${tsan_flags[@]}"; then
        log=build-emu-mutant-barrier-tsan/test.log
        TSAN_OPTIONS=halt_on_error=1 OMP_NUM_THREADS=1 build-emu-mutant-barrier-tsan/ittt_tests \
            "ops harness: gemm on CUDA: every version in F32" > "$log" 2>&1  # (a comma would split the filter)
        rc=$?
        race=$(grep -m 1 -oE "ThreadSanitizer: data race" "$log")
        where=$(grep -m 1 -oE "gemm_smem_kernel<[^>]*> kernels/gemm/gemm.cu:[0-9]+" "$log")
        [ $rc -ne 0 ] && [ -n "$race" ] && caught=1 || caught=0
        verdict barrier-tsan $caught "exit $rc; ${race:-no race report}${where:+ in $where}"
    else
        verdict barrier-tsan 0 "the mutant did not build"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
