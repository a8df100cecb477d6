// Lab 02: GEMM. The naive and the blocked CPU version behind ops::matmul, timed
// with a steady clock, in GFLOP/s, against the machine's peak and a roofline.
//   build/labs/02-gemm [--solution] [--check]
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "../lab_plot.h"
#include "../lab_util.h"
#include "ops/ops.h"

using namespace ittt;

namespace {

// ---- TODO (exercise 1): the FLOP count of C (M, N) = A (M, K) @ B (K, N) ----
// Count one multiply and one add as two FLOPs. Return NAN until written.
double gemm_flops_student([[maybe_unused]] double M, [[maybe_unused]] double N, [[maybe_unused]] double K) {
    return NAN;  // TODO
}
// ---- TODO (exercise 2): the least traffic to memory and the roofline bound ----
// Bytes: the least any algorithm for C = A @ B (F32, beta = 0) must move between main memory
// and the core, however large its caches.
double gemm_min_bytes_student([[maybe_unused]] double M, [[maybe_unused]] double N, [[maybe_unused]] double K) {
    return NAN;  // TODO
}
// Attainable GFLOP/s for a kernel of `intensity` FLOP/byte on a machine with the
// given compute peak (GFLOP/s) and memory bandwidth (GB/s): what limits it, and when?
double roofline_student([[maybe_unused]] double intensity, [[maybe_unused]] double peak, [[maybe_unused]] double bandwidth) {
    return NAN;  // TODO
}


// What the cores can do at most: independent FMA chains and nothing else (the
// comparator of src/bench/bench_gemm.cpp, shortened). 8 chains of 8 lanes cover
// the FMA latency (4 cycles) times the FMA ports (2) of an AVX2 core.
__attribute__((noinline)) float fma_chains(int64_t iterations) {
    float acc[8][8];
    for (int c = 0; c < 8; ++c)
        for (int l = 0; l < 8; ++l) acc[c][l] = static_cast<float>(c + l);
    for (int64_t it = 0; it < iterations; ++it)
        for (int c = 0; c < 8; ++c)
#pragma omp simd
            for (int l = 0; l < 8; ++l) acc[c][l] = acc[c][l] * 0.999f + 0.001f;
    float s = 0;
    for (int c = 0; c < 8; ++c)
        for (int l = 0; l < 8; ++l) s += acc[c][l];
    return s;
}

// Short bursts, best of many: on a shared machine a short run often gets a core to itself.
double fma_peak_gflops(int threads, int64_t iterations) {
    volatile float sink = 0;
    double t = lab::time_best([&] {
#pragma omp parallel num_threads(threads)
        {
            float s = fma_chains(iterations);
#pragma omp atomic
            sink += s;
        }
    }, 30);
    return 2.0 * 64 * static_cast<double>(iterations) * threads / t / 1e9;
}

// Seconds of one C = A B with the given version (best of `repeats`).
double time_gemm(int version, int64_t n, int repeats) {
    Tensor A = lab::random_tensor({n, n}, 1), B = lab::random_tensor({n, n}, 2), C = Tensor::zeros({n, n});
    ops::set_version("gemm", version);
    double t = lab::time_best([&] { ops::matmul(C, A, false, B, false); }, repeats);
    ops::set_version("gemm", 0);
    return t;
}

}  // namespace

