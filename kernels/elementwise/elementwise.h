// elementwise.h: whole-tensor helpers on the GPU (fill, axpy, scale, norms,
// finiteness, a sum over the leading dimension), F32 only.
//
// On the CPU these are a few loops in src/ops/elementwise.cpp; on the GPU each
// needs a launch, and the reductions need a plan that gives the same bits on
// every run: sum_squares and all_finite use a FIXED number of blocks, each
// summing a fixed slice in a fixed tree order, then one block adds the block
// results in block order. Nothing depends on the GPU model, the SM count or
// timing, so exact --resume (which compares gradient norms) stays exact.
//
// All pointers are device pointers. One version of each; see elementwise.cu.
#pragma once
#include <cstdint>

namespace ittt::kernels {

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
// out: (m) = (accumulate ? out : 0) + sum over i of in: (k, m) row i, rows added in order 0..k-1
// (the CPU's order, so the result is bit-identical to it).
void sum_dim0_cuda(float* out, const float* in, int64_t k, int64_t m, bool accumulate);

}  // namespace ittt::kernels
