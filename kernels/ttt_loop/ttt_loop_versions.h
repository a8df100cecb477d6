// ttt_loop_versions.h: the ttt_loop op's versions, one row each (kernels/versions.h says how).
// src/ops/ttt_loop.cpp runs the row that --kernel ttt_loop=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/ttt_loop/ttt_loop.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using LoopForwardCpu = decltype(ttt_loop_forward_cpu<T>);
template <class T>
using LoopBackwardCpu = decltype(ttt_loop_backward_cpu<T>);
struct TttLoopCpuEntry {
    CpuKernel<LoopForwardCpu> forward;
    CpuKernel<LoopBackwardCpu> backward;
};
struct TttLoopCudaEntry {
    decltype(&ttt_loop_forward_cuda) forward;
    decltype(&ttt_loop_backward_cuda) backward;
};

// The loop reorders the parallel form's sums (W_i built by running addition, half the
// multiply-adds): F32 rounding of sums over chunks and over d, f.
inline const OpVersions<TttLoopCpuEntry, TttLoopCudaEntry> ttt_loop_versions = {
    "ttt_loop", "the TTT MLP as a chunk loop with a running fast weight (apply, then update), forward and backward",
    "kernels/ttt_loop",
    1, {{{1, "chunk loop", "per chunk: apply W_i with one GEMM, then fold eta V_[i]^T Z_[i] into it with another",
          "ttt_loop_forward_cpu|ttt_loop_backward_cpu", {1e-5, 1e-5, "F32 running sums over chunks and over d, f of O(1) terms (measured: < 1/10)"}},
         {ITTT_CPU_KERNEL(ttt_loop_forward_cpu), ITTT_CPU_KERNEL(ttt_loop_backward_cpu)}}},
    1, {{{1, "chunk loop", "one host loop over the chunks: per chunk a GEMM applies W_i and a GEMM forms the delta, each batched over "
          "the sequences, and one kernel folds it in; the backward likewise in reverse",
          "update_kernel|fold_kernel|copy_matrices_kernel|zero_matrices_kernel|sum_sequences_kernel|fill_nan_kernel|gemm_",
          {1e-4, 1e-4, "F32 running sums over chunks and over d, f"}},
         {ITTT_CUDA_KERNEL(ttt_loop_forward_cuda), ITTT_CUDA_KERNEL(ttt_loop_backward_cuda)}}},
};

}  // namespace ittt::kernels
