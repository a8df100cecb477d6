// attention_block.cu: ring attention's block pieces on the GPU, F32 (attention_block.h says
// what each computes; the CPU version, attention_block_cpu.cpp, is the reference).
//
// One version, "warp per row": every row of work (a query row of one head, or a key row of
// one KV head) belongs to one warp, whose 32 lanes split the head dimension (lane l owns
// columns l, l + 32, ...; hd <= 128, so at most 4 per lane, kept in registers). A dot product
// over hd is then each lane's few products and a butterfly warp_sum: no shared memory, no
// barriers, and the row's loads of q, k, v, dout are coalesced (32 consecutive floats).
//
//   forward   attention_block_forward_kernel<HD>  one warp per query row: the visible keys of the
//             block in groups of 32, an online softmax per group (lane j keeps key j's score),
//             out and lse written once; a row that sees no key gets out = 0, lse = -inf
//   merge     attention_block_merge_kernel        one warp per query row: the online-softmax step
//   backward  attention_block_dq_kernel<HD>       one warp per query row: D_i = <dO_i, O_i> (saved
//             for the next kernel), then dq_i += scale sum_c dS_ic k_c over the visible keys
//             attention_block_dkdv_kernel<HD>     one warp per key row of a KV head, summing over
//             the group's query heads and the queries that see it: no atomics
// Every sum runs in a fixed order, so the results are the same bits every run.
//
// What this is not: tiled. Each key (forward) or query (dk, dv) is read from global memory once
// per row that uses it, where attention.cu's flash kernels stage 32-row tiles in shared memory
// and reuse them for 32 rows; L1 and L2 absorb much of that here, but a GPU run would show how
// much (docs/profiling.md). The ring calls these for the off-diagonal blocks only; the diagonal
// block runs attention.cu's flash kernels.
//
// Run: ops::attention_block_forward / _merge / _backward on CUDA tensors (ring attention of a
// CUDA model under --context-parallel); tests: build/ittt_tests "[cuda][attention_block]".
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/attention/attention.h"
#include "kernels/attention_block/attention_block.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 128;                  // 4 warps: 4 rows per block
constexpr int kRowsPerBlock = kThreads / kWarp;
constexpr unsigned kFullMask = 0xffffffffu;

// Reductions over the 32 lanes; every lane gets the result, combined in a fixed pattern.
__device__ float warp_sum(float x) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
    return x;
}
__device__ float warp_max(float x) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
    return x;
}

struct Range {
    int64_t first, last;  // inclusive; empty when last < first
};

// Keys c of the block that the query at absolute position p sees (attention_key_visible's rule).
__device__ Range keys_seen(const AttentionBlockDims& d, int64_t p) {
    const int64_t first = d.window > 0 ? p - d.window + 1 - d.k_pos0 : 0;
    const int64_t last = p - d.k_pos0;
    return {first > 0 ? first : 0, last < d.nk - 1 ? last : d.nk - 1};
}

// Queries i that see the key at absolute position s: the mirror image.
__device__ Range queries_seeing(const AttentionBlockDims& d, int64_t s) {
    const int64_t first = s - d.q_pos0;
    const int64_t last = d.window > 0 ? s + d.window - 1 - d.q_pos0 : d.nq - 1;
    return {first > 0 ? first : 0, last < d.nq - 1 ? last : d.nq - 1};
}

// A row of hd floats as this lane's columns lane, lane + 32, ... (0 past hd).
template <int HD>
__device__ void load_row(float (&r)[HD / kWarp], const float* x, int64_t hd, int lane) {
#pragma unroll
    for (int j = 0; j < HD / kWarp; ++j) {
        const int64_t e = lane + kWarp * j;
        r[j] = e < hd ? x[e] : 0.0f;
    }
}

// <a, x> over hd, a in this lane's registers, x a row in global memory.
template <int HD>
__device__ float row_dot(const float (&a)[HD / kWarp], const float* x, int64_t hd, int lane) {
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < HD / kWarp; ++j) {
        const int64_t e = lane + kWarp * j;
        if (e < hd) part += a[j] * x[e];
    }
    return warp_sum(part);
}

// acc += alpha * x over this lane's columns.
template <int HD>
__device__ void row_axpy(float (&acc)[HD / kWarp], float alpha, const float* x, int64_t hd, int lane) {
#pragma unroll
    for (int j = 0; j < HD / kWarp; ++j) {
        const int64_t e = lane + kWarp * j;
        if (e < hd) acc[j] += alpha * x[e];
    }
}

