// attention.cu: causal grouped-query attention with a sliding window on the GPU, F32.
//
// Two versions, as on the CPU (their rows: src/ops/attention.cpp, `build/ittt info --kernels`):
//   naive  attention_naive_forward_kernel: one block per (batch, head, query) scores every
//             key the query sees into a row in shared memory, then max, sum and P V by
//             block reductions.
//             attention_naive_backward_kernel: the same row plus dP, the textbook softmax
//             backward; dq is written directly, dk and dv are added with float atomicAdd,
//             whose arrival order varies: dk, dv are NOT bitwise reproducible.
//   flash  attention_flash_forward_kernel<HD>: one block per (batch, head, 32-query tile);
//             32-key tiles stream through shared memory under an online softmax, and key
//             tiles outside the causal window are never loaded.
//             attention_row_dot_kernel (D_i = <dO_i, O_i>), then attention_flash_dkdv_kernel<HD>
//             (one block per 32-key tile of a KV head, summing over the group's query heads)
//             and attention_flash_dq_kernel<HD> (one block per query tile): no atomics, the
//             same bits every run. head_dim <= 128 (HD = 32, 64 or 128 is the compile-time
//             ceiling the shared tiles and register accumulators are sized for).
//
// Run: ops::attention_forward / attention_backward on CUDA tensors with --kernel attention=v;
// tests: build/ittt_tests "[cuda][attention]";
// profile one kernel: ncu --kernel-name regex:attention_flash_forward --set full build/ittt_tests "[cuda][attention]"
// (nsys shows the NVTX ranges "attention_forward" / "attention_backward" of src/ops/attention.cpp).
//
// The math (online softmax, D_i, the tile-skip rule, why GQA gradients add up) is in
// docs/attention.md; the CPU versions (attention_naive_cpu.cpp, attention_flash_cpu.cpp)
// are the reference these kernels are tested against.
//
// What this code is not: tuned. The flash kernels keep one plain idea each (tiles in
// shared memory, accumulators in registers, warp shuffles for row reductions) and
// use no tensor cores, no asynchronous copies and no split over keys for decoding
// (with one query, a block does the work of one row and 31 idle rows).
#include <cmath>
#include <cstdint>

#include "kernels/attention/attention.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

constexpr int kWarp = 32;

// ---- device helpers shared by both versions ----

// The masking rule is attention_key_visible (attention.h), compiled for the device
// too: the query at absolute position p sees key s when p - window < s <= p.

// The first key a query at position p sees.
__device__ int64_t first_visible_key(int64_t p, int64_t window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

// Reductions over the 32 lanes of a warp; every lane gets the result. The butterfly
// combines lanes in a fixed pattern, so the result does not depend on timing.
__device__ float warp_max(float x) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    return x;
}
__device__ float warp_sum(float x) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

// Reductions over the whole block (blockDim.x a multiple of 32); every thread gets the
// result. scratch: 32 floats of shared memory. The first __syncthreads keeps a previous
// call's readers of scratch from seeing it overwritten, and also publishes whatever the
// threads wrote to shared memory before the call.
__device__ float block_sum(float x, float* scratch) {
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
    x = warp_sum(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    return warp_sum(lane < n_warps ? scratch[lane] : 0.0f);
}
__device__ float block_max(float x, float* scratch) {
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    return warp_max(lane < n_warps ? scratch[lane] : -INFINITY);
}

// ---- naive ----

constexpr int kNaiveThreads = 128;

// Idea: one block per query row, with the whole row of its visible keys' scores in shared memory.
// out: (B, nq, Hq, hd); lse: (B, Hq, nq); q: (B, nq, Hq, hd); k, v: (B, cap, Hkv, hd).
// Block (i, h, b). Dynamic shared memory: score, one float per key query i sees.
__global__ void attention_naive_forward_kernel(AttentionDims dims, float* out, float* lse, const float* q, const float* k,
                                               const float* v) {
    ITTT_DYNAMIC_SHARED(float, score);
    __shared__ float scratch[kWarp];
    const int64_t nq = dims.nq, cap = dims.cap, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (Hq / Hkv);
    const int64_t p = dims.q_pos0 + i;
    const int64_t first = first_visible_key(p, dims.window), count = p - first + 1;
    const float scale = 1.0f / sqrtf(static_cast<float>(hd));
    const float* qi = q + ((b * nq + i) * Hq + h) * hd;
    auto kv_row = [&](int64_t s) { return ((b * cap + s) * Hkv + g) * hd; };

    // scores of the visible keys; masked keys are simply not in the row
    float local_max = -INFINITY;
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
        const float* ks = k + kv_row(first + c);
        float dot = 0.0f;
        for (int64_t e = 0; e < hd; ++e) dot += qi[e] * ks[e];
        score[c] = scale * dot;
        local_max = fmaxf(local_max, score[c]);
    }
    // softmax with the row max subtracted, so exp never overflows
    const float row_max = block_max(local_max, scratch);
    float local_sum = 0.0f;
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
        score[c] = expf(score[c] - row_max);
        local_sum += score[c];
    }
    const float sum = block_sum(local_sum, scratch);  // also makes every score[c] visible to every thread
    // out = P V: threads split the head dimension, so a warp reads each V row in one piece
    for (int64_t e = threadIdx.x; e < hd; e += blockDim.x) {
        float acc = 0.0f;
        for (int64_t c = 0; c < count; ++c) acc += score[c] * v[kv_row(first + c) + e];
        out[((b * nq + i) * Hq + h) * hd + e] = acc / sum;
    }
    if (threadIdx.x == 0) lse[(b * Hq + h) * nq + i] = row_max + logf(sum);
}

