// bench_cuda.h: what the GPU benchmarks share (bench_gemm_cuda.cpp, bench_shapes_cuda.cpp):
// where they run, the one timing helper (CUDA events), seeded device inputs, a result check,
// and cuBLAS as the comparator (absent on the CUDA emulator).
//
// ITTT_BENCH_CUDA is 1 where they are compiled: a CUDA build with cuBLAS's header on the
// include path (the Makefile's NVTX include dir is CUDA's), or the emulated build (make
// CUDA=emu), which has no cuBLAS: there they run only with --tiny, as a check of their own
// code and CSV, and name the device as the emulator in every row.
#pragma once
#if ITTT_WITH_CUDA && __has_include(<cuda_runtime.h>)
#include <cuda_runtime.h>  // the emulator's shim in a CUDA=emu build, which defines ITTT_CUDA_EMULATED
#endif

#if ITTT_WITH_CUDA && defined(ITTT_CUDA_EMULATED)
#define ITTT_BENCH_CUDA 1
#define ITTT_BENCH_CUBLAS 0
#elif ITTT_WITH_CUDA && __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define ITTT_BENCH_CUDA 1
#define ITTT_BENCH_CUBLAS 1
#else
#define ITTT_BENCH_CUDA 0
#define ITTT_BENCH_CUBLAS 0
#endif

#if ITTT_BENCH_CUDA
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "ops/op_table.h"
#include "runtime/cuda_check.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace ittt::bench {

// Whether a GPU benchmark runs here: a GPU, or the emulator under --tiny. Otherwise it says why
// not (no device; the emulator without --tiny, whose time is never a GPU figure) and returns false.
inline bool cuda_bench_runs(const Context& ctx, const char* bench) {
    if (!cuda_available()) {
        std::printf("\n%s: no CUDA device\n", bench);
        return false;
    }
    if (cuda_emulated() && !ctx.tiny) {
        std::printf(
            "\n%s: refused: this build's CUDA device is the CPU emulator (make CUDA=emu), not a GPU; it checks the\n"
            "  kernels' correctness, and no time it takes is a GPU figure. Build with nvcc (make CUDA=1) on a GPU machine\n"
            "  (or run with --tiny to check the benchmark's own code and CSV on the emulator).\n",
            bench);
        return false;
    }
    if (cuda_emulated())
        std::printf("\n%s: --tiny on the CUDA emulator: toy shapes that check this benchmark's code and CSV; no time below is a GPU figure\n", bench);
    return true;
}

// The device column of every row: "NVIDIA H100 80GB HBM3 (sm_90; 132 SMs)", or the emulator's own name.
inline std::string cuda_device_name() { return device::describe(Device::CUDA); }

// Uniform in [-1, 1) from a counter hash, filled on the host by every OpenMP thread (the same
// numbers whatever their count): 300 M values for the cross-entropy logits.
inline Tensor random_uniform_gpu(const Shape& shape, uint64_t seed) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data<float>();
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
        p[i] = static_cast<float>(static_cast<double>(splitmix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-52 - 1.0);
    return t.to(Device::CUDA);
}

// Mean seconds per call of fn over `repeats` calls after `warmup` calls, from CUDA events on
// the default stream (where every kernel of this project runs): kernels are asynchronous, so a
// host clock would time the launch, not the work.
inline double time_events(const std::function<void()>& fn, int warmup, int repeats) {
    for (int i = 0; i < warmup; ++i) fn();
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < repeats; ++i) fn();
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    return ms * 1e-3 / repeats;
}

struct Timing {
    double seconds = 0;  // mean per call
    int calls = 0;       // timed calls behind it
};

// The one timing helper of the GPU benchmarks: enough calls to fill about `budget` seconds (at
// least 3, at most 100), after one warm-up call and one call that sizes the run. A call slower
// than the budget (a naive kernel at 4096^3) is measured by that sizing call alone, so that one
// slow version cannot eat a time-limited run (tests/gpu/gpu-check.sh).
inline Timing time_adaptive(const std::function<void()>& fn, double budget) {
    const double once = time_events(fn, 1, 1);
    if (once >= budget) return {once, 1};
    const int repeats = static_cast<int>(std::clamp(budget / std::max(once, 1e-6), 3.0, 100.0));
    return {time_events(fn, 0, repeats), repeats};
}

// Seconds of timed calls per row: --tiny only checks that everything runs.
inline double time_budget(const Context& ctx) { return ctx.tiny ? 1e-3 : ctx.quick ? 0.05 : 0.3; }

