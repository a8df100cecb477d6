// elementwise.cu: fill, axpy, scale, sum of squares, finiteness and a sum over
// dim 0 on the GPU, F32. One version each (no ops::version switch):
//
//   fill_kernel, add_inplace_kernel, scale_inplace_kernel
//       grid-stride loops, one element per thread per step
//   reduce_blocks_kernel + reduce_final_kernel      (sum_squares, all_finite)
//       kReduceBlocks fixed slices, a fixed tree per block, block results added in order
//   sum_dim0_kernel
//       one thread per column walking the k rows in order (the CPU's order)
//
// Run: ops::fill / add_inplace / scale_inplace / sum_squares / all_finite /
// sum_dim0 on a CUDA tensor; tests: build/ittt_tests "[cuda][elementwise]".
#include <cmath>

#include "kernels/elementwise/elementwise.h"
#include "runtime/device.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;

// Enough blocks to fill any current GPU; the grid-stride loop covers the rest.
int grid_for(int64_t n) {
    const int64_t blocks = (n + kThreads - 1) / kThreads;
    return static_cast<int>(blocks < 8192 ? blocks : 8192);
}

// ---- simple elementwise kernels ----

// x: (n)
__global__ void fill_kernel(float* x, int64_t n, float value) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] = value;
}

// y: (n), x: (n)
__global__ void add_inplace_kernel(float* y, const float* x, int64_t n, float alpha) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] += alpha * x[i];
}

// x: (n)
__global__ void scale_inplace_kernel(float* x, int64_t n, float s) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] *= s;
}

// ---- deterministic two-stage reduction ----

struct Square {
    __device__ double operator()(float v) const { return static_cast<double>(v) * static_cast<double>(v); }
};
// Counting non-finite elements (exact in double up to 2^53) rather than and-ing
// flags lets all_finite reuse the sum's plan unchanged.
struct NotFinite {
    __device__ double operator()(float v) const { return isfinite(v) ? 0.0 : 1.0; }
};

// Block b reduces the contiguous slice [b*n/B, (b+1)*n/B) of x: (n) into partial: (B).
// The slice bounds depend only on n and the fixed B, and the tree below always
// pairs the same elements, so the partial is the same bits on every run and GPU.
template <class Term>
__global__ void reduce_blocks_kernel(double* partial, const float* x, int64_t n, Term term) {
    __shared__ double sums[kThreads];
    const int64_t begin = blockIdx.x * n / gridDim.x, end = (blockIdx.x + 1) * n / gridDim.x;
    double acc = 0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) acc += term(x[i]);  // coalesced strides
    sums[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) sums[threadIdx.x] += sums[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

// result: (1) = partial[0] + partial[1] + ... in block order. One thread: 256
// additions cost nothing, and a single fixed order is the point.
__global__ void reduce_final_kernel(double* result, const double* partial, int count) {
    double total = 0;
    for (int b = 0; b < count; ++b) total += partial[b];
    *result = total;
}

template <class Term>
double reduce_to_host(const float* x, int64_t n, double* workspace, Term term) {
    ITTT_CHECK(n >= 0 && workspace != nullptr, "reduce_to_host: bad arguments");
    if (n == 0) return 0.0;
    double* partial = workspace;                  // (kReduceBlocks)
    double* result = workspace + kReduceBlocks;   // (1)
    ITTT_LAUNCH((reduce_blocks_kernel<Term>), kReduceBlocks, kThreads, 0, 0)(partial, x, n, term);
    CUDA_CHECK(cudaGetLastError());
    ITTT_LAUNCH(reduce_final_kernel, 1, 1, 0, 0)(result, partial, static_cast<int>(kReduceBlocks));
    CUDA_CHECK(cudaGetLastError());
    double host = 0;
    device::count_host_wait();
    CUDA_CHECK(cudaMemcpy(&host, result, sizeof(double), cudaMemcpyDeviceToHost));  // waits for the kernels
    return host;
}

// *acc += the block partials in block order; as a flag, += 1 if their sum is nonzero.
__global__ void reduce_final_add_kernel(double* acc, const double* partial, int count, bool as_flag) {
    double total = 0;
    for (int b = 0; b < count; ++b) total += partial[b];
    *acc += as_flag ? (total != 0.0 ? 1.0 : 0.0) : total;
}

template <class Term>
void reduce_into(double* acc, const float* x, int64_t n, double* workspace, Term term, bool as_flag) {
    ITTT_CHECK(n >= 0 && workspace != nullptr && acc != nullptr, "reduce_into: bad arguments");
    if (n == 0) return;
    ITTT_LAUNCH((reduce_blocks_kernel<Term>), kReduceBlocks, kThreads, 0, 0)(workspace, x, n, term);
    CUDA_CHECK(cudaGetLastError());
    ITTT_LAUNCH(reduce_final_add_kernel, 1, 1, 0, 0)(acc, workspace, static_cast<int>(kReduceBlocks), as_flag);
    CUDA_CHECK(cudaGetLastError());
}

// One thread, in order: n is a batch's row count, and the order is what makes the bits.
__global__ void add_sum_kernel(double* acc, const double* x, int64_t n) {
    double total = *acc;
    for (int64_t i = 0; i < n; ++i) total += x[i];
    *acc = total;
}

// ---- sum over the leading dimension ----

// out: (m), in: (k, m). Each column is summed in row order 0..k-1, the order of
// the CPU's sequence of add_inplace calls, so the bits match it.
__global__ void sum_dim0_kernel(float* out, const float* in, int64_t k, int64_t m, bool accumulate) {
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < m; j += int64_t(gridDim.x) * blockDim.x) {
        float acc = accumulate ? out[j] : 0.0f;
        for (int64_t i = 0; i < k; ++i) acc += in[i * m + j];  // adjacent threads read adjacent columns
        out[j] = acc;
    }
}
}  // namespace

