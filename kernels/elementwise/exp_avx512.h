// exp_avx512.h: exp_vec (exp_cpu.h) on 16 floats at once with AVX-512 intrinsics, for the
// AVX-512 kernel files (*_avx512_cpu.cpp) only.
//
// The same algorithm as exp_vec, step for step: clamp, k = round(x / ln 2) by the 1.5 * 2^23
// trick, r = x - k ln 2 in two parts (Cody-Waite), the degree-7 Taylor polynomial of exp(r) by
// Horner, then 2^k. Two differences, both within exp_vec's 1 ulp (tests/test_vector_exp.cpp
// checks this one over the same floats): every "a * b + c" is one fused multiply-add, and 2^k
// is applied by vscalefps (p * 2^k in one instruction, exact for every k the clamp allows).
// Special values as exp_vec: exp(-inf) = 0 exactly, x below ln(smallest normal) gives 0,
// x above ln(largest float) gives +inf, NaN stays NaN.
//
// Why a header of static functions with their own target attribute: each AVX-512 file gets its
// own private copy, compiled for AVX-512 whatever the includer's options, and no copy can reach
// the linker as a shared inline function (the rule in gemm_blocked_avx512_cpu.cpp). Call it
// only from code that runs where cpu_runs_avx512().
#pragma once
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

namespace ittt::kernels::avx512 {

__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), unused)) static inline __m512 exp16(__m512 x) {
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

}  // namespace ittt::kernels::avx512