// max |x - y| / max |y| over two tensors of the same size: a sanity column, not a test.
inline double max_rel_diff(const Tensor& x, const Tensor& y) {
    std::vector<float> a = x.to_f32_vector(), b = y.to_f32_vector();
    ITTT_CHECK(a.size() == b.size(), "max_rel_diff: ", a.size(), " elements against ", b.size());
    double err = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
    }
    return scale > 0 ? err / scale : err;
}

// A row for version `version` of `op` on CUDA (the table's name and kernels, the device),
// timed at t doing `work` flops or bytes per call; the comparator is added by compare().
inline Measurement cuda_measurement(const char* benchmark, const std::string& op, const std::string& variant, int version, const std::string& shape,
                                    const Timing& t, double work, const char* unit) {
    const ops::DeviceVersions& table = ops::op_spec(op).cuda;
    const ops::VersionInfo* info = table.find(version);
    ITTT_CHECK(info != nullptr, benchmark, ": ", op, " has no CUDA version ", version, " (CUDA versions: ", table.describe(), ")");
    Measurement m;
    m.benchmark = benchmark;
    m.op = op;
    m.variant = variant;
    m.version = version;
    m.name = info->name;
    m.kernels = info->kernels;
    m.shape = shape;
    m.device = cuda_device_name();
    m.seconds = t.seconds;
    m.calls = t.calls;
    m.work = work;
    m.unit = unit;
    return m;
}

// The same row with its comparator: what ran, its time and its work per call (same unit).
inline Measurement compared(Measurement m, const std::string& comparator, const Timing& t, double work) {
    m.comparator = comparator;
    m.comparator_seconds = t.seconds;
    m.comparator_work = work;
    return m;
}

// Every CUDA version of `op` in the op table, in order: what the benchmarks time (a version
// added to kernels/<op>/<op>_versions.h is timed without a change here).
inline std::vector<int> cuda_versions(const std::string& op) {
    std::vector<int> all;
    for (const ops::VersionInfo& v : ops::op_spec(op).cuda.versions) all.push_back(v.number);
    return all;
}

// fn(version) for every CUDA version of `op` in the table, each selected in turn (and 0, the
// best, again after), each guarded: a version that fails is reported and the next one runs.
template <class F>
void for_each_cuda_version(const char* benchmark, const std::string& op, const std::string& shape, F fn) {
    for (int version : cuda_versions(op)) {
        guarded(cat(benchmark, ": ", op, " version ", version, " at ", shape), [&] {
            ops::set_version(op, version);
            fn(version);
        });
        ops::set_version(op, 0);
    }
}

// The comparator for products: cuBLAS, called on row-major buffers. The CUDA emulator has no
// cuBLAS; there a host stand-in takes the same column-major call (reference_column_major below),
// so that on the emulator the row-major-to-cuBLAS mapping of gemm() is exercised, and checked by
// every product row's max_rel_diff (~1e-7 there), before a GPU ever runs it.
class Blas {
public:
#if ITTT_BENCH_CUBLAS
    Blas() { check(cublasCreate(&handle_), "cublasCreate"); }
    ~Blas() { cublasDestroy(handle_); }
    static std::string name() { return "cuBLAS"; }
#else
    Blas() = default;
    static std::string name() { return "host stand-in for cuBLAS (emulator)"; }
#endif
    Blas(const Blas&) = delete;
    Blas& operator=(const Blas&) = delete;

    // C = alpha op(A) op(B) + beta C for `batch` row-major problems at the given element strides:
    // C (M, N) with row stride ldc, op(A) (M, K), op(B) (K, N); A is stored (M, K) or, with
    // trans_a, (K, M) with row stride lda (B likewise). tf32: tensor cores with TF32 inputs.
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so B goes first.
    void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
              int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c, int64_t batch, bool tf32) {
        column_major(trans_b, trans_a, N, M, K, alpha, B, ldb, stride_b, A, lda, stride_a, beta, C, ldc, stride_c, batch, tf32);
    }