void fill_cuda(float* x, int64_t n, float value) {
    ITTT_CHECK(n >= 0, "fill_cuda: n = ", n);
    if (n == 0) return;
    ITTT_LAUNCH(fill_kernel, grid_for(n), kThreads, 0, 0)(x, n, value);
    CUDA_CHECK(cudaGetLastError());
}

void add_inplace_cuda(float* y, const float* x, int64_t n, float alpha) {
    ITTT_CHECK(n >= 0, "add_inplace_cuda: n = ", n);
    if (n == 0) return;
    ITTT_LAUNCH(add_inplace_kernel, grid_for(n), kThreads, 0, 0)(y, x, n, alpha);
    CUDA_CHECK(cudaGetLastError());
}

void scale_inplace_cuda(float* x, int64_t n, float s) {
    ITTT_CHECK(n >= 0, "scale_inplace_cuda: n = ", n);
    if (n == 0) return;
    ITTT_LAUNCH(scale_inplace_kernel, grid_for(n), kThreads, 0, 0)(x, n, s);
    CUDA_CHECK(cudaGetLastError());
}

double sum_squares_cuda(const float* x, int64_t n, double* workspace) { return reduce_to_host(x, n, workspace, Square{}); }

bool all_finite_cuda(const float* x, int64_t n, double* workspace) { return reduce_to_host(x, n, workspace, NotFinite{}) == 0.0; }

void sum_squares_into_cuda(double* acc, const float* x, int64_t n, double* workspace) { reduce_into(acc, x, n, workspace, Square{}, false); }

void flag_nonfinite_into_cuda(double* acc, const float* x, int64_t n, double* workspace) { reduce_into(acc, x, n, workspace, NotFinite{}, true); }

void add_sum_into_cuda(double* acc, const double* x, int64_t n) {
    ITTT_CHECK(n >= 0 && acc != nullptr, "add_sum_into_cuda: n = ", n);
    if (n == 0) return;
    ITTT_LAUNCH(add_sum_kernel, 1, 1, 0, 0)(acc, x, n);
    CUDA_CHECK(cudaGetLastError());
}

void sum_dim0_cuda(float* out, const float* in, int64_t k, int64_t m, bool accumulate) {
    ITTT_CHECK(k >= 0 && m >= 0, "sum_dim0_cuda: k = ", k, ", m = ", m);
    if (m == 0) return;
    ITTT_LAUNCH(sum_dim0_kernel, grid_for(m), kThreads, 0, 0)(out, in, k, m, accumulate);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
