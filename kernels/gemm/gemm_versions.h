// gemm_versions.h: the gemm op's versions, one row each (kernels/versions.h says how).
// src/ops/gemm.cpp runs the row that --kernel gemm=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/gemm/gemm.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

// Tolerances hold at the harness's shapes (K <= 300, inputs ~N(0, 1)): F32 sums of K
// products drift like a random walk of ~1e-7 relative steps.
inline const OpVersions<CpuKernel<GemmCpuFn>, GemmCudaLauncher*> gemm_versions = {
    "gemm", "C = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T, row-major, strided batched", "kernels/gemm",
    // 0 is version 3 on a CPU with AVX-512, version 2 elsewhere (kernels/versions.h).
    /*cpu best*/ 3,
    {
        {{1, "naive", "triple loop; the reference every other version is tested against", "gemm_naive_cpu",
          {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CPU_KERNEL(gemm_naive_cpu)},
        {{2, "blocked", "packed panels, a register-tiled micro-kernel and OpenMP slabs; M <= 4 rows: gemv 2 (docs/gemm.md)", "gemm_blocked_cpu",
          {3e-4, 1e-5, "F32 sums of up to 300 products, in another order"}},
         ITTT_CPU_KERNEL(gemm_blocked_cpu)},
        {{3, "blocked AVX-512", "version 2 with 512-bit vectors: a 12 x 32 register tile and masked edges; M <= 4 rows: gemv 3 (docs/gemm.md)",
          "gemm_blocked_avx512_cpu", {3e-4, 1e-5, "F32 sums of up to 300 products, in another order"}, "AVX-512", &cpu_runs_avx512},
         ITTT_CPU_KERNEL(gemm_blocked_avx512_cpu)},
    },
    // 0 stays in full FP32 (version 4), so --device cuda matches the CPU closely by default;
    // TF32 tensor cores are asked for with 5.
    /*cuda best*/ 4,
    {
        {{1, "naive", "one thread per element of C, the threads of a warp along a row of C", "gemm_naive_kernel",
          {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CUDA_KERNEL(gemm_naive_cuda)},
        {{2, "shared memory", "32 x 32 tiles of op(A) and op(B) staged in shared memory", "gemm_smem_kernel",
          {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CUDA_KERNEL(gemm_smem_cuda)},
        {{3, "register tiles", "128 x 128 block tile; each thread keeps an 8 x 8 block of C in registers", "gemm_blocktile_kernel",
          {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CUDA_KERNEL(gemm_blocktile_cuda)},
        {{4, "float4 + warp tiles", "float4 loads; each warp owns a compact 64 x 32 piece of the block tile",
          "gemm_warptile_kernel", {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CUDA_KERNEL(gemm_warptile_cuda)},
        {{5, "tensor cores (TF32)",
          "WMMA m16n16k8 with TF32 inputs and F32 sums on shapes that tile exactly; other calls run version 4",
          "gemm_wmma_tf32_kernel|gemm_warptile_kernel", {0.1, 1e-5, "TF32 keeps 10 mantissa bits: ~5e-4 per product, sqrt(300) of them"}},
         ITTT_CUDA_KERNEL(gemm_wmma_tf32_cuda)},
    },
};

}  // namespace ittt::kernels
