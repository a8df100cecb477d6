// attention_versions.h: the attention op's versions, one row each (kernels/versions.h says how).
// src/ops/attention.cpp runs the row that --kernel attention=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/attention/attention.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using AttentionForwardCpu = decltype(attention_flash_forward_cpu<T>);
template <class T>
using AttentionBackwardCpu = decltype(attention_flash_backward_cpu<T>);
struct AttentionCpuEntry {
    CpuKernel<AttentionForwardCpu> forward;
    CpuKernel<AttentionBackwardCpu> backward;
};
struct AttentionCudaEntry {
    AttentionForwardCuda* forward;
    AttentionBackwardCuda* backward;
};

// Out is a convex combination of O(1) values and lse a log of sums of O(1) terms; dk, dv
// sum up to 4 heads x 300 queries of O(1) terms. The F32 CPU versions stay within 1.2e-6
// (forward) and 6e-6 (backward) of F64 at hd = 16; hd = 128 sums 8x as many products.
inline const Tolerance kAttentionF32 = {5e-5, 1e-4, "F32 gradient sums over up to 4 heads x 300 queries of O(1) terms, score sums over hd <= 128 (measured: < 1/10)"};
inline const OpVersions<AttentionCpuEntry, AttentionCudaEntry> attention_versions = {
    "attention", "causal grouped-query attention with an optional sliding window, scale 1/sqrt(hd)", "kernels/attention",
    // 0 is version 3 on a CPU with AVX-512, version 2 elsewhere (kernels/versions.h).
    /*cpu best*/ 3,
    {
        {{1, "naive", "materialises each score row (backward: the n x n probabilities) and applies the textbook formulas",
          "attention_naive_forward_cpu|attention_naive_backward_cpu", kAttentionF32},
         {ITTT_CPU_KERNEL(attention_naive_forward_cpu), ITTT_CPU_KERNEL(attention_naive_backward_cpu)}},
        {{2, "flash", "tiled online softmax that never builds the score matrix and skips key tiles outside the window",
          "attention_flash_forward_cpu|attention_flash_backward_cpu", kAttentionF32},
         {ITTT_CPU_KERNEL(attention_flash_forward_cpu), ITTT_CPU_KERNEL(attention_flash_backward_cpu)}},
        {{3, "flash AVX-512",
          "flash with the keys of a score row in 512-bit lanes, key blocks at fixed positions and a one-pass backward",
          "attention_flash_avx512_forward_cpu|attention_flash_avx512_backward_cpu", kAttentionF32, "AVX-512", &cpu_runs_avx512},
         {ITTT_CPU_KERNEL(attention_flash_avx512_forward_cpu), ITTT_CPU_KERNEL(attention_flash_avx512_backward_cpu)}},
    },
    /*cuda best*/ 2,
    {
        {{1, "naive", "one block per (batch, head, query), its score row in shared memory; float atomics into dk, dv",
          "attention_naive_forward_kernel|attention_naive_backward_kernel", kAttentionF32},
         {ITTT_CUDA_KERNEL(attention_naive_forward_cuda), ITTT_CUDA_KERNEL(attention_naive_backward_cuda)}},
        {{2, "flash", "32-query tiles in shared memory with 32-key tiles streamed under an online softmax; no atomics",
          "attention_flash_forward_kernel|attention_row_dot_kernel|attention_flash_dkdv_kernel|attention_flash_dq_kernel",
          kAttentionF32},
         {ITTT_CUDA_KERNEL(attention_flash_forward_cuda), ITTT_CUDA_KERNEL(attention_flash_backward_cuda)}},
    },
};

}  // namespace ittt::kernels
