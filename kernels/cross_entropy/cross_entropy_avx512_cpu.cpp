// cross_entropy_avx512_cpu.cpp: version 2, the three passes of version 1 on 512-bit registers.
//
// Version 1 computes every exponential in double with libm, one call per element and two per
// logit (the sum, then the gradient): at the bench model's 2048 x 260 logits that was 3% of a
// training step. This version makes the same three passes per row with the same formulas, every
// intermediate still a double (F32 logits widened as they are loaded), 8 lanes at a time and
// with exp8d (kernels/elementwise/zmm_avx512.h), a double-precision exp in registers: the loss
// agrees with version 1 to double rounding and dlogits to one rounding to T. The rows' losses
// are added in row order, so the total is the same bits for any thread count. How the file is
// AVX-512 while the program is AVX2:
// gemm_blocked_avx512_cpu.cpp's header comment; the op table runs it only where
// cpu_runs_avx512(). cross_entropy_avx512_known_answers() is this file's GCC 12 pin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cross_entropy/cross_entropy.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::exp8d;
using avx512::first_lanes;
using Z = avx512::Zmm<double>;  // every intermediate is a double, 8 lanes

// 8 elements of T as doubles (lanes outside m: 0), and back (T rounded once).
__m512d load8(__mmask8 m, const float* p) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p)); }
__m512d load8(__mmask8 m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
void store8(float* p, __mmask8 m, __m512d v) { _mm256_mask_storeu_ps(p, m, _mm512_cvtpd_ps(v)); }
void store8(double* p, __mmask8 m, __m512d v) { _mm512_mask_storeu_pd(p, m, v); }

// One row: returns its loss; writes its gradient when dx is not null.
template <class T>
double row_cross_entropy(T* dx, const T* x, int64_t V, int32_t target, double grad_scale) {
    const __m512d neg_inf = Z::broadcast(-std::numeric_limits<double>::infinity());
    __m512d m = neg_inf;
    for (int64_t j = 0; j < V; j += 8) {
        const __mmask8 k = first_lanes<double>(V - j);
        m = Z::max(m, Z::select(k, load8(k, x + j), neg_inf));
    }
    // The max shift makes the largest term exp(0) = 1: a logit of 1e4 overflows exp even in double.
    const double max_logit = Z::max(m);
    const __m512d shift = Z::broadcast(max_logit);
    __m512d sum = Z::zero();
    for (int64_t j = 0; j < V; j += 8) {
        const __mmask8 k = first_lanes<double>(V - j);
        sum = Z::add(sum, Z::select(k, exp8d(Z::sub(load8(k, x + j), shift))));
    }
    const double log_sum_exp_shifted = std::log(Z::sum(sum));  // the sum is in [1, V]: finite
    // (max - x[t]) + log(sum) rather than logsumexp - x[t]: no cancellation of two large numbers.
    const double loss = (max_logit - static_cast<double>(x[target])) + log_sum_exp_shifted;
    if (!dx) return loss;
    const __m512d scale = Z::broadcast(grad_scale), lse = Z::broadcast(log_sum_exp_shifted);
    for (int64_t j = 0; j < V; j += 8) {  // grad_scale * p, p = exp((x - max) - log(sum)): x - max is exact near the max
        const __mmask8 k = first_lanes<double>(V - j);
        __m512d p = exp8d(Z::sub(Z::sub(load8(k, x + j), shift), lse));
        if (target >= j && target < j + 8) {  // the target's p - 1, before the one rounding to T
            alignas(64) double lanes[8];
            _mm512_store_pd(lanes, p);
            lanes[target - j] -= 1.0;
            p = _mm512_load_pd(lanes);
        }
        store8(dx + j, k, Z::mul(scale, p));
    }
    return loss;
}

}  // namespace

template <class T>
double cross_entropy_avx512_cpu(T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V, double grad_scale,
                                int32_t ignore_index) {
    // One slot per row, added up in row order at the end (the same bits for any thread count).
    std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
#pragma omp parallel for schedule(static) if (N * V > (1 << 15))
    for (int64_t i = 0; i < N; ++i) {
        T* dx = dlogits ? dlogits + i * V : nullptr;
        if (targets[i] == ignore_index) {
            if (dx) std::fill(dx, dx + V, T(0));
            continue;
        }
        row_loss[static_cast<size_t>(i)] = row_cross_entropy(dx, logits + i * V, V, targets[i], grad_scale);
    }
    double loss_sum = 0;
    for (double l : row_loss) loss_sum += l;
    return loss_sum;
}

template double cross_entropy_avx512_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t, double, int32_t);
template double cross_entropy_avx512_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t, double, int32_t);

// This file's GCC 12 pin (gemm_avx512_known_answers says why; tests/test_cpu_isa.cpp checks it).
void cross_entropy_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
