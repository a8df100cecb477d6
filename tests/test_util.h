// test_util.h: shared helpers for the Catch2 tests.
//
// - random_tensor(): seeded inputs in F32 or F64; gpu(), host(), nan_tensor().
// - check_close(): element-wise |a - ref| <= atol + rtol*|ref|, printing the first
//   mismatches and the max error, so a failure says where and by how much.
// - finite_difference(): central differences of a scalar function, in double.
// - ITTT_SKIP_WITHOUT_CUDA(), ITTT_SKIP_WITHOUT_MPI(): the first line of every [cuda] / [mpi] case.
// - fixture_path(): a file under tests/fixtures/.
// - small_shapes(): ITTT_TEST_SHAPES=small, for runs where every kernel is many times
//   slower (make cuda-check-tsan: ThreadSanitizer on the CUDA emulator).
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/op_table.h"
#include "ops/ops.h"
#include "parallel/context.h"
#include "runtime/device.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace ittt::test {

extern int skipped_in_current_case;
extern int skipped_mpi_in_current_case;

// True under ITTT_TEST_SHAPES=small: the big [cuda] sweeps then take a subset of their
// shapes (every kind of case still runs, fewer of each).
inline bool small_shapes() {
    static const bool small = [] {
        const char* e = std::getenv("ITTT_TEST_SHAPES");
        return e != nullptr && std::strcmp(e, "small") == 0;
    }();
    return small;
}

// `all`, or under small shapes every k-th element of it (the first included).
template <class T>
std::vector<T> subset_if_small(const std::vector<T>& all, size_t k) {
    if (!small_shapes()) return all;
    std::vector<T> some;
    for (size_t i = 0; i < all.size(); i += k) some.push_back(all[i]);
    return some;
}

// Normal(0, scale^2) entries; the same numbers for F32 and F64 (F32 rounds them).
inline Tensor random_tensor(const Shape& shape, uint64_t seed, double scale = 1.0, DType dtype = DType::F32) {
    Tensor t = Tensor::empty(shape, dtype);
    for (int64_t i = 0; i < t.numel(); ++i) {
        double x = scale * normal_at(seed, static_cast<uint64_t>(i));
        if (dtype == DType::F64) t.data<double>()[i] = x;
        else t.data<float>()[i] = static_cast<float>(x);
    }
    return t;
}

// Copies to the GPU and back (the [cuda] tests' shorthands).
inline Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }
inline Tensor host(const Tensor& t) { return t.to(Device::CPU); }

// A float tensor full of NaN on device d, for outputs a kernel must overwrite: an element
// it forgets to write then shows up as a mismatch instead of passing by luck. Filled on
// the host by a plain loop (not ops::fill, whose kernels may be the ones under test).
inline Tensor nan_tensor(const Shape& shape, DType dtype = DType::F32, Device d = Device::CPU) {
    Tensor t = Tensor::empty(shape, dtype);
    for (int64_t i = 0; i < t.numel(); ++i) {
        if (dtype == DType::F64) t.data<double>()[i] = std::numeric_limits<double>::quiet_NaN();
        else t.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
    }
    return d == Device::CPU ? t : t.to(d);
}

// Integers uniform in [lo, hi) as an I32 tensor.
inline Tensor random_ints(const Shape& shape, uint64_t seed, int lo, int hi) {
    Tensor t = Tensor::empty(shape, DType::I32);
    Rng rng(seed);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(rng.randint(lo, hi));
    return t;
}

