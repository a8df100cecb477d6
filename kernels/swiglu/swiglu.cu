// swiglu.cu: the SwiGLU gate z = silu(g) * u on the GPU, F32.
//
// One CUDA version (its row: swiglu_versions.h):
//   1  swiglu_forward_kernel, swiglu_backward_kernel: one thread per element in a
//      grid-stride loop; the formulas and the stable sigmoid are the CPU's (swiglu_cpu.cpp)
//
// Run: ops::swiglu_forward / swiglu_backward on CUDA tensors;
// tests: build/ittt_tests "[cuda][swiglu]";
// profile: ncu --kernel-name regex:swiglu --set full build/ittt_tests "[cuda][swiglu]"
//
// A handful of flops per 12 (forward) or 20 (backward) bytes moved: the op is
// bound by memory bandwidth, so the only thing that matters is that neighbouring
// threads touch neighbouring elements (coalesced loads and stores).
#include <algorithm>

#include "kernels/swiglu/swiglu.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

constexpr int kThreads = 256;

// Enough blocks to fill any current GPU several times over; the grid-stride loop
// covers the rest, so a huge n does not overflow the grid's x dimension.
int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 16)); }

// The CPU's form: 1/(1+exp(-g)) for g >= 0 and exp(g)/(1+exp(g)) below, so that
// exp never overflows and tiny sigmoids of very negative g are kept, not flushed.
// expf (not the fast __expf) keeps the result within 2 ulp of the CPU's std::exp.
__device__ float sigmoid(float g) {
    if (g >= 0.0f) return 1.0f / (1.0f + expf(-g));
    const float e = expf(g);
    return e / (1.0f + e);
}

// z, g, u: (n). Reading g[i] and u[i] before writing z[i] lets z alias g or u.
__global__ void swiglu_forward_kernel(float* z, const float* g, const float* u, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float gi = g[i], ui = u[i];
        z[i] = gi * sigmoid(gi) * ui;
    }
}

// dg, du, dz, g, u: (n). dg = dz * u * silu'(g), silu'(g) = s (1 + g (1 - s)); du = dz * silu(g).
__global__ void swiglu_backward_kernel(float* dg, float* du, const float* dz, const float* g, const float* u, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float gi = g[i], ui = u[i], dzi = dz[i];
        const float s = sigmoid(gi);
        dg[i] = dzi * ui * s * (1.0f + gi * (1.0f - s));
        du[i] = dzi * gi * s;
    }
}

}  // namespace

void swiglu_forward_cuda(float* z, const float* g, const float* u, int64_t n) {
    if (n == 0) return;  // a zero-sized grid is a launch error
    ITTT_LAUNCH(swiglu_forward_kernel, grid_for(n), kThreads, 0, 0)(z, g, u, n);
    CUDA_CHECK(cudaGetLastError());
}

void swiglu_backward_cuda(float* dg, float* du, const float* dz, const float* g, const float* u, int64_t n) {
    if (n == 0) return;
    ITTT_CHECK(dg != du, "swiglu_backward_cuda: dg and du must be different buffers");
    ITTT_LAUNCH(swiglu_backward_kernel, grid_for(n), kThreads, 0, 0)(dg, du, dz, g, u, n);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
