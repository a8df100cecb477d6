// attention_flash_cpu.cpp: flash attention on the CPU.
//
// Forward: one task per (batch, query head, query tile). It walks the key tiles that its
// queries can see, keeping per row a running max m, a running sum l and an unnormalised
// output acc; a new tile with a larger max rescales l and acc by exp(m_old - m_new). Only a
// tile of scores exists at a time, and key tiles outside the window are never visited, so
// work and memory grow with n*w instead of n^2.
//
// Backward (flash-attention-2 style): probabilities are recomputed from the saved lse,
// P_is = exp(S_is - lse_i), and the softmax backward uses D_i = <dO_i, O_i>. It runs in two
// race-free passes: dk, dv parallel over (batch, KV head, key tile), each task summing over
// its group's query heads; then dq parallel over query tiles. Each pass recomputes P, which
// costs a second round of exps but needs no atomics or per-thread copies and gives the same
// bits for any thread count. docs/attention.md has the math.
//
// Every product on a pair of tiles is a small matrix product, handed to `gemm`, the gemm op's
// selected CPU version (blocked: packed panels, a register-tiled micro-kernel; AVX-512 where
// version 0 picks it):
//   forward   S = scale Q_t K_t^T            (rows x cols)     acc += P V_t       (rows x hd)
//   pass 1    S, dP = dO_t V_t^T             dV_t += P^T dO_t, dK_t += scale dS^T Q_t
//   pass 2    S, dP                          dQ_t += scale dS K_t
// The rows of one head in Q, K, V are Hq*hd (Hkv*hd) numbers apart, which is just a leading
// dimension to the GEMM: nothing is copied. Between the products is one pass over each score
// row (mask, max, exp, sum), vectorised with exp_vec (kernels/elementwise/exp_cpu.h). Each
// GEMM is small (32 x 64 x hd) and runs on its task's thread. docs/attention.md has the
// numbers of this and of the earlier form (vector loops over keys and rows, std::exp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/elementwise/exp_cpu.h"
#include "kernels/gemm/gemm.h"

namespace ittt::kernels {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The keys [first, last] that some query of positions [p_first, p_last] sees, and the
// queries in [0, n) that see some key of [s_first, s_last] (as in the forward).
int64_t first_key_seen(int64_t p_first, int64_t window) { return window > 0 ? std::max<int64_t>(0, p_first - window + 1) : 0; }
int64_t last_query_seeing(int64_t s_last, int64_t window, int64_t n) { return window > 0 ? std::min(n - 1, s_last + window - 1) : n - 1; }

// Columns [lo, hi] of a key tile starting at position j0 that the query at position p sees
// (attention_key_visible as a range); hi < lo when none.
struct Visible {
    int64_t lo, hi;
};
Visible visible_columns(int64_t p, int64_t j0, int64_t cols, int64_t window) {
    const int64_t first = window > 0 ? p - window + 1 : 0;
    return {std::max<int64_t>(0, first - j0), std::min(cols - 1, p - j0)};
}

// The probabilities of one score row in place: P_c = exp(S_c - shift) on the visible
// columns, 0 elsewhere. The exp loop runs over the whole tile width (a fixed trip count the
// compiler vectorises); columns past the tile's keys hold stale numbers and become 0, and
// the GEMMs never read them (their K or M is the tile's key count). Returns the sum over the
// visible columns, added one by one in key order: a vector reduction would group the terms
// by column index, which depends on where the tile starts, and a decode step (whose tile
// starts at its window) would then round differently from the prefill of the same row.
template <class T>
T exp_row(T* s, Visible vis, T shift) {
#pragma omp simd
    for (int64_t c = 0; c < kAttentionKeyTile; ++c) {
        const T p = exp_vec(s[c] - shift);
        s[c] = c >= vis.lo && c <= vis.hi ? p : T(0);
    }
    T sum = 0;
    for (int64_t c = vis.lo; c <= vis.hi; ++c) sum += s[c];
    return sum;
}

}  // namespace

