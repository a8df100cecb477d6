// rope.cu: rotary position embedding (rotate-half layout) on the GPU, F32.
//
// One CUDA version (its row: rope_versions.h):
//   1  rope_rotate_kernel: one thread per (token, pair i); it computes cos and sin of
//      its angle once, in double, and rotates pair i of every head of its token
//
// Run: ops::rope_forward / rope_backward on CUDA tensors;
// tests: build/ittt_tests "[cuda][rope]";
// profile: ncu --kernel-name regex:rope --set full build/ittt_tests "[cuda][rope]"
//
// Why double. The angle is position * theta^(-2i/hd). In float, the angle itself
// is rounded to 24 bits: at position 1e5 that is an error of up to ~0.004 rad, the
// whole error budget of an F32 op, and sincosf cannot undo it. In double the
// angle, its cos and sin are exact to ~1e-16 and the only float rounding is the
// final store, as on the CPU (rope_cpu.cpp). CUDA's pow and sincos are within 2 ulp
// in double and nvcc fuses a*c - b*s into an FMA, so the result can differ from
// the CPU's in the last float bit at most. The cost: one double pow and sincos per
// (token, pair), shared by all heads; rope moves few bytes, so even on GPUs with
// slow double units this stays small next to the matmuls around it. (A cheaper
// float alternative: reduce the angle modulo 2 pi in double, then sincosf.)
#include <algorithm>

#include "kernels/rope/rope.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

constexpr int kThreads = 256;

// out, x: (n_tokens, n_heads, head_dim); positions: (n_tokens).
// direction +1 rotates by +angle (forward), -1 by -angle (backward: the transpose).
// Each thread reads both entries of its pair before writing either, so out may alias x.
__global__ void rope_rotate_kernel(float* out, const float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads,
                                   int64_t head_dim, double theta, double direction) {
    const int64_t half = head_dim / 2;
    const int64_t n_pairs = n_tokens * half;
    for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n_pairs; idx += int64_t(gridDim.x) * blockDim.x) {
        // consecutive threads take consecutive pairs of one token: their loads are adjacent floats
        const int64_t t = idx / half, i = idx % half;
        const double inv_freq = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
        const double angle = static_cast<double>(positions[t]) * inv_freq;
        double sin_a, cos_a;
        sincos(angle, &sin_a, &cos_a);
        sin_a *= direction;
        for (int64_t h = 0; h < n_heads; ++h) {
            const int64_t base = (t * n_heads + h) * head_dim;
            const double a = x[base + i], b = x[base + i + half];
            out[base + i] = static_cast<float>(a * cos_a - b * sin_a);
            out[base + i + half] = static_cast<float>(b * cos_a + a * sin_a);
        }
    }
}

void rope_rotate_cuda(float* out, const float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                      double theta, double direction) {
    ITTT_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope_cuda: head_dim must be even and > 0, found ", head_dim);
    ITTT_CHECK(theta > 0, "rope_cuda: theta must be > 0, found ", theta);
    const int64_t n_pairs = n_tokens * (head_dim / 2);
    if (n_pairs == 0 || n_heads == 0) return;  // a zero-sized grid is a launch error
    const int blocks = static_cast<int>(std::min<int64_t>((n_pairs + kThreads - 1) / kThreads, 1 << 16));
    ITTT_LAUNCH(rope_rotate_kernel, blocks, kThreads, 0, 0)(out, x, positions, n_tokens, n_heads, head_dim, theta, direction);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void rope_forward_cuda(float* out, const float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                       double theta) {
    rope_rotate_cuda(out, x, positions, n_tokens, n_heads, head_dim, theta, 1.0);
}

void rope_backward_cuda(float* dx, const float* dout, const int32_t* positions, int64_t n_tokens, int64_t n_heads,
                        int64_t head_dim, double theta) {
    rope_rotate_cuda(dx, dout, positions, n_tokens, n_heads, head_dim, theta, -1.0);
}

}  // namespace ittt::kernels
