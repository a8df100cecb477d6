// bench_attention.cpp: CPU attention, flash (version 2) against naive (version 1).
//
// The cost of exact sliding-window attention should grow with the number of visible
// (query, key) pairs, about n*w, not with n^2. Time per visible pair shows it: flat
// for flash whatever the window, growing as n/w for naive, which scores every key.
//   build/ittt_bench --filter attention [--quick]
#include <algorithm>
#include <string>

#include "bench/bench.h"
#include "ops/ops.h"
#include "runtime/cpu_isa.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

using namespace ittt;

namespace {

Tensor random_normal(const Shape& shape, uint64_t seed) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(normal_at(seed, static_cast<uint64_t>(i)));
    return t;
}

// Visible (query, key) pairs of one head: query i sees min(i + 1, w) keys.
double visible_pairs(int64_t n, int64_t window) {
    double pairs = 0;
    for (int64_t i = 0; i < n; ++i) pairs += static_cast<double>(window > 0 ? std::min(i + 1, window) : i + 1);
    return pairs;
}

struct Timed {
    double seconds = 0;
    bool ran = false;
};

}  // namespace

ITTT_BENCHMARK(attention, 20) {
    const int64_t B = 1, Hq = 4, Hkv = 2, hd = 64;
    const int saved_version = ops::version("attention");

    bench::Table fwd({"n", "window", "visible pairs", "flash ms", "flash ns/pair", "naive ms", "naive ns/pair", "naive / flash"});
    for (int64_t n : {1024, 4096}) {
        Tensor q = random_normal({B, n, Hq, hd}, 1), k = random_normal({B, n, Hkv, hd}, 2), v = random_normal({B, n, Hkv, hd}, 3);
        Tensor out = Tensor::empty({B, n, Hq, hd}), lse = Tensor::empty({B, Hq, n});
        for (int64_t window : {int64_t(128), n}) {
            const double pairs = B * Hq * visible_pairs(n, window);
            auto run = [&](int version) {
                ops::set_version("attention", version);
                ops::attention_forward(out, lse, q, k, v, 0, static_cast<int>(window));
            };
            Timed flash, naive;
            flash.seconds = bench::time_best([&] { run(2); }, 1, ctx.quick ? 2 : 5);
            flash.ran = true;
            // naive scores all n^2 pairs: about 3 s a call at n = 4096 on 2 cores, so fewer repeats there
            if (!(ctx.quick && n > 1024)) {
                naive.seconds = n > 1024 ? bench::time_best([&] { run(1); }, 0, 2) : bench::time_best([&] { run(1); }, 1, 3);
                naive.ran = true;
            }
            fwd.row({std::to_string(n), window == n ? "n (full)" : std::to_string(window), bench::fmt("%.3g", pairs),
                     bench::fmt("%.2f", flash.seconds * 1e3), bench::fmt("%.2f", flash.seconds * 1e9 / pairs),
                     naive.ran ? bench::fmt("%.1f", naive.seconds * 1e3) : "skipped (--quick)",
                     naive.ran ? bench::fmt("%.2f", naive.seconds * 1e9 / pairs) : "-",
                     naive.ran ? bench::fmt("%.1fx", naive.seconds / flash.seconds) : "-"});
        }
    }
    fwd.print(cat("attention forward, CPU F32 (ISA ", describe_cpu_isa(), "), B=", B, " Hq=", Hq, " Hkv=", Hkv, " hd=", hd,
                  " (pairs = query-key pairs inside the causal window, over all heads)"));

    // The backward at one size: flash recomputes P twice (dk/dv pass, dq pass), naive builds it once.
    bench::Table bwd({"n", "window", "flash ms", "flash ns/pair", "naive ms", "naive / flash"});
    const int64_t n = 1024;
    Tensor q = random_normal({B, n, Hq, hd}, 1), k = random_normal({B, n, Hkv, hd}, 2), v = random_normal({B, n, Hkv, hd}, 3);
    Tensor dout = random_normal({B, n, Hq, hd}, 4);
    Tensor out = Tensor::empty({B, n, Hq, hd}), lse = Tensor::empty({B, Hq, n});
    Tensor dq = Tensor::empty(q.shape()), dk = Tensor::empty(k.shape()), dv = Tensor::empty(v.shape());
    for (int64_t window : {int64_t(128), n}) {
        ops::set_version("attention", 2);
        ops::attention_forward(out, lse, q, k, v, 0, static_cast<int>(window));
        const double pairs = B * Hq * visible_pairs(n, window);
        auto run = [&](int version) {
            ops::set_version("attention", version);
            ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, static_cast<int>(window));
        };
        const double flash = bench::time_best([&] { run(2); }, 1, ctx.quick ? 2 : 5);
        const double naive = bench::time_best([&] { run(1); }, ctx.quick ? 0 : 1, ctx.quick ? 1 : 3);
        bwd.row({std::to_string(n), window == n ? "n (full)" : std::to_string(window), bench::fmt("%.2f", flash * 1e3),
                 bench::fmt("%.2f", flash * 1e9 / pairs), bench::fmt("%.1f", naive * 1e3), bench::fmt("%.1fx", naive / flash)});
    }
    bwd.print(cat("attention backward, CPU F32 (ISA ", describe_cpu_isa(), "), same heads"));
    ops::set_version("attention", saved_version);
}
