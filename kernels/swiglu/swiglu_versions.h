// swiglu_versions.h: the swiglu op's versions, one row each (kernels/versions.h says how).
// src/ops/swiglu.cpp runs the row that --kernel swiglu=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/swiglu/swiglu.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using SwigluForwardCpu = decltype(swiglu_forward_cpu<T>);
template <class T>
using SwigluBackwardCpu = decltype(swiglu_backward_cpu<T>);
struct SwigluCpuEntry {
    CpuKernel<SwigluForwardCpu> forward;
    CpuKernel<SwigluBackwardCpu> backward;
};
struct SwigluCudaEntry {
    decltype(&swiglu_forward_cuda) forward;
    decltype(&swiglu_backward_cuda) backward;
};

// expf is within 2 ulp of the exact value and a few float roundings follow it; atol covers the
// zero of silu'(g) near g = -1.28, where the relative error of dg is unbounded.
inline const Tolerance kSwigluF32 = {1e-6, 1e-6, "F32 expf (2 ulp) and a few roundings; atol for the zero of silu' near -1.28"};
inline const OpVersions<SwigluCpuEntry, SwigluCudaEntry> swiglu_versions = {
    "swiglu", "z = silu(g) * u elementwise, and its backward", "kernels/swiglu",
    // 0 is version 2 on a CPU with AVX-512, version 1 elsewhere (kernels/versions.h).
    2, {{{1, "elementwise", "one pass over the elements (vectorised exp on the CPU)", "swiglu_forward_cpu|swiglu_backward_cpu",
          kSwigluF32},
         {ITTT_CPU_KERNEL(swiglu_forward_cpu), ITTT_CPU_KERNEL(swiglu_backward_cpu)}},
        {{2, "elementwise AVX-512", "version 1 on 512-bit registers: 16 floats per instruction, exp16, masked tails",
          "swiglu_avx512_forward_cpu|swiglu_avx512_backward_cpu", kSwigluF32, "AVX-512", &cpu_runs_avx512},
         {ITTT_CPU_KERNEL(swiglu_avx512_forward_cpu), ITTT_CPU_KERNEL(swiglu_avx512_backward_cpu)}}},
    1, {{{1, "elementwise", "one thread per element (grid-stride loop)", "swiglu_forward_kernel|swiglu_backward_kernel", kSwigluF32},
         {ITTT_CUDA_KERNEL(swiglu_forward_cuda), ITTT_CUDA_KERNEL(swiglu_backward_cuda)}}},
};

}  // namespace ittt::kernels
