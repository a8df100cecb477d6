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
// Versions (ops::set_version("conv1d", v)):
//   1  conv1d_chunked_*_cpu   direct loops, rows in parallel; the reference
//   0  the best CPU version (currently 1)
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

}  // namespace ittt::kernels
