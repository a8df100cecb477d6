// attention_block_cpu.cpp: the block pieces of ring attention (see attention_block.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cpu_common.h"
#include "kernels/attention_block/attention_block.h"

namespace ittt::kernels {

using attention_detail::axpy;
using attention_detail::dot;

namespace {

struct Range {
    int64_t first, last;  // inclusive; empty when last < first
};

// Keys c of the block that the query at absolute position p sees.
Range keys_seen(const AttentionBlockDims& d, int64_t p) {
    int64_t first = d.window > 0 ? p - d.window + 1 - d.k_pos0 : 0;
    return {std::max<int64_t>(0, first), std::min(d.nk - 1, p - d.k_pos0)};
}

// Queries i that see the key at absolute position s: the mirror image.
Range queries_seeing(const AttentionBlockDims& d, int64_t s) {
    int64_t last = d.window > 0 ? s + d.window - 1 - d.q_pos0 : d.nq - 1;
    return {std::max<int64_t>(0, s - d.q_pos0), std::min(d.nq - 1, last)};
}

}  // namespace

template <class T>
void attention_block_forward_cpu(const AttentionBlockDims& d, T* out, T* lse, const T* q, const T* k, const T* v) {
    const int64_t group = d.Hq / d.Hkv;
    const T scale = T(1) / std::sqrt(T(d.hd));
#pragma omp parallel for collapse(3) schedule(dynamic, 16)
    for (int64_t b = 0; b < d.B; ++b)
        for (int64_t h = 0; h < d.Hq; ++h)
            for (int64_t i = 0; i < d.nq; ++i) {
                const int64_t g = h / group;
                const T* qi = q + ((b * d.nq + i) * d.Hq + h) * d.hd;
                T* oi = out + ((b * d.nq + i) * d.Hq + h) * d.hd;
                T& lse_i = lse[(b * d.Hq + h) * d.nq + i];
                std::fill(oi, oi + d.hd, T(0));
                const Range keys = keys_seen(d, d.q_pos0 + i);
                if (keys.last < keys.first) {
                    lse_i = -std::numeric_limits<T>::infinity();
                    continue;
                }
                // scores, then a stable softmax over them: this row's whole block at once
                std::vector<T> s(static_cast<size_t>(keys.last - keys.first + 1));
                T m = -std::numeric_limits<T>::infinity();
                for (int64_t c = keys.first; c <= keys.last; ++c) {
                    T x = scale * dot(qi, k + ((b * d.nk + c) * d.Hkv + g) * d.hd, d.hd);
                    s[static_cast<size_t>(c - keys.first)] = x;
                    m = std::max(m, x);
                }
                T l = 0;
                for (int64_t c = keys.first; c <= keys.last; ++c) {
                    T p = std::exp(s[static_cast<size_t>(c - keys.first)] - m);
                    l += p;
                    axpy(oi, p, v + ((b * d.nk + c) * d.Hkv + g) * d.hd, d.hd);
                }
                for (int64_t e = 0; e < d.hd; ++e) oi[e] /= l;
                lse_i = m + std::log(l);
            }
}

template <class T>
void attention_block_merge_cpu(int64_t B, int64_t nq, int64_t Hq, int64_t hd, T* out, T* lse, const T* out_b, const T* lse_b) {
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for collapse(3)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t i = 0; i < nq; ++i) {
                T& l = lse[(b * Hq + h) * nq + i];
                const T lb = lse_b[(b * Hq + h) * nq + i];
                if (lb == neg_inf) continue;  // the block added nothing to this row
                T* o = out + ((b * nq + i) * Hq + h) * hd;
                const T* ob = out_b + ((b * nq + i) * Hq + h) * hd;
                if (l == neg_inf) {  // nothing so far: take the block as it is
                    std::copy(ob, ob + hd, o);
                    l = lb;
                    continue;
                }
                // the larger of the two in the exponent keeps both weights <= 1
                const T m = std::max(l, lb);
                const T merged = m + std::log(std::exp(l - m) + std::exp(lb - m));
                const T wa = std::exp(l - merged), wb = std::exp(lb - merged);
                for (int64_t e = 0; e < hd; ++e) o[e] = wa * o[e] + wb * ob[e];
                l = merged;
            }
}

