// embedding_versions.h: the embedding op's versions, one row each (kernels/versions.h says how).
// src/ops/embedding.cpp runs the row that --kernel embedding=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/embedding/embedding.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using EmbeddingForwardCpu = decltype(embedding_forward_cpu<T>);
template <class T>
using EmbeddingBackwardCpu = decltype(embedding_backward_cpu<T>);
struct EmbeddingCpuEntry {
    CpuKernel<EmbeddingForwardCpu> forward;
    CpuKernel<EmbeddingBackwardCpu> backward;
};
struct EmbeddingCudaEntry {
    decltype(&embedding_forward_cuda) forward;
    EmbeddingBackwardCuda* backward;
};

// The forward copies; the backward adds a token's rows (up to a few hundred per id) in F32.
inline const Tolerance kEmbeddingF32 = {1e-4, 1e-5, "a copy; the backward's F32 sums of one id's rows: up to ~1000 (5000 tokens over 5 ids), of size ~30"};
inline const OpVersions<EmbeddingCpuEntry, EmbeddingCudaEntry> embedding_versions = {
    "embedding", "out = table[tokens], and the scatter-add of the gradient into the table", "kernels/embedding",
    1, {{{1, "reference", "row copies; the backward adds each token's row in token order, blocked over columns",
          "embedding_forward_cpu|embedding_backward_cpu", kEmbeddingF32},
         {ITTT_CPU_KERNEL(embedding_forward_cpu), ITTT_CPU_KERNEL(embedding_backward_cpu)}}},
    // 2: exact --resume needs gradients with the same bits every run.
    2, {{{1, "atomics", "one thread per element; the backward adds with float atomics (bits vary from run to run)",
          "embedding_gather_kernel|embedding_scatter_atomic_kernel", kEmbeddingF32},
         {ITTT_CUDA_KERNEL(embedding_forward_cuda), ITTT_CUDA_KERNEL(embedding_backward_atomic_cuda)}},
        {{2, "sorted", "the backward sorts the ids and adds each id's rows in token order: the CPU's bits, every run",
          "embedding_gather_kernel|embedding_scatter_sorted_kernel", kEmbeddingF32},
         {ITTT_CUDA_KERNEL(embedding_forward_cuda), ITTT_CUDA_KERNEL(embedding_backward_sorted_cuda)}}},
};

}  // namespace ittt::kernels
