// attention.cpp: ops::attention_forward and ops::attention_backward on top of kernels/attention,
// and the attention op's versions (a naive reference and a flash version on each device).
#include "kernels/attention/attention_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {

// Reads the sizes off q (B, nq, Hq, hd) and k, v (B, cap, Hkv, hd) and checks that they fit together.
kernels::AttentionDims attention_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window) {
    require_attention_heads(q, k, v, op);
    kernels::AttentionDims d;
    d.B = q.dim(0), d.nq = q.dim(1), d.Hq = q.dim(2), d.hd = q.dim(3);
    d.cap = k.dim(1), d.Hkv = k.dim(2);
    d.q_pos0 = q_pos0, d.window = window;
    ITTT_CHECK(q_pos0 >= 0, op, ": q_pos0 must be >= 0, found ", q_pos0);
    ITTT_CHECK(d.cap >= d.q_pos0 + d.nq, op, ": k is ", k.describe(), ", its ", d.cap, " positions cannot hold keys 0 .. ",
               d.q_pos0 + d.nq - 1, " (q_pos0 ", q_pos0, " + nq ", d.nq, " - 1)");
    return d;
}

}  // namespace

void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window) {
    ITTT_NVTX_RANGE("attention_forward");
    const char* op = "attention_forward";
    kernels::AttentionDims d = attention_dims(op, q, k, v, q_pos0, window);
    require_same(out, q, op, "out", "q");
    require_same_dtype_device(lse, q, op, "lse", "q");
    require_shape(lse, {d.B, d.Hq, d.nq}, op, "lse");
    if (q.device() == Device::CUDA) {
        require_cuda_f32(q, op);
        built(cuda_entry(kernels::attention_versions, op).forward, op)(d, out.data<float>(), lse.data<float>(), q.data<float>(), k.data<float>(),
                                                      v.data<float>());
        return;
    }
    with_float_type(q.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::attention_versions, op).forward.get<T>()(d, out.data<T>(), lse.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(),
                                                                   selected_cpu_gemm<T>(op));
    });
}

void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, int window) {
    ITTT_NVTX_RANGE("attention_backward");
    const char* op = "attention_backward";
    kernels::AttentionDims d = attention_dims(op, q, k, v, 0, window);
    ITTT_CHECK(d.cap == d.nq, op, ": k is ", k.describe(), " but q is ", q.describe(),
               "; the backward is the training form, with as many keys as queries");
    require_same(dq, q, op, "dq", "q");
    require_same(dout, q, op, "dout", "q");
    require_same(out, q, op, "out", "q");
    require_same(dk, k, op, "dk", "k");
    require_same(dv, k, op, "dv", "k");
    require_same_dtype_device(lse, q, op, "lse", "q");
    require_shape(lse, {d.B, d.Hq, d.nq}, op, "lse");
    if (q.device() == Device::CUDA) {
        require_cuda_f32(q, op);
        built(cuda_entry(kernels::attention_versions, op).backward, op)(d, dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                                                       q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                                       lse.data<float>());
        return;
    }
    with_float_type(q.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::attention_versions, op).backward.get<T>()(d, dq.data<T>(), dk.data<T>(), dv.data<T>(), dout.data<T>(), q.data<T>(), k.data<T>(),
                                                  v.data<T>(), out.data<T>(), lse.data<T>(), selected_cpu_gemm<T>(op));
    });
}

}  // namespace ittt::ops
