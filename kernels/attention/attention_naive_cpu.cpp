// attention_naive_cpu.cpp: the reference. Scores are computed for every
// filled key and then masked, exactly as S = Q K^T; S[masked] = -inf; P = softmax(S)
// reads on paper, so its cost is n^2 whatever the window. Simple enough to trust by reading.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cpu_common.h"

namespace ittt::kernels {

using attention_detail::axpy;
using attention_detail::dot;

template <class T>
void attention_naive_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v, GemmCpuFn<T>* /*gemm*/) {
    const int64_t B = dims.B, nq = dims.nq, cap = dims.cap, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv;
    const int64_t n_keys = dims.q_pos0 + nq;  // keys that are filled; the rest of the cache is never read
    const T scale = T(1) / std::sqrt(T(hd));
    const T neg_inf = -std::numeric_limits<T>::infinity();

#pragma omp parallel for collapse(3) schedule(dynamic, 8)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t i = 0; i < nq; ++i) {
                const int64_t g = h / group, p = dims.q_pos0 + i;
                const T* qi = q + ((b * nq + i) * Hq + h) * hd;
                // score row over every filled key, then the causal + window mask
                std::vector<T> score(static_cast<size_t>(n_keys));
                for (int64_t s = 0; s < n_keys; ++s) score[s] = scale * dot(qi, k + ((b * cap + s) * Hkv + g) * hd, hd);
                for (int64_t s = 0; s < n_keys; ++s)
                    if (!attention_key_visible(s, p, dims.window)) score[s] = neg_inf;
                // softmax with the row max subtracted, so exp never overflows
                T row_max = neg_inf;
                for (int64_t s = 0; s < n_keys; ++s) row_max = std::max(row_max, score[s]);
                T sum = 0;
                for (int64_t s = 0; s < n_keys; ++s) {
                    score[s] = std::exp(score[s] - row_max);  // masked keys: exp(-inf) = 0
                    sum += score[s];
                }
                // out = P @ V
                T* oi = out + ((b * nq + i) * Hq + h) * hd;
                for (int64_t c = 0; c < hd; ++c) oi[c] = 0;
                for (int64_t s = 0; s < n_keys; ++s) axpy(oi, score[s] / sum, v + ((b * cap + s) * Hkv + g) * hd, hd);
                lse[(b * Hq + h) * nq + i] = row_max + std::log(sum);
            }
}

template <class T>
void attention_naive_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const T* /*out*/, const T* /*lse*/, GemmCpuFn<T>* /*gemm*/) {
    const int64_t B = dims.B, n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv;
    const T scale = T(1) / std::sqrt(T(hd));
    const T neg_inf = -std::numeric_limits<T>::infinity();
    auto q_row = [&](int64_t b, int64_t i, int64_t h) { return ((b * n + i) * Hq + h) * hd; };
    auto kv_row = [&](int64_t b, int64_t s, int64_t g) { return ((b * n + s) * Hkv + g) * hd; };

    // One task per (batch, KV head): it owns dk and dv of that head, which all the
    // query heads of its group add into, so no two threads write the same row.
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t g = 0; g < Hkv; ++g) {
            std::vector<T> P(static_cast<size_t>(n * n)), dP(static_cast<size_t>(n * n));
            for (int64_t s = 0; s < n; ++s)
                for (int64_t c = 0; c < hd; ++c) dk[kv_row(b, s, g) + c] = dv[kv_row(b, s, g) + c] = 0;

            for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                // P = softmax(mask(scale * Q K^T)), the whole n x n matrix
                for (int64_t i = 0; i < n; ++i) {
                    T* Pi = &P[i * n];
                    T row_max = neg_inf;
                    for (int64_t s = 0; s < n; ++s) Pi[s] = scale * dot(q + q_row(b, i, h), k + kv_row(b, s, g), hd);
                    for (int64_t s = 0; s < n; ++s) {
                        if (!attention_key_visible(s, i, dims.window)) Pi[s] = neg_inf;
                        row_max = std::max(row_max, Pi[s]);
                    }
                    T sum = 0;
                    for (int64_t s = 0; s < n; ++s) sum += (Pi[s] = std::exp(Pi[s] - row_max));
                    for (int64_t s = 0; s < n; ++s) Pi[s] /= sum;
                }
                // dP = dO V^T
                for (int64_t i = 0; i < n; ++i)
                    for (int64_t s = 0; s < n; ++s) dP[i * n + s] = dot(dout + q_row(b, i, h), v + kv_row(b, s, g), hd);
                // softmax backward, the Jacobian form: dS_is = P_is (dP_is - sum_t P_it dP_it).
                // (The flash version uses the equal rowsum(dO_i * O_i) instead; see docs/attention.md.)
                for (int64_t i = 0; i < n; ++i) {
                    T rowdot = 0;
                    for (int64_t s = 0; s < n; ++s) rowdot += P[i * n + s] * dP[i * n + s];
                    for (int64_t s = 0; s < n; ++s) dP[i * n + s] = P[i * n + s] * (dP[i * n + s] - rowdot);  // dP now holds dS
                }
                // dQ = scale dS K;  dK += scale dS^T Q;  dV += P^T dO  (summed over the group's heads)
                for (int64_t i = 0; i < n; ++i) {
                    T* dqi = dq + q_row(b, i, h);
                    for (int64_t c = 0; c < hd; ++c) dqi[c] = 0;
                    for (int64_t s = 0; s < n; ++s) {
                        const T ds = dP[i * n + s];
                        axpy(dqi, scale * ds, k + kv_row(b, s, g), hd);
                        axpy(dk + kv_row(b, s, g), scale * ds, q + q_row(b, i, h), hd);
                        axpy(dv + kv_row(b, s, g), P[i * n + s], dout + q_row(b, i, h), hd);
                    }
                }
            }
        }
}

template void attention_naive_forward_cpu<float>(const AttentionDims&, float*, float*, const float*, const float*, const float*,
                                                 GemmCpuFn<float>*);
template void attention_naive_forward_cpu<double>(const AttentionDims&, double*, double*, const double*, const double*,
                                                  const double*, GemmCpuFn<double>*);
template void attention_naive_backward_cpu<float>(const AttentionDims&, float*, float*, float*, const float*, const float*,
                                                  const float*, const float*, const float*, const float*, GemmCpuFn<float>*);
template void attention_naive_backward_cpu<double>(const AttentionDims&, double*, double*, double*, const double*, const double*,
                                                   const double*, const double*, const double*, const double*, GemmCpuFn<double>*);

}  // namespace ittt::kernels
