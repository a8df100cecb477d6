// elementwise.h: whole-tensor helpers (fill, axpy, scale, norms, finiteness, a sum over
// the leading dimension), on the CPU (float, double) and the GPU (F32).
//
// On the CPU these are a few loops (elementwise_cpu.cpp); on the GPU each needs a launch, and the reductions need a plan that gives the same bits on
// every run: sum_squares and all_finite use a FIXED number of blocks, each
// summing a fixed slice in a fixed tree order, then one block adds the block
// results in block order. Nothing depends on the GPU model, the SM count or
// timing, so exact --resume (which compares gradient norms) stays exact.
//
// One version of each per device (their rows: elementwise_versions.h).
#pragma once
#include <cstdint>

namespace ittt::kernels {

// ---- CPU (elementwise_cpu.cpp) ----
template <class T>
void fill_cpu(T* x, int64_t n, double value);                   // x: (n) = value
template <class T>
void axpy_cpu(T* y, const T* x, int64_t n, double alpha);      // y: (n) += alpha * x: (n)
template <class T>
void scale_cpu(T* x, int64_t n, double s);                      // x: (n) *= s
// sum x^2 in double, in 64 fixed blocks: the same bits whatever the thread count.
template <class T>
double sum_squares_cpu(const T* x, int64_t n);
template <class T>
bool all_finite_cpu(const T* x, int64_t n);

// ---- version 2: the two reductions on 512-bit registers (elementwise_avx512_cpu.cpp), where cpu_runs_avx512() ----
// sum_squares: version 1's 64 blocks, each in 8 double lanes; all_finite: 16 floats at a time.
template <class T>
double sum_squares_avx512_cpu(const T* x, int64_t n);
template <class T>
bool all_finite_avx512_cpu(const T* x, int64_t n);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void elementwise_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (elementwise.cu), F32; all pointers are device pointers ----

// Workspace, in doubles, that sum_squares_cuda and all_finite_cuda need
// (the ops layer allocates it as a CUDA tensor so every allocation is visible).
constexpr int64_t kReduceBlocks = 256;
constexpr int64_t kReduceWorkspace = kReduceBlocks + 1;

// x: (n) = value.
void fill_cuda(float* x, int64_t n, float value);
// y: (n) += alpha * x: (n).
void add_inplace_cuda(float* y, const float* x, int64_t n, float alpha);
// x: (n) *= s.
void scale_inplace_cuda(float* x, int64_t n, float s);
// Returns sum x^2 over x: (n), accumulated in double; workspace: (kReduceWorkspace) doubles.
// Synchronises (the result comes back to the host).
double sum_squares_cuda(const float* x, int64_t n, double* workspace);
// Returns whether every element of x: (n) is finite; workspace as above. Synchronises.
bool all_finite_cuda(const float* x, int64_t n, double* workspace);
// The same two reductions added into *acc on the device, with no copy to the host (so no
// wait for the GPU): *acc += sum x^2, and *acc += 1 when some x_i is NaN or infinite.
// acc: one double in GPU memory; a training step reads all of them with one copy.
void sum_squares_into_cuda(double* acc, const float* x, int64_t n, double* workspace);
void flag_nonfinite_into_cuda(double* acc, const float* x, int64_t n, double* workspace);
// *acc += x_0 + x_1 + ... + x_{n-1}, added in that order (the host loop's bits): x (n) doubles.
void add_sum_into_cuda(double* acc, const double* x, int64_t n);
// out: (m) = (accumulate ? out : 0) + sum over i of in: (k, m) row i, rows added in order 0..k-1
// (the CPU's order, so the result is bit-identical to it).
void sum_dim0_cuda(float* out, const float* in, int64_t k, int64_t m, bool accumulate);

}  // namespace ittt::kernels
