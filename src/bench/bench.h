// bench.h: the tiny benchmark framework behind `make bench` (build/ittt_bench).
//
// Each src/bench/bench_<topic>.cpp registers one or more benchmarks with
// ITTT_BENCHMARK(name, order) { ... }. They are timed with a steady clock over
// repeats after a warm-up (time_best, or the interleaved rounds and Stats of the model
// benchmark), and print rows through Table, always with a ratio to a comparator
// measured in the same run (never a number from memory). The GPU benchmarks also
// record each row as a Measurement, written as a line of CSV with --csv FILE
// (docs/profiling.md, "The CSV", says what each column means).
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "runtime/cpu_isa.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ittt::bench {

struct Context {
    bool quick = false;     // --quick: fewer sizes and repeats (a smoke run)
    bool tiny = false;      // --tiny: toy shapes, a check of the benchmarks' own code and CSV (the
                            // only way the GPU benchmarks run on the CUDA emulator); no timing figure
    std::string filter;     // run only benchmarks whose name contains one of these (comma-separated)
    std::string csv;        // --csv FILE: append every Measurement to FILE (empty: none)
    std::string torch_record = "build/torch_compare.txt";  // the PyTorch comparator's last results (bench_model.cpp)
};

using BenchFn = void (*)(const Context&);
struct Registrar {
    Registrar(const char* name, int order, BenchFn fn);
};
// Whether --filter selects the benchmark `name` (bench_main.cpp).
bool selected(const std::string& filter, const std::string& name);

// The OpenMP thread count (1 in a build without OpenMP), and setting it: the benchmarks
// time each kernel at several counts and restore the count they found.
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
inline void set_threads([[maybe_unused]] int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

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

// One timed result: a row of a GPU benchmark's table and a line of the --csv file.
// rate = work / seconds; the comparator (cuBLAS, a device-to-device copy) ran in the same
// process on the same device, and fraction = rate / comparator rate.
struct Measurement {
    std::string benchmark;        // "gemm_cuda"
    std::string op;               // the op table's name: "gemm", "attention", ...
    std::string variant;          // "NN", "forward", "loss+grad", ... ("-": none)
    int version = 0;              // the op table's version that ran (0 is resolved first)
    std::string name, kernels;    // that row's name and kernels (a regex for ncu -k)
    std::string shape;            // "M=N=K=4096", "B=1 n=4096 Hq=16 Hkv=8 hd=128 window=1024"
    std::string device;           // device::describe(Device::CUDA)
    double seconds = 0;           // mean time per call
    int calls = 0;                // timed calls behind that mean
    double work = 0;              // useful flops or bytes per call
    std::string unit;             // "GFLOP/s" or "GB/s": work / seconds / 1e9
    std::string comparator = "none";
    double comparator_seconds = 0;  // per call; 0 when there is no comparator
    double comparator_work = 0;     // the comparator's flops or bytes per call, same unit
    double max_rel_diff = std::numeric_limits<double>::quiet_NaN();  // vs the comparator's output; NaN: not compared
    double rate() const { return seconds > 0 ? work / seconds / 1e9 : 0; }
    double comparator_rate() const { return comparator_seconds > 0 ? comparator_work / comparator_seconds / 1e9 : 0; }
};

// Runs fn (a row, or a group of rows, of a benchmark). An ittt::Error in it (a kernel that
// refuses a shape, a CUDA error) is printed as "<what>: failed: <message>" and counted instead
// of ending the run, so the rows after it are still measured; ittt_bench then exits with 1.
void guarded(const std::string& what, const std::function<void()>& fn);
int failed_count();

// The CSV's header line, and one Measurement as a line (no trailing newline). Text fields
// never hold a comma or a quote (each becomes ';'), so a line splits on ',' alone.
std::string csv_header();
std::string csv_line(const Measurement& m);

// A benchmark's rows. add() appends each row to ctx.csv at once (the header first when the file
// is new or empty; an unwritable file is an error naming it), so that a run stopped by a time
// limit keeps the rows it measured; report() prints them all as a table under `title`.
class Results {
public:
    explicit Results(const Context& ctx) : ctx_(ctx) {}
    void add(const Measurement& m);
    void report(const std::string& title) const;

private:
    const Context& ctx_;
    std::vector<Measurement> rows_;
};

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
