// swiglu.cpp: ops::swiglu_forward / swiglu_backward on top of kernels/swiglu, and the op's versions.
// g, u, z (and their gradients) share one shape, e.g. (N, f).
#include "kernels/swiglu/swiglu.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
template <class T>
using SwigluForwardCpu = decltype(kernels::swiglu_forward_cpu<T>);
template <class T>
using SwigluBackwardCpu = decltype(kernels::swiglu_backward_cpu<T>);
struct CpuEntry {
    CpuKernel<SwigluForwardCpu> forward;
    CpuKernel<SwigluBackwardCpu> backward;
};
struct CudaEntry {
    decltype(&kernels::swiglu_forward_cuda) forward;
    decltype(&kernels::swiglu_backward_cuda) backward;
};

// expf is within 2 ulp of the exact value and a few float roundings follow it; atol covers the
// zero of silu'(g) near g = -1.28, where the relative error of dg is unbounded.
const Tolerance kSwigluF32 = {1e-6, 1e-6, "F32 expf (2 ulp) and a few roundings; atol for the zero of silu' near -1.28"};
const KernelOp<CpuEntry, CudaEntry> kSwiglu = {
    "swiglu", "z = silu(g) * u elementwise, and its backward", "kernels/swiglu",
    1, {{{1, "elementwise", "one pass over the elements (vectorised exp on the CPU)", "swiglu_forward_cpu|swiglu_backward_cpu",
          kSwigluF32},
         {ITTT_CPU_KERNEL(kernels::swiglu_forward_cpu), ITTT_CPU_KERNEL(kernels::swiglu_backward_cpu)}}},
    1, {{{1, "elementwise", "one thread per element", "swiglu_forward_kernel|swiglu_backward_kernel", kSwigluF32},
         {ITTT_CUDA_KERNEL(kernels::swiglu_forward_cuda), ITTT_CUDA_KERNEL(kernels::swiglu_backward_cuda)}}},
};
}  // namespace

OpSpec swiglu_op_spec() { return kSwiglu.spec(); }

void swiglu_forward(Tensor& z, const Tensor& g, const Tensor& u) {
    ITTT_NVTX_RANGE("swiglu_forward");
    const char* op = "swiglu_forward";
    require_same(g, u, op, "g", "u");
    require_same(z, g, op, "z", "g");
    if (g.device() == Device::CUDA) {
        require_cuda_f32(g, op);
        built(kSwiglu.cuda_entry(op).forward, op)(z.data<float>(), g.data<float>(), u.data<float>(), g.numel());
        return;
    }
    with_float_type(g.dtype(), [&](auto t) {
        using T = decltype(t);
        kSwiglu.cpu_entry(op).forward.get<T>()(z.data<T>(), g.data<T>(), u.data<T>(), g.numel());
    });
}

void swiglu_backward(Tensor& dg, Tensor& du, const Tensor& dz, const Tensor& g, const Tensor& u) {
    ITTT_NVTX_RANGE("swiglu_backward");
    const char* op = "swiglu_backward";
    require_same(g, u, op, "g", "u");
    require_same(dz, g, op, "dz", "g");
    require_same(dg, g, op, "dg", "g");
    require_same(du, g, op, "du", "g");
    if (g.device() == Device::CUDA) {
        require_cuda_f32(g, op);
        built(kSwiglu.cuda_entry(op).backward, op)(dg.data<float>(), du.data<float>(), dz.data<float>(), g.data<float>(),
                                                   u.data<float>(), g.numel());
        return;
    }
    with_float_type(g.dtype(), [&](auto t) {
        using T = decltype(t);
        kSwiglu.cpu_entry(op).backward.get<T>()(dg.data<T>(), du.data<T>(), dz.data<T>(), g.data<T>(), u.data<T>(), g.numel());
    });
}

}  // namespace ittt::ops
