// adamw.h: one AdamW step (Adam with decoupled weight decay), CPU and CUDA.
//
//   m = beta1 m + (1 - beta1) g            v = beta2 v + (1 - beta2) g^2
//   param -= lr * ( (m / bias_correction1) / (sqrt(v / bias_correction2) + eps) + weight_decay * param )
//
// with bias_correction_k = 1 - beta_k^step, step counting from 1: m and v start
// at 0, so without it the first steps would be shrunk by (1 - beta_k).
// The decay acts on param directly instead of being added to g, so the
// adaptive denominator does not rescale it: that is the "decoupled" in AdamW.
//
// Versions and their rows (idea, kernels, test tolerance): adamw_versions.h.
// Gradient clipping (ops::clip_grad_norm) needs no kernel of its own: it is
// ops::sum_squares per tensor, then ops::scale_inplace (kernels/elementwise/).
#pragma once
#include <cstdint>

namespace ittt::kernels {

// param, grad, m, v: (n) each; m and v are updated in place. The caller works
// out the bias corrections in double, once per step.
template <class T>
void adamw_step_cpu(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
                    T bias_correction1, T bias_correction2);

// Version 2: the same on 512-bit registers (adamw_avx512_cpu.cpp), where cpu_runs_avx512().
template <class T>
void adamw_avx512_step_cpu(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
                           T bias_correction1, T bias_correction2);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void adamw_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (adamw.cu), F32, device pointers ----
// param, grad, m, v: (n) each, as above.
void adamw_step_cuda(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, float bias_correction1, float bias_correction2);

}  // namespace ittt::kernels