template <class T>
void attention_flash_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v, GemmCpuFn<T>* gemm) {
    const int64_t B = dims.B, nq = dims.nq, cap = dims.cap, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv, Bq = kAttentionQueryTile, Bk = kAttentionKeyTile, n_query_tiles = ceil_div(nq, Bq);
    const int64_t ldq = Hq * hd, ldkv = Hkv * hd;
    const T scale = T(1) / std::sqrt(T(hd));
    const T neg_inf = -std::numeric_limits<T>::infinity();
    // Threads only where the work hides the fork/join: a decoded token of a small model attends
    // to a few dozen keys per head, microseconds of work, and on a busy machine a parallel
    // region can wait a whole time slice for a descheduled thread. (Each task computes the
    // same whatever thread runs it: the result does not change.)
    const int64_t keys = dims.window > 0 ? std::min<int64_t>(dims.window, dims.q_pos0 + nq) : dims.q_pos0 + nq;
    const bool threaded = B * Hq * nq * keys * hd >= (int64_t(1) << 18);

#pragma omp parallel if (threaded)
    {
        std::vector<T> acc(static_cast<size_t>(Bq * hd)), m(static_cast<size_t>(Bq)), l(static_cast<size_t>(Bq));
        std::vector<T> prob(static_cast<size_t>(Bq * Bk));  // S, then P, of one tile pair: (rows, Bk)
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < B * Hq * n_query_tiles; ++task) {
            const int64_t b = task / (Hq * n_query_tiles), h = task / n_query_tiles % Hq, i0 = task % n_query_tiles * Bq;
            const int64_t g = h / group, rows = std::min(Bq, nq - i0), p0 = dims.q_pos0 + i0;
            const T* q_t = q + ((b * nq + i0) * Hq + h) * hd;
            std::fill(acc.begin(), acc.end(), T(0));
            std::fill(m.begin(), m.end(), neg_inf);
            std::fill(l.begin(), l.end(), T(0));
            const int64_t last_key = p0 + rows - 1;
            for (int64_t j0 = first_key_seen(p0, dims.window); j0 <= last_key; j0 += Bk) {
                const int64_t cols = std::min(Bk, last_key + 1 - j0);
                const T* k_t = k + ((b * cap + j0) * Hkv + g) * hd;
                const T* v_t = v + ((b * cap + j0) * Hkv + g) * hd;
                // S (rows, cols) = scale Q_t (rows, hd) @ K_t^T (hd, cols)
                gemm(false, true, rows, cols, hd, scale, q_t, ldq, k_t, ldkv, T(0), prob.data(), Bk);
                for (int64_t r = 0; r < rows; ++r) {
                    T* s = &prob[r * Bk];
                    const Visible vis = visible_columns(p0 + r, j0, cols, dims.window);
                    if (vis.hi < vis.lo) {  // the whole tile is on this row's masked side
                        std::fill(s, s + Bk, T(0));
                        continue;
                    }
                    T tile_max = neg_inf;
                    for (int64_t c = vis.lo; c <= vis.hi; ++c) tile_max = std::max(tile_max, s[c]);
                    // rescale what was summed under the old max (m = -inf on the first visit: factor 0)
                    const T m_new = std::max(m[r], tile_max), correction = std::exp(m[r] - m_new);
                    if (correction != T(1))
                        for (int64_t e = 0; e < hd; ++e) acc[r * hd + e] *= correction;
                    l[r] = l[r] * correction + exp_row(s, vis, m_new);
                    m[r] = m_new;
                }
                // acc (rows, hd) += P (rows, cols) @ V_t (cols, hd)
                gemm(false, false, rows, hd, cols, T(1), prob.data(), Bk, v_t, ldkv, T(1), acc.data(), hd);
            }
            // normalise once at the end; every row saw at least its own key, so l > 0
            for (int64_t r = 0; r < rows; ++r) {
                T* o = out + ((b * nq + i0 + r) * Hq + h) * hd;
                const T inv = T(1) / l[r];
                for (int64_t e = 0; e < hd; ++e) o[e] = acc[r * hd + e] * inv;
                lse[(b * Hq + h) * nq + i0 + r] = m[r] + std::log(l[r]);
            }
        }
    }
}

template <class T>
void attention_flash_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                       const T* v, const T* out, const T* lse, GemmCpuFn<T>* gemm) {
    const int64_t B = dims.B, n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv, Bq = kAttentionQueryTile, Bk = kAttentionKeyTile;
    const int64_t ldq = Hq * hd, ldkv = Hkv * hd;
    const T scale = T(1) / std::sqrt(T(hd));
    auto q_row = [&](int64_t b, int64_t i, int64_t h) { return ((b * n + i) * Hq + h) * hd; };
    auto kv_row = [&](int64_t b, int64_t s, int64_t g) { return ((b * n + s) * Hkv + g) * hd; };

    // D_i = <dO_i, O_i> = sum_s P_is dP_is: the softmax-backward row term, from O instead of P
    std::vector<T> D(static_cast<size_t>(B * Hq * n));
#pragma omp parallel for collapse(3)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t i = 0; i < n; ++i) {
                const T *x = dout + q_row(b, i, h), *y = out + q_row(b, i, h);
                T s = 0;
#pragma omp simd reduction(+ : s)
                for (int64_t e = 0; e < hd; ++e) s += x[e] * y[e];
                D[(b * Hq + h) * n + i] = s;
            }

    // The probabilities P and score gradients dS of queries [i0, i0+rows) of head h against
    // the key tile at j0 (cols keys), both (rows, Bk) with zeros outside the window.
    auto tile_grads = [&](int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t cols, T* P, T* dS) {
        const int64_t g = h / group;
        gemm(false, true, rows, cols, hd, scale, q + q_row(b, i0, h), ldq, k + kv_row(b, j0, g), ldkv, T(0), P, Bk);  // S
        gemm(false, true, rows, cols, hd, T(1), dout + q_row(b, i0, h), ldq, v + kv_row(b, j0, g), ldkv, T(0), dS, Bk);  // dP
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + r;
            const T lse_i = lse[(b * Hq + h) * n + i], D_i = D[(b * Hq + h) * n + i];
            exp_row(&P[r * Bk], visible_columns(i, j0, cols, dims.window), lse_i);
            T* ds = &dS[r * Bk];
            const T* p = &P[r * Bk];
#pragma omp simd
            for (int64_t c = 0; c < Bk; ++c) ds[c] = p[c] * (ds[c] - D_i);  // P = 0 outside: dS = 0 (and finite)
        }
    };

    // pass 1: dk, dv. A task owns the rows [j0, j0+cols) of one KV head.
    const int64_t n_key_tiles = ceil_div(n, Bk);
