// attention_flash_avx512_cpu.cpp: version 3, flash attention written for AVX-512 registers.
//
// Version 2 (attention_flash_cpu.cpp) hands every product of a query tile and a key tile to
// the blocked GEMM. At the head dims of small models (hd = 32) those products are tiny
// (32 x 64 x 32): packing both operands costs as much as the multiply-adds, a 64-key tile
// computes about twice the scores a 64-key window needs, and the backward computes S and dP
// twice (once per pass). Version 3 keeps the algorithm (online softmax, probabilities
// recomputed from lse in the backward, the same masks) and changes how the work is laid out:
//
//  - Scores with the keys in the vector lanes. A block of up to 128 keys is packed once as
//    K^T (hd, 128), 16 keys per register (8 in double). A group of 4 query rows then computes
//    its scores only over the 16-key vectors that its rows can see: S[r][c] = sum_e Q[r][e]
//    K^T[e][c], one broadcast of Q[r][e] and one fused multiply-add per vector and e.
//  - Key blocks start at multiples of 128 positions, so a key always lands in the same block
//    and lane: a query's result does not depend on which other queries share its call, and a
//    decode step gives its row of the prefill bit for bit (the online softmax rescales at the
//    same keys, the row sums add the same lanes).
//  - Products that reduce over keys or rows (P V, dS K, dS^T Q, P^T dO) keep the head dim in
//    the lanes: a 6-row x 64-column tile of the output in registers, one broadcast of P (or dS)
//    and one load of a V (K, Q, dO) row per step; the rows are read where they lie.
//  - Backward in one pass: a task owns one KV head of one sequence (its dK, dV and the dQ of
//    its query heads), walks the query tiles in order and adds into dK, dV as it goes: S and
//    dP are computed once, and every sum runs in a fixed order on one thread, so the result
//    is the same bits for any thread count.
//
// Masks: masked scores become probability 0 before anything reads them, and no key outside
// [the first key some query of the call sees, its last query] is ever loaded (the window test
// fills those with NaN). F64 runs the same code with 8 doubles per register and std::exp
// (the register toolkit: kernels/elementwise/zmm_avx512.h).
//
// How this file is AVX-512 while the program is AVX2: as gemm_blocked_avx512_cpu.cpp (read
// its header comment): the includes first, then the target pragmas, vectorisers off (GCC 12.2),
// every vector instruction an intrinsic, nothing run at program start, and the op table runs
// it only where cpu_runs_avx512(). attention_avx512_known_answers() is this file's GCC 12 pin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::first_lanes;
using avx512::Zmm;

// Lanes t of the vector starting at column c0 with lo <= c0 + t <= hi.
template <class T>
typename Zmm<T>::Mask lanes_between(int64_t c0, int64_t lo, int64_t hi) {
    return static_cast<typename Zmm<T>::Mask>(first_lanes<T>(hi - c0 + 1) & ~first_lanes<T>(lo - c0));
}

constexpr int64_t kQueryTile = 64;   // query rows per task (forward) and per step (backward)
constexpr int64_t kKeyBlock = 128;   // keys per block; blocks start at multiples of this position
constexpr int64_t kRowGroup = 4;     // query rows whose scores are computed together
constexpr int64_t kReduceRows = 6;   // output rows of the reducing products held in registers
constexpr int64_t kReduceVectors = 4;  // head-dim vectors of those rows held in registers

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t first_visible(int64_t p, int64_t window) { return window > 0 ? std::max<int64_t>(0, p - window + 1) : 0; }

// K^T of the keys [lo, hi] of the block at kb0: kt[e * kKeyBlock + (s - kb0)] = K[s][e] on the
// columns [c_lo, c_hi) (whole vectors, inside the block), 0 on the columns outside [lo, hi].
// k: the block's first key row, rows ld apart. Keys outside [lo, hi] are never read.
// Double (the tests' reference path): element by element.
void pack_keys_transposed(double* kt, const double* k, int64_t ld, int64_t hd, int64_t kb0, int64_t lo, int64_t hi, int64_t c_lo,
                          int64_t c_hi) {
    for (int64_t e = 0; e < hd; ++e) {
        double* row = kt + e * kKeyBlock;
        for (int64_t c = c_lo; c < c_hi; ++c) {
            const int64_t s = kb0 + c;
            row[c] = s >= lo && s <= hi ? k[c * ld + e] : 0.0;
        }
    }
}

