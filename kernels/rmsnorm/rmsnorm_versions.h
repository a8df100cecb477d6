// rmsnorm_versions.h: the rmsnorm op's versions, one row each (kernels/versions.h says how).
// src/ops/rmsnorm.cpp runs the row that --kernel rmsnorm=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using RmsnormForwardCpu = decltype(rmsnorm_forward_cpu<T>);
template <class T>
using RmsnormBackwardCpu = decltype(rmsnorm_backward_cpu<T>);
struct RmsnormCpuEntry {
    CpuKernel<RmsnormForwardCpu> forward;
    CpuKernel<RmsnormBackwardCpu> backward;
};
struct RmsnormCudaEntry {
    decltype(&rmsnorm_forward_cuda) forward;
    decltype(&rmsnorm_backward_cuda) backward;
};

// Both devices sum squares in double and round once; dweight adds up to ~1000 rows of O(1)
// terms in F32 on the CUDA side (atol).
inline const Tolerance kRmsnormF32 = {1e-5, 1e-5, "one F32 rounding of a double row sum; dweight sums ~1000 rows in F32"};
inline const OpVersions<RmsnormCpuEntry, RmsnormCudaEntry> rmsnorm_versions = {
    "rmsnorm", "x * rstd * weight per row, rstd = 1/sqrt(mean(x^2) + eps); rows of any width (per-head q/k norms)",
    "kernels/rmsnorm",
    // 0 is version 2 on a CPU with AVX-512, version 1 elsewhere (kernels/versions.h).
    2, {{{1, "reference", "one pass per row, the sum of squares in double", "rmsnorm_forward_cpu|rmsnorm_backward_cpu",
          kRmsnormF32},
         {ITTT_CPU_KERNEL(rmsnorm_forward_cpu), ITTT_CPU_KERNEL(rmsnorm_backward_cpu)}},
        {{2, "double lanes AVX-512", "version 1 with its double sums in 8 lanes of a 512-bit register (widening loads)",
          "rmsnorm_avx512_forward_cpu|rmsnorm_avx512_backward_cpu", kRmsnormF32, "AVX-512", &cpu_runs_avx512},
         {ITTT_CPU_KERNEL(rmsnorm_avx512_forward_cpu), ITTT_CPU_KERNEL(rmsnorm_avx512_backward_cpu)}}},
    1, {{{1, "warp per row", "one warp per row with shuffle reductions; dweight in row groups, then a fixed-order sum",
          "rmsnorm_forward_kernel|rmsnorm_input_grad_kernel|rmsnorm_dweight_partial_kernel|rmsnorm_dweight_finish_kernel",
          kRmsnormF32},
         {ITTT_CUDA_KERNEL(rmsnorm_forward_cuda), ITTT_CUDA_KERNEL(rmsnorm_backward_cuda)}}},
};

}  // namespace ittt::kernels
