// lab_util.h: what every lab.cpp shares: flags, section headings, checks, timing.
//
// A lab is a "notebook" written as one C++ program: numbered sections print
// what they compute and why. Flags (the same for every lab):
//   (none)       run the lab with YOUR code in the TODO functions; a TODO that is
//                still a stub says "not implemented" and the lab skips what needs it
//   --solution   use the reference solutions of the TODOs instead (in solution.cpp beside
//                lab.cpp, linked only when the labs are built with LAB_SOLUTIONS=1)
//   --check      small sizes, no long timings; exit 0 only if every check holds
//                (`make labs-check` runs `--check` on your code; make test runs both)
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

// A reference solution is declared in lab.cpp as `LAB_SOLUTION <signature>;` inside
// namespace solution and defined in solution.cpp, which starts with LAB_SOLUTION_FILE.
// Weak: a build without solution.cpp (make labs LAB_SOLUTIONS=0) still links, and
// --solution then says so instead of calling a function that is not there.
#define LAB_SOLUTION __attribute__((weak))
#define LAB_SOLUTION_FILE extern "C" const bool ittt_lab_solutions_linked = true
extern "C" LAB_SOLUTION const bool ittt_lab_solutions_linked;

namespace lab {

struct Options {
    bool solution = false;  // --solution: reference TODO code
    bool check = false;     // --check: quick run, exit code = all checks hold
};

inline Options parse_flags(int argc, char** argv, const char* title) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--solution")) o.solution = true;
        else if (!std::strcmp(argv[i], "--check")) o.check = true;
        else {
            std::printf("%s\nusage: %s [--solution] [--check]\n", title, argv[0]);
            std::exit(std::strcmp(argv[i], "--help") && std::strcmp(argv[i], "-h") ? 2 : 0);
        }
    }
    if (o.solution && &ittt_lab_solutions_linked == nullptr) {
        std::printf("%s\nthis build has no reference solutions (built with LAB_SOLUTIONS=0): run without --solution\n", title);
        std::exit(2);
    }
    std::printf("%s\n(%s, %s)\n", title, o.solution ? "reference solutions" : "your TODO code",
                o.check ? "check mode: small sizes" : "full run");
    return o;
}

inline void section(int number, const char* title) { std::printf("\n== %d. %s ==\n\n", number, title); }