// Idea: one warp per query row, its lanes splitting hd; the block's visible keys in groups of
// 32 under an online softmax (one rescale of the accumulators per group, not per key).
// out: (B, nq, Hq, hd); lse: (B, Hq, nq); q: (B, nq, Hq, hd); k, v: (B, nk, Hkv, hd).
// Warp w of block x owns row x * 4 + w of lse's order (b, h, i).
template <int HD>
__global__ void __launch_bounds__(kThreads)
    attention_block_forward_kernel(AttentionBlockDims d, float* out, float* lse, const float* q, const float* k, const float* v) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    if (row >= d.B * d.Hq * d.nq) return;  // whole warps leave together, so the shuffles stay full-warp
    const int64_t i = row % d.nq, h = row / d.nq % d.Hq, b = row / (d.nq * d.Hq), g = h / (d.Hq / d.Hkv);
    const float scale = 1.0f / sqrtf(static_cast<float>(d.hd));
    float* oi = out + ((b * d.nq + i) * d.Hq + h) * d.hd;
    auto kv_row = [&](int64_t c) { return ((b * d.nk + c) * d.Hkv + g) * d.hd; };
    const Range keys = keys_seen(d, d.q_pos0 + i);
    float qi[HD / kWarp], acc[HD / kWarp] = {};
    load_row<HD>(qi, q + ((b * d.nq + i) * d.Hq + h) * d.hd, d.hd, lane);
    float m = -INFINITY, l = 0.0f;  // running max and sum of the row, the same in every lane
    for (int64_t c0 = keys.first; c0 <= keys.last; c0 += kWarp) {
        const int count = keys.last + 1 - c0 < kWarp ? static_cast<int>(keys.last + 1 - c0) : kWarp;
        float score = -INFINITY;  // lane j: key c0 + j's score
        for (int j = 0; j < count; ++j) {
            const float s = scale * row_dot<HD>(qi, k + kv_row(c0 + j), d.hd, lane);
            if (lane == j) score = s;
        }
        const float m_new = fmaxf(m, warp_max(score));  // finite: the group has a key
        const float correction = expf(m - m_new);       // first group: exp(-inf) = 0
        const float p = expf(score - m_new);            // lanes past count: exp(-inf) = 0
        l = l * correction + warp_sum(p);
        m = m_new;
#pragma unroll
        for (int j = 0; j < HD / kWarp; ++j) acc[j] *= correction;
        for (int j = 0; j < count; ++j) row_axpy<HD>(acc, __shfl_sync(kFullMask, p, j), v + kv_row(c0 + j), d.hd, lane);
    }
    const bool seen = keys.last >= keys.first;  // else: out = 0, lse = -inf, "nothing to add" for the merge
#pragma unroll
    for (int j = 0; j < HD / kWarp; ++j) {
        const int64_t e = lane + kWarp * j;
        if (e < d.hd) oi[e] = seen ? acc[j] / l : 0.0f;
    }
    if (lane == 0) lse[row] = seen ? m + logf(l) : -INFINITY;
}

// Idea: the online-softmax step with a whole block in place of a tile, one warp per query row.
// out, out_b: (B, nq, Hq, hd); lse, lse_b: (B, Hq, nq); out and lse updated in place.
__global__ void __launch_bounds__(kThreads)
    attention_block_merge_kernel(int64_t B, int64_t nq, int64_t Hq, int64_t hd, float* out, float* lse, const float* out_b,
                                 const float* lse_b) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    if (row >= B * Hq * nq) return;
    const int64_t i = row % nq, h = row / nq % Hq, b = row / (nq * Hq);
    const float la = lse[row], lb = lse_b[row];
    if (lb == -INFINITY) return;  // the block added nothing to this row
    float* o = out + ((b * nq + i) * Hq + h) * hd;
    const float* ob = out_b + ((b * nq + i) * Hq + h) * hd;
    float merged = lb;
    if (la == -INFINITY) {  // nothing so far: take the block as it is
        for (int64_t e = lane; e < hd; e += kWarp) o[e] = ob[e];
    } else {
        // the larger of the two in the exponent keeps both weights <= 1
        const float m = fmaxf(la, lb);
        merged = m + logf(expf(la - m) + expf(lb - m));
        const float wa = expf(la - merged), wb = expf(lb - merged);
        for (int64_t e = lane; e < hd; e += kWarp) o[e] = wa * o[e] + wb * ob[e];
    }
    __syncwarp();  // every lane has read lse[row] before lane 0 replaces it
    if (lane == 0) lse[row] = merged;
}

