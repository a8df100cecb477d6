// attention.h: causal grouped-query attention with an optional sliding window, on the CPU and GPU.
//
// Versions: a naive one (the reference) and a flash one on each device, one function each;
// their numbers, ideas and test tolerances are the attention op's rows in src/ops/attention.cpp
// (`build/ittt info --kernels`). The CUDA kernels and how to profile them: attention.cu.
//
// Layout (row-major, contiguous):
//   q, out, dout, dq: (B, nq, Hq, hd)    element ((b*nq + i)*Hq + h)*hd + c
//   k, v, dk, dv:     (B, cap, Hkv, hd)  element ((b*cap + s)*Hkv + g)*hd + c
//   lse:              (B, Hq, nq)        element (b*Hq + h)*nq + i
// Query head h reads KV head g = h / (Hq/Hkv). Query i sits at absolute position
// p = q_pos0 + i and sees keys s with p - window < s <= p (window <= 0: every s <= p).
// Scores are scaled by 1/sqrt(hd). The derivations are in docs/attention.md.
#pragma once
#include <cstdint>

#include "kernels/gemm/gemm.h"

// Marks a function for the device as well when nvcc compiles it (attention.cu); a
// plain inline function for g++. The same definition as in runtime/rng.h.
#ifndef ITTT_HOST_DEVICE
#if defined(__CUDACC__)
#define ITTT_HOST_DEVICE __host__ __device__
#else
#define ITTT_HOST_DEVICE
#endif
#endif

namespace ittt::kernels {

struct AttentionDims {
    int64_t B = 1;       // batch
    int64_t nq = 0;      // queries per sequence
    int64_t cap = 0;     // rows of the KV buffers; keys 0 .. q_pos0+nq-1 are filled
    int64_t Hq = 1;      // query heads
    int64_t Hkv = 1;     // KV heads, Hq % Hkv == 0
    int64_t hd = 1;      // head dimension
    int64_t q_pos0 = 0;  // absolute position of query 0
    int64_t window = 0;  // sliding window (<= 0: none)
};

// Whether the query at absolute position p sees the key at position s: the one
// place the masking rule lives (the tests restate it independently); the CUDA
// kernels call it too.
ITTT_HOST_DEVICE inline bool attention_key_visible(int64_t s, int64_t p, int64_t window) {
    return s <= p && (window <= 0 || s > p - window);
}

// Tile sizes of the flash version. Any values give the same result; these keep one K and
// one V tile (64 x hd) in L1/L2 while the rows of a query tile stream over them.
constexpr int64_t kAttentionQueryTile = 32;
constexpr int64_t kAttentionKeyTile = 64;

// Every CPU version takes `gemm`, the CPU GEMM for its products (the gemm op's selected
// version, so the tiles run the AVX-512 GEMM where version 0 picks it); the naive version
// has no tiles and ignores it.

// ---- naive ----

// out: (B, nq, Hq, hd); lse: (B, Hq, nq); q: (B, nq, Hq, hd); k, v: (B, cap, Hkv, hd)
template <class T>
void attention_naive_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v, GemmCpuFn<T>* gemm);

// Training form (q_pos0 = 0, cap = nq). Recomputes the probabilities from q and k with
// its own max and sum, so it needs neither out nor lse and checks them independently: it
// takes them only to share the flash version's signature, and ignores them.
// dq: (B, nq, Hq, hd); dk, dv: (B, nq, Hkv, hd) overwritten; dout, q: (B, nq, Hq, hd);
// k, v: (B, nq, Hkv, hd)
template <class T>
void attention_naive_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const T* out, const T* lse, GemmCpuFn<T>* gemm);

// ---- flash (tiled online softmax) ----

// out: (B, nq, Hq, hd); lse: (B, Hq, nq); q: (B, nq, Hq, hd); k, v: (B, cap, Hkv, hd)
template <class T>
void attention_flash_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v, GemmCpuFn<T>* gemm);

// Training form (q_pos0 = 0, cap = nq).
// dq: (B, nq, Hq, hd); dk, dv: (B, nq, Hkv, hd) overwritten; dout, q, out: (B, nq, Hq, hd);
// k, v: (B, nq, Hkv, hd); lse: (B, Hq, nq) as saved by the forward
template <class T>
void attention_flash_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const T* out, const T* lse, GemmCpuFn<T>* gemm);

// ---- flash laid out for AVX-512 registers (attention_flash_avx512_cpu.cpp) ----
// The same signatures and results (within F32 rounding) as flash; the keys of a score row in
// the vector lanes, key blocks at fixed positions, a one-pass backward. `gemm` is not used: its
// products are register tiles of their own. Runs only where cpu_runs_avx512().
template <class T>
void attention_flash_avx512_forward_cpu(const AttentionDims& dims, T* out, T* lse, const T* q, const T* k, const T* v,
                                        GemmCpuFn<T>* gemm);
template <class T>
void attention_flash_avx512_backward_cpu(const AttentionDims& dims, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                         const T* v, const T* out, const T* lse, GemmCpuFn<T>* gemm);
// That file's GCC 12 pin (tests/test_cpu_isa.cpp): {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}.
void attention_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (attention.cu), F32; every pointer is device memory ----
// The same layouts, masking rule and signatures as the CPU versions above.

// The flash version keeps a (32, head_dim) tile of each operand in shared memory and its
// accumulators in registers, so head_dim has a compile-time ceiling.
constexpr int64_t kAttentionCudaMaxHeadDim = 128;

using AttentionForwardCuda = void(const AttentionDims& dims, float* out, float* lse, const float* q, const float* k,
                                  const float* v);
using AttentionBackwardCuda = void(const AttentionDims& dims, float* dq, float* dk, float* dv, const float* dout, const float* q,
                                   const float* k, const float* v, const float* out, const float* lse);
// One block per (batch, head, query) with its score row in shared memory; the backward adds
// into dk, dv with float atomics (not bitwise reproducible) and ignores out and lse.
AttentionForwardCuda attention_naive_forward_cuda;
AttentionBackwardCuda attention_naive_backward_cuda;
// 32-query tiles in shared memory, 32-key tiles streamed through it under an online softmax,
// window tiles skipped; backward in two passes without atomics; head_dim <= 128.
AttentionForwardCuda attention_flash_forward_cuda;
AttentionBackwardCuda attention_flash_backward_cuda;

}  // namespace ittt::kernels
