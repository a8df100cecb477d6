// rope_cpu.cpp: the reference rotary embedding.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/rope/rope.h"

namespace ittt::kernels {

namespace {

// direction +1 rotates by +angle (forward), -1 by -angle (backward). Each pair is
// read completely before it is written, which is what lets out alias x.
// The angles depend only on the position, and a batch repeats positions (every sequence
// starts at 0), so cos and sin are computed once per distinct position of [min, max] when
// that range is no longer than the token count; otherwise (one decode token far into a
// sequence) per token. Either way the same double expressions: the same bits.
template <class T>
void rope_rotate_cpu(T* out, const T* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                     double theta, double direction) {
    const int64_t half = head_dim / 2;
    if (n_tokens == 0) return;
    std::vector<double> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
        inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    auto fill_angles = [&](int32_t p, double* cos_a, double* sin_a) {
        for (int64_t i = 0; i < half; ++i) {
            const double angle = static_cast<double>(p) * inv_freq[i];
            cos_a[i] = std::cos(angle);
            sin_a[i] = direction * std::sin(angle);
        }
    };
    const int32_t p_min = *std::min_element(positions, positions + n_tokens), p_max = *std::max_element(positions, positions + n_tokens);
    const int64_t span = static_cast<int64_t>(p_max) - p_min + 1;
    const bool table = span <= n_tokens;
    std::vector<double> cos_t, sin_t;  // (span, half) when tabulated
    if (table) {
        cos_t.resize(static_cast<size_t>(span * half));
        sin_t.resize(static_cast<size_t>(span * half));
#pragma omp parallel for if (span * half > (1 << 12))
        for (int64_t p = 0; p < span; ++p) fill_angles(static_cast<int32_t>(p_min + p), &cos_t[p * half], &sin_t[p * half]);
    }
#pragma omp parallel if (n_tokens * n_heads * head_dim > (1 << 16))
    {
        std::vector<double> cos_own(static_cast<size_t>(half)), sin_own(static_cast<size_t>(half));
#pragma omp for
        for (int64_t t = 0; t < n_tokens; ++t) {
            const double *cos_a = cos_own.data(), *sin_a = sin_own.data();
            if (table) {
                cos_a = &cos_t[(positions[t] - p_min) * half];
                sin_a = &sin_t[(positions[t] - p_min) * half];
            } else {
                fill_angles(positions[t], cos_own.data(), sin_own.data());
            }
            for (int64_t h = 0; h < n_heads; ++h) {
                const T* xh = x + (t * n_heads + h) * head_dim;
                T* oh = out + (t * n_heads + h) * head_dim;
#pragma omp simd
                for (int64_t i = 0; i < half; ++i) {
                    const double a = xh[i], b = xh[i + half];
                    oh[i] = static_cast<T>(a * cos_a[i] - b * sin_a[i]);
                    oh[i + half] = static_cast<T>(b * cos_a[i] + a * sin_a[i]);
                }
            }
        }
    }
}

}  // namespace

template <class T>
void rope_forward_cpu(T* out, const T* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                      double theta) {
    rope_rotate_cpu(out, x, positions, n_tokens, n_heads, head_dim, theta, 1.0);
}

template <class T>
void rope_backward_cpu(T* dx, const T* dout, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                       double theta) {
    rope_rotate_cpu(dx, dout, positions, n_tokens, n_heads, head_dim, theta, -1.0);
}

template void rope_forward_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_forward_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_backward_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_backward_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t, int64_t, double);

}  // namespace ittt::kernels
