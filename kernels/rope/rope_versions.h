// rope_versions.h: the rope op's versions, one row each (kernels/versions.h says how).
// src/ops/rope.cpp runs the row that --kernel rope=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/rope/rope.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using RopeCpu = decltype(rope_forward_cpu<T>);
struct RopeCpuEntry {
    CpuKernel<RopeCpu> forward, backward;
};
struct RopeCudaEntry {
    decltype(&rope_forward_cuda) forward, backward;
};

// Both devices compute the angle in double and round to float once (<= 1 ulp apart); CUDA's
// pow and sincos differ from glibc's by a few 1e-16, which matters only near zero (atol).
inline const Tolerance kRopeF32 = {1e-7, 2.5e-7, "one F32 rounding of a rotation computed in double"};
inline const OpVersions<RopeCpuEntry, RopeCudaEntry> rope_versions = {
    "rope", "rotary position embedding (Hugging Face rotate-half), and its inverse for the backward", "kernels/rope",
    // 0 is version 2 on a CPU with AVX-512, version 1 elsewhere (kernels/versions.h).
    2, {{{1, "reference", "cos/sin computed once per token (in double) and shared by all heads",
          "rope_forward_cpu|rope_backward_cpu", kRopeF32},
         {ITTT_CPU_KERNEL(rope_forward_cpu), ITTT_CPU_KERNEL(rope_backward_cpu)}},
        {{2, "kept table AVX-512", "version 1's rotation 8 pairs at a time in double lanes; its cos/sin table kept between calls",
          "rope_avx512_forward_cpu|rope_avx512_backward_cpu", kRopeF32, "AVX-512", &cpu_runs_avx512},
         {ITTT_CPU_KERNEL(rope_avx512_forward_cpu), ITTT_CPU_KERNEL(rope_avx512_backward_cpu)}}},
    1, {{{1, "pair per thread", "one thread per (token, pair): cos/sin in double once, then every head", "rope_rotate_kernel", kRopeF32},
         {ITTT_CUDA_KERNEL(rope_forward_cuda), ITTT_CUDA_KERNEL(rope_backward_cuda)}}},
};

}  // namespace ittt::kernels
