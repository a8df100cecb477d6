// prefix_scan.cpp: ops::prefix_scan_exclusive on top of kernels/prefix_scan, and the op's versions.
#include <algorithm>

#include "kernels/prefix_scan/prefix_scan.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
template <class T>
using ScanCpu = decltype(kernels::prefix_scan_exclusive_cpu<T>);

// Each output sums at most T - 1 inputs in the same (chunk) order on both devices.
const KernelOp<CpuKernel<ScanCpu>, decltype(&kernels::prefix_scan_exclusive_cuda)> kPrefixScan = {
    "prefix_scan", "exclusive scan over the chunk dimension of (B, T, m...), forward or reverse", "kernels/prefix_scan",
    1, {{{1, "column blocks", "a running sum down each column, blocks of columns over the threads", "prefix_scan_exclusive_cpu",
          {1e-5, 1e-6, "F32 running sums of up to T terms"}},
         ITTT_CPU_KERNEL(kernels::prefix_scan_exclusive_cpu)}},
    1, {{{1, "thread per column", "one thread per column walks the chunks in order (the parallelism is the d*f columns)",
          "chunk_scan_kernel", {1e-5, 1e-6, "F32 running sums of up to T terms"}},
         ITTT_CUDA_KERNEL(kernels::prefix_scan_exclusive_cuda)}},
};
}  // namespace

OpSpec prefix_scan_op_spec() { return kPrefixScan.spec(); }

void prefix_scan_exclusive(Tensor& out, const Tensor& in, bool reverse) {
    ITTT_NVTX_RANGE("prefix_scan_exclusive");
    const char* op = "prefix_scan_exclusive";
    require_float(in, op, "in");
    ITTT_CHECK(in.ndim() >= 2, op, ": in is ", in.describe(), ", expected (B, T, m...) with at least 2 dims");
    require_same(out, in, op, "out", "in");
    // The kernel reads in[i-1] after writing out[i-1]: an in-place scan would read its own output.
    const char* o = static_cast<const char*>(out.raw());
    const char* x = static_cast<const char*>(in.raw());
    ITTT_CHECK(o + out.bytes() <= x || x + in.bytes() <= o || in.numel() == 0, op,
               ": out and in share memory; the scan needs a separate output tensor");
    const int64_t B = in.dim(0), T = in.dim(1), m = in.numel() / std::max<int64_t>(1, B * T);
    if (in.device() == Device::CUDA) {
        require_cuda_f32(in, op);
        kPrefixScan.cuda_entry(op)(out.data<float>(), in.data<float>(), B, T, m, reverse);
        return;
    }
    with_float_type(in.dtype(), [&](auto t) {
        using E = decltype(t);
        kPrefixScan.cpu_entry(op).get<E>()(out.data<E>(), in.data<E>(), B, T, m, reverse);
    });
}

}  // namespace ittt::ops
