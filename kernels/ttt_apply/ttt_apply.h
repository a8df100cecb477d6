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
// Versions (ops::set_version("ttt_apply", v)):
//   CPU   1  ttt_apply_*_correction_cpu        one token row per task, dot products / row updates against s_i, g_i
//         2  ttt_apply_*_correction_gemm_cpu   each chunk's correction as one call of the blocked GEMM
//         0  the best CPU version (currently 2)
//   CUDA  1  ttt_apply_*_correction_cuda   naive: one thread per output element
//         2  ttt_apply_*_correction_cuda   16 x 16 shared-memory tiles that never straddle a chunk
//         0  the best CUDA version (currently 2); see ttt_apply.cu
#pragma once
#include <cstdint>

namespace ittt::kernels {

// o: (B, n, d) holds z @ wd^T on entry, accumulated; z: (B, n, f); s: (B, T, d, f).
template <class T>
void ttt_apply_forward_correction_cpu(T* o, const T* z, const T* s, T eta, int64_t batch, int64_t n, int64_t d, int64_t f,
                                      int64_t chunk);

// dz: (B, n, f) holds dout @ wd on entry, accumulated; dv: (B, n, d) overwritten;
// dout: (B, n, d); z: (B, n, f); v: (B, n, d); s, g: (B, T, d, f).
template <class T>
void ttt_apply_backward_correction_cpu(T* dz, T* dv, const T* dout, const T* z, const T* v, const T* s, const T* g, T eta,
                                       int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk);

// Version 2: same contracts as above.
template <class T>
void ttt_apply_forward_correction_gemm_cpu(T* o, const T* z, const T* s, T eta, int64_t batch, int64_t n, int64_t d, int64_t f,
                                           int64_t chunk);
template <class T>
void ttt_apply_backward_correction_gemm_cpu(T* dz, T* dv, const T* dout, const T* z, const T* v, const T* s, const T* g, T eta,
                                            int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk);

// ---- CUDA (ttt_apply.cu), F32, device pointers ----
// The zero-chunk skip needs one flag per matrix; the caller passes that scratch
// (an I32 CUDA tensor in the ops layer) so the allocation is visible.

// o: (B, n, d) holds z @ wd^T on entry, accumulated; z: (B, n, f); s: (B, T, d, f);
// flags: (B*T) int scratch; version 0, 1 or 2.
void ttt_apply_forward_correction_cuda(float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                                       int64_t f, int64_t chunk, int* flags, int version);

// dz: (B, n, f) holds dout @ wd on entry, accumulated; dv: (B, n, d) overwritten;
// dout: (B, n, d); z: (B, n, f); v: (B, n, d); s, g: (B, T, d, f); flags: (2*B*T) int scratch.
void ttt_apply_backward_correction_cuda(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                        const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                        int* flags, int version);

}  // namespace ittt::kernels
