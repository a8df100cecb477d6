// swiglu.cpp: ops::swiglu_forward / swiglu_backward on top of kernels/swiglu, and the op's versions.
// g, u, z (and their gradients) share one shape, e.g. (N, f).
#include "kernels/swiglu/swiglu_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {


void swiglu_forward(Tensor& z, const Tensor& g, const Tensor& u) {
    ITTT_NVTX_RANGE("swiglu_forward");
    const char* op = "swiglu_forward";
    require_same(g, u, op, "g", "u");
    require_same(z, g, op, "z", "g");
    run_kernel(kernels::swiglu_versions, op, g, forward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(z.data<T>(), g.data<T>(), u.data<T>(), g.numel());
    });
}

void swiglu_backward(Tensor& dg, Tensor& du, const Tensor& dz, const Tensor& g, const Tensor& u) {
    ITTT_NVTX_RANGE("swiglu_backward");
    const char* op = "swiglu_backward";
    require_same(g, u, op, "g", "u");
    require_same(dz, g, op, "dz", "g");
    require_same(dg, g, op, "dg", "g");
    require_same(du, g, op, "du", "g");
    run_kernel(kernels::swiglu_versions, op, g, backward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(dg.data<T>(), du.data<T>(), dz.data<T>(), g.data<T>(), u.data<T>(), g.numel());
    });
}

}  // namespace ittt::ops
