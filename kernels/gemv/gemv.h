// gemv.h: C = alpha * op(A) @ op(B) + beta * C for a few rows of C (M <= 4: decode), streaming
// op(B) once, with no packing.
//
// Decoding one token multiplies one row by every weight matrix: q/k/v/o, gate/up/down, and the
// LM head over the vocabulary. Each weight is used for one multiply-add per row, so the time is
// the time to read it from memory. The blocked GEMM (kernels/gemm) copies op(B) into packed
// panels first, which moves every weight twice and pads the one row to a 6- or 12-row tile;
// these kernels read each row of op(B) once, straight from the matrix.
//
// Same contract as the GEMM (kernels/gemm/gemm.h): row-major, leading dimensions, op(X) = X or
// X^T, beta == 0 writes C without reading it. Any M works (rows are taken kGemvMaxRows at a
// time, each group one pass over op(B)); the blocked versions hand them the calls with
// M <= kGemvMaxRows.
//
// Every element of C is summed exactly as the blocked GEMM sums it, so a decoded token's row
// equals its row in the prefill's product bit for bit (tests/test_model.cpp, "streaming"):
//   for each block of kGemvKBlock = 256 values of k, in order:
//       acc = 0;  for k in the block: acc = fma(op(A)(i, k), op(B)(k, j), acc)
//       first block: c = beta == 0 ? alpha * acc : alpha * acc + beta * C(i, j)
//       later blocks: c = alpha * acc + 1 * c
// (gemm_blocked_cpu.cpp: KC = 256, one running sum per K block per element of its register
// tile; the first block applies beta, later ones add). One thread or many, each element is
// the same sums: the result does not depend on the thread count.
//
//   version 1  gemv_loops_cpu    scalar loops: the order above, as plainly as it can be written
//   version 2  gemv_vectors_cpu  8 float (4 double) lanes in the build's vectors: what gemm
//                                version 2 (AVX2) calls for M <= kGemvMaxRows
//   version 3  gemv_avx512_cpu   16 float (8 double) lanes with AVX-512 intrinsics: what gemm
//                                version 3 calls (call it only where cpu_runs_avx512())
// Why the blocked GEMMs call these and not the other way round, and measurements: docs/gemm.md.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// The blocked GEMM versions hand products of at most this many rows to their gemv.
// (docs/gemm.md, "GEMV": at M = 4 the gemv still reads op(B) once; the blocked GEMM wins from
// about M = 8 on, where its register tile is fuller than the gemv's repeated passes.)
constexpr int64_t kGemvMaxRows = 4;
// The K block of the blocked GEMM (its KC): every element is summed in blocks of this many k.
constexpr int64_t kGemvKBlock = 256;

// A: (M, K) if !trans_a else (K, M); B: (K, N) if !trans_b else (N, K); C: (M, N).
template <class T>
void gemv_loops_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc);
template <class T>
void gemv_vectors_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc);
template <class T>
void gemv_avx512_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                     int64_t ldb, T beta, T* C, int64_t ldc);

// The GCC 12.2 AVX-512 pin (tests/test_runtime.cpp) compiled with gemv_avx512_cpu.cpp's options:
// writes {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0} unless that file is miscompiled. AVX-512 only.
void gemv_avx512_known_answers(double out_f64[4], float out_f32[8]);

}  // namespace ittt::kernels
