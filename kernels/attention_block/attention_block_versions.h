// attention_block_versions.h: the attention_block op's versions, one row each (kernels/versions.h says how).
// src/ops/attention_block.cpp runs the row that --kernel attention_block=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/attention_block/attention_block.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using AttentionBlockForwardCpu = decltype(attention_block_forward_cpu<T>);
template <class T>
using AttentionBlockMergeCpu = decltype(attention_block_merge_cpu<T>);
template <class T>
using AttentionBlockBackwardCpu = decltype(attention_block_backward_cpu<T>);
struct AttentionBlockCpuEntry {
    CpuKernel<AttentionBlockForwardCpu> forward;
    CpuKernel<AttentionBlockMergeCpu> merge;
    CpuKernel<AttentionBlockBackwardCpu> backward;
};
struct AttentionBlockCudaEntry {
    decltype(&attention_block_forward_cuda) forward;
    decltype(&attention_block_merge_cuda) merge;
    decltype(&attention_block_backward_cuda) backward;
};

// As attention's: score sums over hd and gradient sums over the block's queries, in F32.
inline const OpVersions<AttentionBlockCpuEntry, AttentionBlockCudaEntry> attention_block_versions = {
    "attention_block", "attention of a run of queries against one block of keys, the online-softmax merge, and the backward",
    "kernels/attention_block",
    1, {{{1, "loops", "plain loops over the visible (query, key) pairs, parallel over query rows and key rows, no atomics",
          "attention_block_forward_cpu|attention_block_merge_cpu|attention_block_backward_cpu",
          {1e-4, 1e-4, "F32 score sums over hd and gradient sums over the block's queries"}},
         {ITTT_CPU_KERNEL(attention_block_forward_cpu), ITTT_CPU_KERNEL(attention_block_merge_cpu),
          ITTT_CPU_KERNEL(attention_block_backward_cpu)}}},
    1, {{{1, "warp per row", "one warp per query row (forward, merge, dq) or key row (dk, dv), its lanes splitting hd; "
          "keys in groups of 32 under an online softmax; no atomics",
          "attention_block_forward_kernel|attention_block_merge_kernel|attention_block_dq_kernel|attention_block_dkdv_kernel",
          {1e-4, 1e-4, "F32 score sums over hd and gradient sums over the block's queries"}},
         {ITTT_CUDA_KERNEL(attention_block_forward_cuda), ITTT_CUDA_KERNEL(attention_block_merge_cuda),
          ITTT_CUDA_KERNEL(attention_block_backward_cuda)}}},
};

}  // namespace ittt::kernels
