// ttt_loop.cpp: ops::ttt_loop_forward / backward, the running-weight form of the TTT MLP,
// on top of kernels/ttt_loop (CPU). The math is in docs/ttt.md, "The chunk loop as a kernel".
#include <cmath>
#include <tuple>

#include "kernels/ttt_loop/ttt_loop.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

// The gemm op's selected CPU version (src/ops/gemm.cpp): every product of the loop uses it.
template <class T>
kernels::GemmCpuFn<T>* selected_cpu_gemm(const char* caller);

namespace {
template <class T>
using LoopForwardCpu = decltype(kernels::ttt_loop_forward_cpu<T>);
template <class T>
using LoopBackwardCpu = decltype(kernels::ttt_loop_backward_cpu<T>);
struct CpuEntry {
    CpuKernel<LoopForwardCpu> forward;
    CpuKernel<LoopBackwardCpu> backward;
};

// The loop reorders the parallel form's sums (W_i built by running addition, half the
// multiply-adds): F32 rounding of sums over chunks and over d, f.
const KernelOp<CpuEntry, int> kTttLoop = {
    "ttt_loop", "the TTT MLP as a chunk loop with a running fast weight (apply, then update), forward and backward",
    "kernels/ttt_loop",
    1, {{{1, "chunk loop", "per chunk: apply W_i with one GEMM, then fold eta V_[i]^T Z_[i] into it with another",
          "ttt_loop_forward_cpu|ttt_loop_backward_cpu", {1e-5, 1e-5, "F32 running sums over chunks and over d, f of O(1) terms (measured: < 1/10)"}},
         {ITTT_CPU_KERNEL(kernels::ttt_loop_forward_cpu), ITTT_CPU_KERNEL(kernels::ttt_loop_backward_cpu)}}},
    // On CUDA a model runs the parallel form (ttt_delta, prefix_scan, ttt_apply).
    0, {},
};

// z (B, n, f), v (B, n, d) with the B and n of z, a positive chunk, a finite eta; CPU only.
kernels::TttLoopShape require_loop_args(const Tensor& z, const Tensor& v, double eta, int chunk, const char* op) {
    require_float(z, op, "z");
    ITTT_CHECK(z.ndim() == 3, op, ": z is ", z.describe(), ", expected 3-D (B, n, f)");
    ITTT_CHECK(v.defined() && v.ndim() == 3, op, ": v is ", v.describe(), ", expected 3-D (B, n, d)");
    require_same_dtype_device(v, z, op, "v", "z");
    require_shape(v, {z.dim(0), z.dim(1), v.dim(2)}, op, "v");
    ITTT_CHECK(chunk >= 1, op, ": chunk must be >= 1, found ", chunk);
    ITTT_CHECK(std::isfinite(eta), op, ": eta must be finite, found ", eta);
    ITTT_CHECK(z.device() == Device::CPU, op, ": CPU only (on CUDA the model runs the parallel form), found z ", z.describe());
    kernels::TttLoopShape s;
    s.batch = z.dim(0);
    s.n = z.dim(1);
    s.d = v.dim(2);
    s.f = z.dim(2);
    s.chunk = chunk;
    return s;
}
}  // namespace

OpSpec ttt_loop_op_spec() { return kTttLoop.spec(); }