// Idea: the forward's row plus dP in shared memory, the textbook softmax backward, and atomics for the shared dk, dv.
// dq: (B, n, Hq, hd) overwritten; dk, dv: (B, n, Hkv, hd) accumulated (the launcher zeroes them);
// dout, q: (B, n, Hq, hd); k, v: (B, n, Hkv, hd). Block (i, h, b).
// Dynamic shared memory: prob and dprob, one float each per key query i sees.
__global__ void attention_naive_backward_kernel(AttentionDims dims, float* dq, float* dk, float* dv, const float* dout,
                                                const float* q, const float* k, const float* v) {
    ITTT_DYNAMIC_SHARED(float, row);
    __shared__ float scratch[kWarp];
    const int64_t n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (Hq / Hkv);
    const int64_t first = first_visible_key(i, dims.window), count = i - first + 1;
    float* prob = row;
    float* dprob = row + count;
    const float scale = 1.0f / sqrtf(static_cast<float>(hd));
    const float* qi = q + ((b * n + i) * Hq + h) * hd;
    const float* doi = dout + ((b * n + i) * Hq + h) * hd;
    auto kv_row = [&](int64_t s) { return ((b * n + s) * Hkv + g) * hd; };

    // S (into prob for now) and dP = <dO_i, v_s>. Each thread keeps the same keys c in
    // every loop below, so only the loops after a block reduction read others' entries.
    float local_max = -INFINITY;
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
        const float *ks = k + kv_row(first + c), *vs = v + kv_row(first + c);
        float s_dot = 0.0f, dp_dot = 0.0f;
        for (int64_t e = 0; e < hd; ++e) {
            s_dot += qi[e] * ks[e];
            dp_dot += doi[e] * vs[e];
        }
        prob[c] = scale * s_dot;
        dprob[c] = dp_dot;
        local_max = fmaxf(local_max, prob[c]);
    }
    // P = softmax(S), with this block's own max and sum (it needs neither out nor lse)
    const float row_max = block_max(local_max, scratch);
    float local_sum = 0.0f;
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
        prob[c] = expf(prob[c] - row_max);
        local_sum += prob[c];
    }
    const float sum = block_sum(local_sum, scratch);
    // the softmax-backward row term the textbook way: sum_s P_s dP_s
    float local_dot = 0.0f;
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
        prob[c] /= sum;
        local_dot += prob[c] * dprob[c];
    }
    const float row_term = block_sum(local_dot, scratch);
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) dprob[c] = prob[c] * (dprob[c] - row_term);  // now dS
    __syncthreads();

    // dq_i = scale * sum_s dS_s k_s: this block is the only writer of row i of head h
    for (int64_t e = threadIdx.x; e < hd; e += blockDim.x) {
        float acc = 0.0f;
        for (int64_t c = 0; c < count; ++c) acc += dprob[c] * k[kv_row(first + c) + e];
        dq[((b * n + i) * Hq + h) * hd + e] = scale * acc;
    }
    // dk_s += scale dS_s q_i and dv_s += P_s dO_i: every query that sees key s, in every head
    // of the group, adds into the same row, from other blocks, hence the atomics
    for (int64_t idx = threadIdx.x; idx < count * hd; idx += blockDim.x) {
        const int64_t c = idx / hd, e = idx % hd;
        atomicAdd(&dk[kv_row(first + c) + e], scale * dprob[c] * qi[e]);
        atomicAdd(&dv[kv_row(first + c) + e], prob[c] * doi[e]);
    }
}

// ---- flash ----

