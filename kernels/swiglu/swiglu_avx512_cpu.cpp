// swiglu_avx512_cpu.cpp: version 2, the reference SwiGLU (swiglu_cpu.cpp) on 512-bit registers.
//
// The same formulas, in the same order, on 16 floats at a time (8 doubles) with exp16
// (kernels/elementwise/zmm_avx512.h) where version 1's loop is vectorised by the compiler for
// AVX2: twice the lanes per instruction, vscalefps for 2^k, and a masked tail instead of a
// scalar one. Each element is read completely before it is written, so the aliasing of
// swiglu.h still holds. How the file is AVX-512 while the program is AVX2, and why its
// vectorisers are off: gemm_blocked_avx512_cpu.cpp's header comment; the op table runs it only
// where cpu_runs_avx512(). swiglu_avx512_known_answers() is this file's GCC 12 pin.
#include <algorithm>
#include <cstring>

#include "kernels/swiglu/swiglu.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::first_lanes;
using avx512::Zmm;

// Elements per OpenMP task: whole registers, large enough to amortise the fork.
constexpr int64_t kBlock = 4096;

// sigmoid(g) as version 1 computes it: e = exp(-|g|) <= 1 on both sides, then 1 / (1 + e) for
// g >= 0 and e / (1 + e) below, so exp never overflows and tiny values stay tiny.
template <class T>
typename Zmm<T>::V sigmoid(typename Zmm<T>::V g) {
    using Z = Zmm<T>;
    const typename Z::V zero = Z::zero(), one = Z::broadcast(T(1));
    const typename Z::V e = Z::exp(Z::sub(zero, Z::abs(g)));
    const typename Z::V r = Z::div(one, Z::add(one, e));
    return Z::select(Z::ge(g, zero), r, Z::mul(e, r));
}

}  // namespace

template <class T>
void swiglu_avx512_forward_cpu(T* z, const T* g, const T* u, int64_t n) {
    using Z = Zmm<T>;
    constexpr int64_t L = Z::lanes;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t blk = 0; blk < blocks; ++blk)
        for (int64_t i = blk * kBlock; i < std::min(n, blk * kBlock + kBlock); i += L) {
            const typename Z::Mask m = first_lanes<T>(n - i);
            const typename Z::V gi = Z::load(m, g + i), ui = Z::load(m, u + i);
            Z::store(z + i, m, Z::mul(Z::mul(gi, sigmoid<T>(gi)), ui));  // g * sigmoid(g) * u
        }
}

template <class T>
void swiglu_avx512_backward_cpu(T* dg, T* du, const T* dz, const T* g, const T* u, int64_t n) {
    using Z = Zmm<T>;
    constexpr int64_t L = Z::lanes;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const typename Z::V one = Z::broadcast(T(1));
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t blk = 0; blk < blocks; ++blk)
        for (int64_t i = blk * kBlock; i < std::min(n, blk * kBlock + kBlock); i += L) {
            const typename Z::Mask m = first_lanes<T>(n - i);
            const typename Z::V gi = Z::load(m, g + i), ui = Z::load(m, u + i), dzi = Z::load(m, dz + i);
            const typename Z::V s = sigmoid<T>(gi);
            // dg = dz * u * s * (1 + g * (1 - s)); du = dz * g * s
            Z::store(dg + i, m, Z::mul(Z::mul(Z::mul(dzi, ui), s), Z::add(one, Z::mul(gi, Z::sub(one, s)))));
            Z::store(du + i, m, Z::mul(Z::mul(dzi, gi), s));
        }
}

template void swiglu_avx512_forward_cpu<float>(float*, const float*, const float*, int64_t);
template void swiglu_avx512_forward_cpu<double>(double*, const double*, const double*, int64_t);
template void swiglu_avx512_backward_cpu<float>(float*, float*, const float*, const float*, const float*, int64_t);
template void swiglu_avx512_backward_cpu<double>(double*, double*, const double*, const double*, const double*, int64_t);

// exp16 over an array, for tests/test_vector_exp.cpp (its accuracy and special values).
void exp_avx512_cpu(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = first_lanes<float>(n - i);
        _mm512_mask_storeu_ps(y + i, m, avx512::exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

// This file's GCC 12 pin (gemm_avx512_known_answers says why; tests/test_cpu_isa.cpp checks it).
void swiglu_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