// Idea: one warp per query row for dq, with D_i = <dO_i, O_i> computed once and saved for the
// key-row kernel; P is rebuilt from the FINAL lse, so this block's share is exact.
// dq: (B, nq, Hq, hd) accumulated; D: (B, Hq, nq) written; dout, q, out: (B, nq, Hq, hd);
// k, v: (B, nk, Hkv, hd); lse: (B, Hq, nq).
template <int HD>
__global__ void __launch_bounds__(kThreads)
    attention_block_dq_kernel(AttentionBlockDims d, float* dq, float* D, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    if (row >= d.B * d.Hq * d.nq) return;
    const int64_t i = row % d.nq, h = row / d.nq % d.Hq, b = row / (d.nq * d.Hq), g = h / (d.Hq / d.Hkv);
    const int64_t q_offset = ((b * d.nq + i) * d.Hq + h) * d.hd;
    const float scale = 1.0f / sqrtf(static_cast<float>(d.hd));
    float qi[HD / kWarp], doi[HD / kWarp], acc[HD / kWarp] = {};
    load_row<HD>(qi, q + q_offset, d.hd, lane);
    load_row<HD>(doi, dout + q_offset, d.hd, lane);
    const float D_i = row_dot<HD>(doi, out + q_offset, d.hd, lane);
    if (lane == 0) D[row] = D_i;
    const float lse_i = lse[row];
    const Range keys = keys_seen(d, d.q_pos0 + i);  // none when lse_i = -inf: no key of any block is seen
    for (int64_t c = keys.first; c <= keys.last; ++c) {
        const float* kc = k + ((b * d.nk + c) * d.Hkv + g) * d.hd;
        const float* vc = v + ((b * d.nk + c) * d.Hkv + g) * d.hd;
        const float p = expf(scale * row_dot<HD>(qi, kc, d.hd, lane) - lse_i);
        const float ds = p * (row_dot<HD>(doi, vc, d.hd, lane) - D_i);
        row_axpy<HD>(acc, scale * ds, kc, d.hd, lane);
    }
    float* dqi = dq + q_offset;
#pragma unroll
    for (int j = 0; j < HD / kWarp; ++j) {
        const int64_t e = lane + kWarp * j;
        if (e < d.hd) dqi[e] += acc[j];
    }
}

// Idea: one warp per key row of a KV head, summing over the group's query heads and the queries
// that see it, so dk, dv are written once, without atomics.
// dk, dv: (B, nk, Hkv, hd) overwritten; D, lse: (B, Hq, nq); dout, q: (B, nq, Hq, hd); k, v: (B, nk, Hkv, hd).
// Warp w of block x owns row x * 4 + w of dk's order (b, c, g).
template <int HD>
__global__ void __launch_bounds__(kThreads)
    attention_block_dkdv_kernel(AttentionBlockDims d, float* dk, float* dv, const float* D, const float* dout, const float* q,
                                const float* k, const float* v, const float* lse) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    if (row >= d.B * d.nk * d.Hkv) return;
    const int64_t g = row % d.Hkv, c = row / d.Hkv % d.nk, b = row / (d.Hkv * d.nk), group = d.Hq / d.Hkv;
    const float scale = 1.0f / sqrtf(static_cast<float>(d.hd));
    float kc[HD / kWarp], vc[HD / kWarp], dk_acc[HD / kWarp] = {}, dv_acc[HD / kWarp] = {};
    load_row<HD>(kc, k + row * d.hd, d.hd, lane);
    load_row<HD>(vc, v + row * d.hd, d.hd, lane);
    const Range queries = queries_seeing(d, d.k_pos0 + c);
    for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t i = queries.first; i <= queries.last; ++i) {
            const float* qi = q + ((b * d.nq + i) * d.Hq + h) * d.hd;
            const float* doi = dout + ((b * d.nq + i) * d.Hq + h) * d.hd;
            const int64_t r = (b * d.Hq + h) * d.nq + i;
            const float p = expf(scale * row_dot<HD>(kc, qi, d.hd, lane) - lse[r]);
            const float ds = p * (row_dot<HD>(vc, doi, d.hd, lane) - D[r]);
            row_axpy<HD>(dv_acc, p, doi, d.hd, lane);
            row_axpy<HD>(dk_acc, scale * ds, qi, d.hd, lane);
        }
#pragma unroll
    for (int j = 0; j < HD / kWarp; ++j) {
        const int64_t e = lane + kWarp * j;
        if (e < d.hd) {
            dk[row * d.hd + e] = dk_acc[j];
            dv[row * d.hd + e] = dv_acc[j];
        }
    }
}

// ---- launchers ----

