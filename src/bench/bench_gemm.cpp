// bench_gemm.cpp: the CPU GEMM versions against the machine's own FMA peak.
//   build/ittt_bench --filter gemm [--quick]
//
// The comparator is measured in the same run: a loop of independent vector FMAs
// that does nothing else, so its GFLOP/s is what the cores can do at most. Each
// GEMM row reports its fraction of that peak for the same thread count.
#include <omp.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench.h"
#include "ops/ops.h"
#include "runtime/tensor.h"

namespace ittt::bench {

namespace {

// 12 accumulator rows of 16 floats: 12 independent 512-bit FMA chains (or 24 of
// 256 bits), more than latency (4 cycles) x FMA ports (2) needs to keep every
// FMA unit busy each cycle. acc = acc * mul + add converges instead of
// overflowing, and the final sum keeps the compiler from deleting the loop.
constexpr int kChains = 12, kLanes = 16;

__attribute__((noinline)) float fma_chains(int64_t iterations, float mul, float add) {
    alignas(64) float acc[kChains][kLanes];
    for (int c = 0; c < kChains; ++c)
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) acc[c][l] = static_cast<float>(c + l);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int c = 0; c < kChains; ++c)
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) acc[c][l] = acc[c][l] * mul + add;
    }
    float sum = 0;
    for (int c = 0; c < kChains; ++c)
        for (int l = 0; l < kLanes; ++l) sum += acc[c][l];
    return sum;
}

// GFLOP/s of fma_chains run by `threads` threads at once (each does the full count).
double fma_peak_gflops(int threads, int64_t iterations) {
    volatile float sink = 0;
    double seconds = time_best(
        [&] {
#pragma omp parallel num_threads(threads)
            {
                float s = fma_chains(iterations, 0.999f, 0.001f);
#pragma omp atomic
                sink += s;
            }
        },
        1, 3);
    return 2.0 * kChains * kLanes * static_cast<double>(iterations) * threads / seconds / 1e9;
}

struct Case {
    int version;        // 1 naive, 2 blocked
    bool trans_a, trans_b;
    int64_t n;          // M = N = K = n
};

}  // namespace

ITTT_BENCHMARK(gemm, 10) {
    const int saved_threads = omp_get_max_threads();
    const std::vector<int> thread_counts = {1, 2};

    // ---- the comparator: FMA throughput with 1 and 2 threads ----
    const int64_t fma_iterations = ctx.quick ? 2'000'000 : 20'000'000;
    std::vector<double> peak(3, 0.0);
    Table peak_table({"threads", "FMA peak GFLOP/s", "per thread"});
    for (int t : thread_counts) {
        peak[t] = fma_peak_gflops(t, fma_iterations);
        peak_table.row({std::to_string(t), fmt("%.1f", peak[t]), fmt("%.1f", peak[t] / t)});
    }
    peak_table.print("gemm: measured FMA peak (12 independent float FMA chains per thread, float32)");

    // ---- the GEMMs: C (n, n) = A (n, n) @ B (n, n), float32 ----
    std::vector<Case> cases;
    for (int64_t n : {256, 512, 1024}) {
        // The naive version needs seconds at 1024^3; --quick leaves it out there.
        if (!(ctx.quick && n == 1024)) cases.push_back({1, false, false, n});
        cases.push_back({2, false, false, n});
    }
    // Packing absorbs the transposes: the blocked version should not care.
    for (auto [ta, tb] : {std::pair{false, true}, std::pair{true, false}, std::pair{true, true}}) cases.push_back({2, ta, tb, 512});

    Table table({"version", "layout", "M=N=K", "threads", "time ms", "GFLOP/s", "% of FMA peak", "x naive"});
    std::vector<double> naive_seconds(2 * 3, 0.0);  // [threads-1][size index] for the speed-up column
    auto size_index = [](int64_t n) { return n == 256 ? 0 : n == 512 ? 1 : 2; };
    for (const Case& c : cases) {
        Tensor A = Tensor::empty({c.n, c.n}), B = Tensor::empty({c.n, c.n}), C = Tensor::zeros({c.n, c.n});
        ops::fill(A, 0.5);
        ops::fill(B, 0.25);
        ops::set_version("gemm", c.version);
        const double flops = 2.0 * static_cast<double>(c.n * c.n * c.n);
        // Enough repeats for the minimum to be stable, fewer for the slow rows.
        const bool slow = c.version == 1 && c.n >= 512;
        const int repeats = ctx.quick || slow ? 1 : (c.n <= 256 ? 20 : 5);
        for (int t : thread_counts) {
            omp_set_num_threads(t);
            double s = time_best([&] { ops::matmul(C, A, c.trans_a, B, c.trans_b); }, slow ? 0 : 1, repeats);
            double& naive = naive_seconds[(t - 1) * 3 + size_index(c.n)];
            if (c.version == 1) naive = s;
            std::string layout = std::string(c.trans_a ? "T" : "N") + (c.trans_b ? "T" : "N");
            table.row({c.version == 1 ? "1 naive" : "2 blocked", layout, std::to_string(c.n), std::to_string(t), fmt("%.2f", s * 1e3),
                       fmt("%.1f", flops / s / 1e9), fmt("%.0f%%", 100.0 * flops / s / 1e9 / peak[t]),
                       naive > 0 && !c.trans_a && !c.trans_b ? fmt("%.0f", naive / s) : "-"});
        }
    }
    ops::set_version("gemm", 0);
    omp_set_num_threads(saved_threads);
    table.print("gemm: CPU versions, float32 (best of repeats; % of the FMA peak measured above for the same thread count)");
}

}  // namespace ittt::bench
