// conv1d.cpp: ops::conv1d_chunked_forward / backward on top of kernels/conv1d, and the op's versions.
#include "kernels/conv1d/conv1d_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {

// Shapes shared by forward and backward: x (B, n, d), weight (d, K), K = offsets.size().
void check_conv_args(const char* op, const Tensor& x, const Tensor& weight, const std::vector<int>& offsets, int chunk) {
    require_float(x, op, "x");
    ITTT_CHECK(x.ndim() == 3, op, ": x is ", x.describe(), ", expected 3-D (B, n, d)");
    ITTT_CHECK(!offsets.empty(), op, ": offsets is empty, expected at least one tap");
    ITTT_CHECK(chunk >= 1, op, ": chunk must be >= 1, found ", chunk);
    require_same_dtype_device(x, weight, op, "x", "weight");
    require_shape(weight, {x.dim(2), static_cast<int64_t>(offsets.size())}, op, "weight");
    if (x.device() == Device::CUDA) require_cuda_f32(x, op);
}
}  // namespace


void conv1d_chunked_forward(Tensor& out, const Tensor& x, const Tensor& weight, const std::vector<int>& offsets, int chunk) {
    ITTT_NVTX_RANGE("conv1d_chunked_forward");
    const char* op = "conv1d_chunked_forward";
    check_conv_args(op, x, weight, offsets, chunk);
    require_same(out, x, op, "out", "x");
    const int64_t B = x.dim(0), n = x.dim(1), d = x.dim(2), K = weight.dim(1);
    run_kernel(kernels::conv1d_versions, op, x, forward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(out.data<T>(), x.data<T>(), weight.data<T>(), offsets.data(), B, n, d, K, chunk);
    });
}

void conv1d_chunked_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                             const std::vector<int>& offsets, int chunk) {
    ITTT_NVTX_RANGE("conv1d_chunked_backward");
    const char* op = "conv1d_chunked_backward";
    check_conv_args(op, x, weight, offsets, chunk);
    require_same(dx, x, op, "dx", "x");
    require_same(dout, x, op, "dout", "x");
    require_same(dweight, weight, op, "dweight", "weight");
    const int64_t B = x.dim(0), n = x.dim(1), d = x.dim(2), K = weight.dim(1);
    run_kernel(kernels::conv1d_versions, op, x, backward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(dx.data<T>(), dweight.data<T>(), dout.data<T>(), x.data<T>(), weight.data<T>(),
                                                offsets.data(), B, n, d, K, chunk);
    });
}

}  // namespace ittt::ops
