// rope.h: rotary position embedding, Hugging Face "rotate half" layout, on the CPU and GPU.
//
// For i < hd/2 the pair (x[i], x[i + hd/2]) of every head is rotated by
// angle = position * theta^(-2i/hd):
//   out[i]        = x[i] * cos(angle) - x[i + hd/2] * sin(angle)
//   out[i + hd/2] = x[i + hd/2] * cos(angle) + x[i] * sin(angle)
// A rotation's transpose is its inverse, so the backward is the same rotation by
// -angle. Positions are absolute (not 0..n-1), so a decode step rotates its one
// token exactly as the prefill would have.
//
// Angles and their cos/sin are computed in double: at position 1e5 an angle in
// float is off by ~0.004 rad, which is the whole error budget of an F32 op.
//
// Versions and their rows (idea, kernels, test tolerance): rope_versions.h.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// out: (n_tokens, n_heads, head_dim), may be the same buffer as x; x: (n_tokens, n_heads, head_dim);
// positions: (n_tokens); head_dim even
template <class T>
void rope_forward_cpu(T* out, const T* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                      double theta);

// dx: (n_tokens, n_heads, head_dim), may be the same buffer as dout; dout: (n_tokens, n_heads, head_dim);
// positions: (n_tokens); head_dim even
template <class T>
void rope_backward_cpu(T* dx, const T* dout, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                       double theta);

// Version 2: the same rotation 8 pairs at a time in double lanes, its cos/sin table kept between
// calls over the same positions (rope_avx512_cpu.cpp), where cpu_runs_avx512().
template <class T>
void rope_avx512_forward_cpu(T* out, const T* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                             double theta);
template <class T>
void rope_avx512_backward_cpu(T* dx, const T* dout, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                              double theta);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void rope_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (rope.cu), F32; every pointer is device memory ----

// out: (n_tokens, n_heads, head_dim), may be the same buffer as x; x: (n_tokens, n_heads, head_dim);
// positions: (n_tokens), each >= 0; head_dim even
void rope_forward_cuda(float* out, const float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                       double theta);

// dx: (n_tokens, n_heads, head_dim), may be the same buffer as dout; dout: (n_tokens, n_heads, head_dim);
// positions: (n_tokens), each >= 0; head_dim even
void rope_backward_cuda(float* dx, const float* dout, const int32_t* positions, int64_t n_tokens, int64_t n_heads,
                        int64_t head_dim, double theta);

}  // namespace ittt::kernels