unsigned blocks_for(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

// The checks src/ops/attention_block.cpp makes with tensor names, for direct callers.
void check_dims(const AttentionBlockDims& d, const char* op) {
    ITTT_CHECK(d.B >= 0 && d.nq >= 0 && d.nk >= 0 && d.Hq > 0 && d.Hkv > 0 && d.hd > 0 && d.Hq % d.Hkv == 0 && d.q_pos0 >= 0 &&
                   d.k_pos0 >= 0,
               op, ": bad sizes (B ", d.B, ", nq ", d.nq, ", nk ", d.nk, ", Hq ", d.Hq, ", Hkv ", d.Hkv, ", hd ", d.hd, ", q_pos0 ",
               d.q_pos0, ", k_pos0 ", d.k_pos0, ")");
    ITTT_CHECK(d.hd <= kAttentionCudaMaxHeadDim, op, ": head_dim ", d.hd, " exceeds the CUDA kernels' ceiling of ",
               kAttentionCudaMaxHeadDim, " (a warp's lanes keep hd / 32 columns each in registers)");
    const int64_t rows = d.B * d.Hq * d.nq > d.B * d.nk * d.Hkv ? d.B * d.Hq * d.nq : d.B * d.nk * d.Hkv;
    ITTT_CHECK((rows + kRowsPerBlock - 1) / kRowsPerBlock <= INT32_MAX, op, ": ", rows, " rows exceed the grid");
}

// Runs body(std::integral_constant<int, HD>) with the smallest HD of 32, 64, 128 that holds hd.
template <class Body>
void with_head_tile(int64_t hd, Body body) {
    if (hd <= 32) body(std::integral_constant<int, 32>{});
    else if (hd <= 64) body(std::integral_constant<int, 64>{});
    else body(std::integral_constant<int, 128>{});
}

}  // namespace

void attention_block_forward_cuda(const AttentionBlockDims& d, float* out, float* lse, const float* q, const float* k, const float* v) {
    check_dims(d, "attention_block_forward_cuda");
    const int64_t rows = d.B * d.Hq * d.nq;
    if (rows == 0) return;  // a zero-sized grid is a launch error
    with_head_tile(d.hd, [&](auto hd_tile) {
        ITTT_LAUNCH((attention_block_forward_kernel<hd_tile.value>), blocks_for(rows), kThreads, 0, 0)(d, out, lse, q, k, v);
    });
    CUDA_CHECK(cudaGetLastError());
}

void attention_block_merge_cuda(int64_t B, int64_t nq, int64_t Hq, int64_t hd, float* out, float* lse, const float* out_b,
                                const float* lse_b) {
    ITTT_CHECK(B >= 0 && nq >= 0 && Hq > 0 && hd >= 0, "attention_block_merge_cuda: bad sizes (B ", B, ", nq ", nq, ", Hq ", Hq, ", hd ",
               hd, ")");
    const int64_t rows = B * Hq * nq;
    if (rows == 0) return;
    ITTT_CHECK((rows + kRowsPerBlock - 1) / kRowsPerBlock <= INT32_MAX, "attention_block_merge_cuda: ", rows, " rows exceed the grid");
    ITTT_LAUNCH(attention_block_merge_kernel, blocks_for(rows), kThreads, 0, 0)(B, nq, Hq, hd, out, lse, out_b, lse_b);
    CUDA_CHECK(cudaGetLastError());
}

void attention_block_backward_cuda(const AttentionBlockDims& d, float* dq, float* dk, float* dv, const float* dout, const float* q,
                                   const float* k, const float* v, const float* out, const float* lse) {
    check_dims(d, "attention_block_backward_cuda");
    const int64_t q_rows = d.B * d.Hq * d.nq, k_rows = d.B * d.nk * d.Hkv;
    if (k_rows == 0 && q_rows == 0) return;
    // D_i for every query row: written by the dq kernel, read by the dk/dv kernel; freed in stream order.
    float* D = nullptr;
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&D), static_cast<size_t>(q_rows > 0 ? q_rows : 1) * sizeof(float), 0));
    with_head_tile(d.hd, [&](auto hd_tile) {
        if (q_rows > 0) {
            ITTT_LAUNCH((attention_block_dq_kernel<hd_tile.value>), blocks_for(q_rows), kThreads, 0, 0)(d, dq, D, dout, q, k, v, out, lse);
            CUDA_CHECK(cudaGetLastError());
        }
        if (k_rows > 0) {
            ITTT_LAUNCH((attention_block_dkdv_kernel<hd_tile.value>), blocks_for(k_rows), kThreads, 0, 0)(d, dk, dv, D, dout, q, k, v, lse);
            CUDA_CHECK(cudaGetLastError());
        }
    });
    CUDA_CHECK(cudaFreeAsync(D, 0));
}

}  // namespace ittt::kernels