constexpr int kFlashThreads = 128;                       // 4 warps
constexpr int kFlashWarps = kFlashThreads / kWarp;
constexpr int kQueryTile = 32;                           // Bq: query rows per tile
constexpr int kKeyTile = kWarp;                          // Bk: lane c of a warp takes key c of a tile
constexpr int kRowsPerWarp = kQueryTile / kFlashWarps;   // warp w owns rows w, w + 4, ..., w + 28 of a tile

// How the threads split a (32 rows, HD) block of accumulators (out, dk, dv or dq):
// thread t owns column e = t % HD of rows t / HD + kRowStep * j, j < kRows. Threads
// of one warp share a row and take consecutive columns, so their shared-memory
// reads of one tile row are conflict-free and the final global stores coalesce.
template <int HD>
struct AccumulatorLayout {
    static_assert(HD % kWarp == 0 && HD <= kFlashThreads, "HD must be 32, 64 or 128");
    static constexpr int kRowStep = kFlashThreads / HD;
    static constexpr int kRows = kQueryTile / kRowStep;  // accumulators per thread: 8, 16 or 32
};
static_assert(kKeyTile == kQueryTile, "AccumulatorLayout serves query and key tiles alike");

// tile (32 rows, row stride `stride`) = `count` rows of hd floats starting at first_row,
// consecutive rows row_step floats apart in global memory; rows past count become
// zeros, so that they add 0 * 0 later instead of whatever the shared memory held
// (possibly NaN). Consecutive threads load consecutive floats of a row: coalesced.
__device__ void load_tile(float* tile, int stride, const float* first_row, int64_t row_step, int64_t count, int64_t hd) {
    for (int64_t idx = threadIdx.x; idx < kQueryTile * hd; idx += blockDim.x) {
        const int64_t r = idx / hd, e = idx % hd;
        tile[r * stride + e] = r < count ? first_row[r * row_step + e] : 0.0f;
    }
}

