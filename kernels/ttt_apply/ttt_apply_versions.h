// ttt_apply_versions.h: the ttt_apply op's versions, one row each (kernels/versions.h says how).
// src/ops/ttt.cpp runs the row that --kernel ttt_apply=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/ttt_apply/ttt_apply.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using TttApplyForwardCpu = decltype(ttt_apply_forward_correction_cpu<T>);
template <class T>
using TttApplyBackwardCpu = decltype(ttt_apply_backward_correction_cpu<T>);
struct TttApplyCpuEntry {
    CpuKernel<TttApplyForwardCpu> forward;
    CpuKernel<TttApplyBackwardCpu> backward;
};
struct TttApplyCudaEntry {
    TttApplyForwardCuda* forward;
    TttApplyBackwardCuda* backward;
    bool scratch;  // takes the float scratch of ttt_apply.h (the GEMM version); null for the others
};

// Each correction sums f (forward, dv) or d (dz) products of O(1) terms, then scales by eta.
inline const Tolerance kApplyF32 = {2e-5, 1e-5, "F32 sums of f or d products per output, the gemm's and the correction's (measured: < 1/5)"};
inline const OpVersions<TttApplyCpuEntry, TttApplyCudaEntry> ttt_apply_versions = {
    "ttt_apply", "o_[i] = z_[i] (wd + eta s_i)^T as z wd^T plus the per-chunk TTT correction, and its backward",
    "kernels/ttt_apply",
    2,
    {{{1, "direct loops", "one token row per task: dot products and row updates against s_i, g_i",
       "ttt_apply_forward_correction_cpu|ttt_apply_backward_correction_cpu", kApplyF32},
      {ITTT_CPU_KERNEL(ttt_apply_forward_correction_cpu), ITTT_CPU_KERNEL(ttt_apply_backward_correction_cpu)}},
     {{2, "per-chunk GEMM", "each chunk's correction as one call of the blocked GEMM",
       "ttt_apply_forward_correction_gemm_cpu|ttt_apply_backward_correction_gemm_cpu", kApplyF32},
      {ITTT_CPU_KERNEL(ttt_apply_forward_correction_gemm_cpu),
       ITTT_CPU_KERNEL(ttt_apply_backward_correction_gemm_cpu)}}},
    // 0 is version 3: the tiled GEMM's register tiles, as accurate as version 2 (the same sums
    // over f or d in the same order; the harness's report measures both).
    3,
    {{{1, "naive", "one thread per output element", "matrix_nonzero_kernel|correction_nt_naive_kernel|correction_nn_naive_kernel",
       kApplyF32},
      {ITTT_CUDA_KERNEL(ttt_apply_forward_correction_naive_cuda),
       ITTT_CUDA_KERNEL(ttt_apply_backward_correction_naive_cuda), false}},
     {{2, "shared-memory tiles", "16 x 16 tiles that never straddle a chunk: each loaded value serves 16 outputs",
       "matrix_nonzero_kernel|correction_nt_tiled_kernel|correction_nn_tiled_kernel", kApplyF32},
      {ITTT_CUDA_KERNEL(ttt_apply_forward_correction_tiled_cuda),
       ITTT_CUDA_KERNEL(ttt_apply_backward_correction_tiled_cuda), false}},
     {{3, "strided-batched GEMM",
       "each correction as strided-batched calls of the tiled GEMM into a scratch, one call over all B*T chunks when n % C == 0; "
       "a pass adds eta times the rows of the chunks whose s_i (g_i) is nonzero",
       "matrix_nonzero_kernel|gemm_|masked_rows_kernel", kApplyF32},
      {ITTT_CUDA_KERNEL(ttt_apply_forward_correction_gemm_cuda),
       ITTT_CUDA_KERNEL(ttt_apply_backward_correction_gemm_cuda), true}}},
};

}  // namespace ittt::kernels
