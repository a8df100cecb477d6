// ttt_apply.h: the per-chunk fast-weight corrections of In-Place TTT.
//
// The layer's output is o_[i] = z_[i] (wd + eta s_i)^T. The ops layer computes
// the big shared part z @ wd^T with the same gemm the plain MLP uses, then these
// kernels add only what TTT changes (docs/ttt.md):
//
//   forward:   o_[i]  += eta * z_[i] s_i^T
//   backward:  dz_[i] += eta * (do_[i] s_i + v_[i] g_i)      (dz holds do @ wd on entry)
//              dv_[i]  = eta * z_[i] g_i^T
//
// A chunk whose s_i is exactly zero is skipped rather than multiplied by zero:
// that makes s == 0 leave o bit-identical to the gemm's output (adding +0 would
// turn a -0 into +0, and 0 * inf is NaN), and it skips chunk 0, whose s_0 is
// always zero, for free.
//
// Versions, one function each: on the CPU direct loops, then per-chunk GEMM calls; on CUDA a
// naive kernel, shared-memory tiles, then strided-batched GEMM calls; their rows are in
// ttt_apply_versions.h (`build/ittt info --kernels`).
#pragma once
#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace ittt::kernels {

// One token row per task: dot products / row updates against s_i, g_i.
// o: (B, n, d) holds z @ wd^T on entry, accumulated; z: (B, n, f); s: (B, T, d, f).
template <class T>
void ttt_apply_forward_correction_cpu(T* o, const T* z, const T* s, T eta, int64_t batch, int64_t n, int64_t d, int64_t f,
                                      int64_t chunk);

// dz: (B, n, f) holds dout @ wd on entry, accumulated; dv: (B, n, d) overwritten;
// dout: (B, n, d); z: (B, n, f); v: (B, n, d); s, g: (B, T, d, f).
template <class T>
void ttt_apply_backward_correction_cpu(T* dz, T* dv, const T* dout, const T* z, const T* v, const T* s, const T* g, T eta,
                                       int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk);

// Each chunk's correction as one call of the blocked GEMM; the same contracts as above.
template <class T>
void ttt_apply_forward_correction_gemm_cpu(T* o, const T* z, const T* s, T eta, int64_t batch, int64_t n, int64_t d, int64_t f,
                                           int64_t chunk);
template <class T>
void ttt_apply_backward_correction_gemm_cpu(T* dz, T* dv, const T* dout, const T* z, const T* v, const T* s, const T* g, T eta,
                                            int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk);

// ---- CUDA (ttt_apply.cu), F32, device pointers ----
// The zero-chunk skip needs one flag per matrix, and the GEMM version a place for each
// correction before it is added; the caller passes that scratch (CUDA tensors in the ops
// layer) so the allocations are visible. gemm: the CUDA GEMM the GEMM version calls (the gemm
// op's selected version); the other versions ignore it and the float scratch (null for them).

// o: (B, n, d) holds z @ wd^T on entry, accumulated; z: (B, n, f); s: (B, T, d, f);
// flags: (B*T) int scratch; scratch: (B, n, d) floats.
using TttApplyForwardCuda = void(float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                                 int64_t f, int64_t chunk, int* flags, float* scratch, GemmCudaLauncher* gemm);
// dz: (B, n, f) holds dout @ wd on entry, accumulated; dv: (B, n, d) overwritten;
// dout: (B, n, d); z: (B, n, f); v: (B, n, d); s, g: (B, T, d, f); flags: (2*B*T) int scratch;
// scratch: (B, n, max(d, f)) floats.
using TttApplyBackwardCuda = void(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                  const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                  int* flags, float* scratch, GemmCudaLauncher* gemm);
// One thread per output element.
TttApplyForwardCuda ttt_apply_forward_correction_naive_cuda;
TttApplyBackwardCuda ttt_apply_backward_correction_naive_cuda;
// 16 x 16 shared-memory tiles that never straddle a chunk: each loaded value serves 16 outputs.
TttApplyForwardCuda ttt_apply_forward_correction_tiled_cuda;
TttApplyBackwardCuda ttt_apply_backward_correction_tiled_cuda;
// Each correction as strided-batched calls of the tiled GEMM into the scratch (chunk_batches.h),
// then one pass that adds eta times the rows of the chunks whose s_i (g_i) is nonzero.
TttApplyForwardCuda ttt_apply_forward_correction_gemm_cuda;
TttApplyBackwardCuda ttt_apply_backward_correction_gemm_cuda;

}  // namespace ittt::kernels
