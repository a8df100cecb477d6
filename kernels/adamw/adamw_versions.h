// adamw_versions.h: the adamw op's versions, one row each (kernels/versions.h says how).
// src/ops/adamw.cpp runs the row that --kernel adamw=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/adamw/adamw.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using AdamWCpu = decltype(adamw_step_cpu<T>);

// A handful of F32 operations per element, with sqrt and a division.
inline const Tolerance kAdamWF32 = {1e-6, 1e-5, "a few F32 roundings per element (sqrt, division)"};
inline const OpVersions<CpuKernel<AdamWCpu>, decltype(&adamw_step_cuda)> adamw_versions = {
    "adamw", "one AdamW step with bias correction and decoupled weight decay", "kernels/adamw",
    // 0 is version 2 on a CPU with AVX-512, version 1 elsewhere (kernels/versions.h).
    2, {{{1, "elementwise", "one elementwise loop, arithmetic in the parameter's type", "adamw_step_cpu", kAdamWF32},
         ITTT_CPU_KERNEL(adamw_step_cpu)},
        {{2, "elementwise AVX-512", "version 1 on 512-bit registers: 16 floats per instruction, vector sqrt and division, masked tails",
          "adamw_avx512_step_cpu", kAdamWF32, "AVX-512", &cpu_runs_avx512},
         ITTT_CPU_KERNEL(adamw_avx512_step_cpu)}},
    1, {{{1, "elementwise", "one thread per element, the same arithmetic in float", "adamw_kernel", kAdamWF32},
         ITTT_CUDA_KERNEL(adamw_step_cuda)}},
};

}  // namespace ittt::kernels
