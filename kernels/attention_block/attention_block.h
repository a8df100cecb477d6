// attention_block.h: attention of a run of queries against one block of keys that may
// start anywhere in the sequence: the piece ring attention is made of.
//
// kernels/attention computes a whole causal softmax in one call, with the keys always
// starting at position 0. Ring attention (src/parallel/attention_parallel.cpp) sees the
// keys one rank's block at a time, so it needs three smaller steps (docs/parallelism.md):
//
//   forward   out_b, lse_b = softmax over the visible keys of THIS block only
//   merge     (out, lse) <- (out, lse) combined with (out_b, lse_b)    (online softmax)
//   backward  this block's share of dq, and its dk, dv, from the FINAL out and lse
//
// The merge is the online-softmax step of docs/attention.md with a whole block in place
// of a tile: lse' = log(e^lse + e^lse_b), out' = e^(lse - lse') out + e^(lse_b - lse') out_b.
// The backward is exact per block because the softmax backward needs only the final
// lse_i (to rebuild P_is = exp(S_is - lse_i)) and D_i = <dO_i, O_i>, both per query row.
//
// One version per device. CPU (float, double): plain loops over the visible (query, key)
// pairs, parallel over query rows (forward, dq) and key rows (dk, dv) without atomics.
// CUDA (attention_block.cu, F32): the same split, one warp per row, its lanes splitting hd.
//
// Layout (row-major, contiguous), query head h reads KV head h / (Hq/Hkv):
//   q, out, dout, dq: (B, nq, Hq, hd)    lse: (B, Hq, nq)
//   k, v, dk, dv:     (B, nk, Hkv, hd)
// Query i sits at absolute position q_pos0 + i, key c at k_pos0 + c; visibility is
// attention_key_visible(s, p, window) of kernels/attention/attention.h.
#pragma once
#include <cstdint>

namespace ittt::kernels {

struct AttentionBlockDims {
    int64_t B = 1, nq = 0, nk = 0, Hq = 1, Hkv = 1, hd = 1;
    int64_t q_pos0 = 0;  // absolute position of query 0
    int64_t k_pos0 = 0;  // absolute position of key 0 of the block
    int64_t window = 0;  // sliding window (<= 0: none)
};

// out, lse overwritten. A query row that sees no key of the block gets out = 0 and
// lse = -inf, which the merge treats as "nothing to add".
template <class T>
void attention_block_forward_cpu(const AttentionBlockDims& dims, T* out, T* lse, const T* q, const T* k, const T* v);

// out, lse (B, nq, Hq, hd), (B, Hq, nq): the running result, updated in place with
// a block's out_b, lse_b of the same shapes.
template <class T>
void attention_block_merge_cpu(int64_t B, int64_t nq, int64_t Hq, int64_t hd, T* out, T* lse, const T* out_b, const T* lse_b);

// out, lse: the FINAL attention output and log-sum-exp over all blocks.
// dq accumulated (+=); dk, dv (B, nk, Hkv, hd) overwritten with this block's gradients.
template <class T>
void attention_block_backward_cpu(const AttentionBlockDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const T* out, const T* lse);

// ---- CUDA (attention_block.cu), F32; every pointer is device memory ----
// The same contracts as the CPU functions above; head_dim <= kAttentionCudaMaxHeadDim (128).
void attention_block_forward_cuda(const AttentionBlockDims& dims, float* out, float* lse, const float* q, const float* k,
                                  const float* v);
void attention_block_merge_cuda(int64_t B, int64_t nq, int64_t Hq, int64_t hd, float* out, float* lse, const float* out_b,
                                const float* lse_b);
void attention_block_backward_cuda(const AttentionBlockDims& dims, float* dq, float* dk, float* dv, const float* dout,
                                   const float* q, const float* k, const float* v, const float* out, const float* lse);

}  // namespace ittt::kernels
