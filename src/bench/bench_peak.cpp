// bench_peak.cpp: the machine's own FMA peaks, the comparator of every GEMM and model-FLOP figure.
//
// Loops of independent vector FMAs that do nothing else, one with AVX2 (256-bit) and one with
// AVX-512 (512-bit) instructions: their GFLOP/s are what the cores can do at most with each
// ISA. The GEMM benchmark (bench_gemm.cpp) divides a product's GFLOP/s by them; the model
// benchmark (bench_model.cpp) a whole training step's or prefill's (model FLOP utilisation).
#include <immintrin.h>

#include "bench/bench.h"

namespace ittt::bench {

namespace {

// 12 independent FMA chains of one vector each: more than latency (4 cycles) x FMA ports
// (2) needs to keep every FMA unit busy each cycle. acc = acc * mul + add converges
// instead of overflowing, and the final sum keeps the compiler from deleting the loop.
// Intrinsics, so that each is exactly the vector width it names.
constexpr int kChains = 12;

// Its target attribute keeps it AVX2 in a build for another -march (make ARCH=).
__attribute__((noinline, target("avx2,fma"))) float fma_chains_avx2(int64_t iterations, float mul, float add) {
    __m256 acc[kChains];
    const __m256 m = _mm256_set1_ps(mul), a = _mm256_set1_ps(add);
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(add * static_cast<float>(c));
    for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 16
        for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
    alignas(32) float lanes[8];
    float sum = 0;
    for (int c = 0; c < kChains; ++c) {
        _mm256_store_ps(lanes, acc[c]);
        for (float x : lanes) sum += x;
    }
    return sum;
}

// The AVX-512 chains: compiled for AVX-512 by its target attribute alone (the program is
// AVX2), and called only where cpu_runs_avx512().
__attribute__((noinline, target("avx512f"))) float fma_chains_avx512(int64_t iterations, float mul, float add) {
    __m512 acc[kChains];
    const __m512 m = _mm512_set1_ps(mul), a = _mm512_set1_ps(add);
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(add * static_cast<float>(c));
    for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 16
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
    alignas(64) float lanes[16];
    float sum = 0;
    for (int c = 0; c < kChains; ++c) {
        _mm512_store_ps(lanes, acc[c]);
        for (float x : lanes) sum += x;
    }
    return sum;
}

}  // namespace

double fma_peak_gflops(CpuIsa isa, int threads, int64_t iterations, int repeats) {
    volatile float sink = 0;
    const int lanes = isa == CpuIsa::AVX512 ? 16 : 8;
    double seconds = time_best(
        [&] {
            float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
            total += isa == CpuIsa::AVX512 ? fma_chains_avx512(iterations, 0.999f, 0.001f) : fma_chains_avx2(iterations, 0.999f, 0.001f);
            sink = total;
        },
        1, repeats);
    return 2.0 * kChains * lanes * static_cast<double>(iterations) * threads / seconds / 1e9;
}

}  // namespace ittt::bench