// r[i][j] -> r[j][i] for a 16 x 16 block of floats in registers, in 64 shuffles ("lane": a
// 128-bit quarter of a register):
//   1. unpack row pairs: t[2p] lane l = rows 2p, 2p+1 at columns 4l, 4l+1 (t[2p+1]: 4l+2, 4l+3);
//   2. shuffle within lanes: r[4q + c] lane l = column 4l + c of rows 4q .. 4q+3;
//   3. and 4. gather the lanes: r[c] = column c of all 16 rows.
void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int p = 0; p < 8; ++p) {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    for (int q = 0; q < 4; ++q) {
        r[4 * q] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        r[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        r[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        r[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    // t[c] (c < 4): lanes 0, 2 of r[c] and r[4 + c] (columns c, 8 + c of rows 0-7); t[4 + c]: lanes 1, 3
    // (columns 4 + c, 12 + c); t[8 ..]: the same for rows 8-15.
    for (int c = 0; c < 4; ++c) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
    }
    for (int c = 0; c < 8; ++c) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);      // column c
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);  // column 8 + c
    }
}

// Float: 16 keys x 16 head dims at a time through transpose16 (c_lo is a multiple of 16).
void pack_keys_transposed(float* kt, const float* k, int64_t ld, int64_t hd, int64_t kb0, int64_t lo, int64_t hi, int64_t c_lo,
                          int64_t c_hi) {
    __m512 r[16];
    for (int64_t c0 = c_lo; c0 < c_hi; c0 += 16)
        for (int64_t e0 = 0; e0 < hd; e0 += 16) {
            const __mmask16 dims = first_lanes<float>(hd - e0);
            for (int64_t i = 0; i < 16; ++i) {
                const int64_t s = kb0 + c0 + i;
                r[i] = s >= lo && s <= hi ? _mm512_maskz_loadu_ps(dims, k + (c0 + i) * ld + e0) : _mm512_setzero_ps();
            }
            transpose16(r);
            for (int64_t e = 0; e < std::min<int64_t>(16, hd - e0); ++e) _mm512_storeu_ps(kt + (e0 + e) * kKeyBlock + c0, r[e]);
        }
}

// S (nr, columns [c_lo, c_lo + vectors * lanes)) = alpha * X (nr, hd) @ K^T (hd, those columns),
// nr <= kRowGroup; x rows ldx apart, s rows kKeyBlock apart (the column index is the block's).
template <class T, int64_t Vectors>
void scores_tile(T* s, int64_t nr, const T* x, int64_t ldx, const T* kt, int64_t hd, int64_t c_lo, T alpha) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int64_t L = Z::lanes;
    V acc[kRowGroup][Vectors];
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRowGroup; ++r)
#pragma GCC unroll 8
        for (int64_t j = 0; j < Vectors; ++j) acc[r][j] = Z::zero();
    for (int64_t e = 0; e < hd; ++e) {
        V kv[Vectors];
#pragma GCC unroll 8
        for (int64_t j = 0; j < Vectors; ++j) kv[j] = Z::load(kt + e * kKeyBlock + c_lo + j * L);
#pragma GCC unroll 16
        for (int64_t r = 0; r < kRowGroup; ++r) {
            if (r >= nr) break;
            const V xr = Z::broadcast(x[r * ldx + e]);
#pragma GCC unroll 8
            for (int64_t j = 0; j < Vectors; ++j) acc[r][j] = Z::fma(xr, kv[j], acc[r][j]);
        }
    }
    const V va = Z::broadcast(alpha);
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRowGroup; ++r) {
        if (r >= nr) break;
#pragma GCC unroll 8
        for (int64_t j = 0; j < Vectors; ++j) Z::store(s + r * kKeyBlock + c_lo + j * L, Z::mul(va, acc[r][j]));
    }
}

