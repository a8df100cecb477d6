// zmm_avx512.h: the 512-bit register toolkit of the AVX-512 kernel files (*_avx512_cpu.cpp) only.
//
//   Zmm<float> / Zmm<double>   one register of 16 floats / 8 doubles and the operations the
//                              kernels use on it (loads and stores, masked ones for the tails,
//                              fused multiply-add, selects, reductions in a fixed order, exp,
//                              the 16 x 16 / 8 x 8 transpose of a block of registers)
//   first_lanes<T>(n)          the mask of lanes [0, n)
//   exp16(x)                   exp_vec (exp_cpu.h) on 16 floats
//   exp8d(x)                   exp on 8 doubles, to double precision (cross_entropy's sums)
//
// exp16 is exp_vec's algorithm step for step: clamp, k = round(x / ln 2) by the 1.5 * 2^23 trick,
// r = x - k ln 2 in two parts (Cody-Waite), the degree-7 Taylor polynomial of exp(r) by Horner,
// then 2^k. Two differences, both within exp_vec's 1 ulp (tests/test_vector_exp.cpp checks this
// one over the same floats): every "a * b + c" is one fused multiply-add, and 2^k is applied by
// vscalefps (p * 2^k in one instruction, exact for every k the clamp allows). Special values as
// exp_vec: exp(-inf) = 0 exactly, x below ln(smallest normal) gives 0, x above ln(largest float)
// gives +inf, NaN stays NaN. Double keeps std::exp, lane by lane: F64 runs are the tests'
// reference path, not a fast one.
//
// Why this header is safe to include in an AVX2 program: everything in it is in an anonymous
// namespace (each AVX-512 file gets its own private copy, which no other file can link to) and
// compiled for AVX-512 by the pragmas below whatever the includer's options, with GCC's
// vectorisers off (the GCC 12.2 constant-vector bug, gemm_blocked_avx512_cpu.cpp). Include it
// after every other header, and call it only from code that runs where cpu_runs_avx512().
#pragma once
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstdint>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels::avx512 {
namespace {

inline __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f), hi = _mm512_set1_ps(88.72283f);
    // max(lo, x) and min(hi, .) return their second operand when it is NaN: NaN passes through.
    const __m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
    const __m512 round_magic = _mm512_set1_ps(12582912.0f);
    const __m512 kf = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), round_magic), round_magic);
    __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693145751953125f), xc);  // xc - kf ln2_hi, exact
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(1.428606765330187e-06f), r);     // - kf ln2_lo
    __m512 p = _mm512_set1_ps(1.9841270e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3888889e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3333333e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1666667e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666667e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512 y = _mm512_scalef_ps(p, kf);  // p * 2^kf (kf is an integer in [-126, 128])
    // x < lo: 0 (also for -inf); x > hi: +inf. Ordered comparisons: false for NaN.
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    return _mm512_mask_mov_ps(_mm512_maskz_mov_ps(static_cast<__mmask16>(~under), y), over, _mm512_set1_ps(__builtin_inff()));
}

// exp on 8 doubles, to double precision: the same steps as exp16 with double constants
// (ln 2 split as fdlibm's exp does, 1.5 * 2^52 for the rounding) and the Taylor polynomial
// of degree 13 (the first term left out is < 2^-57 for |r| <= ln2 / 2). Special values:
// 0 below ln(smallest normal double), +inf above ln(largest double), NaN stays NaN.
inline __m512d exp8d(__m512d x) {
    const __m512d lo = _mm512_set1_pd(-708.3964185322641), hi = _mm512_set1_pd(709.782712893384);
    const __m512d xc = _mm512_min_pd(hi, _mm512_max_pd(lo, x));
    const __m512d round_magic = _mm512_set1_pd(6755399441055744.0);
    const __m512d kf = _mm512_sub_pd(_mm512_fmadd_pd(xc, _mm512_set1_pd(1.4426950408889634074), round_magic), round_magic);
    __m512d r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(6.93147180369123816490e-01), xc);  // exact: ln2_hi has 21 zero bits
    r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(1.90821492927058770002e-10), r);
    // 1/13!, 1/12!, ..., 1/2!, then 1, 1
    const double inverse_factorials[12] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                           1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                                           1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         0.5};
    __m512d p = _mm512_set1_pd(inverse_factorials[0]);
    for (int i = 1; i < 12; ++i) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inverse_factorials[i]));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    const __m512d y = _mm512_scalef_pd(p, kf);
    const __mmask8 under = _mm512_cmp_pd_mask(x, lo, _CMP_LT_OQ), over = _mm512_cmp_pd_mask(x, hi, _CMP_GT_OQ);
    return _mm512_mask_mov_pd(_mm512_maskz_mov_pd(static_cast<__mmask8>(~under), y), over, _mm512_set1_pd(__builtin_inf()));
}

