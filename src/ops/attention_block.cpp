// attention_block.cpp: ops::attention_block_forward, _merge and _backward on top of
// kernels/attention_block: ring attention's pieces (src/parallel/attention_parallel.cpp).
//
// One version per device: CPU (F32 and F64 tensors) and CUDA (F32), picked by run_kernel from
// the tensors' device and dtype.
#include "kernels/attention_block/attention_block_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {

// Reads the sizes off q (B, nq, Hq, hd) and k, v (B, nk, Hkv, hd) and checks that they fit together.
kernels::AttentionBlockDims block_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_pos0,
                                       int64_t k_pos0, int window) {
    require_attention_heads(q, k, v, op);
    kernels::AttentionBlockDims d;
    d.B = q.dim(0), d.nq = q.dim(1), d.Hq = q.dim(2), d.hd = q.dim(3);
    d.nk = k.dim(1), d.Hkv = k.dim(2);
    d.q_pos0 = q_pos0, d.k_pos0 = k_pos0, d.window = window;
    ITTT_CHECK(q_pos0 >= 0, op, ": q_pos0 must be >= 0, found ", q_pos0);
    ITTT_CHECK(k_pos0 >= 0, op, ": k_pos0 must be >= 0, found ", k_pos0);
    return d;
}

}  // namespace

void attention_block_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_pos0,
                             int64_t k_pos0, int window) {
    ITTT_NVTX_RANGE("attention_block_forward");
    const char* op = "attention_block_forward";
    const kernels::AttentionBlockDims d = block_dims(op, q, k, v, q_pos0, k_pos0, window);
    require_same(out, q, op, "out", "q");
    require_same_dtype_device(lse, q, op, "lse", "q");
    require_shape(lse, {d.B, d.Hq, d.nq}, op, "lse");
    run_kernel(kernels::attention_block_versions, op, q, forward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(d, out.data<T>(), lse.data<T>(), q.data<T>(), k.data<T>(), v.data<T>());
    });
}

void attention_block_merge(Tensor& out, Tensor& lse, const Tensor& out_b, const Tensor& lse_b) {
    ITTT_NVTX_RANGE("attention_block_merge");
    const char* op = "attention_block_merge";
    require_float(out, op, "out");
    ITTT_CHECK(out.ndim() == 4, op, ": out is ", out.describe(), ", expected 4-D (B, nq, Hq, hd)");
    const int64_t B = out.dim(0), nq = out.dim(1), Hq = out.dim(2), hd = out.dim(3);
    require_same_dtype_device(lse, out, op, "lse", "out");
    require_shape(lse, {B, Hq, nq}, op, "lse");
    require_same(out_b, out, op, "out_b", "out");
    require_same(lse_b, lse, op, "lse_b", "lse");
    run_kernel(kernels::attention_block_versions, op, out, [](const auto& e) -> const auto& { return e.merge; }, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(B, nq, Hq, hd, out.data<T>(), lse.data<T>(), out_b.data<T>(), lse_b.data<T>());
    });
}

void attention_block_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse, int64_t q_pos0, int64_t k_pos0, int window) {
    ITTT_NVTX_RANGE("attention_block_backward");
    const char* op = "attention_block_backward";
    const kernels::AttentionBlockDims d = block_dims(op, q, k, v, q_pos0, k_pos0, window);
    require_same(dq, q, op, "dq", "q");
    require_same(dout, q, op, "dout", "q");
    require_same(out, q, op, "out", "q");
    require_same(dk, k, op, "dk", "k");
    require_same(dv, k, op, "dv", "k");
    require_same_dtype_device(lse, q, op, "lse", "q");
    require_shape(lse, {d.B, d.Hq, d.nq}, op, "lse");
    run_kernel(kernels::attention_block_versions, op, q, backward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(d, dq.data<T>(), dk.data<T>(), dv.data<T>(), dout.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
               lse.data<T>());
    });
}

}  // namespace ittt::ops