// The same over any number of vectors, four at a time.
template <class T>
void scores(T* s, int64_t nr, const T* x, int64_t ldx, const T* kt, int64_t hd, int64_t c_lo, int64_t vectors, T alpha) {
    constexpr int64_t L = Zmm<T>::lanes;
    int64_t j = 0;
    for (; j + 4 <= vectors; j += 4) scores_tile<T, 4>(s, nr, x, ldx, kt, hd, c_lo + j * L, alpha);
    switch (vectors - j) {
        case 3: scores_tile<T, 3>(s, nr, x, ldx, kt, hd, c_lo + j * L, alpha); break;
        case 2: scores_tile<T, 2>(s, nr, x, ldx, kt, hd, c_lo + j * L, alpha); break;
        case 1: scores_tile<T, 1>(s, nr, x, ldx, kt, hd, c_lo + j * L, alpha); break;
        default: break;
    }
}

// out (ni, hd) += alpha * sum_{j < nj} w(i, j) z (j, hd), w(i, j) = w[i * wi + j * wj], z rows ldz
// apart, out rows ldo apart; ni <= kReduceRows; the head dims [e0, e0 + Vectors * lanes) ∩ [0, hd).
// Each output element is alpha times one sum over j in order, added to it once.
template <class T, int64_t Vectors>
void reduce_tile(T* out, int64_t ldo, int64_t ni, const T* w, int64_t wi, int64_t wj, const T* z, int64_t ldz, int64_t nj, int64_t hd,
                 int64_t e0, T alpha) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int64_t L = Z::lanes;
    typename Z::Mask mask[Vectors];
#pragma GCC unroll 8
    for (int64_t v = 0; v < Vectors; ++v) mask[v] = first_lanes<T>(hd - e0 - v * L);
    V acc[kReduceRows][Vectors];
#pragma GCC unroll 16
    for (int64_t i = 0; i < kReduceRows; ++i)
#pragma GCC unroll 8
        for (int64_t v = 0; v < Vectors; ++v) acc[i][v] = Z::zero();
    for (int64_t j = 0; j < nj; ++j) {
        V zv[Vectors];
#pragma GCC unroll 8
        for (int64_t v = 0; v < Vectors; ++v) zv[v] = Z::load(mask[v], z + j * ldz + e0 + v * L);
#pragma GCC unroll 16
        for (int64_t i = 0; i < kReduceRows; ++i) {
            if (i >= ni) break;
            const V wv = Z::broadcast(w[i * wi + j * wj]);
#pragma GCC unroll 8
            for (int64_t v = 0; v < Vectors; ++v) acc[i][v] = Z::fma(wv, zv[v], acc[i][v]);
        }
    }
    const V va = Z::broadcast(alpha);
#pragma GCC unroll 16
    for (int64_t i = 0; i < kReduceRows; ++i) {
        if (i >= ni) break;
        T* o = out + i * ldo + e0;
#pragma GCC unroll 8
        for (int64_t v = 0; v < Vectors; ++v) Z::store(o + v * L, mask[v], Z::fma(va, acc[i][v], Z::load(mask[v], o + v * L)));
    }
}

// The same over every output row and the whole head dim.
template <class T>
void reduce(T* out, int64_t ldo, int64_t ni, const T* w, int64_t wi, int64_t wj, const T* z, int64_t ldz, int64_t nj, int64_t hd, T alpha) {
    constexpr int64_t L = Zmm<T>::lanes;
    for (int64_t i0 = 0; i0 < ni; i0 += kReduceRows) {
        const int64_t rows = std::min(kReduceRows, ni - i0);
        T* o = out + i0 * ldo;
        const T* wr = w + i0 * wi;
        for (int64_t e0 = 0; e0 < hd; e0 += kReduceVectors * L) {
            switch (std::min(kReduceVectors, ceil_div(hd - e0, L))) {
                case 4: reduce_tile<T, 4>(o, ldo, rows, wr, wi, wj, z, ldz, nj, hd, e0, alpha); break;
                case 3: reduce_tile<T, 3>(o, ldo, rows, wr, wi, wj, z, ldz, nj, hd, e0, alpha); break;
                case 2: reduce_tile<T, 2>(o, ldo, rows, wr, wi, wj, z, ldz, nj, hd, e0, alpha); break;
                default: reduce_tile<T, 1>(o, ldo, rows, wr, wi, wj, z, ldz, nj, hd, e0, alpha); break;
            }
        }
    }
}

