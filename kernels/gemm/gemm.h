// gemm.h: C = alpha * op(A) @ op(B) + beta * C, row-major, on the CPU and the GPU.
//
// Versions (ops::set_version("gemm", v), or --kernel gemm=v on the command line):
//   CPU   1  gemm_naive_cpu    triple loop; the reference every other version is tested against
//         2  gemm_blocked_cpu  packed panels + register-tiled micro-kernel + OpenMP threads
//                              (cache blocking explained in docs/gemm.md)
//         0  the best CPU version: 2  (3 to 5 exist only on the GPU: a CPU matmul refuses them)
//   CUDA  1  naive             one thread per element of C
//         2  shared memory     32 x 32 tiles of op(A) and op(B) staged in shared memory
//         3  register tiles    128 x 128 block tile, each thread keeps an 8 x 8 block of C in registers
//         4  float4 + warps    float4 loads, each warp owns a compact 64 x 32 piece of the block tile
//         5  tensor cores      WMMA m16n16k8 with TF32 inputs and F32 sums; only for shapes that tile
//                              exactly (gemm_cuda_tf32_applicable), the others run version 4
//         0  the best FP32 CUDA version: 4 (TF32 changes results at the 1e-3 level, so it is opt-in: 5)
//   The kernels, one idea each, are in gemm.cu; docs/profiling.md says how to profile them.
// Measure them with `build/ittt_bench --filter gemm` (CPU) and `--filter gemm_cuda` (GPU,
// against cuBLAS); docs/gemm.md has the CPU numbers.
//
// Row-major with leading dimensions: element (i, j) of an R x C matrix X with
// leading dimension ldx is X[i * ldx + j]. op(A) is M x K, op(B) is K x N.
// beta == 0 writes C without reading it (as in BLAS), so C may hold NaN garbage.
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

// ---- CUDA (gemm.cu), F32; every pointer is device memory ----

// Strided batched: for b in [0, batch), the gemm above on A + b*stride_a, B + b*stride_b,
// C + b*stride_c (strides in elements; ignored when batch == 1).
// A: (batch, M, K) or (batch, K, M); B: (batch, K, N) or (batch, N, K); C: (batch, M, N).
// version: 0 (best) or 1 .. 5 as listed above. Asynchronous on the default stream.
void gemm_strided_batched_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                               int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                               int64_t ldc, int64_t stride_c, int64_t batch, int version);

// One gemm: gemm_strided_batched_cuda with batch 1.
void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int version);

// True when version 5 can run this call: a GPU with TF32 tensor cores (sm_80 or newer),
// M and N multiples of 128 and K a multiple of 32 (the block tile, no edges), lda, ldb,
// ldc multiples of 4, A and B 16-byte aligned, C 32-byte aligned, and, when batch > 1,
// strides that keep every matrix so aligned.
bool gemm_cuda_tf32_applicable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, int64_t stride_a, const float* B,
                               int64_t ldb, int64_t stride_b, const float* C, int64_t ldc, int64_t stride_c, int64_t batch);

// The version that actually runs for `version` on this call (0 and 5 become 4 when
// version 5 does not apply): what the benchmark and the tests report.
int gemm_cuda_resolved_version(int version, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, int64_t stride_a,
                               const float* B, int64_t ldb, int64_t stride_b, const float* C, int64_t ldc, int64_t stride_c,
                               int64_t batch);

}  // namespace ittt::kernels
