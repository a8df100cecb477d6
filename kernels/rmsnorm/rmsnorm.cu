// rmsnorm.cu: Qwen3's RMSNorm over the last dimension on the GPU, F32.
//
// One CUDA version (its row: rmsnorm_versions.h):
//   1  rmsnorm_forward_kernel       one warp per row: sum of squares by warp shuffles
//      rmsnorm_dweight_partial_kernel + rmsnorm_dweight_finish_kernel
//                                   dweight in two fixed-order passes, no atomics
//      rmsnorm_input_grad_kernel    one warp per row, like the forward
//
// Run: ops::rmsnorm_forward / rmsnorm_backward on CUDA tensors;
// tests: build/ittt_tests "[cuda][rmsnorm]";
// profile: ncu --kernel-name regex:rmsnorm --set full build/ittt_tests "[cuda][rmsnorm]"
//
// Sums run in double, as on the CPU (rmsnorm_cpu.cpp): a float sum of thousands of
// squares loses several digits of rstd. The op reads each element once or twice
// and does a few flops on it, so it is bound by memory bandwidth and the double
// arithmetic is hidden behind the loads (even on GPUs with slow double units,
// one double FMA per 4 bytes loaded stays under their double throughput).
//
// A warp per row: rows are hidden-size (hundreds to a few thousand) or head-size
// (64-128) long, so 32 lanes striding over a row read it in coalesced 128-byte
// pieces and reduce with five shuffles, no shared memory and no __syncthreads.
#include <cstdint>

#include "kernels/rmsnorm/rmsnorm.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kThreads = 32 * kWarpsPerBlock;

// Sum over the 32 lanes of a warp; every lane gets the total. The butterfly
// combines the lanes in a fixed pattern, so the result is the same bits every run.
__device__ double warp_sum(double x) {
    for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

// out: (rows, dim); rstd: (rows); x: (rows, dim); weight: (dim)
__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* weight, int64_t rows, int64_t dim,
                                       double eps) {
    const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;  // the whole warp leaves together, so the shuffles below stay full-warp
    const float* xr = x + row * dim;
    double sum_squares = 0;
    for (int64_t j = lane; j < dim; j += 32) sum_squares += static_cast<double>(xr[j]) * xr[j];
    sum_squares = warp_sum(sum_squares);
    const double s = 1.0 / sqrt(sum_squares / static_cast<double>(dim) + eps);
    if (lane == 0) rstd[row] = static_cast<float>(s);
    for (int64_t j = lane; j < dim; j += 32) out[row * dim + j] = static_cast<float>(xr[j] * s * weight[j]);
}

// dx: (rows, dim); dout, x: (rows, dim); weight: (dim); rstd: (rows).
// dx = rstd * (weight*dout - x * rstd^2 * mean(x * weight * dout)); see rmsnorm.h.
// Each lane reads dout[j] before writing dx[j] of the same j, so dx may alias dout.
__global__ void rmsnorm_input_grad_kernel(float* dx, const float* dout, const float* x, const float* weight, const float* rstd,
                                          int64_t rows, int64_t dim) {
    const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* xr = x + row * dim;
    const float* dr = dout + row * dim;
    const double s = rstd[row];
    double dot = 0;  // sum_j x_j * weight_j * dout_j
    for (int64_t j = lane; j < dim; j += 32) dot += static_cast<double>(xr[j]) * weight[j] * dr[j];
    dot = warp_sum(dot);
    const double c = s * s * dot / static_cast<double>(dim);
    for (int64_t j = lane; j < dim; j += 32)
        dx[row * dim + j] = static_cast<float>(s * (static_cast<double>(weight[j]) * dr[j] - xr[j] * c));
}

// dweight sums dout * x * rstd over all rows. Blocks own (32 columns, a group of
// kRowsPerGroup rows) and write one double partial per column; a second kernel
// adds the groups in order. The split depends only on the shape, never on the
// GPU or on timing, so dweight is the same bits on every run and every device
// (float atomics would add in arrival order, which changes from run to run).
constexpr int kColumnsPerBlock = 32;  // threadIdx.x: adjacent columns, coalesced loads
constexpr int kRowLanes = 8;          // threadIdx.y: rows r, r + 8, r + 16, ... of the group
constexpr int64_t kRowsPerGroup = 256;

