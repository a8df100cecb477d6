// attention_flash_cpu.cpp: version 2, flash attention on the CPU.
//
// Forward: one task per (batch, query head, query tile). It walks the key tiles that
// its queries can see, keeping per row a running max m, a running sum l and an
// unnormalised output acc; a new tile with a larger max rescales l and acc by
// exp(m_old - m_new). Only a tile of scores exists at a time, and key tiles outside
// the window are never visited, so work and memory grow with n*w instead of n^2.
//
// Inside a tile, scores come from a transposed K tile (row_times_tile) and P V is
// accumulated key by key across rows: both keep the vector units busy without a
// horizontal sum or a store-to-load chain per key; see the two helpers' comments.
//
// Backward (flash-attention-2 style): probabilities are recomputed from the saved lse,
// P_is = exp(S_is - lse_i), and the softmax backward uses D_i = <dO_i, O_i>. It runs in
// two race-free passes: dk, dv parallel over (batch, KV head, key tile), each task
// summing over its group's query heads; then dq parallel over query tiles. Each pass
// recomputes P, which costs a second round of exps but needs no atomics or per-thread
// copies and gives the same bits for any thread count. docs/attention.md has the math.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cpu_common.h"

namespace ittt::kernels {

using attention_detail::axpy;
using attention_detail::dot;

namespace {

struct PositionRange {
    int64_t first, last;  // inclusive
};

// Keys that some query of positions [p_first, p_last] sees. The first query has the
// earliest window start and the last query the latest causal limit, so nothing outside
// this range is visible to the tile: looping only over it is the tile-skip rule.
PositionRange keys_seen_by(int64_t p_first, int64_t p_last, int64_t window) {
    return {window > 0 ? std::max<int64_t>(0, p_first - window + 1) : 0, p_last};
}

// Query positions in [0, n) that see some key of [s_first, s_last]: the mirror image.
PositionRange queries_that_see(int64_t s_first, int64_t s_last, int64_t window, int64_t n) {
    return {s_first, window > 0 ? std::min(n - 1, s_last + window - 1) : n - 1};
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// tile (hd, kAttentionKeyTile) = the `cols` rows of one KV head starting at `rows`
// (consecutive rows are row_stride apart), transposed so that keys are contiguous.
// Columns past cols keep what they held (zeros or an earlier tile's finite values):
// row_times_tile reads them and drops the results.
template <class T>
void transpose_tile(T* tile, const T* rows, int64_t row_stride, int64_t cols, int64_t hd) {
    for (int64_t c = 0; c < cols; ++c)
        for (int64_t e = 0; e < hd; ++e) tile[e * kAttentionKeyTile + c] = rows[c * row_stride + e];
}

// out[c] = alpha * <x, key c of the tile> for c < cols. Running over the keys of a
// transposed tile, the inner loop is a vector update across keys, where a dot product
// per key would end each time in a slow horizontal sum of the vector lanes. The loop
// always covers the full tile width so that the compiler can keep `sum` in vector
// registers instead of storing and reloading it for every e (2x faster at hd = 64).
template <class T>
void row_times_tile(T* out, const T* x, T alpha, const T* tile, int64_t cols, int64_t hd) {
    T sum[kAttentionKeyTile] = {};
    for (int64_t e = 0; e < hd; ++e) {
        const T xe = alpha * x[e];
        const T* te = tile + e * kAttentionKeyTile;
#pragma omp simd
        for (int64_t c = 0; c < kAttentionKeyTile; ++c) sum[c] += xe * te[c];
    }
    for (int64_t c = 0; c < cols; ++c) out[c] = sum[c];
}

}  // namespace

template <class T>
void attention_flash_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v) {
    const int64_t B = dims.B, nq = dims.nq, cap = dims.cap, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv, Bq = kAttentionQueryTile, Bk = kAttentionKeyTile;
    const int64_t n_query_tiles = ceil_div(nq, Bq);
    const T scale = T(1) / std::sqrt(T(hd));
    const T neg_inf = -std::numeric_limits<T>::infinity();

    // dynamic: with a causal mask later query tiles see more keys than early ones
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < B * Hq * n_query_tiles; ++task) {
        const int64_t b = task / (Hq * n_query_tiles), h = task / n_query_tiles % Hq, tile = task % n_query_tiles;
        const int64_t g = h / group;
        const int64_t i0 = tile * Bq, rows = std::min(Bq, nq - i0);
        const PositionRange keys = keys_seen_by(dims.q_pos0 + i0, dims.q_pos0 + i0 + rows - 1, dims.window);

        std::vector<T> acc(static_cast<size_t>(rows * hd), T(0)), m(static_cast<size_t>(rows), neg_inf),
            l(static_cast<size_t>(rows), T(0)), prob(static_cast<size_t>(Bq * Bk)), k_tile(static_cast<size_t>(hd * Bk));
        for (int64_t j0 = keys.first; j0 <= keys.last; j0 += Bk) {
            const int64_t cols = std::min(Bk, keys.last + 1 - j0);
            transpose_tile(k_tile.data(), k + ((b * cap + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
            // S = scale Q K^T on the tile, masked on its edges; then the online-softmax update
            // turns each row into unnormalised probabilities under the row's new running max
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t p = dims.q_pos0 + i0 + r;
                T* prob_r = &prob[r * Bk];
                row_times_tile(prob_r, q + ((b * nq + i0 + r) * Hq + h) * hd, scale, k_tile.data(), cols, hd);
                T tile_max = neg_inf;
                for (int64_t c = 0; c < cols; ++c) {
                    if (!attention_key_visible(j0 + c, p, dims.window)) prob_r[c] = neg_inf;
                    tile_max = std::max(tile_max, prob_r[c]);
                }
                if (tile_max == neg_inf) {  // the whole tile is on this row's masked side
                    for (int64_t c = 0; c < cols; ++c) prob_r[c] = 0;
                    continue;
                }
                // rescale what was accumulated under the old max (m = -inf on the first visit: factor 0)
                const T m_new = std::max(m[r], tile_max);
                const T correction = std::exp(m[r] - m_new);
                for (int64_t e = 0; e < hd; ++e) acc[r * hd + e] *= correction;
                l[r] *= correction;
                for (int64_t c = 0; c < cols; ++c) {
                    prob_r[c] = std::exp(prob_r[c] - m_new);  // masked: exp(-inf) = 0
                    l[r] += prob_r[c];
                }
                m[r] = m_new;
            }
            // acc += P V, key by key across the rows: consecutive updates go to different
            // rows of acc, so none waits for the previous one to be stored
            for (int64_t c = 0; c < cols; ++c) {
                const T* vc = v + ((b * cap + j0 + c) * Hkv + g) * hd;
                for (int64_t r = 0; r < rows; ++r)
                    if (prob[r * Bk + c] != T(0)) axpy(&acc[r * hd], prob[r * Bk + c], vc, hd);
            }
        }
        // normalise once at the end; every row saw at least its own key, so l > 0
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + r;
            T* oi = out + ((b * nq + i) * Hq + h) * hd;
            for (int64_t c = 0; c < hd; ++c) oi[c] = acc[r * hd + c] / l[r];
            lse[(b * Hq + h) * nq + i] = m[r] + std::log(l[r]);
        }
    }
}

template <class T>
void attention_flash_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const T* out, const T* lse) {
    const int64_t B = dims.B, n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv, Bq = kAttentionQueryTile, Bk = kAttentionKeyTile;
    const T scale = T(1) / std::sqrt(T(hd));
    auto q_row = [&](int64_t b, int64_t i, int64_t h) { return ((b * n + i) * Hq + h) * hd; };
    auto kv_row = [&](int64_t b, int64_t s, int64_t g) { return ((b * n + s) * Hkv + g) * hd; };

    // D_i = <dO_i, O_i> = sum_s P_is dP_is: the softmax-backward row term, from O instead of P
    std::vector<T> D(static_cast<size_t>(B * Hq * n));
#pragma omp parallel for collapse(3)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t i = 0; i < n; ++i) D[(b * Hq + h) * n + i] = dot(dout + q_row(b, i, h), out + q_row(b, i, h), hd);

    // pass 1: dk, dv. A task owns the rows [j0, j0+cols) of one KV head.
    const int64_t n_key_tiles = ceil_div(n, Bk);
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < B * Hkv * n_key_tiles; ++task) {
        const int64_t b = task / (Hkv * n_key_tiles), g = task / n_key_tiles % Hkv, j0 = task % n_key_tiles * Bk;
        const int64_t cols = std::min(Bk, n - j0);
        const PositionRange queries = queries_that_see(j0, j0 + cols - 1, dims.window, n);
        std::vector<T> dk_acc(static_cast<size_t>(cols * hd), T(0)), dv_acc(static_cast<size_t>(cols * hd), T(0));
        std::vector<T> k_tile(static_cast<size_t>(hd * Bk)), v_tile(static_cast<size_t>(hd * Bk));
        std::vector<T> score(static_cast<size_t>(Bk)), dprob(static_cast<size_t>(Bk));
        transpose_tile(k_tile.data(), k + kv_row(b, j0, g), Hkv * hd, cols, hd);
        transpose_tile(v_tile.data(), v + kv_row(b, j0, g), Hkv * hd, cols, hd);
        for (int64_t h = g * group; h < (g + 1) * group; ++h)
            for (int64_t i = queries.first; i <= queries.last; ++i) {
                const T *qi = q + q_row(b, i, h), *doi = dout + q_row(b, i, h);
                const T lse_i = lse[(b * Hq + h) * n + i], D_i = D[(b * Hq + h) * n + i];
                row_times_tile(score.data(), qi, scale, k_tile.data(), cols, hd);  // S_is
                row_times_tile(dprob.data(), doi, T(1), v_tile.data(), cols, hd);  // dP_is = <dO_i, v_s>
                for (int64_t c = 0; c < cols; ++c) {
                    if (!attention_key_visible(j0 + c, i, dims.window)) continue;
                    const T prob = std::exp(score[c] - lse_i);
                    const T dscore = prob * (dprob[c] - D_i);
                    axpy(&dv_acc[c * hd], prob, doi, hd);
                    axpy(&dk_acc[c * hd], scale * dscore, qi, hd);
                }
            }
        for (int64_t c = 0; c < cols; ++c)
            for (int64_t e = 0; e < hd; ++e) {
                dk[kv_row(b, j0 + c, g) + e] = dk_acc[c * hd + e];
                dv[kv_row(b, j0 + c, g) + e] = dv_acc[c * hd + e];
            }
    }

    // pass 2: dq. A task owns the rows of one query tile of one head, like the forward.
    const int64_t n_query_tiles = ceil_div(n, Bq);
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < B * Hq * n_query_tiles; ++task) {
        const int64_t b = task / (Hq * n_query_tiles), h = task / n_query_tiles % Hq, i0 = task % n_query_tiles * Bq;
        const int64_t g = h / group, rows = std::min(Bq, n - i0);
        const PositionRange keys = keys_seen_by(i0, i0 + rows - 1, dims.window);
        std::vector<T> dq_acc(static_cast<size_t>(rows * hd), T(0));
        std::vector<T> k_tile(static_cast<size_t>(hd * Bk)), v_tile(static_cast<size_t>(hd * Bk));
        std::vector<T> dscore(static_cast<size_t>(Bq * Bk)), dprob(static_cast<size_t>(Bk));
        for (int64_t j0 = keys.first; j0 <= keys.last; j0 += Bk) {
            const int64_t cols = std::min(Bk, keys.last + 1 - j0);
            transpose_tile(k_tile.data(), k + kv_row(b, j0, g), Hkv * hd, cols, hd);
            transpose_tile(v_tile.data(), v + kv_row(b, j0, g), Hkv * hd, cols, hd);
            // dS on the tile: S and P recomputed from lse, dP = dO V^T
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t i = i0 + r;
                const T lse_i = lse[(b * Hq + h) * n + i], D_i = D[(b * Hq + h) * n + i];
                T* ds_r = &dscore[r * Bk];
                row_times_tile(ds_r, q + q_row(b, i, h), scale, k_tile.data(), cols, hd);  // S_is for now
                row_times_tile(dprob.data(), dout + q_row(b, i, h), T(1), v_tile.data(), cols, hd);
                for (int64_t c = 0; c < cols; ++c)
                    ds_r[c] = attention_key_visible(j0 + c, i, dims.window) ? std::exp(ds_r[c] - lse_i) * (dprob[c] - D_i) : T(0);
            }
            // dq += scale dS K, key by key across the rows (as acc += P V in the forward)
            for (int64_t c = 0; c < cols; ++c) {
                const T* kc = k + kv_row(b, j0 + c, g);
                for (int64_t r = 0; r < rows; ++r)
                    if (dscore[r * Bk + c] != T(0)) axpy(&dq_acc[r * hd], scale * dscore[r * Bk + c], kc, hd);
            }
        }
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t e = 0; e < hd; ++e) dq[q_row(b, i0 + r, h) + e] = dq_acc[r * hd + e];
    }
}

template void attention_flash_forward_cpu<float>(const AttentionDims&, float*, float*, const float*, const float*, const float*);
template void attention_flash_forward_cpu<double>(const AttentionDims&, double*, double*, const double*, const double*,
                                                  const double*);
template void attention_flash_backward_cpu<float>(const AttentionDims&, float*, float*, float*, const float*, const float*,
                                                  const float*, const float*, const float*, const float*);
template void attention_flash_backward_cpu<double>(const AttentionDims&, double*, double*, double*, const double*,
                                                   const double*, const double*, const double*, const double*, const double*);

}  // namespace ittt::kernels
