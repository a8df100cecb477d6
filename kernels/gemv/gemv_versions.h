// gemv_versions.h: the gemv op's versions, one row each (kernels/versions.h says how).
// src/ops/gemv.cpp runs the row that --kernel gemv=v selects; `build/ittt info --kernels` lists them.
//
// The model does not choose a gemv: ops::matmul runs the gemm op's version, and the blocked
// versions hand their products of at most kGemvMaxRows rows to the gemv of their ISA (gemm 2 to
// gemv 2, gemm 3 to gemv 3), because a decoded row must be summed exactly as the GEMM sums the
// same row of a prompt. This table is what ops::gemv runs: the op harness (every version
// against the F64 reference) and the benchmarks (build/ittt_bench --filter gemv).
#pragma once
#include "kernels/gemv/gemv.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using GemvCpuFn = decltype(gemv_loops_cpu<T>);

// As gemm's: F32 sums of up to 300 products (the harness's K), in K blocks of 256.
inline const OpVersions<CpuKernel<GemvCpuFn>, int> gemv_versions = {
    "gemv", "C = alpha * op(A) @ op(B) + beta * C for M <= 4 rows, op(B) read once, no packing; the blocked GEMMs' small-M path",
    "kernels/gemv",
    // 0 is version 3 on a CPU with AVX-512, version 2 elsewhere (kernels/versions.h).
    /*cpu best*/ 3,
    {
        {{1, "loops", "scalar loops summing each element as the blocked GEMM does; the reference", "gemv_loops_cpu",
          {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CPU_KERNEL(gemv_loops_cpu)},
        {{2, "vectors", "one lane per column of C; op(B)^T read along its rows and transposed 8 x 8 in registers (gemm 2's small M)",
          "gemv_vectors_cpu", {3e-4, 1e-5, "F32 sums of up to 300 products"}},
         ITTT_CPU_KERNEL(gemv_vectors_cpu)},
        {{3, "AVX-512", "version 2 with 512-bit vectors, masked edges and 16 x 16 transposes (gemm 3's small M)", "gemv_avx512_cpu",
          {3e-4, 1e-5, "F32 sums of up to 300 products"}, "AVX-512", &cpu_runs_avx512},
         ITTT_CPU_KERNEL(gemv_avx512_cpu)},
    },
    // No CUDA version: on a GPU, decode's products run the CUDA GEMM (its M = 1 tiles).
    0, {},
};

}  // namespace ittt::kernels
