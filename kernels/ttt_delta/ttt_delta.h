// ttt_delta.h: the per-chunk fast-weight update of In-Place TTT, and its clipping.
//
//   delta[b,i] = V_[i]^T Z_[i] = sum over the rows t of chunk i of v[b,t,:] z[b,t,:]^T   (d x f)
//
// Chunk i holds rows i*C .. min(i*C + C, n) - 1 of each sequence; the last chunk
// may be short. The backward pass calls the same kernel with dO in place of V
// (P_i = dO_[i]^T Z_[i], docs/ttt.md).
//
// Clipping (inference only, docs/method.md section 4): if ||eta * delta_i||_F > tau,
// scale delta_i so that ||eta * delta_i||_F = tau. The norm is summed in double.
//
// Versions: two per device, one function each; their numbers, ideas and tolerances are the
// ttt_delta op's rows in src/ops/ttt.cpp (`build/ittt info --kernels`). ttt_clip_deltas has
// one version per device (one block per matrix on CUDA).
#pragma once
#include <cstdint>

namespace ittt::kernels {

// One output row (b, i, a) per task, rank-1 updates over the chunk's rows.
// delta: (B, T, d, f) overwritten, T = ceil(n / chunk); v: (B, n, d); z: (B, n, f).
template <class T>
void ttt_chunk_delta_cpu(T* delta, const T* v, const T* z, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk);

// Each chunk as one call of the blocked GEMM (V_[i]^T Z_[i], TN); the same contract.
template <class T>
void ttt_chunk_delta_gemm_cpu(T* delta, const T* v, const T* z, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk);

// delta: (count, size), one flattened d x f matrix per row; tau > 0.
template <class T>
void ttt_clip_deltas_cpu(T* delta, int64_t count, int64_t size, double eta, double tau);

// ---- CUDA (ttt_delta.cu), F32, device pointers ----

// delta: (B, T, d, f) overwritten, T = ceil(n / chunk); v: (B, n, d); z: (B, n, f).
using TttChunkDeltaCuda = void(float* delta, const float* v, const float* z, int64_t batch, int64_t n, int64_t d, int64_t f,
                               int64_t chunk);
// One thread per output element, a dot product down the chunk.
TttChunkDeltaCuda ttt_chunk_delta_naive_cuda;
// 16 x 16 shared-memory tiles over (d, f): each loaded v and z value serves 16 outputs.
TttChunkDeltaCuda ttt_chunk_delta_tiled_cuda;

// delta: (count, size); the norm of each matrix is summed in double in a fixed order.
void ttt_clip_deltas_cuda(float* delta, int64_t count, int64_t size, double eta, double tau);

}  // namespace ittt::kernels