// Idea: tile queries and keys through shared memory and keep a running max and sum per row (online softmax).
// out: (B, nq, Hq, hd); lse: (B, Hq, nq); q: (B, nq, Hq, hd); k, v: (B, cap, Hkv, hd).
// Block (query tile, h, b); hd <= HD.
template <int HD>
__global__ void __launch_bounds__(kFlashThreads)
    attention_flash_forward_kernel(AttentionDims dims, float* out, float* lse, const float* q, const float* k, const float* v) {
    using Acc = AccumulatorLayout<HD>;
    __shared__ float q_tile[kQueryTile][HD];
    // K, then V, of the current key tile. The odd row stride HD + 1 puts the 32 keys that
    // the lanes of a warp score at once in 32 different banks (stride HD would put them all in one).
    __shared__ float kv_tile[kKeyTile][HD + 1];
    __shared__ float prob[kQueryTile][kKeyTile];  // exp(S - m_new) on the current tile
    __shared__ float rescale[kQueryTile];          // exp(m_old - m_new) per row, for the accumulators
    __shared__ float row_sum[kQueryTile];          // the final running sum l per row

    const int64_t nq = dims.nq, cap = dims.cap, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd, window = dims.window;
    const int64_t h = blockIdx.y, b = blockIdx.z, g = h / (Hq / Hkv);
    const int64_t i0 = int64_t(blockIdx.x) * kQueryTile;
    const int64_t rows = nq - i0 < kQueryTile ? nq - i0 : kQueryTile;
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const float scale = 1.0f / sqrtf(static_cast<float>(hd));
    // Every key a row of this tile sees lies between the first row's window start and the
    // last row's own position; key tiles outside that range are never loaded (docs/attention.md).
    const int64_t p0 = dims.q_pos0 + i0;
    const int64_t key_first = first_visible_key(p0, window), key_last = p0 + rows - 1;

    load_tile(&q_tile[0][0], HD, q + ((b * nq + i0) * Hq + h) * hd, Hq * hd, rows, hd);

    // online-softmax state of the warp's rows; every lane of the warp holds the same copy
    float m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) m[j] = -INFINITY, l[j] = 0.0f;
    // this thread's output accumulators: column e of rows acc_row0 + kRowStep * j
    const int e = threadIdx.x % HD, acc_row0 = threadIdx.x / HD;
    float acc[Acc::kRows] = {};

    for (int64_t j0 = key_first; j0 <= key_last; j0 += kKeyTile) {
        const int64_t cols = key_last + 1 - j0 < kKeyTile ? key_last + 1 - j0 : kKeyTile;
        __syncthreads();  // readers of the previous tile's V and prob are done (first pass: q_tile is complete)
        load_tile(&kv_tile[0][0], HD + 1, k + ((b * cap + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
        __syncthreads();

        // S = scale Q K^T on the tile: lane c scores key j0 + c against the warp's 8 rows,
        // reading each K value once for all 8 (the Q values are broadcasts)
        float s[kRowsPerWarp] = {};
        for (int64_t x = 0; x < hd; ++x) {
            const float kx = kv_tile[lane][x];
#pragma unroll
            for (int j = 0; j < kRowsPerWarp; ++j) s[j] += q_tile[warp + kFlashWarps * j][x] * kx;
        }
        // online softmax, row by row across the warp's lanes (docs/attention.md)
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; ++j) {
            const int r = warp + kFlashWarps * j;
            const bool visible = r < rows && lane < cols && attention_key_visible(j0 + lane, p0 + r, window);
            const float score = visible ? scale * s[j] : -INFINITY;
            const float m_new = fmaxf(m[j], warp_max(score));
            // A row that has seen no visible key yet still has m = -inf, and exp(-inf - (-inf))
            // would be NaN; measuring from 0 instead gives the zeros such a row needs.
            const float m_ref = m_new == -INFINITY ? 0.0f : m_new;
            const float pr = expf(score - m_ref);          // masked: exp(-inf) = 0
            const float correction = expf(m[j] - m_ref);  // first visible tile: exp(-inf) = 0
            l[j] = l[j] * correction + warp_sum(pr);
            m[j] = m_new;
            prob[r][lane] = pr;
            if (lane == 0) rescale[r] = correction;
        }
        __syncthreads();  // every warp is done reading K; prob and rescale are complete
        load_tile(&kv_tile[0][0], HD + 1, v + ((b * cap + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
        __syncthreads();

        // acc = acc * exp(m_old - m_new) + P V (V rows past cols are zeros with P = 0)
        if (e < hd) {
#pragma unroll
            for (int j = 0; j < Acc::kRows; ++j) {
                const int r = acc_row0 + Acc::kRowStep * j;
                float a = acc[j] * rescale[r];
#pragma unroll 8
                for (int c = 0; c < kKeyTile; ++c) a += prob[r][c] * kv_tile[c][e];
                acc[j] = a;
            }
        }
    }
    // normalise once at the end; every valid row saw at least its own key, so l > 0
    if (lane == 0) {
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; ++j) {
            const int r = warp + kFlashWarps * j;
            row_sum[r] = l[j];
            if (r < rows) lse[(b * Hq + h) * nq + i0 + r] = m[j] + logf(l[j]);
        }
    }
    __syncthreads();
    if (e < hd) {
#pragma unroll
        for (int j = 0; j < Acc::kRows; ++j) {
            const int r = acc_row0 + Acc::kRowStep * j;
            if (r < rows) out[((b * nq + i0 + r) * Hq + h) * hd + e] = acc[j] / row_sum[r];
        }
    }
}

// Idea: the softmax-backward row term from two saved vectors, D_i = <dO_i, O_i>, instead of a row of P.
// D: (B, Hq, n); dout, out: (B, n, Hq, hd). One warp per row (b, i, h) of dout.
__global__ void attention_row_dot_kernel(float* D, const float* dout, const float* out, int64_t B, int64_t n, int64_t Hq,
                                         int64_t hd) {
    const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= B * n * Hq) return;  // whole warps leave together, so the shuffles stay full-warp
    float sum = 0.0f;
    for (int64_t e = lane; e < hd; e += kWarp) sum += dout[row * hd + e] * out[row * hd + e];
    sum = warp_sum(sum);
    if (lane == 0) {
        const int64_t b = row / (n * Hq), i = row / Hq % n, h = row % Hq;
        D[(b * Hq + h) * n + i] = sum;
    }
}

// Shared memory of the two backward kernels: one key tile (K, V; odd stride as in the
// forward), one query tile (Q, dO, and their rows' lse and D), and P, dS of the pair.
// At HD = 128 that is ~74 KB, past the 48 KB a kernel gets without asking, so it is
// dynamic shared memory and the launcher raises the kernel's limit.
template <int HD>
struct BackwardShared {
    float k_tile[kKeyTile][HD + 1];
    float v_tile[kKeyTile][HD + 1];
    float q_tile[kQueryTile][HD];
    float do_tile[kQueryTile][HD];
    float prob[kQueryTile][kKeyTile];
    float dscore[kQueryTile][kKeyTile];
    float lse[kQueryTile];
    float D[kQueryTile];
};

// Loads Q, dO, lse and D of query rows i0 .. i0+rows-1 of head h into sh.
template <int HD>
__device__ void load_query_tile(BackwardShared<HD>& sh, const AttentionDims& dims, const float* q, const float* dout,
                                const float* lse, const float* D, int64_t b, int64_t h, int64_t i0, int64_t rows) {
    const int64_t n = dims.nq, Hq = dims.Hq, hd = dims.hd;
    load_tile(&sh.q_tile[0][0], HD, q + ((b * n + i0) * Hq + h) * hd, Hq * hd, rows, hd);
    load_tile(&sh.do_tile[0][0], HD, dout + ((b * n + i0) * Hq + h) * hd, Hq * hd, rows, hd);
    if (threadIdx.x < kQueryTile) {
        const int r = threadIdx.x;
        sh.lse[r] = r < rows ? lse[(b * Hq + h) * n + i0 + r] : 0.0f;
        sh.D[r] = r < rows ? D[(b * Hq + h) * n + i0 + r] : 0.0f;
    }
}

// dS on the (query tile at i0, key tile at j0) pair: lane c takes key j0 + c against the
// warp's 8 query rows. P is recomputed from the saved lse (no running max needed: lse is
// the final one) and dS = P (dP - D) with dP = <dO_i, v_s>. Writes sh.dscore, and sh.prob
// when store_prob. Masked pairs get P = dS = 0.
template <int HD>
__device__ void backward_tile_scores(BackwardShared<HD>& sh, const AttentionDims& dims, int64_t i0, int64_t rows, int64_t j0,
                                     int64_t cols, bool store_prob) {
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const float scale = 1.0f / sqrtf(static_cast<float>(dims.hd));
    float s[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    for (int64_t x = 0; x < dims.hd; ++x) {
        const float kx = sh.k_tile[lane][x], vx = sh.v_tile[lane][x];
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; ++j) {
            const int r = warp + kFlashWarps * j;
            s[j] += sh.q_tile[r][x] * kx;
            dp[j] += sh.do_tile[r][x] * vx;
        }
    }
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
        const int r = warp + kFlashWarps * j;
        const bool visible = r < rows && lane < cols && attention_key_visible(j0 + lane, i0 + r, dims.window);
        const float pr = visible ? expf(scale * s[j] - sh.lse[r]) : 0.0f;
        if (store_prob) sh.prob[r][lane] = pr;
        sh.dscore[r][lane] = pr * (dp[j] - sh.D[r]);
    }
}

// Idea: give each block one key tile of one KV head and loop over all its group's queries, so dk, dv need no atomics.
// dk, dv: (B, n, Hkv, hd) overwritten; dout, q: (B, n, Hq, hd); k, v: (B, n, Hkv, hd); lse, D: (B, Hq, n).
// Block (key tile, g, b) owns rows j0 .. j0+31 of KV head g.
template <int HD>
__global__ void __launch_bounds__(kFlashThreads)
    attention_flash_dkdv_kernel(AttentionDims dims, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* lse, const float* D) {
    using Acc = AccumulatorLayout<HD>;
    ITTT_DYNAMIC_SHARED(__align__(16) unsigned char, shared_bytes);
    BackwardShared<HD>& sh = *reinterpret_cast<BackwardShared<HD>*>(shared_bytes);
    const int64_t n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd, window = dims.window, group = Hq / Hkv;
    const int64_t g = blockIdx.y, b = blockIdx.z, j0 = int64_t(blockIdx.x) * kKeyTile;
    const int64_t cols = n - j0 < kKeyTile ? n - j0 : kKeyTile;
    const float scale = 1.0f / sqrtf(static_cast<float>(hd));
    // the queries that see some key of the tile: from its first key to its last key's window end
    const int64_t query_first = j0;
    const int64_t query_last = window > 0 && j0 + cols - 1 + window - 1 < n - 1 ? j0 + cols - 1 + window - 1 : n - 1;

    load_tile(&sh.k_tile[0][0], HD + 1, k + ((b * n + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
    load_tile(&sh.v_tile[0][0], HD + 1, v + ((b * n + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
    // this thread's accumulators: column e of key rows acc_row0 + kRowStep * j
    const int e = threadIdx.x % HD, acc_row0 = threadIdx.x / HD;
    float dk_acc[Acc::kRows] = {}, dv_acc[Acc::kRows] = {};

    // KV head g serves query heads g*group .. (g+1)*group - 1; summing all of them here,
    // in the one block that owns these rows, is what makes atomics unnecessary
    for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t i0 = query_first; i0 <= query_last; i0 += kQueryTile) {
            const int64_t rows = query_last + 1 - i0 < kQueryTile ? query_last + 1 - i0 : kQueryTile;
            __syncthreads();  // readers of the previous query tile are done (first pass: K, V tiles are complete)
            load_query_tile(sh, dims, q, dout, lse, D, b, h, i0, rows);
            __syncthreads();
            backward_tile_scores(sh, dims, i0, rows, j0, cols, true);
            __syncthreads();
            // dv += P^T dO and dk += dS^T Q (scaled once at the end)
            if (e < hd) {
#pragma unroll
                for (int j = 0; j < Acc::kRows; ++j) {
                    const int c = acc_row0 + Acc::kRowStep * j;
                    float dv_c = dv_acc[j], dk_c = dk_acc[j];
#pragma unroll 8
                    for (int r = 0; r < kQueryTile; ++r) {
                        dv_c += sh.prob[r][c] * sh.do_tile[r][e];
                        dk_c += sh.dscore[r][c] * sh.q_tile[r][e];
                    }
                    dv_acc[j] = dv_c, dk_acc[j] = dk_c;
                }
            }
        }
    if (e < hd) {
#pragma unroll
        for (int j = 0; j < Acc::kRows; ++j) {
            const int c = acc_row0 + Acc::kRowStep * j;
            if (c < cols) {
                dk[((b * n + j0 + c) * Hkv + g) * hd + e] = scale * dk_acc[j];
                dv[((b * n + j0 + c) * Hkv + g) * hd + e] = dv_acc[j];
            }
        }
    }
}

// Idea: give each block one query tile of one head and walk its visible key tiles, like the forward, for dq.
// dq: (B, n, Hq, hd) overwritten; dout, q: (B, n, Hq, hd); k, v: (B, n, Hkv, hd); lse, D: (B, Hq, n).
// Block (query tile, h, b) owns rows i0 .. i0+31 of head h.
template <int HD>
__global__ void __launch_bounds__(kFlashThreads)
    attention_flash_dq_kernel(AttentionDims dims, float* dq, const float* dout, const float* q, const float* k, const float* v,
                              const float* lse, const float* D) {
    using Acc = AccumulatorLayout<HD>;
    ITTT_DYNAMIC_SHARED(__align__(16) unsigned char, shared_bytes);
    BackwardShared<HD>& sh = *reinterpret_cast<BackwardShared<HD>*>(shared_bytes);
    const int64_t n = dims.nq, Hq = dims.Hq, Hkv = dims.Hkv, hd = dims.hd;
    const int64_t h = blockIdx.y, b = blockIdx.z, g = h / (Hq / Hkv), i0 = int64_t(blockIdx.x) * kQueryTile;
    const int64_t rows = n - i0 < kQueryTile ? n - i0 : kQueryTile;
    const float scale = 1.0f / sqrtf(static_cast<float>(hd));
    const int64_t key_first = first_visible_key(i0, dims.window), key_last = i0 + rows - 1;

    load_query_tile(sh, dims, q, dout, lse, D, b, h, i0, rows);
    const int e = threadIdx.x % HD, acc_row0 = threadIdx.x / HD;
    float dq_acc[Acc::kRows] = {};

    for (int64_t j0 = key_first; j0 <= key_last; j0 += kKeyTile) {
        const int64_t cols = key_last + 1 - j0 < kKeyTile ? key_last + 1 - j0 : kKeyTile;
        __syncthreads();  // readers of the previous key tile are done (first pass: the query tile is complete)
        load_tile(&sh.k_tile[0][0], HD + 1, k + ((b * n + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
        load_tile(&sh.v_tile[0][0], HD + 1, v + ((b * n + j0) * Hkv + g) * hd, Hkv * hd, cols, hd);
        __syncthreads();
        backward_tile_scores(sh, dims, i0, rows, j0, cols, false);
        __syncthreads();
        // dq += dS K (scaled once at the end)
        if (e < hd) {
#pragma unroll
            for (int j = 0; j < Acc::kRows; ++j) {
                const int r = acc_row0 + Acc::kRowStep * j;
                float a = dq_acc[j];
#pragma unroll 8
                for (int c = 0; c < kKeyTile; ++c) a += sh.dscore[r][c] * sh.k_tile[c][e];
                dq_acc[j] = a;
            }
        }
    }
    if (e < hd) {
#pragma unroll
        for (int j = 0; j < Acc::kRows; ++j) {
            const int r = acc_row0 + Acc::kRowStep * j;
            if (r < rows) dq[((b * n + i0 + r) * Hq + h) * hd + e] = scale * dq_acc[j];
        }
    }
}

// ---- launchers: checks, grids, shared-memory limits ----

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Preconditions shared by every launch; src/ops/attention.cpp checks the same with
// messages that name tensors, these guard direct callers of the kernels.
void check_dims(const AttentionDims& d, const char* op) {
    ITTT_CHECK(d.B >= 0 && d.nq >= 0 && d.Hq > 0 && d.Hkv > 0 && d.hd > 0, op, ": bad sizes (B ", d.B, ", nq ", d.nq, ", Hq ",
               d.Hq, ", Hkv ", d.Hkv, ", hd ", d.hd, ")");
    ITTT_CHECK(d.Hq % d.Hkv == 0, op, ": ", d.Hq, " query heads is not a multiple of ", d.Hkv, " KV heads");
    ITTT_CHECK(d.q_pos0 >= 0 && d.cap >= d.q_pos0 + d.nq, op, ": the KV buffer's ", d.cap, " rows cannot hold keys 0 .. ",
               d.q_pos0 + d.nq - 1);
    // grid.y and grid.z carry heads and batch
    ITTT_CHECK(d.Hq <= 65535 && d.B <= 65535, op, ": Hq ", d.Hq, " or B ", d.B, " exceeds the grid's 65535");
    ITTT_CHECK(d.nq <= INT32_MAX, op, ": nq ", d.nq, " exceeds the grid");
}

// A kernel gets 48 KB of shared memory unless it asks for more, up to the device's
// opt-in ceiling (227 KB on H100); `bytes` is its dynamic part.
template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes, const char* what) {
    int device = 0, limit = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    cudaFuncAttributes attributes{};
    CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
    ITTT_CHECK(attributes.sharedSizeBytes + bytes <= static_cast<size_t>(limit), what, " needs ",
               attributes.sharedSizeBytes + bytes, " bytes of shared memory per block; this device allows ", limit);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// The longest row of visible keys: the naive kernels keep one (or two) in shared memory.
int64_t longest_visible_row(const AttentionDims& d) {
    const int64_t n_keys = d.q_pos0 + d.nq;
    return d.window > 0 && d.window < n_keys ? d.window : n_keys;
}

void naive_forward(const AttentionDims& d, float* out, float* lse, const float* q, const float* k, const float* v) {
    const size_t bytes = static_cast<size_t>(longest_visible_row(d)) * sizeof(float);
    allow_shared_memory(attention_naive_forward_kernel, bytes, "attention naive forward, one score row");
    const dim3 grid(static_cast<unsigned>(d.nq), static_cast<unsigned>(d.Hq), static_cast<unsigned>(d.B));
    ITTT_LAUNCH(attention_naive_forward_kernel, grid, kNaiveThreads, bytes, 0)(d, out, lse, q, k, v);
    CUDA_CHECK(cudaGetLastError());
}

void naive_backward(const AttentionDims& d, float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v) {
    const size_t bytes = 2 * static_cast<size_t>(longest_visible_row(d)) * sizeof(float);
    allow_shared_memory(attention_naive_backward_kernel, bytes, "attention naive backward, two score rows");
    // the kernel adds into dk and dv
    const size_t kv_bytes = static_cast<size_t>(d.B * d.nq * d.Hkv * d.hd) * sizeof(float);
    CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_bytes, 0));
    CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_bytes, 0));
    const dim3 grid(static_cast<unsigned>(d.nq), static_cast<unsigned>(d.Hq), static_cast<unsigned>(d.B));
    ITTT_LAUNCH(attention_naive_backward_kernel, grid, kNaiveThreads, bytes, 0)(d, dq, dk, dv, dout, q, k, v);
    CUDA_CHECK(cudaGetLastError());
}

template <int HD>
void flash_forward(const AttentionDims& d, float* out, float* lse, const float* q, const float* k, const float* v) {
    const dim3 grid(static_cast<unsigned>(ceil_div(d.nq, kQueryTile)), static_cast<unsigned>(d.Hq), static_cast<unsigned>(d.B));
    ITTT_LAUNCH((attention_flash_forward_kernel<HD>), grid, kFlashThreads, 0, 0)(d, out, lse, q, k, v);
    CUDA_CHECK(cudaGetLastError());
}

template <int HD>
void flash_backward(const AttentionDims& d, float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* lse, const float* D) {
    const size_t bytes = sizeof(BackwardShared<HD>);
    allow_shared_memory(attention_flash_dkdv_kernel<HD>, bytes, "attention flash backward, dk/dv pass");
    allow_shared_memory(attention_flash_dq_kernel<HD>, bytes, "attention flash backward, dq pass");
    const dim3 key_grid(static_cast<unsigned>(ceil_div(d.nq, kKeyTile)), static_cast<unsigned>(d.Hkv),
                        static_cast<unsigned>(d.B));
    ITTT_LAUNCH((attention_flash_dkdv_kernel<HD>), key_grid, kFlashThreads, bytes, 0)(d, dk, dv, dout, q, k, v, lse, D);
    CUDA_CHECK(cudaGetLastError());
    const dim3 query_grid(static_cast<unsigned>(ceil_div(d.nq, kQueryTile)), static_cast<unsigned>(d.Hq),
                          static_cast<unsigned>(d.B));
    ITTT_LAUNCH((attention_flash_dq_kernel<HD>), query_grid, kFlashThreads, bytes, 0)(d, dq, dout, q, k, v, lse, D);
    CUDA_CHECK(cudaGetLastError());
}

void check_flash_head_dim(const AttentionDims& d, const char* op) {
    ITTT_CHECK(d.hd <= kAttentionCudaMaxHeadDim, op, ": head_dim ", d.hd, " exceeds the flash kernels' ceiling of ",
               kAttentionCudaMaxHeadDim, " (use the naive version)");
}

void check_backward_dims(const AttentionDims& dims, const char* op) {
    check_dims(dims, op);
    ITTT_CHECK(dims.q_pos0 == 0 && dims.cap == dims.nq, op,
               ": the backward is the training form (q_pos0 = 0, cap = nq), found q_pos0 ", dims.q_pos0, ", cap ", dims.cap,
               ", nq ", dims.nq);
}

}  // namespace

void attention_naive_forward_cuda(const AttentionDims& dims, float* out, float* lse, const float* q, const float* k,
                                  const float* v) {
    check_dims(dims, "attention_naive_forward_cuda");
    if (dims.nq == 0 || dims.B == 0) return;  // a zero-sized grid is a launch error
    naive_forward(dims, out, lse, q, k, v);
}

void attention_naive_backward_cuda(const AttentionDims& dims, float* dq, float* dk, float* dv, const float* dout, const float* q,
                                   const float* k, const float* v, const float* /*out*/, const float* /*lse*/) {
    check_backward_dims(dims, "attention_naive_backward_cuda");
    if (dims.nq == 0 || dims.B == 0) return;
    naive_backward(dims, dq, dk, dv, dout, q, k, v);
}

void attention_flash_forward_cuda(const AttentionDims& dims, float* out, float* lse, const float* q, const float* k,
                                  const float* v) {
    const char* op = "attention_flash_forward_cuda";
    check_dims(dims, op);
    if (dims.nq == 0 || dims.B == 0) return;
    check_flash_head_dim(dims, op);
    // the smallest tile width that holds hd: smaller tiles waste fewer idle columns
    if (dims.hd <= 32) flash_forward<32>(dims, out, lse, q, k, v);
    else if (dims.hd <= 64) flash_forward<64>(dims, out, lse, q, k, v);
    else flash_forward<128>(dims, out, lse, q, k, v);
}

void attention_flash_backward_cuda(const AttentionDims& dims, float* dq, float* dk, float* dv, const float* dout, const float* q,
                                   const float* k, const float* v, const float* out, const float* lse) {
    const char* op = "attention_flash_backward_cuda";
    check_backward_dims(dims, op);
    if (dims.nq == 0 || dims.B == 0) return;
    check_flash_head_dim(dims, op);

    // D_i = <dO_i, O_i> for every row, one pass before the tiles; freed in stream order
    const int64_t n_rows = dims.B * dims.nq * dims.Hq;
    ITTT_CHECK(ceil_div(n_rows * kWarp, kFlashThreads) <= INT32_MAX, op, ": ", n_rows, " rows exceed the grid");
    float* D = nullptr;
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&D), static_cast<size_t>(n_rows) * sizeof(float), 0));
    ITTT_LAUNCH(attention_row_dot_kernel, static_cast<unsigned>(ceil_div(n_rows * kWarp, kFlashThreads)), kFlashThreads, 0, 0)(
        D, dout, out, dims.B, dims.nq, dims.Hq, dims.hd);
    CUDA_CHECK(cudaGetLastError());
    if (dims.hd <= 32) flash_backward<32>(dims, dq, dk, dv, dout, q, k, v, lse, D);
    else if (dims.hd <= 64) flash_backward<64>(dims, dq, dk, dv, dout, q, k, v, lse, D);
    else flash_backward<128>(dims, dq, dk, dv, dout, q, k, v, lse, D);
    CUDA_CHECK(cudaFreeAsync(D, 0));
}

}  // namespace ittt::kernels
