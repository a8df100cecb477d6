// attention.cpp: ops::attention_forward and ops::attention_backward on top of kernels/attention,
// and the attention op's versions (a naive reference and a flash version on each device).
#include "kernels/attention/attention.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {

// Reads the sizes off q (B, nq, Hq, hd) and k, v (B, cap, Hkv, hd) and checks that they fit together.
kernels::AttentionDims attention_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window) {
    require_float(q, op, "q");
    require_same_dtype_device(q, k, op, "q", "k");
    require_same_dtype_device(q, v, op, "q", "v");
    ITTT_CHECK(q.ndim() == 4, op, ": q is ", q.describe(), ", expected 4-D (B, nq, Hq, hd)");
    ITTT_CHECK(k.ndim() == 4, op, ": k is ", k.describe(), ", expected 4-D (B, cap, Hkv, hd)");
    require_shape(v, k.shape(), op, "v");
    kernels::AttentionDims d;
    d.B = q.dim(0), d.nq = q.dim(1), d.Hq = q.dim(2), d.hd = q.dim(3);
    d.cap = k.dim(1), d.Hkv = k.dim(2);
    d.q_pos0 = q_pos0, d.window = window;
    ITTT_CHECK(k.dim(0) == d.B, op, ": k is ", k.describe(), " but q is ", q.describe(), " (batch sizes differ)");
    ITTT_CHECK(k.dim(3) == d.hd, op, ": k is ", k.describe(), " but q is ", q.describe(), " (head dims differ)");
    ITTT_CHECK(d.hd > 0, op, ": q is ", q.describe(), ", head dim must be positive");
    ITTT_CHECK(d.Hkv > 0 && d.Hq % d.Hkv == 0, op, ": ", d.Hq, " query heads (q ", q.describe(), ") is not a multiple of ", d.Hkv,
               " KV heads (k ", k.describe(), ")");
    ITTT_CHECK(q_pos0 >= 0, op, ": q_pos0 must be >= 0, found ", q_pos0);
    ITTT_CHECK(d.cap >= d.q_pos0 + d.nq, op, ": k is ", k.describe(), ", its ", d.cap, " positions cannot hold keys 0 .. ",
               d.q_pos0 + d.nq - 1, " (q_pos0 ", q_pos0, " + nq ", d.nq, " - 1)");
    return d;
}

template <class T>
using AttentionForwardCpu = decltype(kernels::attention_flash_forward_cpu<T>);
template <class T>
using AttentionBackwardCpu = decltype(kernels::attention_flash_backward_cpu<T>);
struct CpuEntry {
    CpuKernel<AttentionForwardCpu> forward;
    CpuKernel<AttentionBackwardCpu> backward;
};
struct CudaEntry {
    kernels::AttentionForwardCuda* forward;
    kernels::AttentionBackwardCuda* backward;
};

// Out is a convex combination of O(1) values and lse a log of sums of O(1) terms; dk, dv
// sum up to 4 heads x 300 queries of O(1) terms. The F32 CPU versions stay within 1.2e-6
// (forward) and 6e-6 (backward) of F64 at hd = 16; hd = 128 sums 8x as many products.
const Tolerance kAttentionF32 = {5e-5, 1e-4, "F32 gradient sums over up to 4 heads x 300 queries of O(1) terms, score sums over hd <= 128 (measured: < 1/10)"};
const KernelOp<CpuEntry, CudaEntry> kAttention = {
    "attention", "causal grouped-query attention with an optional sliding window, scale 1/sqrt(hd)", "kernels/attention",
    /*cpu best*/ 2,
    {
        {{1, "naive", "materialises each score row (backward: the n x n probabilities) and applies the textbook formulas",
          "attention_naive_forward_cpu|attention_naive_backward_cpu", kAttentionF32},
         {ITTT_CPU_KERNEL(kernels::attention_naive_forward_cpu), ITTT_CPU_KERNEL(kernels::attention_naive_backward_cpu)}},
        {{2, "flash", "tiled online softmax that never builds the score matrix and skips key tiles outside the window",
          "attention_flash_forward_cpu|attention_flash_backward_cpu", kAttentionF32},
         {ITTT_CPU_KERNEL(kernels::attention_flash_forward_cpu), ITTT_CPU_KERNEL(kernels::attention_flash_backward_cpu)}},
    },
    /*cuda best*/ 2,
    {
        {{1, "naive", "one block per (batch, head, query), its score row in shared memory; float atomics into dk, dv",
          "attention_naive_forward_kernel|attention_naive_backward_kernel", kAttentionF32},
         {ITTT_CUDA_KERNEL(kernels::attention_naive_forward_cuda), ITTT_CUDA_KERNEL(kernels::attention_naive_backward_cuda)}},
        {{2, "flash", "32-query tiles in shared memory with 32-key tiles streamed under an online softmax; no atomics",
          "attention_flash_forward_kernel|attention_row_dot_kernel|attention_flash_dkdv_kernel|attention_flash_dq_kernel",
          kAttentionF32},
         {ITTT_CUDA_KERNEL(kernels::attention_flash_forward_cuda), ITTT_CUDA_KERNEL(kernels::attention_flash_backward_cuda)}},
    },
};

}  // namespace

OpSpec attention_op_spec() { return kAttention.spec(); }

void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window) {
    ITTT_NVTX_RANGE("attention_forward");
    const char* op = "attention_forward";
    kernels::AttentionDims d = attention_dims(op, q, k, v, q_pos0, window);
    require_same(out, q, op, "out", "q");
    require_same_dtype_device(lse, q, op, "lse", "q");
    require_shape(lse, {d.B, d.Hq, d.nq}, op, "lse");
    if (q.device() == Device::CUDA) {
        require_cuda_f32(q, op);
        built(kAttention.cuda_entry(op).forward, op)(d, out.data<float>(), lse.data<float>(), q.data<float>(), k.data<float>(),
                                                      v.data<float>());
        return;
    }
    with_float_type(q.dtype(), [&](auto t) {
        using T = decltype(t);
        kAttention.cpu_entry(op).forward.get<T>()(d, out.data<T>(), lse.data<T>(), q.data<T>(), k.data<T>(), v.data<T>());
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
        built(kAttention.cuda_entry(op).backward, op)(d, dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                                                       q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                                       lse.data<float>());
        return;
    }
    with_float_type(q.dtype(), [&](auto t) {
        using T = decltype(t);
        kAttention.cpu_entry(op).backward.get<T>()(d, dq.data<T>(), dk.data<T>(), dv.data<T>(), dout.data<T>(), q.data<T>(), k.data<T>(),
                                                  v.data<T>(), out.data<T>(), lse.data<T>());
    });
}

}  // namespace ittt::ops
