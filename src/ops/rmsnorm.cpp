// rmsnorm.cpp: ops::rmsnorm_forward / rmsnorm_backward on top of kernels/rmsnorm.
//
// x may have any number of leading dimensions; its last one must equal
// weight.numel(). So (N, d) with a (d) weight is the block norm and (N, H, hd)
// with an (hd) weight is Qwen3's per-head q/k norm. rstd holds one value per row
// and may be shaped (rows) or like x without its last dimension. The backward
// may write dx into dout's storage.
#include <cmath>

#include "kernels/rmsnorm/rmsnorm_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {


// Checks weight against x and rstd against the row count; returns the row count.
int64_t require_rows(const Tensor& x, const Tensor& weight, const Tensor& rstd, const char* op) {
    require_float(x, op, "x");
    require_same_dtype_device(x, weight, op, "x", "weight");
    require_same_dtype_device(x, rstd, op, "x", "rstd");
    ITTT_CHECK(weight.ndim() == 1 && weight.numel() > 0, op, ": weight must be 1-D and non-empty, found ", weight.describe());
    const int64_t dim = weight.numel();
    ITTT_CHECK(x.ndim() >= 1 && x.dim(-1) == dim, op, ": x is ", x.describe(), ", expected its last dim to be ", dim,
               " (the size of weight ", weight.describe(), ")");
    const int64_t rows = x.numel() / dim;
    ITTT_CHECK(rstd.numel() == rows, op, ": rstd is ", rstd.describe(), ", expected ", rows, " elements (one per row of x ",
               x.describe(), ")");
    return rows;
}

}  // namespace


void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
    ITTT_NVTX_RANGE("rmsnorm_forward");
    const char* op = "rmsnorm_forward";
    const int64_t rows = require_rows(x, weight, rstd, op);
    require_same(out, x, op, "out", "x");
    ITTT_CHECK(eps >= 0 && std::isfinite(eps), op, ": eps must be finite and >= 0, found ", eps);
    run_kernel(kernels::rmsnorm_versions, op, x, forward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(out.data<T>(), rstd.data<T>(), x.data<T>(), weight.data<T>(), rows, weight.numel(), eps);
    });
}

void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                      const Tensor& rstd) {
    ITTT_NVTX_RANGE("rmsnorm_backward");
    const char* op = "rmsnorm_backward";
    const int64_t rows = require_rows(x, weight, rstd, op);
    require_same(dx, x, op, "dx", "x");
    require_same(dout, x, op, "dout", "x");
    require_same(dweight, weight, op, "dweight", "weight");
    run_kernel(kernels::rmsnorm_versions, op, x, backward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(dx.data<T>(), dweight.data<T>(), dout.data<T>(), x.data<T>(), weight.data<T>(),
                                                 rstd.data<T>(), rows, weight.numel());
    });
}

}  // namespace ittt::ops
