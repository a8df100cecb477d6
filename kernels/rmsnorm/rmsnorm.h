// rmsnorm.h: Qwen3's RMSNorm over the last dimension, on the CPU and GPU.
//
//   forward:  rstd = 1 / sqrt(mean(x^2) + eps) per row;  out = x * rstd * weight
//             (weight is used as is: Qwen3 stores the scale itself, not 1 + scale)
//   backward: dx = rstd * (weight*dout - x * rstd^2 * mean(x * weight*dout))
//             dweight += sum over rows of dout * x * rstd
//
// With h = weight*dout the dx formula is the gradient of x * rstd(x) contracted
// with h: rstd * h from the direct term, minus x * rstd^3 * mean(x*h) because
// d rstd / d x_j = -rstd^3 * x_j / dim.
//
// Versions and their rows (idea, kernels, test tolerance): rmsnorm_versions.h.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// out: (rows, dim); rstd: (rows); x: (rows, dim); weight: (dim)
template <class T>
void rmsnorm_forward_cpu(T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, double eps);

// dx: (rows, dim), overwritten, may be the same buffer as dout; dweight: (dim), accumulated;
// dout, x: (rows, dim); weight: (dim); rstd: (rows) as saved by the forward
template <class T>
void rmsnorm_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t rows,
                          int64_t dim);

// ---- version 2: the same with the sums in 8 double lanes (rmsnorm_avx512_cpu.cpp), where cpu_runs_avx512() ----
template <class T>
void rmsnorm_avx512_forward_cpu(T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, double eps);
template <class T>
void rmsnorm_avx512_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t rows,
                                 int64_t dim);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void rmsnorm_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (rmsnorm.cu), F32; every pointer is device memory ----

// out: (rows, dim); rstd: (rows); x: (rows, dim); weight: (dim)
void rmsnorm_forward_cuda(float* out, float* rstd, const float* x, const float* weight, int64_t rows, int64_t dim, double eps);

// dx: (rows, dim), overwritten, may be the same buffer as dout; dweight: (dim), accumulated;
// dout, x: (rows, dim); weight: (dim); rstd: (rows) as saved by the forward
void rmsnorm_backward_cuda(float* dx, float* dweight, const float* dout, const float* x, const float* weight, const float* rstd,
                           int64_t rows, int64_t dim);

}  // namespace ittt::kernels
