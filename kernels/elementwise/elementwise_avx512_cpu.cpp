// elementwise_avx512_cpu.cpp: version 2's two reductions on 512-bit registers.
//
// A training step checks every parameter and gradient for NaN and infinity (all_finite, the
// finite-or-refuse rule) and sums the gradients' squares for clipping (sum_squares). Version 1
// runs both one element at a time: all_finite stops at the first bad element, so the compiler
// keeps its loop scalar, and sum_squares adds in double in a fixed order, which it may not
// reorder either. Here:
//   all_finite   16 floats (8 doubles) per instruction, classified by vfpclass (NaN or +-inf),
//                and the early exit checked once per 256 elements;
//   sum_squares  the same 64 fixed blocks as version 1, each summed in 8 double lanes, then the
//                blocks added in block order: the same bits for any thread count (exact
//                --resume depends on this norm), within double rounding of version 1's.
// fill, scale and axpy are version 1's (plain loops the compiler vectorises; memory-bound).
// How the file is AVX-512 while the program is AVX2: gemm_blocked_avx512_cpu.cpp's header
// comment; the op table runs it only where cpu_runs_avx512(). elementwise_avx512_known_answers()
// is this file's GCC 12 pin.
#include <cstring>

#include "kernels/elementwise/elementwise.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::first_lanes;

// The lanes of 16 floats (8 doubles) that are NaN or infinite; lanes outside m count as finite.
constexpr int kNotFinite = 0x01 | 0x08 | 0x10 | 0x80;  // vfpclass: quiet NaN, +inf, -inf, signalling NaN
__mmask16 not_finite(__mmask16 m, const float* p) { return _mm512_mask_fpclass_ps_mask(m, _mm512_maskz_loadu_ps(m, p), kNotFinite); }
__mmask8 not_finite(__mmask8 m, const double* p) { return _mm512_mask_fpclass_pd_mask(m, _mm512_maskz_loadu_pd(m, p), kNotFinite); }

// x^2 summed into 8 double lanes.
__m512d add_squares(__m512d sum, __mmask8 m, const float* p) {
    const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p));
    return _mm512_fmadd_pd(x, x, sum);
}
__m512d add_squares(__m512d sum, __mmask8 m, const double* p) {
    const __m512d x = _mm512_maskz_loadu_pd(m, p);
    return _mm512_fmadd_pd(x, x, sum);
}

}  // namespace

template <class T>
double sum_squares_avx512_cpu(const T* x, int64_t n) {
    constexpr int64_t kBlocks = 64;  // version 1's blocks
    double partial[kBlocks];
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t b = 0; b < kBlocks; ++b) {
        const int64_t begin = b * n / kBlocks, end = (b + 1) * n / kBlocks;
        __m512d s = _mm512_setzero_pd();
        for (int64_t i = begin; i < end; i += 8) s = add_squares(s, first_lanes<double>(end - i), x + i);
        partial[b] = _mm512_reduce_add_pd(s);
    }
    double total = 0;
    for (int64_t b = 0; b < kBlocks; ++b) total += partial[b];
    return total;
}

template <class T>
bool all_finite_avx512_cpu(const T* x, int64_t n) {
    constexpr int64_t L = avx512::Zmm<T>::lanes, kStep = 256;
    for (int64_t i0 = 0; i0 < n; i0 += kStep) {
        const int64_t end = i0 + kStep < n ? i0 + kStep : n;
        unsigned bad = 0;
        for (int64_t i = i0; i < end; i += L) bad |= not_finite(first_lanes<T>(end - i), x + i);
        if (bad) return false;
    }
    return true;
}

template double sum_squares_avx512_cpu<float>(const float*, int64_t);
template double sum_squares_avx512_cpu<double>(const double*, int64_t);
template bool all_finite_avx512_cpu<float>(const float*, int64_t);
template bool all_finite_avx512_cpu<double>(const double*, int64_t);

// This file's GCC 12 pin (gemm_avx512_known_answers says why; tests/test_cpu_isa.cpp checks it).
void elementwise_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
