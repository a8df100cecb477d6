// cross_entropy_versions.h: the cross_entropy op's versions, one row each (kernels/versions.h says how).
// src/ops/cross_entropy.cpp runs the row that --kernel cross_entropy=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/cross_entropy/cross_entropy.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using CrossEntropyCpu = decltype(cross_entropy_cpu<T>);

// Each row's log-sum-exp of up to ~150k F32 exponentials, summed in float on the GPU.
inline const Tolerance kCrossEntropyF32 = {1e-7, 1e-5, "F32 sums of up to V exponentials per row: p to ~1e-6 relative, 1e-7 where p - 1 cancels"};
inline const OpVersions<CpuKernel<CrossEntropyCpu>, CrossEntropyCuda*> cross_entropy_versions = {
    "cross_entropy", "fused softmax + negative log-likelihood per row, and its gradient", "kernels/cross_entropy",
    // 0 is version 2 on a CPU with AVX-512, version 1 elsewhere (kernels/versions.h).
    2, {{{1, "three pass", "three passes per row (max, sum of exp, gradient), all in double", "cross_entropy_cpu", kCrossEntropyF32},
         ITTT_CPU_KERNEL(cross_entropy_cpu)},
        {{2, "three pass AVX-512", "version 1's three passes in double on 512-bit registers: 8 lanes, exp8d instead of libm's exp",
          "cross_entropy_avx512_cpu", kCrossEntropyF32, "AVX-512", &cpu_runs_avx512},
         ITTT_CPU_KERNEL(cross_entropy_avx512_cpu)}},
    2, {{{1, "three pass", "one block per row: max, then sum of exp, then gradient", "cross_entropy_three_pass_kernel",
          kCrossEntropyF32},
         ITTT_CUDA_KERNEL(cross_entropy_three_pass_cuda)},
        {{2, "online softmax", "one block per row: max and sum of exp in one pass (online softmax), then gradient",
          "cross_entropy_online_kernel", kCrossEntropyF32},
         ITTT_CUDA_KERNEL(cross_entropy_online_cuda)}},
};

}  // namespace ittt::kernels