// partial: (n_groups, dim) overwritten; dout, x: (rows, dim); rstd: (rows)
__global__ void rmsnorm_dweight_partial_kernel(double* partial, const float* dout, const float* x, const float* rstd,
                                               int64_t rows, int64_t dim) {
    __shared__ double sums[kRowLanes][kColumnsPerBlock];
    const int64_t j = blockIdx.x * int64_t(kColumnsPerBlock) + threadIdx.x;
    const int64_t group = blockIdx.y;
    const int64_t r_end = (group + 1) * kRowsPerGroup < rows ? (group + 1) * kRowsPerGroup : rows;
    double sum = 0;
    if (j < dim)
        for (int64_t r = group * kRowsPerGroup + threadIdx.y; r < r_end; r += kRowLanes)
            sum += static_cast<double>(dout[r * dim + j]) * x[r * dim + j] * static_cast<double>(rstd[r]);
    sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && j < dim) {
        double total = 0;
        for (int y = 0; y < kRowLanes; ++y) total += sums[y][threadIdx.x];  // fixed order
        partial[group * dim + j] = total;
    }
}

// dweight: (dim) accumulated; partial: (n_groups, dim). One thread per column adds the groups in order.
__global__ void rmsnorm_dweight_finish_kernel(float* dweight, const double* partial, int64_t n_groups, int64_t dim) {
    const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (j >= dim) return;
    double total = 0;
    for (int64_t g = 0; g < n_groups; ++g) total += partial[g * dim + j];
    dweight[j] = static_cast<float>(dweight[j] + total);
}

// Blocks of kWarpsPerBlock rows, checked against the grid's x limit (2^31 - 1).
int row_blocks(int64_t rows, const char* op) {
    const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
    ITTT_CHECK(blocks <= INT32_MAX, op, ": ", rows, " rows exceed the grid");
    return static_cast<int>(blocks);
}

}  // namespace

void rmsnorm_forward_cuda(float* out, float* rstd, const float* x, const float* weight, int64_t rows, int64_t dim, double eps) {
    ITTT_CHECK(dim > 0, "rmsnorm_forward_cuda: dim must be > 0, found ", dim);
    if (rows == 0) return;  // a zero-sized grid is a launch error
    ITTT_LAUNCH(rmsnorm_forward_kernel, row_blocks(rows, "rmsnorm_forward_cuda"), kThreads, 0, 0)(out, rstd, x, weight, rows, dim, eps);
    CUDA_CHECK(cudaGetLastError());
}

void rmsnorm_backward_cuda(float* dx, float* dweight, const float* dout, const float* x, const float* weight, const float* rstd,
                           int64_t rows, int64_t dim) {
    ITTT_CHECK(dim > 0, "rmsnorm_backward_cuda: dim must be > 0, found ", dim);
    if (rows == 0) return;
    const int blocks = row_blocks(rows, "rmsnorm_backward_cuda");
    const int64_t n_groups = (rows + kRowsPerGroup - 1) / kRowsPerGroup;
    ITTT_CHECK(n_groups <= 65535, "rmsnorm_backward_cuda: ", rows, " rows need ", n_groups,
               " row groups, more than grid.y allows (65535)");

    // dweight first: it reads dout, which the dx kernel may overwrite (dx may alias dout).
    // The partials live only for this call; the stream-ordered allocator reuses its
    // pool instead of a cudaMalloc/cudaFree pair that would synchronise the device.
    double* partial = nullptr;
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), static_cast<size_t>(n_groups * dim) * sizeof(double), 0));
    const dim3 partial_grid(static_cast<unsigned>((dim + kColumnsPerBlock - 1) / kColumnsPerBlock),
                            static_cast<unsigned>(n_groups));
    ITTT_LAUNCH(rmsnorm_dweight_partial_kernel, partial_grid, dim3(kColumnsPerBlock, kRowLanes), 0, 0)(partial, dout, x, rstd, rows, dim);
    CUDA_CHECK(cudaGetLastError());
    ITTT_LAUNCH(rmsnorm_dweight_finish_kernel, static_cast<unsigned>((dim + 255) / 256), 256, 0, 0)(dweight, partial, n_groups, dim);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaFreeAsync(partial, 0));

    ITTT_LAUNCH(rmsnorm_input_grad_kernel, blocks, kThreads, 0, 0)(dx, dout, x, weight, rstd, rows, dim);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