// A float GEMM case whose answer is exact: op(A)(i, k) and op(B)(k, j) small integers in
// [-3, 3], so with K <= 300 every product and partial sum is an integer below 2^24, exact in
// float whatever the order of the sums. C starts at 7; `expected` is alpha 2, beta -1 over it.
// A and B are stored as op(A) = A^T / op(B) = B^T ask when ta / tb.
struct IntegerGemmCase {
    std::vector<float> A, B, C, expected;
    int64_t lda = 0, ldb = 0, ldc = 0;
};
inline IntegerGemmCase integer_gemm_case(bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
    IntegerGemmCase g;
    g.A.resize(static_cast<size_t>(M * K));
    g.B.resize(static_cast<size_t>(K * N));
    g.C.assign(static_cast<size_t>(M * N), 7.f);
    g.expected.resize(g.C.size());
    g.lda = ta ? M : K, g.ldb = tb ? K : N, g.ldc = N;
    auto a = [](int64_t i, int64_t k) { return static_cast<float>((i + 2 * k) % 7 - 3); };
    auto b = [](int64_t k, int64_t j) { return static_cast<float>((3 * k + j) % 5 - 2); };
    for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k) g.A[static_cast<size_t>(ta ? k * M + i : i * K + k)] = a(i, k);
    for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) g.B[static_cast<size_t>(tb ? j * K + k : k * N + j)] = b(k, j);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            int64_t sum = 0;
            for (int64_t k = 0; k < K; ++k) sum += static_cast<int64_t>(a(i, k)) * static_cast<int64_t>(b(k, j));
            g.expected[static_cast<size_t>(i * N + j)] = static_cast<float>(2 * sum - 7);
        }
    return g;
}

struct CloseReport {
    bool ok = true;
    double max_abs_err = 0;
    int64_t n_bad = 0;
};

inline CloseReport compare_close(const std::vector<double>& actual, const std::vector<double>& ref, double atol, double rtol,
                                 const std::string& name) {
    CloseReport r;
    if (actual.size() != ref.size()) {
        std::printf("%s: size %zu, reference size %zu\n", name.c_str(), actual.size(), ref.size());
        r.ok = false;
        return r;
    }
    for (size_t i = 0; i < ref.size(); ++i) {
        double err = std::fabs(actual[i] - ref[i]);
        bool bad = !(err <= atol + rtol * std::fabs(ref[i]));  // NaN counts as bad
        if (std::isnan(err)) r.max_abs_err = err;
        else r.max_abs_err = std::max(r.max_abs_err, err);
        if (bad) {
            if (r.n_bad < 5)
                std::printf("%s: mismatch at %zu: got %.9g, expected %.9g (|err| %.3g > %.3g)\n", name.c_str(), i, actual[i],
                            ref[i], err, atol + rtol * std::fabs(ref[i]));
            ++r.n_bad;
        }
    }
    if (r.n_bad > 0) {
        std::printf("%s: %lld of %zu elements out of tolerance (atol %.3g, rtol %.3g), max |err| %.3g\n", name.c_str(),
                    static_cast<long long>(r.n_bad), ref.size(), atol, rtol, r.max_abs_err);
        r.ok = false;
    }
    return r;
}

inline bool check_close(const Tensor& actual, const Tensor& ref, double atol, double rtol, const std::string& name) {
    if (actual.shape() != ref.shape()) {
        std::printf("%s: shape %s, reference shape %s\n", name.c_str(), shape_str(actual.shape()).c_str(),
                    shape_str(ref.shape()).c_str());
        return false;
    }
    return compare_close(actual.to_f64_vector(), ref.to_f64_vector(), atol, rtol, name).ok;
}

inline bool check_close(const std::vector<double>& actual, const std::vector<double>& ref, double atol, double rtol,
                        const std::string& name) {
    return compare_close(actual, ref, atol, rtol, name).ok;
}

// True when every bit matches (same shape, same dtype, same bytes).
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
    Tensor ha = a.to(Device::CPU), hb = b.to(Device::CPU);
    return std::memcmp(ha.raw(), hb.raw(), ha.bytes()) == 0;
}

// d loss / d x[i] by central differences, perturbing an F64 tensor in place.
// loss() must recompute everything from x. h = 1e-6 balances truncation error
// (~h^2) against cancellation (~1e-16/h) in double.
inline std::vector<double> finite_difference(Tensor& x, const std::function<double()>& loss, double h = 1e-6) {
    REQUIRE(x.dtype() == DType::F64);
    double* p = x.data<double>();
    std::vector<double> g(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) {
        double saved = p[i];
        p[i] = saved + h;
        double up = loss();
        p[i] = saved - h;
        double down = loss();
        p[i] = saved;
        g[static_cast<size_t>(i)] = (up - down) / (2 * h);
    }
    return g;
}

