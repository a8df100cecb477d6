// conv1d.cpp: ops::conv1d_chunked_forward / backward on top of kernels/conv1d, and the op's versions.
#include "kernels/conv1d/conv1d.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
template <class T>
using Conv1dForwardCpu = decltype(kernels::conv1d_chunked_forward_cpu<T>);
template <class T>
using Conv1dBackwardCpu = decltype(kernels::conv1d_chunked_backward_cpu<T>);
struct CpuEntry {
    CpuKernel<Conv1dForwardCpu> forward;
    CpuKernel<Conv1dBackwardCpu> backward;
};
struct CudaEntry {
    decltype(&kernels::conv1d_chunked_forward_cuda) forward;
    decltype(&kernels::conv1d_chunked_backward_cuda) backward;
};

// K <= 5 products per output; the weight gradient sums B*n products per tap in F32.
const Tolerance kConv1dF32 = {1e-4, 1e-5, "sums of K taps; dweight sums B*n (up to 600) products per tap in F32: ~1e-5 where they cancel"};
const KernelOp<CpuEntry, CudaEntry> kConv1d = {
    "conv1d", "depthwise conv1d inside chunks (the TTT target's taps), zero at chunk edges", "kernels/conv1d",
    1, {{{1, "direct", "direct loops over (token, channel, tap)", "conv1d_chunked_forward_cpu|conv1d_chunked_backward_cpu",
          kConv1dF32},
         {ITTT_CPU_KERNEL(kernels::conv1d_chunked_forward_cpu), ITTT_CPU_KERNEL(kernels::conv1d_chunked_backward_cpu)}}},
    1, {{{1, "output per thread", "one thread per output; the weight gradient one block per (channel, tap)",
          "conv1d_forward_kernel|conv1d_input_grad_kernel|conv1d_weight_grad_kernel", kConv1dF32},
         {ITTT_CUDA_KERNEL(kernels::conv1d_chunked_forward_cuda), ITTT_CUDA_KERNEL(kernels::conv1d_chunked_backward_cuda)}}},
};

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

OpSpec conv1d_op_spec() { return kConv1d.spec(); }

void conv1d_chunked_forward(Tensor& out, const Tensor& x, const Tensor& weight, const std::vector<int>& offsets, int chunk) {
    ITTT_NVTX_RANGE("conv1d_chunked_forward");
    const char* op = "conv1d_chunked_forward";
    check_conv_args(op, x, weight, offsets, chunk);
    require_same(out, x, op, "out", "x");
    const int64_t B = x.dim(0), n = x.dim(1), d = x.dim(2), K = weight.dim(1);
    if (x.device() == Device::CUDA) {
        built(kConv1d.cuda_entry(op).forward, op)(out.data<float>(), x.data<float>(), weight.data<float>(), offsets.data(), B, n, d,
                                                  K, chunk);
        return;
    }
    with_float_type(x.dtype(), [&](auto t) {
        using T = decltype(t);
        kConv1d.cpu_entry(op).forward.get<T>()(out.data<T>(), x.data<T>(), weight.data<T>(), offsets.data(), B, n, d, K, chunk);
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
    if (x.device() == Device::CUDA) {
        built(kConv1d.cuda_entry(op).backward, op)(dx.data<float>(), dweight.data<float>(), dout.data<float>(), x.data<float>(),
                                                   weight.data<float>(), offsets.data(), B, n, d, K, chunk);
        return;
    }
    with_float_type(x.dtype(), [&](auto t) {
        using T = decltype(t);
        kConv1d.cpu_entry(op).backward.get<T>()(dx.data<T>(), dweight.data<T>(), dout.data<T>(), x.data<T>(), weight.data<T>(),
                                                offsets.data(), B, n, d, K, chunk);
    });
}

}  // namespace ittt::ops
