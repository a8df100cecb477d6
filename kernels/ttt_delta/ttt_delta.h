// ttt_delta.h: the per-chunk fast-weight update of In-Place TTT, and its clipping.
//
//   delta[b,i] = V_[i]^T Z_[i] = sum over the rows t of chunk i of v[b,t,:] z[b,t,:]^T   (d x f)
//
// Chunk i holds rows i*C .. min(i*C + C, n) - 1 of each sequence; the last chunk
// may be short. The backward pass calls the same kernel with dO in place of V
// (Wbar_i = dO_[i]^T Z_[i], docs/ttt.md).
//
// Clipping (inference only, docs/method.md section 4): if ||eta * dW_i||_F > tau,
// scale dW_i so that ||eta * dW_i||_F = tau. The norm is summed in double.
// The size of a step and the clipping rule are the two functions below: every form of
// the layer (parallel, loop, flat, streaming) and every device reads them from here.
//
// Versions, one function each: two on the CPU (loops, per-chunk GEMM), three on CUDA (naive,
// shared-memory tiles, strided-batched GEMM calls); their numbers, ideas and tolerances are the
// ttt_delta op's rows in ttt_delta_versions.h (`build/ittt info --kernels`). ttt_clip_deltas has
// one version per device (one block per matrix on CUDA).
#pragma once
#include <math.h>

#include <cstdint>

#include "kernels/gemm/gemm.h"

// Marks a function for the device as well when nvcc compiles it; a plain inline
// function for g++. The same definition as in runtime/rng.h.
#ifndef ITTT_HOST_DEVICE
#if defined(__CUDACC__)
#define ITTT_HOST_DEVICE __host__ __device__
#else
#define ITTT_HOST_DEVICE
#endif
#endif

namespace ittt::kernels {

// The update rule's two numbers, defined once (docs/ttt.md, "One chunk step").
// The size of chunk i's step eta dW_i, ||eta dW_i||_F, from sum(dW_i^2) summed in double:
ITTT_HOST_DEVICE inline double ttt_update_norm(double eta, double sum_squares) { return fabs(eta) * sqrt(sum_squares); }
// What clipping multiplies that step by: tau / norm when tau > 0 and norm > tau (the step
// then has norm tau), else 1. A NaN norm is not clipped, so the caller sees it.
ITTT_HOST_DEVICE inline double ttt_clip_factor(double norm, double tau) { return tau > 0 && norm > tau ? tau / norm : 1.0; }

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
// gemm: the CUDA GEMM the GEMM version calls (the gemm op's selected version); the others ignore it.
using TttChunkDeltaCuda = void(float* delta, const float* v, const float* z, int64_t batch, int64_t n, int64_t d, int64_t f,
                               int64_t chunk, GemmCudaLauncher* gemm);
// One thread per output element, a dot product down the chunk.
TttChunkDeltaCuda ttt_chunk_delta_naive_cuda;
// 16 x 16 shared-memory tiles over (d, f): each loaded v and z value serves 16 outputs.
TttChunkDeltaCuda ttt_chunk_delta_tiled_cuda;
// dW_i = V_[i]^T Z_[i] is a TN GEMM per chunk: one strided-batched call of the tiled GEMM over
// all B*T chunks when n % C == 0, else a few (kernels/ttt_delta/chunk_batches.h).
TttChunkDeltaCuda ttt_chunk_delta_gemm_cuda;

// delta: (count, size); the norm of each matrix is summed in double in a fixed order.
void ttt_clip_deltas_cuda(float* delta, int64_t count, int64_t size, double eta, double tau);

}  // namespace ittt::kernels
