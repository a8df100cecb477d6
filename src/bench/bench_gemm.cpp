// bench_gemm.cpp: the CPU GEMM versions against the machine's own FMA peaks.
//   build/ittt_bench --filter gemm [--quick]
//
// The comparators are measured in the same run: loops of independent vector FMAs that do
// nothing else, one with AVX2 (256-bit) and, where the CPU has it, one with AVX-512
// (512-bit) instructions (fma_peak_gflops, bench_peak.cpp), so their GFLOP/s are what the
// cores can do at most with each ISA.
// Each GEMM row names the ISA its version uses and reports its fraction of that ISA's peak
// and of the machine's (the higher of the two) for the same thread count.
//
// The blocked versions (2: AVX2, 3: AVX-512) are timed interleaved, one call of each in
// turn per round, so that load from elsewhere hits both alike; each row gives the median
// and the minimum over the rounds. The naive version only sets the scale (x naive).
#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench/bench.h"
#include "ops/op_table.h"
#include "ops/ops.h"
#include "runtime/cpu_isa.h"
#include "runtime/tensor.h"

namespace ittt::bench {

namespace {

// The ISA a CPU version of gemm uses: its row's `needs`, else the build's AVX2.
CpuIsa version_isa(int v) {
    const ops::VersionInfo* info = ops::op_spec("gemm").cpu.find(v);
    return info != nullptr && std::string(info->needs) == "AVX-512" ? CpuIsa::AVX512 : CpuIsa::AVX2;
}

// One product C (M, N) = op(A) (M, K) @ op(B) (K, N), float32.
struct Shape3 {
    std::string name;  // "512^3", or what the model uses it for
    int64_t M, N, K;
    bool trans_a = false, trans_b = false;
    std::string layout() const { return std::string(trans_a ? "T" : "N") + (trans_b ? "T" : "N"); }
    double flops() const { return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K); }
};

struct Row {
    Shape3 shape;
    int version, threads;
    Stats time;  // seconds per call
};

// The versions in `versions`, interleaved: `rounds` rounds of one call of each in turn,
// after one untimed round. Returns one Stats per version.
std::vector<Stats> time_interleaved(const Shape3& s, const std::vector<int>& versions, int rounds) {
    Tensor A = Tensor::empty(s.trans_a ? Shape{s.K, s.M} : Shape{s.M, s.K});
    Tensor B = Tensor::empty(s.trans_b ? Shape{s.N, s.K} : Shape{s.K, s.N});
    Tensor C = Tensor::zeros({s.M, s.N});
    ops::fill(A, 0.5);
    ops::fill(B, 0.25);
    std::vector<std::vector<double>> samples(versions.size());
    for (int round = 0; round <= rounds; ++round)
        for (size_t i = 0; i < versions.size(); ++i) {
            ops::set_version("gemm", versions[i]);
            const double t = time_best([&] { ops::matmul(C, A, s.trans_a, B, s.trans_b); }, 0, 1);
            if (round > 0) samples[i].push_back(t);
        }
    ops::set_version("gemm", 0);
    std::vector<Stats> out;
    for (auto& x : samples) out.push_back(stats(x));
    return out;
}

}  // namespace

