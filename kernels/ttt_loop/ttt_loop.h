// ttt_loop.h: the chunk loop of In-Place TTT as a kernel: a running fast weight.
//
// For each sequence b, chunks i = 0 .. T-1 in order (chunk i: rows i*C .. min(i*C+C, n)-1):
//
//     O_[i]   = Z_[i] W_i^T                          (rows x d)    W_0 = Wd       apply, ...
//     W_{i+1} = W_i + eta * c_i * V_[i]^T Z_[i]      (d x f)       c_i = clipping factor (1 unclipped)   ... then update
//
// This is THE chunk step of the layer (docs/ttt.md, "One chunk step"): the loop and flat forms
// run it, and so does streaming, which is this loop started from a state (a running W and the
// rows its current chunk already holds, TttLoopShape::start). The step's norm ||eta dW_i||_F and
// c_i are ttt_update_norm and ttt_clip_factor of kernels/ttt_delta/ttt_delta.h.
//
// This is the parallel form O_[i] = Z_[i] (Wd + eta S_i)^T of docs/ttt.md with the prefix
// sum S_i kept as a running weight instead of materialised (B, T, d, f) tensors. Each chunk
// costs two GEMMs of rows x d x f: the apply is ONE product with W_i (the parallel form does
// Z Wd^T for all rows plus a correction Z_[i] S_i^T per chunk, twice the multiply-adds), and
// the scan is the running sum. In training the update GEMM adds eta V_[i]^T Z_[i] straight
// into W (beta = 1); when the step's norm is wanted (inference reports it, clipping scales by
// it) the delta is formed first and folded in by one pass over W. The last chunk's update is
// never used by an output, so it is computed only when the streaming state asks for it.
//
// Backward, chunks in reverse with a running G = sum_{j>i} P_j, P_j = dO_[j]^T Z_[j]:
//
//     dZ_[i] = dO_[i] W_i + eta V_[i] G       dV_[i] = eta Z_[i] G^T       G += Wbar_i
//
// and dWd = sum_i Wbar_i is G after chunk 0. W_i comes either from the forward's store of every
// W_i (B*T*d*f numbers: the "loop" form) or is rebuilt from the last one, W_i = W_{i+1} - eta
// V_[i]^T Z_[i], the step undone by the same GEMM as in the forward (B*d*f numbers,
// flat in T: the "flat" form; one more GEMM per chunk, and W_i carries the rounding of the
// subtractions since the last chunk; docs/ttt.md measures it).
//
// A chunk folds no update when eta == 0, when it is at or past update_limit, or when its V
// rows are all exactly zero: then V^T Z is exactly zero and skipping it keeps W bitwise equal
// to Wd, so zero conv weights give the plain MLP's outputs bit for bit (the drop-in property),
// provided the GEMM's result for a row does not depend on the other rows it is computed with
// (true of every CPU GEMM version; tests/test_gemm.cpp pins it).
//
// On the CPU, sequences run in parallel over the OpenMP threads (each GEMM then runs on its
// thread); with fewer sequences than threads they run one after the other with threaded GEMMs.
// Either way the result is the same bits: the GEMM's result does not depend on its thread count,
// and dWd adds the per-sequence G in sequence order. On CUDA the chunks run one after the other
// and each GEMM is strided-batched over the B sequences (ttt_loop.cu).
//
// One version per device (their rows: ttt_loop_versions.h), forward and backward on both; the
// GEMMs inside are whichever GEMM the gemm op selects.
#pragma once
#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace ittt::kernels {

struct TttLoopShape {
    int64_t batch = 1, n = 0, d = 0, f = 0, chunk = 1;
    // Streaming: z and v begin with the `start` rows that the current chunk held before this call
    // (0 <= start < chunk). Their outputs were computed then: o holds rows start .. n-1 only.
    int64_t start = 0;
    int64_t chunks() const { return (n + chunk - 1) / chunk; }
};

// What a forward keeps or reports besides O; every pointer may be null.
template <class T>
struct TttLoopForwardOut {
    T* w_all = nullptr;          // (B, T, d, f): W_i of every chunk (the loop form's store for the backward)
    T* w_last = nullptr;         // (B, d, f): W_{T-1}, the last chunk's weight (where the flat backward starts)
    T* w_state = nullptr;        // (B, d, f): the streaming state. Each sequence starts from it when wd is null;
                                 // it ends as W after the update of every complete chunk. Not with w_all.
    double* norm = nullptr;      // (B*T): ||eta V_[i]^T Z_[i]||_F before clipping; NaN for an update not computed
    double* applied = nullptr;   // (B*T): the norm of the step folded into W (0 when none is)
};

struct TttLoopUpdates {
    int64_t limit = -1;     // chunks >= limit fold no update (-1: every chunk does)
    double clip_tau = 0;    // > 0: scale each eta dW_i down to Frobenius norm tau (inference only)
};

// o: (B, n - start, d) overwritten; z: (B, n, f); v: (B, n, d), whose rows are read only for the
// chunks whose update is computed; wd: (d, f), or null to start from out.w_state.
// workspace: scratch, (B, d, f) for one delta per sequence, then (B, d, f) for the running W
// unless out.w_all or out.w_state holds it.
// gemm: the CPU GEMM every product uses (the gemm op's selected version).
template <class T>
void ttt_loop_forward_cpu(const TttLoopShape& s, T* o, const T* z, const T* v, const T* wd, T eta, const TttLoopUpdates& updates,
                          const TttLoopForwardOut<T>& out, T* workspace, GemmCpuFn<T>* gemm);

// The same on the GPU, F32, device pointers: one host loop over the chunks launching, per chunk,
// a GEMM for the apply, one for the delta (each batched over the B sequences) and a kernel for the
// update. out.norm and out.applied are device arrays. workspace as on the CPU.
// gemm: the CUDA GEMM every product uses (the gemm op's selected version).
void ttt_loop_forward_cuda(const TttLoopShape& s, float* o, const float* z, const float* v, const float* wd, float eta,
                           const TttLoopUpdates& updates, const TttLoopForwardOut<float>& out, float* workspace,
                           GemmCudaLauncher* gemm);

// dz: (B, n, f), dv: (B, n, d) overwritten; dwd: (d, f) accumulated; dout: (B, n, d);
// z, v as in the forward (start = 0). Exactly one of w_all (B, T, d, f) and w_last (B, d, f), as the
// forward stored them. updates.limit as in the forward; clipping has no backward (clip_tau must be 0).
// workspace: (B, 2, d, f) scratch (per sequence G and the rebuilt W).
template <class T>
void ttt_loop_backward_cpu(const TttLoopShape& s, T* dz, T* dv, T* dwd, const T* dout, const T* z, const T* v, T eta,
                           const TttLoopUpdates& updates, const T* w_all, const T* w_last, T* workspace, GemmCpuFn<T>* gemm);

// The backward on the GPU, F32, device pointers, the same contract: chunks in reverse, five GEMMs
// per chunk batched over the sequences (six in the flat form, which rebuilds W_{i-1}).
void ttt_loop_backward_cuda(const TttLoopShape& s, float* dz, float* dv, float* dwd, const float* dout, const float* z, const float* v,
                            float eta, const TttLoopUpdates& updates, const float* w_all, const float* w_last, float* workspace,
                            GemmCudaLauncher* gemm);

}  // namespace ittt::kernels