#pragma omp parallel
    {
        std::vector<T> P(static_cast<size_t>(Bq * Bk)), dS(static_cast<size_t>(Bq * Bk));
        std::vector<T> dk_acc(static_cast<size_t>(Bk * hd)), dv_acc(static_cast<size_t>(Bk * hd));
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < B * Hkv * n_key_tiles; ++task) {
            const int64_t b = task / (Hkv * n_key_tiles), g = task / n_key_tiles % Hkv, j0 = task % n_key_tiles * Bk;
            const int64_t cols = std::min(Bk, n - j0), last_query = last_query_seeing(j0 + cols - 1, dims.window, n);
            std::fill(dk_acc.begin(), dk_acc.end(), T(0));
            std::fill(dv_acc.begin(), dv_acc.end(), T(0));
            for (int64_t h = g * group; h < (g + 1) * group; ++h)
                for (int64_t i0 = j0; i0 <= last_query; i0 += Bq) {
                    const int64_t rows = std::min(Bq, last_query + 1 - i0);
                    tile_grads(b, h, i0, rows, j0, cols, P.data(), dS.data());
                    // dV_t (cols, hd) += P^T (cols, rows) @ dO (rows, hd); dK_t += scale dS^T @ Q
                    gemm(true, false, cols, hd, rows, T(1), P.data(), Bk, dout + q_row(b, i0, h), ldq, T(1), dv_acc.data(), hd);
                    gemm(true, false, cols, hd, rows, scale, dS.data(), Bk, q + q_row(b, i0, h), ldq, T(1), dk_acc.data(), hd);
                }
            for (int64_t c = 0; c < cols; ++c) {
                std::copy(&dk_acc[c * hd], &dk_acc[c * hd] + hd, dk + kv_row(b, j0 + c, g));
                std::copy(&dv_acc[c * hd], &dv_acc[c * hd] + hd, dv + kv_row(b, j0 + c, g));
            }
        }
    }

    // pass 2: dq. A task owns the rows of one query tile of one head, like the forward.
    const int64_t n_query_tiles = ceil_div(n, Bq);
#pragma omp parallel
    {
        std::vector<T> P(static_cast<size_t>(Bq * Bk)), dS(static_cast<size_t>(Bq * Bk)), dq_acc(static_cast<size_t>(Bq * hd));
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < B * Hq * n_query_tiles; ++task) {
            const int64_t b = task / (Hq * n_query_tiles), h = task / n_query_tiles % Hq, i0 = task % n_query_tiles * Bq;
            const int64_t g = h / group, rows = std::min(Bq, n - i0), last_key = i0 + rows - 1;
            std::fill(dq_acc.begin(), dq_acc.end(), T(0));
            for (int64_t j0 = first_key_seen(i0, dims.window); j0 <= last_key; j0 += Bk) {
                const int64_t cols = std::min(Bk, last_key + 1 - j0);
                tile_grads(b, h, i0, rows, j0, cols, P.data(), dS.data());
                // dQ_t (rows, hd) += scale dS (rows, cols) @ K_t (cols, hd)
                gemm(false, false, rows, hd, cols, scale, dS.data(), Bk, k + kv_row(b, j0, g), ldkv, T(1), dq_acc.data(), hd);
            }
            for (int64_t r = 0; r < rows; ++r) std::copy(&dq_acc[r * hd], &dq_acc[r * hd] + hd, dq + q_row(b, i0 + r, h));
        }
    }
}

template void attention_flash_forward_cpu<float>(const AttentionDims&, float*, float*, const float*, const float*, const float*,
                                                 GemmCpuFn<float>*);
template void attention_flash_forward_cpu<double>(const AttentionDims&, double*, double*, const double*, const double*,
                                                  const double*, GemmCpuFn<double>*);
template void attention_flash_backward_cpu<float>(const AttentionDims&, float*, float*, float*, const float*, const float*,
                                                  const float*, const float*, const float*, const float*, GemmCpuFn<float>*);
template void attention_flash_backward_cpu<double>(const AttentionDims&, double*, double*, double*, const double*,
                                                   const double*, const double*, const double*, const double*, const double*,
                                                   GemmCpuFn<double>*);

}  // namespace ittt::kernels
