// gemm.h: C = alpha * op(A) @ op(B) + beta * C, row-major, on the CPU.
//
// Versions (ops::set_version("gemm", v), or --kernel gemm=v on the command line):
//   1  gemm_naive_cpu    triple loop; the reference every other version is tested against
//   2  gemm_blocked_cpu  packed panels + register-tiled micro-kernel + OpenMP threads
//                        (cache blocking explained in docs/gemm.md)
//   0  the best CPU version: 2
// Measure them with `build/ittt_bench --filter gemm`; docs/gemm.md has the numbers.
//
// Row-major with leading dimensions: element (i, j) of an R x C matrix X with
// leading dimension ldx is X[i * ldx + j]. op(A) is M x K, op(B) is K x N.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// A: (M, K) if !trans_a else (K, M); B: (K, N) if !trans_b else (N, K); C: (M, N).
template <class T>
void gemm_naive_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc);

// Same contract as gemm_naive_cpu. Splits C into slabs over the OpenMP threads
// (one thread below 2^20 multiply-adds, or when called inside a parallel region);
// the result is bitwise the same for any thread count.
template <class T>
void gemm_blocked_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace ittt::kernels