// Counts failed checks; the lab's exit code is 0 only when none failed.
struct Checks {
    int passed = 0, failed = 0;
    bool expect(bool ok, const std::string& what) {
        std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what.c_str());
        (ok ? passed : failed)++;
        return ok;
    }
    // A TODO's result: in --check mode an unfinished TODO is a failed check, otherwise a note.
    bool todo_done(bool done, const char* exercise, const Options& o) {
        if (done) return true;
        if (o.check) expect(false, std::string(exercise) + " is implemented (or run with --solution)");
        else std::printf("  [TODO] %s is not implemented yet: write it in lab.cpp, or run with --solution\n", exercise);
        return false;
    }
    // got against want: holds when max |got - want| <= tol. When it does not, says where and
    // how it differs: per block of `block` consecutive numbers (a chunk's rows, say), which
    // block differs first; whether got is a constant multiple of want (a factor 2, a missing
    // eta); and the hint of every typical mistake whose result got equals.
    struct Mistake {
        std::vector<double> result;  // what that mistake computes
        std::string hint;            // what to tell the student who made it
    };
    bool expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what,
                      const std::vector<Mistake>& mistakes = {}, size_t block = 0, const char* block_name = "chunk") {
        if (got.size() != want.size()) {
            expect(false, what);
            std::printf("         yours has %zu numbers, the expected result %zu: a shape mistake\n", got.size(), want.size());
            return false;
        }
        // |a - b|, with a NaN on either side counted as infinitely far (fmax would drop it)
        auto distance = [](double a, double b) { return std::isnan(a) || std::isnan(b) ? INFINITY : std::fabs(a - b); };
        double diff = 0;
        size_t nans = 0;
        for (size_t i = 0; i < got.size(); ++i) diff = std::fmax(diff, distance(got[i], want[i])), nans += std::isnan(got[i]);
        if (expect(diff <= tol, what)) return true;
        std::printf("         max |yours - expected| = %.3g (tolerance %.1g)\n", diff, tol);
        if (nans) std::printf("         %zu of your %zu numbers are NaN: never written, or computed from something never written\n", nans, got.size());
        if (block > 0 && want.size() > block) {
            size_t first = SIZE_MAX;
            std::printf("         per %s:", block_name);
            for (size_t b = 0; b * block < want.size(); ++b) {
                double d = 0;
                for (size_t i = b * block; i < std::min(want.size(), (b + 1) * block); ++i) d = std::fmax(d, distance(got[i], want[i]));
                if (d > tol && first == SIZE_MAX) first = b;
                std::printf(" %zu: %.2g%s", b, d, d > tol ? "*" : "");
            }
            std::printf("\n");
            if (first > 0 && first != SIZE_MAX)
                std::printf("         the first %s that differs is %s %zu (%s 0 .. %zu match)\n", block_name, block_name, first, block_name,
                            first - 1);
        }
        double gw = 0, ww = 0;
        for (size_t i = 0; i < got.size(); ++i) gw += got[i] * want[i], ww += want[i] * want[i];
        const double scale = ww > 0 ? gw / ww : 0;
        double off = 0;
        for (size_t i = 0; i < got.size(); ++i) off = std::fmax(off, std::fabs(got[i] - scale * want[i]));
        if (nans == 0 && ww > 0 && off <= tol * std::fmax(1.0, std::fabs(scale)) && std::fabs(scale - 1) > 1e-6)
            std::printf("         hint: yours is %.6g times the expected result everywhere: a factor missing or extra\n", scale);
        for (const Mistake& m : mistakes) {
            if (m.result.size() != got.size()) continue;
            double dm = 0;
            for (size_t i = 0; i < got.size(); ++i) dm = std::fmax(dm, distance(got[i], m.result[i]));
            if (dm <= tol) std::printf("         hint: %s\n", m.hint.c_str());
        }
        return false;
    }
    int finish() const {
        std::printf("\n%d checks passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
};

// Best-of-`repeats` wall time (seconds) of fn after one warm-up call, on a steady
// clock. The minimum, not the mean: on a shared machine it is the least noisy.
inline double time_best(const std::function<void()>& fn, int repeats = 3) {
    fn();
    double best = 1e300;
    for (int i = 0; i < repeats; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        fn();
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = s < best ? s : best;
    }
    return best;
}

// fmt("%.2f ms", x): one number formatted into a string.
inline std::string fmt(const char* format, double value) {
    char buf[96];
    std::snprintf(buf, sizeof buf, format, value);
    return buf;
}

// Element i of an F32 or F64 CPU tensor, read and written as double.
inline double get(const ittt::Tensor& t, int64_t i) {
    return t.dtype() == ittt::DType::F64 ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
}
inline void set(ittt::Tensor& t, int64_t i, double value) {
    if (t.dtype() == ittt::DType::F64) t.data<double>()[i] = value;
    else t.data<float>()[i] = static_cast<float>(value);
}

// Seeded N(0, scale^2) entries; the same numbers in F32 and F64 (F32 rounds them).
inline ittt::Tensor random_tensor(const ittt::Shape& shape, uint64_t seed, double scale = 1.0,
                                  ittt::DType dtype = ittt::DType::F32) {
    ittt::Tensor t = ittt::Tensor::empty(shape, dtype);
    for (int64_t i = 0; i < t.numel(); ++i) set(t, i, scale * ittt::normal_at(seed, static_cast<uint64_t>(i)));
    return t;
}

// max |a - b| over all elements (any float dtypes, same numel).
inline double max_abs_diff(const ittt::Tensor& a, const ittt::Tensor& b) {
    std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
    ITTT_CHECK(x.size() == y.size(), "max_abs_diff: ", x.size(), " vs ", y.size(), " elements");
    double m = 0;
    for (size_t i = 0; i < x.size(); ++i) m = std::fmax(m, std::fabs(x[i] - y[i]));
    return m;
}

inline bool bitwise_equal(const ittt::Tensor& a, const ittt::Tensor& b) {
    return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

// Runs a lab's body; an ittt::Error (a shape mistake in your code, say) becomes a one-line message.
inline int run(const std::function<int()>& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        std::printf("\nerror: %s\n", e.what());
        return 1;
    }
}

}  // namespace lab