// Runs fn with `threads` OpenMP threads, restoring the previous count after
// (also when fn throws). Without OpenMP it just runs fn.
template <class F>
void with_threads(int threads, F fn) {
#ifdef _OPENMP
    struct Restore {
        int saved = omp_get_max_threads();
        ~Restore() { omp_set_num_threads(saved); }
    } restore;
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    fn();
}

// Selects kernel version v of `op` for one scope and restores the previous
// version after it (also when a check throws): ScopedVersion use("gemm", 1);
class ScopedVersion {
public:
    ScopedVersion(std::string op, int v) : op_(std::move(op)), saved_(ops::version(op_)) { ops::set_version(op_, v); }
    ~ScopedVersion() { ops::set_version(op_, saved_); }
    ScopedVersion(const ScopedVersion&) = delete;
    ScopedVersion& operator=(const ScopedVersion&) = delete;

private:
    std::string op_;
    int saved_;
};

// Kernel versions this machine cannot run (an AVX-512 row on an AVX2 CPU), counted per
// "op CPU version (needs ...)" by cpu_versions_here; test_main.cpp prints them at the end.
extern std::map<std::string, int> versions_skipped;

// The CPU versions of `op` from `first` on that this machine runs, in table order (gemm
// from 2: {2, 3} on an AVX-512 CPU, {2} on an AVX2 one). Every row left out is counted in
// versions_skipped, so a skipped version is reported, never silent.
inline std::vector<int> cpu_versions_here(const std::string& op, int first = 1) {
    std::vector<int> here;
    for (const ops::VersionInfo& v : ops::op_spec(op).cpu.versions) {
        if (v.number < first) continue;
        if (v.runs_here()) here.push_back(v.number);
        else ++versions_skipped[cat(op, " CPU version ", v.number, " (", v.name, ", needs ", v.needs, ")")];
    }
    return here;
}

// 0 (best) and every version of `op` on device d that this machine runs, from the table:
// for tests that run an op or a model once per version.
inline std::vector<int> versions_with_best(const std::string& op, Device d) {
    std::vector<int> all = {0};
    for (const ops::VersionInfo& v : ops::op_spec(op).on(d).versions)
        if (v.runs_here()) all.push_back(v.number);
    return all;
}

// <a, b> summed in double: the usual scalar "loss = sum(out * weights)" of a gradient check.
inline double dot(const Tensor& a, const Tensor& b) {
    std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
    REQUIRE(x.size() == y.size());
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
    return s;
}

// tests/fixtures/<rel>, from the working directory (make test runs in the repository)
// or else from the test binary's (build/ittt_tests -> build/../tests/fixtures).
inline std::string fixture_path(const std::string& rel) {
    namespace fs = std::filesystem;
    const std::string path = "tests/fixtures/" + rel;
    if (fs::exists(path)) return path;
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return (exe.parent_path() / ".." / path).lexically_normal().string();
}

}  // namespace ittt::test

// The first line of every [cuda] test case: counts the case as skipped when no GPU.
#define ITTT_SKIP_WITHOUT_CUDA()                          \
    do {                                                  \
        if (!::ittt::cuda_available()) {                  \
            ++::ittt::test::skipped_in_current_case;      \
            return;                                       \
        }                                                 \
    } while (0)

// The first line of every [mpi] test case: counts the case as skipped in a build without MPI.
#define ITTT_SKIP_WITHOUT_MPI()                                \
    do {                                                       \
        if (!::ittt::parallel::built_with_mpi()) {             \
            ++::ittt::test::skipped_mpi_in_current_case;       \
            return;                                            \
        }                                                      \
    } while (0)