ITTT_BENCHMARK(gemm, 10) {
    const int saved_threads = max_threads();
#ifdef _OPENMP
    const std::vector<int> thread_counts = {1, 2};
#else
    const std::vector<int> thread_counts = {1};
#endif
    const int64_t fma_iterations = 300'000;  // 12 x 300k vector FMAs, about 1 ms
    const int fma_repeats = ctx.quick ? 5 : 50;
    std::vector<CpuIsa> isas = {CpuIsa::AVX2};
    if (cpu_runs_avx512()) isas.push_back(CpuIsa::AVX512);
    // The blocked versions this CPU runs: 2 (AVX2) and 3 (AVX-512) where it has it.
    std::vector<int> blocked;
    for (const ops::VersionInfo& v : ops::op_spec("gemm").cpu.versions)
        if (v.number >= 2 && v.runs_here()) blocked.push_back(v.number);

    // ---- the comparators: FMA throughput per ISA with 1 and 2 threads ----
    // Measured before and after the GEMMs, keeping the larger: on a shared machine
    // another process can only lower it, and the peak is a property of the core.
    double peak[2][3] = {};  // [isa][threads]
    auto measure_peaks = [&] {
        for (CpuIsa isa : isas)
            for (int t : thread_counts) {
                double& p = peak[static_cast<int>(isa)][t];
                p = std::max(p, fma_peak_gflops(isa, t, fma_iterations, fma_repeats));
            }
    };
    measure_peaks();

    // ---- the products ----
    std::vector<Shape3> shapes;
    for (int64_t n : {256, 512, 1024}) shapes.push_back({cat(n, "^3"), n, n, n});
    // Packing absorbs the transposes: the blocked versions should not care.
    for (auto [ta, tb] : {std::pair{false, true}, std::pair{true, false}, std::pair{true, true}})
        shapes.push_back({"512^3", 512, 512, 512, ta, tb});
    // The bench model's products (bench_models.h: B * n = 2048 rows, d = 128, f = 384): the
    // MLP up projection, its down projection, and one TTT chunk's apply (C = 64 rows).
    shapes.push_back({"MLP up: x Wu^T", 2048, 384, 128, false, true});
    shapes.push_back({"MLP down: z Wd^T", 2048, 128, 384, false, true});
    shapes.push_back({"TTT chunk: Z_i W_i^T", 64, 128, 384, false, true});
    shapes.push_back({"dWd += dout^T z", 128, 384, 2048, true, false});

    std::vector<Row> rows;
    const int rounds = ctx.quick ? 3 : 31;
    for (const Shape3& s : shapes)
        for (int t : thread_counts) {
            set_threads(t);
            // The naive version, apart (it needs seconds at 1024^3): square NN products only,
            // not at 1024^3 with --quick.
            if (s.M == s.N && s.N == s.K && s.layout() == "NN" && !(ctx.quick && s.M == 1024)) {
                Tensor A = Tensor::empty({s.M, s.K}), B = Tensor::empty({s.K, s.N}), C = Tensor::zeros({s.M, s.N});
                ops::fill(A, 0.5);
                ops::fill(B, 0.25);
                ops::set_version("gemm", 1);
                const int repeats = s.M >= 512 ? 1 : 3;
                const double best = time_best([&] { ops::matmul(C, A, false, B, false); }, s.M >= 512 ? 0 : 1, repeats);
                ops::set_version("gemm", 0);
                rows.push_back({s, 1, t, {best, best, static_cast<size_t>(repeats)}});
            }
            // Fewer rounds for the long calls: 31 rounds of 1024^3 on one thread are 2 s per version.
            const int r = s.flops() > 1e9 ? std::max(3, rounds / 3) : rounds;
            std::vector<Stats> st = time_interleaved(s, blocked, r);
            for (size_t i = 0; i < blocked.size(); ++i) rows.push_back({s, blocked[i], t, st[i]});
        }
    set_threads(saved_threads);
    measure_peaks();

    const int best_isa = static_cast<int>(isas.back());
    Table peak_table({"ISA", "threads", "FMA peak GFLOP/s", "per thread"});
    for (CpuIsa isa : isas)
        for (int t : thread_counts) {
            const double p = peak[static_cast<int>(isa)][t];
            peak_table.row({cpu_isa_name(isa), std::to_string(t), fmt("%.1f", p), fmt("%.1f", p / t)});
        }
    peak_table.print(cat("gemm: measured FMA peaks on ", cpu_model_name(), ", ISA in use ", describe_cpu_isa(),
                         " (12 independent float FMA chains per thread; best of before and after the GEMMs)"));
    for (CpuIsa isa : isas) {
        const double* p = peak[static_cast<int>(isa)];
        if (thread_counts.size() > 1 && p[2] < 1.6 * p[1])
            std::printf("note: with %s, 2 threads reached only %.2fx the 1-thread peak: another process held a core, so the "
                        "2-thread rows below understate what the code can do\n",
                        cpu_isa_name(isa), p[2] / p[1]);
    }

    Table table({"version", "ISA", "product", "M x N x K", "layout", "threads", "ms median", "ms min", "GFLOP/s (min)",
                 "% of ISA peak", "% of machine peak", "x version 2 (median, min)", "x naive"});
    for (const Row& r : rows) {
        const double gflops = r.shape.flops() / r.time.min / 1e9;
        const CpuIsa isa = version_isa(r.version);
        std::string vs2 = "-", vs_naive = "-";
        for (const Row& o : rows) {
            if (o.shape.name != r.shape.name || o.shape.layout() != r.shape.layout() || o.threads != r.threads) continue;
            if (o.version == 2 && r.version > 2)
                vs2 = fmt("%.2f", o.time.median / r.time.median) + ", " + fmt("%.2f", o.time.min / r.time.min);
            if (o.version == 1 && r.version > 1) vs_naive = fmt("%.0f", o.time.min / r.time.min);
        }
        const ops::VersionInfo* info = ops::op_spec("gemm").cpu.find(r.version);
        table.row({cat(r.version, " ", info ? info->name : "?"), cpu_isa_name(isa), r.shape.name,
                   cat(r.shape.M, " x ", r.shape.N, " x ", r.shape.K), r.shape.layout(), std::to_string(r.threads),
                   fmt("%.3f", r.time.median * 1e3), fmt("%.3f", r.time.min * 1e3), fmt("%.1f", gflops),
                   fmt("%.0f%%", 100.0 * gflops / peak[static_cast<int>(isa)][r.threads]),
                   fmt("%.0f%%", 100.0 * gflops / peak[best_isa][r.threads]), vs2, vs_naive});
    }
    table.print(cat("gemm: CPU versions, float32, on ", cpu_model_name(), " (", rounds,
                    " interleaved rounds of the blocked versions, fewer above 1 GFLOP per call; GFLOP/s from the min; "
                    "% of the FMA peaks above for the same thread count; the machine peak is ",
                    cpu_isa_name(isas.back()), "'s)"));
}

}  // namespace ittt::bench
