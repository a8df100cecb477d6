// bench_gemm.cpp: the CPU GEMM versions against the machine's own FMA peak.
//   build/ittt_bench --filter gemm [--quick]
//
// The comparator is measured in the same run: a loop of independent vector FMAs
// that does nothing else, so its GFLOP/s is what the cores can do at most. Each
// GEMM row reports its fraction of that peak for the same thread count.
#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench.h"
#include "ops/ops.h"
#include "runtime/tensor.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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
// Short runs (about 1 ms) and many repeats, like the GEMM rows: on a shared
// machine the best of many short runs is the one no other process interrupted.
double fma_peak_gflops(int threads, int64_t iterations, int repeats) {
    volatile float sink = 0;
    double seconds = time_best(
        [&] {
            float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
            total += fma_chains(iterations, 0.999f, 0.001f);
            sink = total;
        },
        1, repeats);
    return 2.0 * kChains * kLanes * static_cast<double>(iterations) * threads / seconds / 1e9;
}

// The OpenMP thread count, and 1 in a build without OpenMP.
int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
void set_threads([[maybe_unused]] int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

struct Case {
    int version;        // 1 naive, 2 blocked
    bool trans_a, trans_b;
    int64_t n;          // M = N = K = n
};

}  // namespace

ITTT_BENCHMARK(gemm, 10) {
    const int saved_threads = max_threads();
#ifdef _OPENMP
    const std::vector<int> thread_counts = {1, 2};
#else
    const std::vector<int> thread_counts = {1};
#endif
    const int64_t fma_iterations = 300'000;  // 115 MFLOP per thread, about 1 ms
    const int fma_repeats = ctx.quick ? 5 : 50;

    // ---- the comparator: FMA throughput with 1 and 2 threads ----
    // Measured before and after the GEMMs, keeping the larger: on a shared machine
    // another process can only lower it, and the peak is a property of the core.
    std::vector<double> peak(3, 0.0);
    auto measure_peak = [&] {
        for (int t : thread_counts) peak[t] = std::max(peak[t], fma_peak_gflops(t, fma_iterations, fma_repeats));
    };
    measure_peak();

    // ---- the GEMMs: C (n, n) = A (n, n) @ B (n, n), float32 ----
    std::vector<Case> cases;
    for (int64_t n : {256, 512, 1024}) {
        // The naive version needs seconds at 1024^3; --quick leaves it out there.
        if (!(ctx.quick && n == 1024)) cases.push_back({1, false, false, n});
        cases.push_back({2, false, false, n});
    }
    // Packing absorbs the transposes: the blocked version should not care.
    for (auto [ta, tb] : {std::pair{false, true}, std::pair{true, false}, std::pair{true, true}}) cases.push_back({2, ta, tb, 512});

    struct Row {
        Case c;
        int threads;
        double seconds;
    };
    std::vector<Row> rows;
    for (const Case& c : cases) {
        Tensor A = Tensor::empty({c.n, c.n}), B = Tensor::empty({c.n, c.n}), C = Tensor::zeros({c.n, c.n});
        ops::fill(A, 0.5);
        ops::fill(B, 0.25);
        ops::set_version("gemm", c.version);
        // Many repeats for the fast rows so that one of them runs undisturbed; one for the slow ones.
        const bool slow = c.version == 1 && c.n >= 512;
        const int repeats = slow ? 1 : ctx.quick ? 2 : c.version == 1 ? 3 : c.n <= 256 ? 100 : c.n <= 512 ? 40 : 15;
        for (int t : thread_counts) {
            set_threads(t);
            rows.push_back({c, t, time_best([&] { ops::matmul(C, A, c.trans_a, B, c.trans_b); }, slow ? 0 : 1, repeats)});
        }
    }
    ops::set_version("gemm", 0);
    set_threads(saved_threads);
    measure_peak();

    Table peak_table({"threads", "FMA peak GFLOP/s", "per thread"});
    for (int t : thread_counts) peak_table.row({std::to_string(t), fmt("%.1f", peak[t]), fmt("%.1f", peak[t] / t)});
    peak_table.print("gemm: measured FMA peak (12 independent float FMA chains per thread; best of before and after the GEMMs)");
    if (thread_counts.size() > 1 && peak[2] < 1.6 * peak[1])
        std::printf("note: 2 threads reached only %.2fx the 1-thread peak: another process held a core, so the 2-thread rows "
                    "below understate what the code can do\n",
                    peak[2] / peak[1]);

    Table table({"version", "layout", "M=N=K", "threads", "time ms", "GFLOP/s", "% of FMA peak", "x naive"});
    for (const Row& r : rows) {
        const double flops = 2.0 * static_cast<double>(r.c.n * r.c.n * r.c.n), gflops = flops / r.seconds / 1e9;
        // The speed-up over the naive version at the same size and thread count, where it was measured.
        std::string speedup = "-";
        for (const Row& n : rows)
            if (n.c.version == 1 && n.c.n == r.c.n && n.threads == r.threads && !r.c.trans_a && !r.c.trans_b)
                speedup = fmt("%.0f", n.seconds / r.seconds);
        std::string layout = std::string(r.c.trans_a ? "T" : "N") + (r.c.trans_b ? "T" : "N");
        table.row({r.c.version == 1 ? "1 naive" : "2 blocked", layout, std::to_string(r.c.n), std::to_string(r.threads),
                   fmt("%.2f", r.seconds * 1e3), fmt("%.1f", gflops), fmt("%.0f%%", 100.0 * gflops / peak[r.threads]), speedup});
    }
    table.print("gemm: CPU versions, float32 (best of repeats; % of the FMA peak above for the same thread count)");
}

}  // namespace ittt::bench
