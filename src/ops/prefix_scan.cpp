// prefix_scan.cpp: ops::prefix_scan_exclusive on top of kernels/prefix_scan, and the op's versions.
#include <algorithm>

#include "kernels/prefix_scan/prefix_scan_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
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
    const int64_t B = in.dim(0), T = in.dim(1), m = in.numel() / std::max<int64_t>(1, B * T);
    run_kernel(kernels::prefix_scan_versions, op, in, the_kernel, [&](auto kernel, auto t) {
        using E = decltype(t);
        kernel(out.data<E>(), in.data<E>(), B, T, m, reverse);
    });
}

}  // namespace ittt::ops
