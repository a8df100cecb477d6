// prefix_scan_versions.h: the prefix_scan op's versions, one row each (kernels/versions.h says how).
// src/ops/prefix_scan.cpp runs the row that --kernel prefix_scan=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/prefix_scan/prefix_scan.h"
#include "kernels/versions.h"

namespace ittt::kernels {

template <class T>
using ScanCpu = decltype(prefix_scan_exclusive_cpu<T>);

// Each output sums at most T - 1 inputs in the same (chunk) order on both devices.
inline const OpVersions<CpuKernel<ScanCpu>, decltype(&prefix_scan_exclusive_cuda)> prefix_scan_versions = {
    "prefix_scan", "exclusive scan over the chunk dimension of (B, T, m...), forward or reverse", "kernels/prefix_scan",
    1, {{{1, "column blocks", "column blocks in parallel, sequential along T", "prefix_scan_exclusive_cpu",
          {1e-5, 1e-6, "F32 running sums of up to T terms"}},
         ITTT_CPU_KERNEL(prefix_scan_exclusive_cpu)}},
    1, {{{1, "thread per column", "one thread per column walking T: bit-identical to the CPU",
          "chunk_scan_kernel", {1e-5, 1e-6, "F32 running sums of up to T terms"}},
         ITTT_CUDA_KERNEL(prefix_scan_exclusive_cuda)}},
};

}  // namespace ittt::kernels
