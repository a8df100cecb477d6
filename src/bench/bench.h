// bench.h: the tiny benchmark framework behind `make bench` (build/ittt_bench).
//
// Each src/bench/bench_<topic>.cpp registers one or more benchmarks with
// ITTT_BENCHMARK(name, order) { ... }. They are timed with a steady clock over
// repeats after a warm-up (time_best, or the interleaved rounds and Stats of the model
// benchmark), and print rows through Table, always with a ratio to a comparator
// measured in the same run (never a number from memory).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "runtime/cpu_isa.h"

namespace ittt::bench {

struct Context {
    bool quick = false;     // --quick: fewer sizes and repeats (a smoke run)
    std::string filter;     // run only benchmarks whose name contains this
    std::string torch_record = "build/torch_compare.txt";  // the PyTorch comparator's last results (bench_model.cpp)
};

using BenchFn = void (*)(const Context&);
struct Registrar {
    Registrar(const char* name, int order, BenchFn fn);
};

// Best-of-`repeats` wall time in seconds of fn(), after `warmup` untimed calls.
// "Best" rather than mean: on a shared 2-core machine the minimum is the least
// noisy estimate of what the code itself costs.
inline double time_best(const std::function<void()>& fn, int warmup = 1, int repeats = 5) {
    for (int i = 0; i < warmup; ++i) fn();
    double best = 1e300;
    for (int i = 0; i < repeats; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        fn();
        auto t1 = std::chrono::steady_clock::now();
        double s = std::chrono::duration<double>(t1 - t0).count();
        if (s < best) best = s;
    }
    return best;
}

// A fixed-width table: Table t({"shape", "GFLOP/s"}); t.row({"256^3", "12.3"}); t.print();
class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
    void print(const std::string& title) const;

private:
    std::vector<std::vector<std::string>> rows_;
};

std::string fmt(const char* format, double value);  // fmt("%.1f", x)

// Median and minimum of repeated timings. The model benchmarks report both: the median is
// what a run typically costs, the minimum what the code costs when nothing else interferes;
// a ratio that holds for both is not an artefact of load.
struct Stats {
    double median = 0, min = 0;
    size_t count = 0;
};
Stats stats(std::vector<double> samples);

// The first three fields of /proc/loadavg ("0.12 0.30 0.41"), or "n/a": printed before and
// after the timed parts, so a reader can tell a quiet run from a loaded one.
std::string load_average();

// GFLOP/s of 12 independent chains of `isa`'s widest float FMA per thread, run by `threads`
// threads at once, each `iterations` times (300,000: about 1 ms), best of `repeats`: the
// most the cores can do with that ISA (bench_peak.cpp). Call with AVX-512 only where
// cpu_runs_avx512(). On a shared machine another process can only lower it: measure it
// before and after what it is compared with and keep the larger.
double fma_peak_gflops(CpuIsa isa, int threads, int64_t iterations = 300'000, int repeats = 50);

}  // namespace ittt::bench

#define ITTT_BENCHMARK(name, order)                                                              \
    static void ittt_bench_##name(const ::ittt::bench::Context& ctx);                            \
    static ::ittt::bench::Registrar ittt_bench_registrar_##name(#name, order, ittt_bench_##name); \
    static void ittt_bench_##name([[maybe_unused]] const ::ittt::bench::Context& ctx)
