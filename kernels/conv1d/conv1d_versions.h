// conv1d_versions.h: the conv1d op's versions, one row each (kernels/versions.h says how).
// src/ops/conv1d.cpp runs the row that --kernel conv1d=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/conv1d/conv1d.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using Conv1dForwardCpu = decltype(conv1d_chunked_forward_cpu<T>);
template <class T>
using Conv1dBackwardCpu = decltype(conv1d_chunked_backward_cpu<T>);
struct Conv1dCpuEntry {
    CpuKernel<Conv1dForwardCpu> forward;
    CpuKernel<Conv1dBackwardCpu> backward;
};
struct Conv1dCudaEntry {
    decltype(&conv1d_chunked_forward_cuda) forward;
    decltype(&conv1d_chunked_backward_cuda) backward;
};

// K <= 5 products per output; the weight gradient sums B*n products per tap in F32.
inline const Tolerance kConv1dF32 = {1e-4, 1e-5, "sums of K taps; dweight sums B*n (up to 600) products per tap in F32: ~1e-5 where they cancel"};
inline const OpVersions<Conv1dCpuEntry, Conv1dCudaEntry> conv1d_versions = {
    "conv1d", "depthwise conv1d inside chunks (the TTT target's taps), zero at chunk edges", "kernels/conv1d",
    1, {{{1, "direct", "direct loops, rows in parallel", "conv1d_chunked_forward_cpu|conv1d_chunked_backward_cpu",
          kConv1dF32},
         {ITTT_CPU_KERNEL(conv1d_chunked_forward_cpu), ITTT_CPU_KERNEL(conv1d_chunked_backward_cpu)}}},
    1, {{{1, "output per thread", "one thread per output; dweight by a fixed-order block reduction",
          "conv1d_forward_kernel|conv1d_input_grad_kernel|conv1d_weight_grad_kernel", kConv1dF32},
         {ITTT_CUDA_KERNEL(conv1d_chunked_forward_cuda), ITTT_CUDA_KERNEL(conv1d_chunked_backward_cuda)}}},
};

}  // namespace ittt::kernels
