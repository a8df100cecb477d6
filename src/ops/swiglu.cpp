// swiglu.cpp: ops::swiglu_forward / swiglu_backward on top of kernels/swiglu.
// g, u, z (and their gradients) share one shape, e.g. (N, f). CUDA tensors (F32 only)
// go to swiglu.cu.
#include "kernels/swiglu/swiglu.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
void require_cpu_version(const char* op) {
    int v = version("swiglu");
    ITTT_CHECK(v == 0 || v == 1, op, ": no CPU version ", v, " of swiglu (versions: 1 reference)");
}

#if ITTT_WITH_CUDA
void require_cuda_version(const char* op, const Tensor& g) {
    ITTT_CHECK(g.dtype() == DType::F32, op, ": CUDA kernels are F32 only, found g ", g.describe());
    int v = version("swiglu");
    ITTT_CHECK(v == 0 || v == 1, op, ": no CUDA version ", v, " of swiglu (versions: 1 one thread per element)");
}
#endif

template <class T>
void forward_cpu(Tensor& z, const Tensor& g, const Tensor& u) {
    kernels::swiglu_forward_cpu<T>(z.data<T>(), g.data<T>(), u.data<T>(), g.numel());
}

template <class T>
void backward_cpu(Tensor& dg, Tensor& du, const Tensor& dz, const Tensor& g, const Tensor& u) {
    kernels::swiglu_backward_cpu<T>(dg.data<T>(), du.data<T>(), dz.data<T>(), g.data<T>(), u.data<T>(), g.numel());
}
}  // namespace

void swiglu_forward(Tensor& z, const Tensor& g, const Tensor& u) {
    ITTT_NVTX_RANGE("swiglu_forward");
    const char* op = "swiglu_forward";
    require_same(g, u, op, "g", "u");
    require_same(z, g, op, "z", "g");
    if (g.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        require_cuda_version(op, g);
        kernels::swiglu_forward_cuda(z.data<float>(), g.data<float>(), u.data<float>(), g.numel());
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    require_cpu_version(op);
    if (g.dtype() == DType::F32) forward_cpu<float>(z, g, u);
    else forward_cpu<double>(z, g, u);
}

void swiglu_backward(Tensor& dg, Tensor& du, const Tensor& dz, const Tensor& g, const Tensor& u) {
    ITTT_NVTX_RANGE("swiglu_backward");
    const char* op = "swiglu_backward";
    require_same(g, u, op, "g", "u");
    require_same(dz, g, op, "dz", "g");
    require_same(dg, g, op, "dg", "g");
    require_same(du, g, op, "du", "g");
    if (g.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        require_cuda_version(op, g);
        kernels::swiglu_backward_cuda(dg.data<float>(), du.data<float>(), dz.data<float>(), g.data<float>(), u.data<float>(),
                                      g.numel());
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    require_cpu_version(op);
    if (g.dtype() == DType::F32) backward_cpu<float>(dg, du, dz, g, u);
    else backward_cpu<double>(dg, du, dz, g, u);
}

}  // namespace ittt::ops
