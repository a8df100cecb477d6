// conv1d.cpp: ops::conv1d_chunked_forward / backward on top of kernels/conv1d.
#include "kernels/conv1d/conv1d.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
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
    int v = version("conv1d");
    ITTT_CHECK(v == 0 || v == 1, op, ": no ", device_name(x.device()), " version ", v,
               " (versions: 1 direct loops on the CPU, one thread per output on CUDA)");
    ITTT_CHECK(x.device() == Device::CPU || x.dtype() == DType::F32, op, ": CUDA kernels are F32 only, found x ", x.describe());
}
}  // namespace

void conv1d_chunked_forward(Tensor& out, const Tensor& x, const Tensor& weight, const std::vector<int>& offsets, int chunk) {
    ITTT_NVTX_RANGE("conv1d_chunked_forward");
    const char* op = "conv1d_chunked_forward";
    check_conv_args(op, x, weight, offsets, chunk);
    require_same(out, x, op, "out", "x");
    const int64_t B = x.dim(0), n = x.dim(1), d = x.dim(2), K = weight.dim(1);
    if (x.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        kernels::conv1d_chunked_forward_cuda(out.data<float>(), x.data<float>(), weight.data<float>(), offsets.data(), B, n, d, K,
                                             chunk);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    if (x.dtype() == DType::F32)
        kernels::conv1d_chunked_forward_cpu<float>(out.data<float>(), x.data<float>(), weight.data<float>(), offsets.data(), B, n, d,
                                                   K, chunk);
    else
        kernels::conv1d_chunked_forward_cpu<double>(out.data<double>(), x.data<double>(), weight.data<double>(), offsets.data(), B,
                                                    n, d, K, chunk);
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
    if (x.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        kernels::conv1d_chunked_backward_cuda(dx.data<float>(), dweight.data<float>(), dout.data<float>(), x.data<float>(),
                                              weight.data<float>(), offsets.data(), B, n, d, K, chunk);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    if (x.dtype() == DType::F32)
        kernels::conv1d_chunked_backward_cpu<float>(dx.data<float>(), dweight.data<float>(), dout.data<float>(), x.data<float>(),
                                                    weight.data<float>(), offsets.data(), B, n, d, K, chunk);
    else
        kernels::conv1d_chunked_backward_cpu<double>(dx.data<double>(), dweight.data<double>(), dout.data<double>(),
                                                     x.data<double>(), weight.data<double>(), offsets.data(), B, n, d, K, chunk);
}

}  // namespace ittt::ops