// One block's share of the work of a group of query rows: which keys of the block at kb0 the
// rows at positions [p_first, p_last] see (keys [lo, hi] of the call), as columns of the block.
struct BlockSpan {
    int64_t first, last;  // columns of the keys some row sees (last < first: none)
    int64_t c_lo, vectors;  // the whole vectors that hold them
};
template <class T>
BlockSpan block_span(int64_t kb0, int64_t p_first, int64_t p_last, int64_t window, int64_t lo, int64_t hi) {
    constexpr int64_t L = Zmm<T>::lanes;
    BlockSpan b;
    b.first = std::max({first_visible(p_first, window), lo, kb0}) - kb0;
    b.last = std::min({p_last, hi, kb0 + kKeyBlock - 1}) - kb0;
    b.c_lo = b.first / L * L;
    b.vectors = b.last >= b.first ? (b.last - b.c_lo) / L + 1 : 0;
    return b;
}

// The probabilities of one score row over its span's vectors, in place: exp(s - shift) on the
// columns [vis_lo, vis_hi] the row sees, 0 on the others. Returns their sum, lane by lane over
// the vectors in order, then across the lanes: a key's lane is its position mod the lane count,
// so the sum is the same whichever rows share the call.
template <class T>
T probabilities(T* s, const BlockSpan& span, int64_t vis_lo, int64_t vis_hi, T shift) {
    using Z = Zmm<T>;
    constexpr int64_t L = Z::lanes;
    typename Z::V total = Z::zero();
    const typename Z::V vs = Z::broadcast(shift);
    for (int64_t j = 0; j < span.vectors; ++j) {
        const int64_t c0 = span.c_lo + j * L;
        const typename Z::Mask seen = lanes_between<T>(c0, vis_lo, vis_hi);
        if (seen == 0) {  // another row's keys: no exp to compute (and adding 0 would change nothing)
            Z::store(s + c0, Z::zero());
            continue;
        }
        const typename Z::V p = Z::select(seen, Z::exp(Z::sub(Z::load(s + c0), vs)));
        Z::store(s + c0, p);
        total = Z::add(total, p);
    }
    return Z::sum(total);
}

// The largest score of a row over the columns [vis_lo, vis_hi] (-inf when none).
template <class T>
T row_max(const T* s, const BlockSpan& span, int64_t vis_lo, int64_t vis_hi) {
    using Z = Zmm<T>;
    constexpr int64_t L = Z::lanes;
    const typename Z::V neg_inf = Z::broadcast(-std::numeric_limits<T>::infinity());
    typename Z::V m = neg_inf;
    for (int64_t j = 0; j < span.vectors; ++j) {
        const int64_t c0 = span.c_lo + j * L;
        m = Z::max(m, Z::select(lanes_between<T>(c0, vis_lo, vis_hi), Z::load(s + c0), neg_inf));
    }
    return Z::max(m);
}

// x (n) = 0, in registers (a memset call per row of 32 floats costs more than the stores).
template <class T>
void zero_row(T* x, int64_t n) {
    using Z = Zmm<T>;
    for (int64_t e = 0; e < n; e += Z::lanes) Z::store(x + e, first_lanes<T>(n - e), Z::zero());
}

// x (n) *= factor.
template <class T>
void scale_row(T* x, int64_t n, T factor) {
    using Z = Zmm<T>;
    const typename Z::V f = Z::broadcast(factor);
    for (int64_t e = 0; e < n; e += Z::lanes) {
        const typename Z::Mask mk = first_lanes<T>(n - e);
        Z::store(x + e, mk, Z::mul(Z::load(mk, x + e), f));
    }
}

// Columns [lo, hi] of the block at kb0 that the query at position p sees (hi < lo: none).
struct Columns {
    int64_t lo, hi;
};
Columns visible_in_block(int64_t p, int64_t window, int64_t kb0) {
    return {std::max<int64_t>(first_visible(p, window), kb0) - kb0, std::min<int64_t>(p, kb0 + kKeyBlock - 1) - kb0};
}

}  // namespace

