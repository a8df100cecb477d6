// cross_entropy.cu: fused softmax + negative log-likelihood (+ its gradient) on the GPU, F32.
//
// Two versions (their rows: src/ops/cross_entropy.cpp, `build/ittt info --kernels`):
//   three pass  cross_entropy_three_pass_kernel  one block per row: max, then sum of exp, then gradient
//   online      cross_entropy_online_kernel      one block per row: max and sum of exp in one pass, then gradient
//
// Run: ops::cross_entropy on CUDA tensors, or --kernel cross_entropy=1;
// tests: build/ittt_tests "[cuda][cross_entropy]".
//
// One block per row: a row of logits (V up to ~150k) is one contiguous stretch
// that a block reads in coalesced strides, and its reductions stay inside the
// block (no atomics, so the same bits every run). Ignored rows (target ==
// ignore_index) get loss 0 and a zero gradient row. The exponentials are float;
// the per-row loss is assembled in double and summed by the caller in row order.
#include <cmath>

#include "kernels/cross_entropy/cross_entropy.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 512;  // 16 warps: enough loads in flight to stream a long row
constexpr int kWarps = kThreads / 32;

struct Max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct Sum {
    __device__ float operator()(float a, float b) const { return a + b; }
};

// Reduces v over the block; every thread gets the same result. scratch: (kWarps) shared.
// Lane 0 of each warp holds its warp's result, and every thread then combines the
// warp results in warp order, so all threads (and all runs) agree bit for bit.
template <class Op>
__device__ float block_reduce(float v, float* scratch, Op op) {
    for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
    __syncthreads();  // the previous call's readers are done with scratch
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
    __syncthreads();
    float r = scratch[0];
    for (int w = 1; w < kWarps; ++w) r = op(r, scratch[w]);
    return r;
}

// An ignored row: loss 0, gradient 0. Returns true when the row is ignored.
__device__ bool skip_ignored_row(float* dx, double* row_loss, int64_t V, int32_t target, int32_t ignore_index) {
    if (target != ignore_index) return false;
    if (dx)
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dx[j] = 0.0f;
    if (threadIdx.x == 0) row_loss[blockIdx.x] = 0.0;
    return true;
}

// Given the row max m and sum_j exp(x_j - m): the loss, and dx = grad_scale * (softmax - onehot).
// x, dx: (V) for this row.
__device__ void write_loss_and_gradient(float* dx, double* row_loss, const float* x, int64_t V, int32_t target, float m, float sum_exp,
                                        float grad_scale) {
    // (max - x[t]) + log(sum): no cancellation between two large numbers (see cross_entropy_cpu.cpp).
    if (threadIdx.x == 0)
        row_loss[blockIdx.x] = (static_cast<double>(m) - static_cast<double>(x[target])) + log(static_cast<double>(sum_exp));
    if (!dx) return;
    const float log_sum = logf(sum_exp);
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        const float p = expf(x[j] - m - log_sum);
        dx[j] = grad_scale * (j == target ? p - 1.0f : p);
    }
}

// Version 1: the textbook three passes over the row, one reduction each.
// dlogits: (N, V) or nullptr; row_loss: (N); logits: (N, V); targets: (N).
__global__ void cross_entropy_three_pass_kernel(float* dlogits, double* row_loss, const float* logits, const int32_t* targets,
                                                int64_t V, float grad_scale, int32_t ignore_index) {
    __shared__ float scratch[kWarps];
    const float* x = logits + blockIdx.x * V;
    float* dx = dlogits ? dlogits + blockIdx.x * V : nullptr;
    const int32_t target = targets[blockIdx.x];
    if (skip_ignored_row(dx, row_loss, V, target, ignore_index)) return;  // uniform over the block
    // Shift by the row max so the largest exp is exp(0) = 1 and nothing overflows.
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, x[j]);
    m = block_reduce(m, scratch, Max{});
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(x[j] - m);
    s = block_reduce(s, scratch, Sum{});
    write_loss_and_gradient(dx, row_loss, x, V, target, m, s, grad_scale);
}

// A running (max, sum of exp(x - max)) pair.
struct MaxSum {
    float m, s;
};
// Two pairs over disjoint elements -> the pair over both: rescale each sum to the larger max.
__device__ MaxSum merge(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.m, b.m);
    if (m == -INFINITY) return {m, 0.0f};  // both empty: -inf - -inf would be NaN
    return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

// Version 2: online softmax (Milakov and Gimelshein 2018): keep a running max and rescale the running sum whenever the
// max grows, so max and sum come from ONE read of the row instead of two.
__global__ void cross_entropy_online_kernel(float* dlogits, double* row_loss, const float* logits, const int32_t* targets,
                                            int64_t V, float grad_scale, int32_t ignore_index) {
    __shared__ float scratch_m[kWarps], scratch_s[kWarps];
    const float* x = logits + blockIdx.x * V;
    float* dx = dlogits ? dlogits + blockIdx.x * V : nullptr;
    const int32_t target = targets[blockIdx.x];
    if (skip_ignored_row(dx, row_loss, V, target, ignore_index)) return;
    MaxSum acc{-INFINITY, 0.0f};
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        const float xj = x[j];
        if (xj > acc.m) {
            acc.s = acc.s * expf(acc.m - xj) + 1.0f;  // first element: 0 * exp(-inf) + 1 = 1
            acc.m = xj;
        } else if (xj > -INFINITY) {
            acc.s += expf(xj - acc.m);  // a -inf logit adds exactly 0 (and -inf - -inf would be NaN)
        }
    }
    // The block reduction of block_reduce, on pairs.
    for (int offset = 16; offset > 0; offset /= 2) {
        const MaxSum other{__shfl_down_sync(0xffffffffu, acc.m, offset), __shfl_down_sync(0xffffffffu, acc.s, offset)};
        acc = merge(acc, other);
    }
    if (threadIdx.x % 32 == 0) {
        scratch_m[threadIdx.x / 32] = acc.m;
        scratch_s[threadIdx.x / 32] = acc.s;
    }
    __syncthreads();
    MaxSum total{scratch_m[0], scratch_s[0]};
    for (int w = 1; w < kWarps; ++w) total = merge(total, MaxSum{scratch_m[w], scratch_s[w]});
    write_loss_and_gradient(dx, row_loss, x, V, target, total.m, total.s, grad_scale);
}
}  // namespace

namespace {
unsigned rows_of(int64_t N, int64_t V) {
    ITTT_CHECK(N >= 0 && V >= 1 && N <= 2147483647LL, "cross_entropy_cuda: bad sizes N ", N, ", V ", V);
    return static_cast<unsigned>(N);
}
}  // namespace

void cross_entropy_three_pass_cuda(float* dlogits, double* row_loss, const float* logits, const int32_t* targets, int64_t N,
                                   int64_t V, float grad_scale, int32_t ignore_index) {
    const unsigned rows = rows_of(N, V);
    if (rows == 0) return;
    ITTT_LAUNCH(cross_entropy_three_pass_kernel, rows, kThreads, 0, 0)(dlogits, row_loss, logits, targets, V, grad_scale, ignore_index);
    CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_online_cuda(float* dlogits, double* row_loss, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                               float grad_scale, int32_t ignore_index) {
    const unsigned rows = rows_of(N, V);
    if (rows == 0) return;
    ITTT_LAUNCH(cross_entropy_online_kernel, rows, kThreads, 0, 0)(dlogits, row_loss, logits, targets, V, grad_scale, ignore_index);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
