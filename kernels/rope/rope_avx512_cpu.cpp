// rope_avx512_cpu.cpp: version 2, the rotary embedding of version 1 (rope_cpu.cpp) on 512-bit
// registers, with its cos/sin table kept between calls.
//
// Version 1 builds the table cos(p * f_i), sin(p * f_i) of the call's positions (in double, with
// libm) on every call: a training step rotates q and k of every layer forward and backward, 16
// calls over the same positions, and at the bench shapes the table is most of each call. Here:
//   - the last table is kept, with what it was built for (theta, head_dim, first position and
//     count), and reused while a call asks for the same; it holds the same doubles version 1
//     computes (the same expressions), so the rotation sees the same angles;
//   - each head's rotation runs 8 pairs at a time in double lanes (floats widened as they load,
//     rounded once as they store), a masked tail for head_dim / 2 not a multiple of 8.
// A call that would need a table longer than its token count (one decode token far into a
// sequence) computes its own angles per token, as version 1 does. Each pair is read completely
// before it is written, so out may alias x. The kept table is shared by every thread under a
// mutex and never changed once built (a new key builds a new one). How the file is AVX-512 while
// the program is AVX2: gemm_blocked_avx512_cpu.cpp's header comment; the op table runs it only
// where cpu_runs_avx512(). rope_avx512_known_answers() is this file's GCC 12 pin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/rope/rope.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::first_lanes;
using Z = avx512::Zmm<double>;

// cos and sin of (p_min + p) * inv_freq[i] for p < span, i < half: (span, half) each.
struct AngleTable {
    double theta = 0;
    int64_t head_dim = 0, p_min = 0, span = 0;
    std::vector<double> cos_t, sin_t;
};

std::vector<double> inverse_frequencies(double theta, int64_t head_dim) {
    std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2));
    for (int64_t i = 0; i < head_dim / 2; ++i)
        inv_freq[static_cast<size_t>(i)] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    return inv_freq;
}

// version 1's angles: the same double expressions, so the same values
void fill_angles(const std::vector<double>& inv_freq, int32_t p, double* cos_a, double* sin_a) {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
        const double angle = static_cast<double>(p) * inv_freq[i];
        cos_a[i] = std::cos(angle);
        sin_a[i] = std::sin(angle);
    }
}

// The table for (theta, head_dim, p_min, span): the kept one when it matches, else a new one,
// which is kept instead.
std::shared_ptr<const AngleTable> angle_table(double theta, int64_t head_dim, int64_t p_min, int64_t span) {
    static std::mutex mutex;
    static std::shared_ptr<const AngleTable> kept;
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (kept && kept->theta == theta && kept->head_dim == head_dim && kept->p_min == p_min && kept->span == span) return kept;
    }
    auto table = std::make_shared<AngleTable>();
    table->theta = theta, table->head_dim = head_dim, table->p_min = p_min, table->span = span;
    const int64_t half = head_dim / 2;
    table->cos_t.resize(static_cast<size_t>(span * half));
    table->sin_t.resize(static_cast<size_t>(span * half));
    const std::vector<double> inv_freq = inverse_frequencies(theta, head_dim);
#pragma omp parallel for if (span * half > (1 << 12))
    for (int64_t p = 0; p < span; ++p)
        fill_angles(inv_freq, static_cast<int32_t>(p_min + p), &table->cos_t[static_cast<size_t>(p * half)],
                    &table->sin_t[static_cast<size_t>(p * half)]);
    std::lock_guard<std::mutex> lock(mutex);
    kept = table;
    return table;
}

// 8 elements of T as doubles (lanes outside m: 0), and back (T rounded once).
__m512d load8(__mmask8 m, const float* p) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p)); }
__m512d load8(__mmask8 m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
void store8(float* p, __mmask8 m, __m512d v) { _mm256_mask_storeu_ps(p, m, _mm512_cvtpd_ps(v)); }
void store8(double* p, __mmask8 m, __m512d v) { _mm512_mask_storeu_pd(p, m, v); }

// Every head of one token rotated by the angles (cos_a, direction * sin_a), in double.
template <class T>
void rotate_token(T* out, const T* x, int64_t n_heads, int64_t head_dim, const double* cos_a, const double* sin_a, double direction) {
    const int64_t half = head_dim / 2;
    const __m512d dir = Z::broadcast(direction);
    for (int64_t i = 0; i < half; i += 8) {
        const __mmask8 m = first_lanes<double>(half - i);
        const __m512d c = load8(m, cos_a + i), s = Z::mul(dir, load8(m, sin_a + i));
        for (int64_t h = 0; h < n_heads; ++h) {
            const T* xh = x + h * head_dim;
            T* oh = out + h * head_dim;
            const __m512d a = load8(m, xh + i), b = load8(m, xh + i + half);
            store8(oh + i, m, Z::sub(Z::mul(a, c), Z::mul(b, s)));         // a cos - b sin
            store8(oh + i + half, m, Z::add(Z::mul(b, c), Z::mul(a, s)));  // b cos + a sin
        }
    }
}

template <class T>
void rope_rotate(T* out, const T* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim, double theta,
                 double direction) {
    if (n_tokens == 0) return;
    const int64_t half = head_dim / 2, row = n_heads * head_dim;
    const int32_t p_min = *std::min_element(positions, positions + n_tokens), p_max = *std::max_element(positions, positions + n_tokens);
    const int64_t span = static_cast<int64_t>(p_max) - p_min + 1;
    if (span <= n_tokens) {
        const std::shared_ptr<const AngleTable> table = angle_table(theta, head_dim, p_min, span);
#pragma omp parallel for if (n_tokens * row > (1 << 16))
        for (int64_t t = 0; t < n_tokens; ++t) {
            const size_t at = static_cast<size_t>((positions[t] - p_min) * half);
            rotate_token(out + t * row, x + t * row, n_heads, head_dim, &table->cos_t[at], &table->sin_t[at], direction);
        }
        return;
    }
    const std::vector<double> inv_freq = inverse_frequencies(theta, head_dim);
#pragma omp parallel if (n_tokens * row > (1 << 16))
    {
        std::vector<double> cos_own(static_cast<size_t>(half)), sin_own(static_cast<size_t>(half));
#pragma omp for
        for (int64_t t = 0; t < n_tokens; ++t) {
            fill_angles(inv_freq, positions[t], cos_own.data(), sin_own.data());
            rotate_token(out + t * row, x + t * row, n_heads, head_dim, cos_own.data(), sin_own.data(), direction);
        }
    }
}

}  // namespace

template <class T>
void rope_avx512_forward_cpu(T* out, const T* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                             double theta) {
    rope_rotate(out, x, positions, n_tokens, n_heads, head_dim, theta, 1.0);
}

template <class T>
void rope_avx512_backward_cpu(T* dx, const T* dout, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                              double theta) {
    rope_rotate(dx, dout, positions, n_tokens, n_heads, head_dim, theta, -1.0);
}

template void rope_avx512_forward_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_avx512_forward_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_avx512_backward_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_avx512_backward_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t, int64_t, double);

// This file's GCC 12 pin (gemm_avx512_known_answers says why; tests/test_cpu_isa.cpp checks it).
void rope_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
