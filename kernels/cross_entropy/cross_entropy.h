// cross_entropy.h: fused softmax + negative log-likelihood over rows of logits (CPU and CUDA).
//
// For one row x (V) with target t:
//   loss     = logsumexp(x) - x[t]          = -log softmax(x)[t]
//   dloss/dx = softmax(x) - onehot(t)
// One kernel computes both, so no (N, V) softmax buffer is ever stored: the
// gradient is written straight into dlogits, scaled by grad_scale.
//
// Two versions on each device (their rows: cross_entropy_versions.h, `build/ittt info --kernels`).
#pragma once
#include <cstdint>

namespace ittt::kernels {

// logits: (N, V); targets: (N), each in [0, V) or equal to ignore_index (the
// caller has checked this); dlogits: (N, V), or nullptr for the loss only.
// Writes dlogits = grad_scale * (softmax - onehot) on scored rows and 0 on
// ignored rows. Returns the loss summed over scored rows.
template <class T>
double cross_entropy_cpu(T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V, double grad_scale,
                         int32_t ignore_index);

// Version 2: the same three passes, in double, 8 lanes at a time with a vector exp
// (cross_entropy_avx512_cpu.cpp), where cpu_runs_avx512().
template <class T>
double cross_entropy_avx512_cpu(T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V, double grad_scale,
                                int32_t ignore_index);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void cross_entropy_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (cross_entropy.cu), F32, device pointers ----
// row_loss: (N) doubles, each row's -log softmax[target] (0 for ignored rows):
// the caller adds them up in row order, so the total is the same bits every run.
// dlogits: (N, V) or nullptr; logits: (N, V); targets: (N), valid as above.
using CrossEntropyCuda = void(float* dlogits, double* row_loss, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                              float grad_scale, int32_t ignore_index);
// One block per row, three passes: max, sum of exp, gradient.
CrossEntropyCuda cross_entropy_three_pass_cuda;
// One block per row, online softmax: max and sum of exp in one pass, then the gradient.
CrossEntropyCuda cross_entropy_online_cuda;

}  // namespace ittt::kernels