template <class T>
void attention_flash_avx512_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v,
                                        GemmCpuFn<T>* /*gemm: the tiles here are their own*/) {
    const int64_t B = dims.B, nq = dims.nq, cap = dims.cap, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv, Bq = kQueryTile, n_query_tiles = ceil_div(nq, Bq);
    const int64_t ldq = Hq * hd, ldkv = Hkv * hd;
    const T scale = T(1) / std::sqrt(T(hd));
    const T neg_inf = -std::numeric_limits<T>::infinity();

#pragma omp parallel
    {
        std::vector<T> kt(static_cast<size_t>(hd * kKeyBlock));                  // K^T of one block
        std::vector<T> s(static_cast<size_t>(kRowGroup * kKeyBlock));            // scores, then P, of a row group
        std::vector<T> acc(static_cast<size_t>(group * Bq * hd)), m(static_cast<size_t>(group * Bq)), l(static_cast<size_t>(group * Bq));
        // One task: query tile i0 of every query head of KV head g in sequence b.
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < B * Hkv * n_query_tiles; ++task) {
            const int64_t b = task / (Hkv * n_query_tiles), g = task / n_query_tiles % Hkv, i0 = task % n_query_tiles * Bq;
            const int64_t rows = std::min(Bq, nq - i0), p0 = dims.q_pos0 + i0, last_key = p0 + rows - 1;
            const int64_t first_key = first_visible(p0, dims.window);
            std::fill(acc.begin(), acc.end(), T(0));
            std::fill(m.begin(), m.end(), neg_inf);
            std::fill(l.begin(), l.end(), T(0));
            for (int64_t kb0 = first_key / kKeyBlock * kKeyBlock; kb0 <= last_key; kb0 += kKeyBlock) {
                const BlockSpan all = block_span<T>(kb0, p0, last_key, dims.window, first_key, last_key);
                if (all.vectors == 0) continue;
                pack_keys_transposed(kt.data(), k + ((b * cap + kb0) * Hkv + g) * hd, ldkv, hd, kb0, first_key, last_key, all.c_lo,
                                     all.c_lo + all.vectors * Zmm<T>::lanes);
                const T* v_block = v + ((b * cap + kb0) * Hkv + g) * hd;
                for (int64_t hh = 0; hh < group; ++hh) {
                    const int64_t h = g * group + hh;
                    for (int64_t r0 = 0; r0 < rows; r0 += kRowGroup) {
                        const int64_t nr = std::min(kRowGroup, rows - r0);
                        const BlockSpan span = block_span<T>(kb0, p0 + r0, p0 + r0 + nr - 1, dims.window, first_key, last_key);
                        if (span.vectors == 0) continue;
                        scores(s.data(), nr, q + ((b * nq + i0 + r0) * Hq + h) * hd, ldq, kt.data(), hd, span.c_lo, span.vectors, scale);
                        for (int64_t r = 0; r < nr; ++r) {
                            const int64_t row = hh * Bq + r0 + r;
                            T* sr = &s[r * kKeyBlock];
                            const Columns vis = visible_in_block(p0 + r0 + r, dims.window, kb0);
                            if (vis.hi < vis.lo) {  // this block is outside the row's window: it adds nothing
                                for (int64_t j = 0; j < span.vectors; ++j)
                                    Zmm<T>::store(sr + span.c_lo + j * Zmm<T>::lanes, Zmm<T>::zero());
                                continue;
                            }
                            // rescale what was summed under the old max (m = -inf before the first key: factor 0)
                            const T m_new = std::max(m[row], row_max(sr, span, vis.lo, vis.hi)), correction = std::exp(m[row] - m_new);
                            if (correction != T(1)) scale_row(&acc[row * hd], hd, correction);
                            l[row] = l[row] * correction + probabilities(sr, span, vis.lo, vis.hi, m_new);
                            m[row] = m_new;
                        }
                        // acc (nr, hd) += P (nr, span columns) @ V (span keys, hd)
                        reduce(&acc[(hh * Bq + r0) * hd], hd, nr, s.data() + span.first, kKeyBlock, int64_t(1), v_block + span.first * ldkv,
                               ldkv, span.last - span.first + 1, hd, T(1));
                    }
                }
            }
            // normalise once at the end; every row saw at least its own key, so l > 0
            for (int64_t hh = 0; hh < group; ++hh)
                for (int64_t r = 0; r < rows; ++r) {
                    const int64_t h = g * group + hh, row = hh * Bq + r;
                    T* o = out + ((b * nq + i0 + r) * Hq + h) * hd;
                    const typename Zmm<T>::V inv = Zmm<T>::broadcast(T(1) / l[row]);
                    for (int64_t e = 0; e < hd; e += Zmm<T>::lanes) {
                        const typename Zmm<T>::Mask mk = first_lanes<T>(hd - e);
                        Zmm<T>::store(o + e, mk, Zmm<T>::mul(Zmm<T>::load(mk, &acc[row * hd + e]), inv));
                    }
                    lse[(b * Hq + h) * nq + i0 + r] = m[row] + std::log(l[row]);
                }
        }
    }
}

