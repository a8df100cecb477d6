// conv1d.h: depthwise 1-D convolution that never crosses a chunk edge.
//
//   out[b,t,c] = sum_k weight[c,k] * x[b, t + offsets[k], c]
//
// where a term is zero when t + offsets[k] falls outside t's chunk
// [floor(t/C)*C, min(floor(t/C)*C + C, n)). Chunks start at token 0 of each
// sequence and the last one may be short. This is the conv that builds the TTT
// value target (docs/ttt.md): keeping it inside the chunk is what keeps the
// layer causal even with look-ahead taps.
//
// One version per device; their rows (idea, kernels, test tolerance): conv1d_versions.h.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// out: (B, n, d) overwritten; x: (B, n, d); weight: (d, K); offsets: (K).
template <class T>
void conv1d_chunked_forward_cpu(T* out, const T* x, const T* weight, const int* offsets, int64_t batch, int64_t n, int64_t d,
                                int64_t taps, int64_t chunk);

// dx: (B, n, d) overwritten; dweight: (d, K) accumulated; dout, x: (B, n, d);
// weight: (d, K); offsets: (K).
template <class T>
void conv1d_chunked_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const int* offsets, int64_t batch,
                                 int64_t n, int64_t d, int64_t taps, int64_t chunk);

// ---- CUDA (conv1d.cu), F32; every pointer is device memory except offsets ----

// The taps travel to the kernel by value (in its parameter space), so no device
// copy of offsets is needed; this bounds K.
constexpr int64_t kConv1dMaxTaps = 16;

// out: (B, n, d) overwritten; x: (B, n, d); weight: (d, K); offsets: (K) HOST array, K <= kConv1dMaxTaps.
void conv1d_chunked_forward_cuda(float* out, const float* x, const float* weight, const int* offsets, int64_t batch, int64_t n,
                                 int64_t d, int64_t taps, int64_t chunk);

// dx: (B, n, d) overwritten; dweight: (d, K) accumulated; dout, x: (B, n, d); weight: (d, K);
// offsets: (K) HOST array. dweight is the same bits on every run (no atomics).
void conv1d_chunked_backward_cuda(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                                  const int* offsets, int64_t batch, int64_t n, int64_t d, int64_t taps, int64_t chunk);

}  // namespace ittt::kernels
