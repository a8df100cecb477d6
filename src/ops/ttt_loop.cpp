// ttt_loop.cpp: ops::ttt_loop_forward / backward, the running-weight form of the TTT MLP,
// on top of kernels/ttt_loop (CPU and CUDA). The math is in docs/ttt.md, "What the forms keep".
#include <cmath>
#include <tuple>

#include "kernels/ttt_loop/ttt_loop_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
// z (B, n, f), v (B, n, d) with the B and n of z, a positive chunk, a finite eta.
kernels::TttLoopShape require_loop_args(const Tensor& z, const Tensor& v, double eta, int chunk, const char* op) {
    require_float(z, op, "z");
    ITTT_CHECK(z.ndim() == 3, op, ": z is ", z.describe(), ", expected 3-D (B, n, f)");
    ITTT_CHECK(v.defined() && v.ndim() == 3, op, ": v is ", v.describe(), ", expected 3-D (B, n, d)");
    require_same_dtype_device(v, z, op, "v", "z");
    require_shape(v, {z.dim(0), z.dim(1), v.dim(2)}, op, "v");
    ITTT_CHECK(chunk >= 1, op, ": chunk must be >= 1, found ", chunk);
    ITTT_CHECK(std::isfinite(eta), op, ": eta must be finite, found ", eta);
    kernels::TttLoopShape s;
    s.batch = z.dim(0);
    s.n = z.dim(1);
    s.d = v.dim(2);
    s.f = z.dim(2);
    s.chunk = chunk;
    return s;
}
}  // namespace


TttLoopResult ttt_loop_forward(Tensor& o, const Tensor& z, const Tensor& v, const Tensor& wd, double eta, int chunk,
                               const TttLoopOptions& opt) {
    ITTT_NVTX_RANGE("ttt_loop_forward");
    const char* op = "ttt_loop_forward";
    kernels::TttLoopShape s = require_loop_args(z, v, eta, chunk, op);
    const int64_t B = s.batch, d = s.d, f = s.f, T = s.chunks();
    require_same_dtype_device(wd, z, op, "wd", "z");
    require_shape(wd, {d, f}, op, "wd");
    const bool stream = opt.w_state.defined();
    s.start = opt.start;
    ITTT_CHECK(opt.start >= 0 && opt.start < chunk && opt.start < s.n && (stream || opt.start == 0), op, ": start ", opt.start,
               " must be below the chunk (", chunk, ") and the rows of z (", s.n, "), and 0 without w_state");
    require_same_dtype_device(o, z, op, "o", "z");
    require_shape(o, {B, s.n - s.start, d}, op, "o");
    if (stream) {
        require_same_dtype_device(opt.w_state, z, op, "w_state", "z");
        require_shape(opt.w_state, {B, d, f}, op, "w_state");
    }
    ITTT_CHECK(!(stream && opt.keep_all), op, ": keep_all and w_state together are not supported");
    ITTT_CHECK(opt.clip_tau >= 0 && std::isfinite(opt.clip_tau), op, ": clip_tau must be finite and >= 0 (0: off), found ",
               opt.clip_tau);

    TttLoopResult r;
    const DType dt = z.dtype();
    if (opt.keep_all) r.w_all = Tensor::empty({B, T, d, f}, dt, z.device());
    if (opt.keep_last) r.w_last = Tensor::empty({B, d, f}, dt, z.device());
    // Scratch: each sequence's delta, then its running W unless the store of every W_i or the state holds it.
    Tensor workspace = Tensor::empty({(opt.keep_all || stream ? 1 : 2) * B, d, f}, dt, z.device());
    kernels::TttLoopUpdates u;
    u.limit = opt.update_limit;
    u.clip_tau = opt.clip_tau;
    Tensor w_state = opt.w_state;  // a handle: the kernel advances the caller's state in place
    std::vector<double> reports(opt.norms ? static_cast<size_t>(2 * B * T) : 0);  // the norms, then the norms folded in
    Tensor device_reports = z.device() == Device::CUDA && opt.norms ? Tensor::empty({2 * B * T}, DType::F64, z.device()) : Tensor();
    auto pointers = [&](auto t) {
        using T_ = decltype(t);
        kernels::TttLoopForwardOut<T_> out;
        if (r.w_all.defined()) out.w_all = r.w_all.data<T_>();
        if (r.w_last.defined()) out.w_last = r.w_last.data<T_>();
        if (stream) out.w_state = w_state.data<T_>();
        double* report = device_reports.defined() ? device_reports.data<double>() : reports.data();
        if (opt.norms) out.norm = report, out.applied = report + B * T;
        return out;
    };
    if (z.device() == Device::CUDA) {
        require_cuda_f32(z, op);
        built(cuda_entry(kernels::ttt_loop_versions, op).forward, op)(
            s, o.data<float>(), z.data<float>(), v.data<float>(), stream ? nullptr : wd.data<float>(), static_cast<float>(eta), u,
            pointers(float{}), workspace.data<float>(), selected_cuda_gemm(op));
    } else {
        with_float_type(dt, [&](auto t) {
            using T_ = decltype(t);
            cpu_entry(kernels::ttt_loop_versions, op).forward.get<T_>()(s, o.data<T_>(), z.data<T_>(), v.data<T_>(),
                                                                        stream ? nullptr : wd.data<T_>(), static_cast<T_>(eta), u,
                                                                        pointers(t), workspace.data<T_>(), selected_cpu_gemm<T_>(op));
        });
    }
    if (device_reports.defined()) reports = device_reports.to(Device::CPU).to_f64_vector();
    r.norm.assign(reports.begin(), reports.begin() + static_cast<std::ptrdiff_t>(reports.size() / 2));
    r.applied.assign(reports.begin() + static_cast<std::ptrdiff_t>(reports.size() / 2), reports.end());
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

    // Per sequence G and the rebuilt W; CUDA also one delta (the CPU's GEMM adds it into W directly).
    Tensor workspace = Tensor::empty({B, z.device() == Device::CUDA ? 3 : 2, d, f}, z.dtype(), z.device());
    kernels::TttLoopUpdates u;
    u.limit = update_limit;
    if (z.device() == Device::CUDA) {
        require_cuda_f32(z, op);
        const float* wp = w.data<float>();
        built(cuda_entry(kernels::ttt_loop_versions, op).backward, op)(
            s, dz.data<float>(), dv.data<float>(), dwd.data<float>(), dout.data<float>(), z.data<float>(), v.data<float>(),
            static_cast<float>(eta), u, all ? wp : nullptr, all ? nullptr : wp, workspace.data<float>(), selected_cuda_gemm(op));
        return;
    }
    with_float_type(z.dtype(), [&](auto t) {
        using T_ = decltype(t);
        const T_* wp = w.data<T_>();
        cpu_entry(kernels::ttt_loop_versions, op).backward.get<T_>()(s, dz.data<T_>(), dv.data<T_>(), dwd.data<T_>(), dout.data<T_>(), z.data<T_>(),
                                                  v.data<T_>(), static_cast<T_>(eta), u, all ? wp : nullptr, all ? nullptr : wp,
                                                  workspace.data<T_>(), selected_cpu_gemm<T_>(op));
    });
}

}  // namespace ittt::ops
