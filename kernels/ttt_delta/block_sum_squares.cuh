// block_sum_squares.cuh: the sum of x^2 over one thread block, for the CUDA kernels that
// apply the TTT update rule (ttt_delta.cu's clipping, ttt_loop.cu's update).
#pragma once
#include <cstdint>

namespace ittt::kernels {

// sum over j < size of x[j]^2, in double, over a fixed split (thread t takes j = t, t +
// blockDim.x, ...) and a fixed tree, so the bits never depend on timing: the CPU's norm
// to rounding, the same every run. sums: __shared__ double[blockDim.x], blockDim.x a power
// of two. Every thread of the block calls it and every thread gets the total.
__device__ inline double block_sum_squares(const float* x, int64_t size, double* sums) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) acc += static_cast<double>(x[j]) * static_cast<double>(x[j]);
    sums[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) sums[threadIdx.x] += sums[threadIdx.x + stride];
        __syncthreads();
    }
    return sums[0];
}

}  // namespace ittt::kernels