template <class T>
struct Zmm;
template <>
struct Zmm<float> {
    using V = __m512;
    using Mask = __mmask16;
    static constexpr int64_t lanes = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V broadcast(float x) { return _mm512_set1_ps(x); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }  // 0 in the lanes outside m
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static void store(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }  // a * b + c, rounded once
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static V abs(V a) { return _mm512_abs_ps(a); }
    static Mask ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
    static V select(Mask m, V v) { return _mm512_maskz_mov_ps(m, v); }  // v where m, else 0
    static V select(Mask m, V v, V other) { return _mm512_mask_mov_ps(other, m, v); }
    static float sum(V v) { return _mm512_reduce_add_ps(v); }  // a fixed order of adds
    static float max(V v) { return _mm512_reduce_max_ps(v); }
    static V exp(V x) { return exp16(x); }
    // r[i][j] -> r[j][i] for a 16 x 16 block, in 64 shuffles. Stage by stage, with
    // "lane" a 128-bit quarter of a register:
    //   1. interleave the floats of row pairs: a[2p + h] lane l holds columns 4l + 2h, 4l + 2h + 1
    //      of rows 2p, 2p + 1;
    //   2. interleave their 64-bit pairs: b[4q + c] lane l holds column 4l + c of rows 4q .. 4q + 3;
    //   3. and 4. gather lane l of b[c], b[4 + c], b[8 + c], b[12 + c] into one register:
    //      row 4l + c of the transpose.
    static void transpose(V r[16]) {
        V a[16], b[16];
        for (int p = 0; p < 8; ++p) {
            a[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
            a[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
        }
        for (int q = 0; q < 4; ++q)
            for (int h = 0; h < 2; ++h) {
                const __m512d lo = _mm512_castps_pd(a[4 * q + h]), hi = _mm512_castps_pd(a[4 * q + 2 + h]);
                b[4 * q + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
                b[4 * q + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
            }
        for (int c = 0; c < 4; ++c) {
            // 0x88 takes lanes 0 and 2 of each source, 0xDD lanes 1 and 3.
            const V s0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), s1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
            const V s2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88), s3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
            r[c] = _mm512_shuffle_f32x4(s0, s2, 0x88);
            r[4 + c] = _mm512_shuffle_f32x4(s1, s3, 0x88);
            r[8 + c] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
            r[12 + c] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
        }
    }
};
template <>
struct Zmm<double> {
    using V = __m512d;
    using Mask = __mmask8;
    static constexpr int64_t lanes = 8;
    static V zero() { return _mm512_setzero_pd(); }
    static V broadcast(double x) { return _mm512_set1_pd(x); }
    static V load(const double* p) { return _mm512_loadu_pd(p); }
    static V load(Mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
    static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
    static void store(double* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
    static V div(V a, V b) { return _mm512_div_pd(a, b); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
    static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
    static V max(V a, V b) { return _mm512_max_pd(a, b); }
    static V abs(V a) { return _mm512_abs_pd(a); }
    static Mask ge(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
    static V select(Mask m, V v) { return _mm512_maskz_mov_pd(m, v); }
    static V select(Mask m, V v, V other) { return _mm512_mask_mov_pd(other, m, v); }
    static double sum(V v) { return _mm512_reduce_add_pd(v); }
    static double max(V v) { return _mm512_reduce_max_pd(v); }
    static V exp(V x) {
        alignas(64) double t[8];
        _mm512_store_pd(t, x);
        for (double& e : t) e = std::exp(e);
        return _mm512_load_pd(t);
    }
    // r[i][j] -> r[j][i] for an 8 x 8 block, in 24 shuffles: a[2p + c] lane l holds column
    // 2l + c of rows 2p, 2p + 1; then lane l of a[c], a[2 + c], a[4 + c], a[6 + c] together
    // are row 2l + c of the transpose.
    static void transpose(V r[8]) {
        V a[8];
        for (int p = 0; p < 4; ++p) {
            a[2 * p] = _mm512_unpacklo_pd(r[2 * p], r[2 * p + 1]);
            a[2 * p + 1] = _mm512_unpackhi_pd(r[2 * p], r[2 * p + 1]);
        }
        for (int c = 0; c < 2; ++c) {
            const V s0 = _mm512_shuffle_f64x2(a[c], a[2 + c], 0x88), s1 = _mm512_shuffle_f64x2(a[c], a[2 + c], 0xDD);
            const V s2 = _mm512_shuffle_f64x2(a[4 + c], a[6 + c], 0x88), s3 = _mm512_shuffle_f64x2(a[4 + c], a[6 + c], 0xDD);
            r[c] = _mm512_shuffle_f64x2(s0, s2, 0x88);
            r[2 + c] = _mm512_shuffle_f64x2(s1, s3, 0x88);
            r[4 + c] = _mm512_shuffle_f64x2(s0, s2, 0xDD);
            r[6 + c] = _mm512_shuffle_f64x2(s1, s3, 0xDD);
        }
    }
};

// Lanes [0, n) of a register (all for n >= lanes, none for n <= 0).
template <class T>
typename Zmm<T>::Mask first_lanes(int64_t n) {
    using Mask = typename Zmm<T>::Mask;
    if (n <= 0) return 0;
    if (n >= Zmm<T>::lanes) return static_cast<Mask>(~Mask(0));
    return static_cast<Mask>((1u << n) - 1);
}

}  // namespace
}  // namespace ittt::kernels::avx512

#pragma GCC pop_options
