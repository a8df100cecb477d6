// ttt_delta_versions.h: the ttt_delta op's versions, one row each (kernels/versions.h says how).
// src/ops/ttt.cpp runs the row that --kernel ttt_delta=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/ttt_delta/ttt_delta.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using TttDeltaCpu = decltype(ttt_chunk_delta_cpu<T>);
template <class T>
using TttClipCpu = decltype(ttt_clip_deltas_cpu<T>);
struct TttDeltaCpuEntry {
    CpuKernel<TttDeltaCpu> delta;
    CpuKernel<TttClipCpu> clip;
};
struct TttDeltaCudaEntry {
    TttChunkDeltaCuda* delta;
    decltype(&ttt_clip_deltas_cuda) clip;
};

// Each delta element sums one chunk's C <= 64 products (the harness's chunks) in F32.
inline const Tolerance kDeltaF32 = {2e-5, 1e-5, "F32 sums of a chunk's products: up to 64 of unit normals (measured: < 1/5)"};
inline const OpVersions<TttDeltaCpuEntry, TttDeltaCudaEntry> ttt_delta_versions = {
    "ttt_delta", "per-chunk fast-weight update dW_i = V_[i]^T Z_[i], and its inference-time clipping", "kernels/ttt_delta",
    2,
    {{{1, "direct loops", "one output row (b, i, a) per task, rank-1 updates over the chunk's rows",
       "ttt_chunk_delta_cpu|ttt_clip_deltas_cpu", kDeltaF32},
      {ITTT_CPU_KERNEL(ttt_chunk_delta_cpu), ITTT_CPU_KERNEL(ttt_clip_deltas_cpu)}},
     {{2, "per-chunk GEMM", "each chunk as one call of the blocked GEMM (V_[i]^T Z_[i], TN)",
       "ttt_chunk_delta_gemm_cpu|ttt_clip_deltas_cpu", kDeltaF32},
      {ITTT_CPU_KERNEL(ttt_chunk_delta_gemm_cpu), ITTT_CPU_KERNEL(ttt_clip_deltas_cpu)}}},
    // 0 is version 3: the tiled GEMM's register tiles, as accurate as version 2 (the same sums
    // down the chunk in the same order; the harness's report measures both).
    3,
    {{{1, "naive", "one thread per output element, a dot product down the chunk", "chunk_delta_naive_kernel|clip_deltas_kernel",
       kDeltaF32},
      {ITTT_CUDA_KERNEL(ttt_chunk_delta_naive_cuda), ITTT_CUDA_KERNEL(ttt_clip_deltas_cuda)}},
     {{2, "shared-memory tiles", "16 x 16 tiles over (d, f), 16 tokens a step: each loaded value serves 16 outputs",
       "chunk_delta_tiled_kernel|clip_deltas_kernel", kDeltaF32},
      {ITTT_CUDA_KERNEL(ttt_chunk_delta_tiled_cuda), ITTT_CUDA_KERNEL(ttt_clip_deltas_cuda)}},
     {{3, "strided-batched GEMM",
       "the chunks as strided-batched TN calls of the tiled GEMM: one call over all B*T chunks when n % C == 0, one more for "
       "a short last chunk",
       "gemm_|clip_deltas_kernel", kDeltaF32},
      {ITTT_CUDA_KERNEL(ttt_chunk_delta_gemm_cuda), ITTT_CUDA_KERNEL(ttt_clip_deltas_cuda)}}},
};

}  // namespace ittt::kernels
