// adamw_avx512_cpu.cpp: version 2, the AdamW step of version 1 (adamw_cpu.cpp) on 512-bit registers.
//
// Version 1's loop stays scalar in this build: std::sqrt may set errno, so GCC keeps a scalar
// sqrt and a call for negative inputs. Here the same formulas, in the parameter's type and the
// same order of operations, run on 16 floats (8 doubles) at a time with vsqrtps (IEEE, correctly
// rounded, as the scalar one) and a masked tail; the step is then about as fast as memory
// delivers the four arrays. How the file is AVX-512 while the program is AVX2:
// gemm_blocked_avx512_cpu.cpp's header comment; the op table runs it only where
// cpu_runs_avx512(). adamw_avx512_known_answers() is this file's GCC 12 pin.
#include <algorithm>
#include <cstring>

#include "kernels/adamw/adamw.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::first_lanes;
using avx512::Zmm;

__m512 vsqrt(__m512 x) { return _mm512_sqrt_ps(x); }
__m512d vsqrt(__m512d x) { return _mm512_sqrt_pd(x); }

constexpr int64_t kBlock = 4096;  // elements per OpenMP task: whole registers

}  // namespace

template <class T>
void adamw_avx512_step_cpu(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
                           T bias_correction1, T bias_correction2) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int64_t L = Z::lanes;
    const V b1 = Z::broadcast(beta1), b2 = Z::broadcast(beta2), one_b1 = Z::broadcast(T(1) - beta1), one_b2 = Z::broadcast(T(1) - beta2);
    const V bc1 = Z::broadcast(bias_correction1), bc2 = Z::broadcast(bias_correction2), ve = Z::broadcast(eps);
    const V vlr = Z::broadcast(lr), wd = Z::broadcast(weight_decay);
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t blk = 0; blk < blocks; ++blk)
        for (int64_t i = blk * kBlock; i < std::min(n, blk * kBlock + kBlock); i += L) {
            const typename Z::Mask k = first_lanes<T>(n - i);
            const V g = Z::load(k, grad + i), p = Z::load(k, param + i);
            const V mi = Z::add(Z::mul(b1, Z::load(k, m + i)), Z::mul(one_b1, g));              // beta1 m + (1 - beta1) g
            const V vi = Z::add(Z::mul(b2, Z::load(k, v + i)), Z::mul(Z::mul(one_b2, g), g));   // beta2 v + (1 - beta2) g g
            Z::store(m + i, k, mi);
            Z::store(v + i, k, vi);
            const V step = Z::add(Z::div(Z::div(mi, bc1), Z::add(vsqrt(Z::div(vi, bc2)), ve)), Z::mul(wd, p));
            Z::store(param + i, k, Z::sub(p, Z::mul(vlr, step)));  // param -= lr (m_hat / (sqrt(v_hat) + eps) + decay param)
        }
}

template void adamw_avx512_step_cpu<float>(float*, const float*, float*, float*, int64_t, float, float, float, float, float, float, float);
template void adamw_avx512_step_cpu<double>(double*, const double*, double*, double*, int64_t, double, double, double, double, double,
                                            double, double);

// This file's GCC 12 pin (gemm_avx512_known_answers says why; tests/test_cpu_isa.cpp checks it).
void adamw_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
