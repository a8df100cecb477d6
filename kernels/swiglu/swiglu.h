// swiglu.h: the SwiGLU gate of the MLP, elementwise, on the CPU and GPU.
//
//   forward:  z = silu(g) * u,  silu(g) = g * sigmoid(g)
//   backward: dg = dz * u * sigmoid(g) * (1 + g * (1 - sigmoid(g)))   (silu'(g))
//             du = dz * silu(g)
//
// Versions and their rows (idea, kernels, test tolerance): swiglu_versions.h.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// z, g, u: (n) (any shape, flattened); z may be the same buffer as g or u
template <class T>
void swiglu_forward_cpu(T* z, const T* g, const T* u, int64_t n);

// dg, du, dz, g, u: (n) (any shape, flattened); dg and du are overwritten, and
// either one (not both) may be the same buffer as dz
template <class T>
void swiglu_backward_cpu(T* dg, T* du, const T* dz, const T* g, const T* u, int64_t n);

// ---- version 2: the same on 512-bit registers (swiglu_avx512_cpu.cpp), where cpu_runs_avx512() ----
template <class T>
void swiglu_avx512_forward_cpu(T* z, const T* g, const T* u, int64_t n);
template <class T>
void swiglu_avx512_backward_cpu(T* dg, T* du, const T* dz, const T* g, const T* u, int64_t n);
// exp16 (kernels/elementwise/zmm_avx512.h) over an array, for its tests: y[i] = exp(x[i]).
void exp_avx512_cpu(float* y, const float* x, int64_t n);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void swiglu_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (swiglu.cu), F32; every pointer is device memory; the same aliasing rules ----

// z, g, u: (n)
void swiglu_forward_cuda(float* z, const float* g, const float* u, int64_t n);

// dg, du, dz, g, u: (n)
void swiglu_backward_cuda(float* dg, float* du, const float* dz, const float* g, const float* u, int64_t n);

}  // namespace ittt::kernels