template <class T>
void attention_flash_avx512_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                         const T* v, const T* out, const T* lse, GemmCpuFn<T>* /*gemm: unused, as the forward*/) {
    using Z = Zmm<T>;
    const int64_t B = dims.B, n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t group = Hq / Hkv, Bq = kQueryTile;
    const int64_t ldq = Hq * hd, ldkv = Hkv * hd;
    const T scale = T(1) / std::sqrt(T(hd));
    auto q_row = [&](int64_t b, int64_t i, int64_t h) { return ((b * n + i) * Hq + h) * hd; };
    auto kv_row = [&](int64_t b, int64_t s, int64_t g) { return ((b * n + s) * Hkv + g) * hd; };

    // One task: KV head g of sequence b. It owns dK, dV of that head and dQ of its query heads.
#pragma omp parallel
    {
        std::vector<T> kt(static_cast<size_t>(hd * kKeyBlock)), vt(static_cast<size_t>(hd * kKeyBlock));
        std::vector<T> P(static_cast<size_t>(Bq * kKeyBlock)), dS(static_cast<size_t>(Bq * kKeyBlock));
        std::vector<T> D(static_cast<size_t>(group * Bq));
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < B * Hkv; ++task) {
            const int64_t b = task / Hkv, g = task % Hkv;
            for (int64_t s = 0; s < n; ++s) {
                zero_row(dk + kv_row(b, s, g), hd);
                zero_row(dv + kv_row(b, s, g), hd);
                for (int64_t h = g * group; h < (g + 1) * group; ++h) zero_row(dq + q_row(b, s, h), hd);
            }
            for (int64_t i0 = 0; i0 < n; i0 += Bq) {
                const int64_t rows = std::min(Bq, n - i0), last_key = i0 + rows - 1, first_key = first_visible(i0, dims.window);
                // D_i = <dO_i, O_i> = sum_s P_is dP_is: the softmax-backward row term, from O instead of P
                for (int64_t h = g * group; h < (g + 1) * group; ++h)
                    for (int64_t r = 0; r < rows; ++r) {
                        const T *x = dout + q_row(b, i0 + r, h), *y = out + q_row(b, i0 + r, h);
                        typename Z::V acc = Z::zero();
                        for (int64_t e = 0; e < hd; e += Z::lanes) {
                            const typename Z::Mask mk = first_lanes<T>(hd - e);
                            acc = Z::fma(Z::load(mk, x + e), Z::load(mk, y + e), acc);
                        }
                        D[static_cast<size_t>((h - g * group) * Bq + r)] = Z::sum(acc);
                    }
                for (int64_t kb0 = first_key / kKeyBlock * kKeyBlock; kb0 <= last_key; kb0 += kKeyBlock) {
                    const BlockSpan all = block_span<T>(kb0, i0, last_key, dims.window, first_key, last_key);
                    if (all.vectors == 0) continue;
                    const int64_t c_end = all.c_lo + all.vectors * Z::lanes;
                    pack_keys_transposed(kt.data(), k + kv_row(b, kb0, g), ldkv, hd, kb0, first_key, last_key, all.c_lo, c_end);
                    pack_keys_transposed(vt.data(), v + kv_row(b, kb0, g), ldkv, hd, kb0, first_key, last_key, all.c_lo, c_end);
                    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                        const T* D_h = &D[static_cast<size_t>((h - g * group) * Bq)];
                        // P and dS of every row of the tile against this block; 0 where a row sees no key
                        for (int64_t r = 0; r < rows; ++r)
                            for (int64_t c = all.c_lo; c < c_end; c += Z::lanes) {
                                Z::store(&P[r * kKeyBlock + c], Z::zero());
                                Z::store(&dS[r * kKeyBlock + c], Z::zero());
                            }
                        for (int64_t r0 = 0; r0 < rows; r0 += kRowGroup) {
                            const int64_t nr = std::min(kRowGroup, rows - r0);
                            const BlockSpan span = block_span<T>(kb0, i0 + r0, i0 + r0 + nr - 1, dims.window, first_key, last_key);
                            if (span.vectors == 0) continue;
                            T* Pr = &P[r0 * kKeyBlock];
                            T* dSr = &dS[r0 * kKeyBlock];
                            scores(Pr, nr, q + q_row(b, i0 + r0, h), ldq, kt.data(), hd, span.c_lo, span.vectors, scale);  // S
                            scores(dSr, nr, dout + q_row(b, i0 + r0, h), ldq, vt.data(), hd, span.c_lo, span.vectors, T(1));  // dP
                            for (int64_t r = 0; r < nr; ++r) {
                                const int64_t i = i0 + r0 + r;
                                const Columns vis = visible_in_block(i, dims.window, kb0);
                                probabilities(&Pr[r * kKeyBlock], span, vis.lo, vis.hi, lse[(b * Hq + h) * n + i]);
                                const typename Z::V Di = Z::broadcast(D_h[r0 + r]);
                                for (int64_t j = 0; j < span.vectors; ++j) {  // dS = P (dP - D); P = 0 outside: dS = 0 (and finite)
                                    const int64_t c0 = span.c_lo + j * Z::lanes;
                                    const typename Z::V p = Z::load(&Pr[r * kKeyBlock + c0]);
                                    Z::store(&dSr[r * kKeyBlock + c0], Z::mul(p, Z::sub(Z::load(&dSr[r * kKeyBlock + c0]), Di)));
                                }
                            }
                            // dQ (nr, hd) += scale dS (nr, span columns) @ K (span keys, hd)
                            reduce(dq + q_row(b, i0 + r0, h), ldq, nr, dSr + span.first, kKeyBlock, int64_t(1),
                                   k + kv_row(b, kb0 + span.first, g), ldkv, span.last - span.first + 1, hd, scale);
                        }
                        // dK (block keys, hd) += scale dS^T @ Q; dV += P^T @ dO, kReduceRows keys at a time over
                        // the tile's rows that can see one of them (the others hold dS = P = 0)
                        for (int64_t c = all.first; c <= all.last; c += kReduceRows) {
                            const int64_t keys = std::min(kReduceRows, all.last + 1 - c), s_first = kb0 + c, s_last = s_first + keys - 1;
                            const int64_t j_lo = std::max<int64_t>(0, s_first - i0);
                            const int64_t j_hi = dims.window > 0 ? std::min(rows - 1, s_last + dims.window - 1 - i0) : rows - 1;
                            if (j_hi < j_lo) continue;
                            reduce(dk + kv_row(b, s_first, g), ldkv, keys, &dS[j_lo * kKeyBlock + c], int64_t(1), kKeyBlock,
                                   q + q_row(b, i0 + j_lo, h), ldq, j_hi - j_lo + 1, hd, scale);
                            reduce(dv + kv_row(b, s_first, g), ldkv, keys, &P[j_lo * kKeyBlock + c], int64_t(1), kKeyBlock,
                                   dout + q_row(b, i0 + j_lo, h), ldq, j_hi - j_lo + 1, hd, T(1));
                        }
                    }
                }
            }
        }
    }
}

template void attention_flash_avx512_forward_cpu<float>(const AttentionDims&, float*, float*, const float*, const float*, const float*,
                                                        GemmCpuFn<float>*);
template void attention_flash_avx512_forward_cpu<double>(const AttentionDims&, double*, double*, const double*, const double*,
                                                         const double*, GemmCpuFn<double>*);
template void attention_flash_avx512_backward_cpu<float>(const AttentionDims&, float*, float*, float*, const float*, const float*,
                                                         const float*, const float*, const float*, const float*, GemmCpuFn<float>*);
template void attention_flash_avx512_backward_cpu<double>(const AttentionDims&, double*, double*, double*, const double*,
                                                          const double*, const double*, const double*, const double*, const double*,
                                                          GemmCpuFn<double>*);

// This file's GCC 12 pin (see gemm_avx512_known_answers in gemm_blocked_avx512_cpu.cpp): a
// constant array copied out, which GCC 12.2 with AVX-512 and its vectorisers on returns as a
// broadcast of the first element; tests/test_cpu_isa.cpp checks every AVX-512 file's pin.
void attention_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