private:
    // cuBLAS's call: C (m, n) = alpha op(X) op(Y) + beta C, column-major, `batch` times at the strides.
    void column_major(bool trans_x, bool trans_y, int64_t m, int64_t n, int64_t k, float alpha, const float* X, int64_t ldx, int64_t stride_x,
                      const float* Y, int64_t ldy, int64_t stride_y, float beta, float* C, int64_t ldc, int64_t stride_c, int64_t batch, bool tf32) {
#if ITTT_BENCH_CUBLAS
        const cublasOperation_t op_x = trans_x ? CUBLAS_OP_T : CUBLAS_OP_N, op_y = trans_y ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        if (batch == 1)
            check(cublasGemmEx(handle_, op_x, op_y, narrow(m), narrow(n), narrow(k), &alpha, X, CUDA_R_32F, narrow(ldx), Y, CUDA_R_32F, narrow(ldy),
                               &beta, C, CUDA_R_32F, narrow(ldc), compute, CUBLAS_GEMM_DEFAULT),
                  "cublasGemmEx");
        else
            check(cublasGemmStridedBatchedEx(handle_, op_x, op_y, narrow(m), narrow(n), narrow(k), &alpha, X, CUDA_R_32F, narrow(ldx), stride_x, Y,
                                             CUDA_R_32F, narrow(ldy), stride_y, &beta, C, CUDA_R_32F, narrow(ldc), stride_c, narrow(batch), compute,
                                             CUBLAS_GEMM_DEFAULT),
                  "cublasGemmStridedBatchedEx");
#else
        (void)tf32;  // the stand-in sums in double either way
        reference_column_major(trans_x, trans_y, m, n, k, alpha, X, ldx, stride_x, Y, ldy, stride_y, beta, C, ldc, stride_c, batch);
#endif
    }

#if ITTT_BENCH_CUBLAS
    cublasHandle_t handle_ = nullptr;
    static void check(cublasStatus_t status, const char* call) {
        ITTT_CHECK(status == CUBLAS_STATUS_SUCCESS, "cuBLAS error: ", call, " returned ", static_cast<int>(status));
    }
    static int narrow(int64_t x) {
        ITTT_CHECK(x >= 0 && x <= INT32_MAX, "cuBLAS: ", x, " does not fit cuBLAS's int arguments");
        return static_cast<int>(x);
    }
#else
    // The elements an operand spans: stored (rows, cols) column-major with leading dimension ld,
    // `batch` of them at `stride`. cuBLAS refuses ld < rows; a span past the allocation is what
    // a GPU would fault on, and cudaMemcpy (the emulator checks its pointers) refuses it here.
    static int64_t span(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
        ITTT_CHECK(ld >= std::max<int64_t>(rows, 1), "cuBLAS stand-in: leading dimension ", ld, " < ", rows, " rows");
        return (batch - 1) * stride + (cols - 1) * ld + rows;
    }
    static std::vector<float> download(const float* p, int64_t count) {
        std::vector<float> host(static_cast<size_t>(count));
        CUDA_CHECK(cudaMemcpy(host.data(), p, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
        return host;
    }
    static void reference_column_major(bool trans_x, bool trans_y, int64_t m, int64_t n, int64_t k, float alpha, const float* X, int64_t ldx,
                                       int64_t stride_x, const float* Y, int64_t ldy, int64_t stride_y, float beta, float* C, int64_t ldc,
                                       int64_t stride_c, int64_t batch) {
        CUDA_CHECK(cudaDeviceSynchronize());  // the operands as the stream has left them
        const std::vector<float> x = download(X, span(trans_x ? k : m, trans_x ? m : k, ldx, stride_x, batch));
        const std::vector<float> y = download(Y, span(trans_y ? n : k, trans_y ? k : n, ldy, stride_y, batch));
        std::vector<float> c = download(C, span(m, n, ldc, stride_c, batch));
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t j = 0; j < n; ++j)
                for (int64_t i = 0; i < m; ++i) {
                    double sum = 0;
                    for (int64_t p = 0; p < k; ++p) {
                        const float xv = x[static_cast<size_t>(b * stride_x + (trans_x ? p + i * ldx : i + p * ldx))];
                        const float yv = y[static_cast<size_t>(b * stride_y + (trans_y ? j + p * ldy : p + j * ldy))];
                        sum += static_cast<double>(xv) * yv;
                    }
                    float& out = c[static_cast<size_t>(b * stride_c + i + j * ldc)];
                    out = static_cast<float>(alpha * sum + (beta != 0.0f ? beta * static_cast<double>(out) : 0.0));
                }
        CUDA_CHECK(cudaMemcpy(C, c.data(), c.size() * sizeof(float), cudaMemcpyHostToDevice));
    }
#endif
};

// The name a row gives cuBLAS as its comparator: "cuBLAS F32", "cuBLAS TF32 (tensor cores)".
inline std::string blas_name(bool tf32) { return Blas::name() + (tf32 ? " TF32 (tensor cores)" : " F32"); }

}  // namespace ittt::bench

#endif  // ITTT_BENCH_CUDA