// The reference solutions (solution.cpp).
namespace solution {
LAB_SOLUTION double gemm_flops(double M, double N, double K);
LAB_SOLUTION double gemm_min_bytes(double M, double N, double K);
LAB_SOLUTION double roofline(double intensity, double peak, double bandwidth);
}  // namespace solution

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 02: GEMM (naive vs blocked, GFLOP/s, roofline)");
    auto flops = opt.solution ? solution::gemm_flops : gemm_flops_student;
    auto min_bytes = opt.solution ? solution::gemm_min_bytes : gemm_min_bytes_student;
    auto roofline = opt.solution ? solution::roofline : roofline_student;
    return lab::run([&] {
        lab::Checks checks;
        // One thread for sections 1-4: per-core numbers, and no waiting at OpenMP barriers
        // for a core that another job holds (section 5 uses them all).
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);

        lab::section(1, "Two versions, one contract: ops::set_version(\"gemm\", 1 or 2)");
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                const int64_t M = 67, N = 45, K = 33;  // not multiples of any tile
                Tensor A = lab::random_tensor(ta ? Shape{K, M} : Shape{M, K}, 3), B = lab::random_tensor(tb ? Shape{N, K} : Shape{K, N}, 4);
                Tensor C1 = Tensor::zeros({M, N}), C2 = Tensor::zeros({M, N});
                ops::set_version("gemm", 1);
                ops::matmul(C1, A, ta, B, tb);
                ops::set_version("gemm", 2);
                ops::matmul(C2, A, ta, B, tb);
                ops::set_version("gemm", 0);
                double diff = lab::max_abs_diff(C1, C2);
                std::printf("  op(A) %s, op(B) %s, (67 x 33) @ (33 x 45): max |naive - blocked| = %.2e\n", ta ? "A^T" : "A  ",
                            tb ? "B^T" : "B  ", diff);
                checks.expect(diff < 1e-4, "blocked equals naive up to F32 summation order");  // K = 33 terms of O(1)
            }

        lab::section(2, "The machine: compute peak and memory bandwidth");
        const int64_t fma_iters = 100000;  // ~0.1 ms per burst
        const double peak = fma_peak_gflops(1, fma_iters);
        std::printf("  FMA peak of one core: %.1f GFLOP/s (F32, 8 lanes x 2 FLOPs per FMA x FMA ports x clock)\n", peak);
        const int64_t big = opt.check ? (1 << 20) : (1 << 24);
        Tensor y = Tensor::zeros({big}), x = lab::random_tensor({big}, 5);
        double t_axpy = lab::time_best([&] { ops::add_inplace(y, x, 1e-3); }, 5);
        double bandwidth = 12.0 * static_cast<double>(big) / t_axpy / 1e9;  // read x and y, write y: 12 bytes per element
        std::printf("  y += a*x on %lld floats (%.0f MB): %.2f ms -> %.1f GB/s%s\n", static_cast<long long>(big),
                    12.0 * static_cast<double>(big) / 1e6, t_axpy * 1e3, bandwidth,
                    opt.check ? "  (check mode: small, partly in cache)" : "");

        lab::section(3, "Timing: C (n x n) = A @ B, F32, one thread, best of a few runs");
        std::vector<int64_t> sizes = opt.check ? std::vector<int64_t>{32, 96} : std::vector<int64_t>{64, 128, 256, 512};
        bool have_flops = checks.todo_done(!std::isnan(flops(2, 3, 4)), "exercise 1 (gemm_flops)", opt);
        if (have_flops)
            checks.expect_close({flops(2, 3, 4), flops(5, 7, 11)}, {48, 770}, 0, "gemm_flops(2, 3, 4) == 48, (5, 7, 11) == 770",
                                {{{24, 385}, "you counted multiply-adds: a multiply and an add are two FLOPs"}});
        std::printf("  %5s  %11s  %11s  %12s  %12s  %8s\n", "n", "naive ms", "blocked ms", "naive GF/s", "blocked GF/s", "speed-up");
        std::vector<double> blocked_gflops, naive_gflops;
        for (int64_t n : sizes) {
            double t1 = time_gemm(1, n, n >= 512 ? 1 : 5), t2 = time_gemm(2, n, 10);
            double f = have_flops ? flops(n, n, n) : NAN;
            blocked_gflops.push_back(f / t2 / 1e9), naive_gflops.push_back(f / t1 / 1e9);
            std::printf("  %5lld  %11.3f  %11.3f  %12.2f  %12.2f  %7.1fx\n", static_cast<long long>(n), t1 * 1e3, t2 * 1e3, f / t1 / 1e9,
                        f / t2 / 1e9, t1 / t2);
            // Reported, not asserted: timings on a shared or sanitized build are not pass/fail facts.
            if (n == sizes.back() && !(t2 < t1)) std::printf("  (blocked was not faster here: a loaded machine or a debug build?)\n");
        }

        lab::section(4, "Roofline: is GEMM limited by compute or by memory?");
        double ai_test = min_bytes(2, 3, 4);
        if (checks.todo_done(have_flops && !std::isnan(ai_test) && !std::isnan(roofline(1, 2, 3)), "exercise 2 (bytes, roofline)",
                             opt)) {
            checks.expect_close({ai_test}, {104}, 0, "gemm_min_bytes(2, 3, 4) == 104",
                                {{{80}, "C is written once: its 6 numbers move too"},
                                 {{26}, "an F32 number is 4 bytes"},
                                 {{128}, "with beta = 0, C is written, never read"}});
            checks.expect_close({roofline(0.5, 100, 20), roofline(50, 100, 20)}, {10, 100}, 1e-12,
                                "roofline(0.5, 100, 20) == 10 and roofline(50, 100, 20) == 100",
                                {{{100, 1000}, "the larger of the two roofs is not attainable: the lower one limits"}});
            std::printf("  ridge point: %.1f FLOP/byte (below it memory bound, above it compute bound)\n", peak / bandwidth);
            std::printf("  %8s  %14s  %14s  %14s  %10s\n", "kernel", "FLOP/byte", "bound GF/s", "measured GF/s", "% of bound");
            for (size_t i = 0; i < sizes.size(); ++i) {
                double n = static_cast<double>(sizes[i]), ai = flops(n, n, n) / min_bytes(n, n, n);
                double bound = roofline(ai, peak, bandwidth);
                std::printf("  gemm %-3.0f  %14.1f  %14.1f  %14.2f  %9.1f%%\n", n, ai, bound, blocked_gflops[i],
                            100 * blocked_gflops[i] / bound);
            }
            double ai_axpy = 2.0 / 12.0, axpy_gflops = 2.0 * static_cast<double>(big) / t_axpy / 1e9;
            double bound = roofline(ai_axpy, peak, bandwidth);
            // The figure: the roofline over the intensities measured, and each kernel at its intensity.
            plots::LinePlot fig;
            fig.title = "GEMM against the roofline (one core, F32): measured GFLOP/s at each n x n size's intensity";
            fig.xlabel = "arithmetic intensity (FLOP/byte, log)", fig.ylabel = "GFLOP/s (log)", fig.log_x = fig.log_y = true;
            plots::Series roof = lab::series("roofline: min(FMA peak, intensity x bandwidth)", {}, {}, "lines");
            for (double ai = ai_axpy / 2; ai <= 4 * flops(1e3, 1e3, 1e3) / min_bytes(1e3, 1e3, 1e3); ai *= 1.25)
                roof.x.push_back(ai), roof.y.push_back(roofline(ai, peak, bandwidth));
            plots::Series blocked = lab::series("blocked (version 2)", {}, blocked_gflops), naive = lab::series("naive (version 1)", {}, naive_gflops);
            for (int64_t size : sizes) {
                const double nn = static_cast<double>(size), ai = flops(nn, nn, nn) / min_bytes(nn, nn, nn);
                blocked.x.push_back(ai), naive.x.push_back(ai);
            }
            plots::Series axpy = lab::series("axpy (y += a x)", {ai_axpy}, {axpy_gflops}, "points");
            fig.series = {roof, blocked, naive, axpy};
            fig.hlines = {{"FMA peak", peak}};
            lab::plot(opt, fig, "02-gemm", "gemm_roofline");
            std::printf("  %-8s  %14.2f  %14.2f  %14.2f  %9.1f%%\n", "axpy", ai_axpy, bound, axpy_gflops, 100 * axpy_gflops / bound);
            std::printf("  GEMM's intensity grows like n/6: past the ridge only the compute peak limits it. axpy does 2 FLOPs\n"
                        "  per 12 bytes at any size: it sits on the bandwidth roof (100%% by construction here, since the\n"
                        "  bandwidth was measured with it), far below the peak; a faster FMA unit would not help it.\n");
        }

        lab::section(5, "Threads: the blocked version on 1 thread and on all");
        const int64_t n = sizes.back();
        omp_set_num_threads(1);
        double t_one = time_gemm(2, n, 3);
        omp_set_num_threads(threads);
        double t_all = time_gemm(2, n, 3);
        double peak_all = fma_peak_gflops(threads, fma_iters);
        std::printf("  n = %lld: %.3f ms on 1 thread, %.3f ms on %d: %.2fx (FMA peak: %.2fx)\n", static_cast<long long>(n),
                    t_one * 1e3, t_all * 1e3, threads, t_one / t_all, peak_all / peak);
        std::printf("  Far below %dx? Threads meet at barriers; if another job holds a core, everyone waits for a\n"
                    "  time slice. Compare with `uptime`: a load above the core count means shared cores.\n", threads);
        return checks.finish();
    });
}
