// gemm.h: C = alpha * op(A) @ op(B) + beta * C, row-major, on the CPU and the GPU.
//
// One function per version, CPU and CUDA alike; their numbers, one-sentence ideas and test
// tolerances are the rows of the gemm op in src/ops/gemm.cpp (`build/ittt info --kernels`).
// Measure them with `build/ittt_bench --filter gemm` (CPU) and `--filter gemm_cuda` (GPU,
// against cuBLAS); docs/gemm.md explains the CPU cache blocking.
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

// Every CPU version has this type (the ops table and kernels/ttt_loop hold them as pointers).
template <class T>
using GemmCpuFn = void(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                       int64_t ldb, T beta, T* C, int64_t ldc);

// Same contract as gemm_naive_cpu. Splits C into slabs over the OpenMP threads
// (one thread below 2^20 multiply-adds, or when called inside a parallel region);
// the result is bitwise the same for any thread count. Products of M <= kGemvMaxRows rows
// (decode) run gemv_vectors_cpu (kernels/gemv/gemv.h): op(B) read once, the same sums.
template <class T>
void gemm_blocked_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc);

// Version 3: version 2's algorithm with an AVX-512 micro-kernel (a 12 x 32 float tile in
// 24 of the 32 512-bit registers, masked edges), compiled for AVX-512 in its own file
// (gemm_blocked_avx512_cpu.cpp) while the rest of the program stays AVX2. Same contract and
// the same bitwise independence of the thread count as version 2. Call it only where
// cpu_runs_avx512() (runtime/cpu_isa.h): elsewhere it stops at an illegal instruction.
// M <= kGemvMaxRows runs gemv_avx512_cpu, as version 2 runs its gemv.
template <class T>
void gemm_blocked_avx512_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                             const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
// The GCC 12.2 AVX-512 pin of tests/test_runtime.cpp, compiled in gemm_blocked_avx512_cpu.cpp
// with its options: writes {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0}, unless that file is
// miscompiled. AVX-512 only, like the kernel.
void gemm_avx512_known_answers(double out_f64[4], float out_f32[8]);

// ---- CUDA (gemm.cu), F32; every pointer is device memory ----
// Strided batched, one launcher per version with this contract: for b in [0, batch), the gemm
// above on A + b*stride_a, B + b*stride_b, C + b*stride_c (strides in elements; ignored when
// batch == 1). A: (batch, M, K) or (batch, K, M); B: (batch, K, N) or (batch, N, K);
// C: (batch, M, N). Asynchronous on the default stream.
using GemmCudaLauncher = void(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                              int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                              int64_t ldc, int64_t stride_c, int64_t batch);
// One thread per element of C, the threads of a warp along a row of C.
GemmCudaLauncher gemm_naive_cuda;
// 32 x 32 tiles of op(A) and op(B) staged in shared memory.
GemmCudaLauncher gemm_smem_cuda;
// 128 x 128 block tile, BK = 8; each thread keeps an 8 x 8 block of C in registers.
GemmCudaLauncher gemm_blocktile_cuda;
// float4 loads (global and shared); each warp owns a compact 64 x 32 piece of the block tile.
GemmCudaLauncher gemm_warptile_cuda;
// Tensor cores: WMMA m16n16k8 with TF32 inputs and F32 sums, where gemm_cuda_tf32_applicable;
// every other call runs gemm_warptile_cuda.
GemmCudaLauncher gemm_wmma_tf32_cuda;

// True when gemm_wmma_tf32_cuda uses tensor cores for this call: a GPU with TF32 tensor cores
// (sm_80 or newer), M and N multiples of 128 and K a multiple of 32 (the block tile, no edges),
// lda, ldb, ldc multiples of 4, A and B 16-byte aligned, C 32-byte aligned, and, when batch > 1,
// strides that keep every matrix so aligned.
bool gemm_cuda_tf32_applicable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, int64_t stride_a, const float* B,
                               int64_t ldb, int64_t stride_b, const float* C, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace ittt::kernels