TttLoopResult ttt_loop_forward(Tensor& o, const Tensor& z, const Tensor& v, const Tensor& wd, double eta, int chunk,
                               const TttLoopOptions& opt) {
    ITTT_NVTX_RANGE("ttt_loop_forward");
    const char* op = "ttt_loop_forward";
    const kernels::TttLoopShape s = require_loop_args(z, v, eta, chunk, op);
    const int64_t B = s.batch, d = s.d, f = s.f, T = s.chunks();
    require_same_dtype_device(wd, z, op, "wd", "z");
    require_shape(wd, {d, f}, op, "wd");
    require_same_dtype_device(o, z, op, "o", "z");
    require_shape(o, {B, s.n, d}, op, "o");
    ITTT_CHECK(!(opt.keep_all && opt.keep_state), op, ": keep_all and keep_state together are not supported");
    ITTT_CHECK(opt.clip_tau >= 0 && std::isfinite(opt.clip_tau), op, ": clip_tau must be finite and >= 0 (0: off), found ",
               opt.clip_tau);

    TttLoopResult r;
    const DType dt = z.dtype();
    if (opt.keep_all) r.w_all = Tensor::empty({B, T, d, f}, dt);
    if (opt.keep_last) r.w_last = Tensor::empty({B, d, f}, dt);
    if (opt.keep_state) r.w_state = Tensor::empty({B, d, f}, dt);
    if (opt.norms) {
        r.norm.resize(static_cast<size_t>(B * T));
        r.applied.resize(static_cast<size_t>(B * T));
    }
    Tensor workspace = Tensor::empty({B, 2, d, f}, dt);
    kernels::TttLoopUpdates u;
    u.limit = opt.update_limit;
    u.clip_tau = opt.clip_tau;
    with_float_type(dt, [&](auto t) {
        using T_ = decltype(t);
        kernels::TttLoopForwardOut<T_> out;
        if (r.w_all.defined()) out.w_all = r.w_all.data<T_>();
        if (r.w_last.defined()) out.w_last = r.w_last.data<T_>();
        if (r.w_state.defined()) out.w_state = r.w_state.data<T_>();
        if (opt.norms) out.norm = r.norm.data(), out.applied = r.applied.data();
        kTttLoop.cpu_entry(op).forward.get<T_>()(s, o.data<T_>(), z.data<T_>(), v.data<T_>(), wd.data<T_>(), static_cast<T_>(eta), u,
                                                 out, workspace.data<T_>(), selected_cpu_gemm<T_>(op));
    });
    return r;
}

void ttt_loop_backward(Tensor& dz, Tensor& dv, Tensor& dwd, const Tensor& dout, const Tensor& z, const Tensor& v, double eta,
                       int chunk, const Tensor& w, int update_limit) {
    ITTT_NVTX_RANGE("ttt_loop_backward");
    const char* op = "ttt_loop_backward";
    const kernels::TttLoopShape s = require_loop_args(z, v, eta, chunk, op);
    const int64_t B = s.batch, n = s.n, d = s.d, f = s.f, T = s.chunks();
    for (auto [t, name, width] : {std::tuple<const Tensor*, const char*, int64_t>{&dz, "dz", f}, {&dv, "dv", d}, {&dout, "dout", d}}) {
        require_same_dtype_device(*t, z, op, name, "z");
        require_shape(*t, {B, n, width}, op, name);
    }
    require_same_dtype_device(dwd, z, op, "dwd", "z");
    require_shape(dwd, {d, f}, op, "dwd");
    require_same_dtype_device(w, z, op, "w", "z");
    const bool all = w.ndim() == 4;
    ITTT_CHECK(w.shape() == (all ? Shape{B, T, d, f} : Shape{B, d, f}), op, ": w is ", w.describe(), ", expected every W_i ",
               shape_str({B, T, d, f}), " or the last one ", shape_str({B, d, f}), " as ttt_loop_forward kept them");

    Tensor workspace = Tensor::empty({B, 3, d, f}, z.dtype());
    kernels::TttLoopUpdates u;
    u.limit = update_limit;
    with_float_type(z.dtype(), [&](auto t) {
        using T_ = decltype(t);
        const T_* wp = w.data<T_>();
        kTttLoop.cpu_entry(op).backward.get<T_>()(s, dz.data<T_>(), dv.data<T_>(), dwd.data<T_>(), dout.data<T_>(), z.data<T_>(),
                                                  v.data<T_>(), static_cast<T_>(eta), u, all ? wp : nullptr, all ? nullptr : wp,
                                                  workspace.data<T_>(), selected_cpu_gemm<T_>(op));
    });
}

}  // namespace ittt::ops
