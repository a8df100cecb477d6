// prefix_scan.cpp: ops::prefix_scan_exclusive on top of kernels/prefix_scan.
#include <algorithm>

#include "kernels/prefix_scan/prefix_scan.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

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
    int v = version("prefix_scan");
    ITTT_CHECK(v == 0 || v == 1, op, ": no ", device_name(in.device()), " version ", v,
               " (versions: 1 column blocks on the CPU, one thread per column on CUDA)");
    const int64_t B = in.dim(0), T = in.dim(1), m = in.numel() / std::max<int64_t>(1, B * T);
    if (in.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        ITTT_CHECK(in.dtype() == DType::F32, op, ": CUDA kernels are F32 only, found ", in.describe());
        kernels::prefix_scan_exclusive_cuda(out.data<float>(), in.data<float>(), B, T, m, reverse);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    if (in.dtype() == DType::F32)
        kernels::prefix_scan_exclusive_cpu<float>(out.data<float>(), in.data<float>(), B, T, m, reverse);
    else
        kernels::prefix_scan_exclusive_cpu<double>(out.data<double>(), in.data<double>(), B, T, m, reverse);
}

}  // namespace ittt::ops