template <class T>
void attention_block_backward_cpu(const AttentionBlockDims& d, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const T* out, const T* lse) {
    const int64_t group = d.Hq / d.Hkv;
    const T scale = T(1) / std::sqrt(T(d.hd));
    auto q_row = [&](int64_t b, int64_t i, int64_t h) { return ((b * d.nq + i) * d.Hq + h) * d.hd; };
    auto kv_row = [&](int64_t b, int64_t c, int64_t g) { return ((b * d.nk + c) * d.Hkv + g) * d.hd; };

    // D_i = <dO_i, O_i> with the final O: the softmax-backward row term (docs/attention.md)
    std::vector<T> D(static_cast<size_t>(d.B * d.Hq * d.nq));
#pragma omp parallel for collapse(3)
    for (int64_t b = 0; b < d.B; ++b)
        for (int64_t h = 0; h < d.Hq; ++h)
            for (int64_t i = 0; i < d.nq; ++i) D[(b * d.Hq + h) * d.nq + i] = dot(dout + q_row(b, i, h), out + q_row(b, i, h), d.hd);

    // dk, dv: one task per key row, summing over the group's query heads and the queries that see it
#pragma omp parallel for collapse(3) schedule(dynamic, 16)
    for (int64_t b = 0; b < d.B; ++b)
        for (int64_t g = 0; g < d.Hkv; ++g)
            for (int64_t c = 0; c < d.nk; ++c) {
                T* dkc = dk + kv_row(b, c, g);
                T* dvc = dv + kv_row(b, c, g);
                std::fill(dkc, dkc + d.hd, T(0));
                std::fill(dvc, dvc + d.hd, T(0));
                const T *kc = k + kv_row(b, c, g), *vc = v + kv_row(b, c, g);
                const Range queries = queries_seeing(d, d.k_pos0 + c);
                for (int64_t h = g * group; h < (g + 1) * group; ++h)
                    for (int64_t i = queries.first; i <= queries.last; ++i) {
                        const T *qi = q + q_row(b, i, h), *doi = dout + q_row(b, i, h);
                        const int64_t row = (b * d.Hq + h) * d.nq + i;
                        const T p = std::exp(scale * dot(qi, kc, d.hd) - lse[row]);
                        const T ds = p * (dot(doi, vc, d.hd) - D[row]);
                        axpy(dvc, p, doi, d.hd);
                        axpy(dkc, scale * ds, qi, d.hd);
                    }
            }

    // dq: one task per query row, over the block's keys it sees
#pragma omp parallel for collapse(3) schedule(dynamic, 16)
    for (int64_t b = 0; b < d.B; ++b)
        for (int64_t h = 0; h < d.Hq; ++h)
            for (int64_t i = 0; i < d.nq; ++i) {
                const int64_t g = h / group, row = (b * d.Hq + h) * d.nq + i;
                const T *qi = q + q_row(b, i, h), *doi = dout + q_row(b, i, h);
                T* dqi = dq + q_row(b, i, h);
                const Range keys = keys_seen(d, d.q_pos0 + i);
                for (int64_t c = keys.first; c <= keys.last; ++c) {
                    const T *kc = k + kv_row(b, c, g), *vc = v + kv_row(b, c, g);
                    const T p = std::exp(scale * dot(qi, kc, d.hd) - lse[row]);
                    const T ds = p * (dot(doi, vc, d.hd) - D[row]);
                    axpy(dqi, scale * ds, kc, d.hd);
                }
            }
}

template void attention_block_forward_cpu<float>(const AttentionBlockDims&, float*, float*, const float*, const float*, const float*);
template void attention_block_forward_cpu<double>(const AttentionBlockDims&, double*, double*, const double*, const double*,
                                                  const double*);
template void attention_block_merge_cpu<float>(int64_t, int64_t, int64_t, int64_t, float*, float*, const float*, const float*);
template void attention_block_merge_cpu<double>(int64_t, int64_t, int64_t, int64_t, double*, double*, const double*, const double*);
template void attention_block_backward_cpu<float>(const AttentionBlockDims&, float*, float*, float*, const float*, const float*,
                                                  const float*, const float*, const float*, const float*);
template void attention_block_backward_cpu<double>(const AttentionBlockDims&, double*, double*, double*, const double*,
                                                   const double*, const double*, const double*, const double*, const double*);

}  // namespace ittt::kernels
