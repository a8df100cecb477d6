// ttt.cpp: the In-Place TTT ops (chunk deltas, clipping, apply forward/backward)
// on top of kernels/ttt_delta and kernels/ttt_apply. The math is in docs/ttt.md.
#include <cmath>
#include <type_traits>

#include "kernels/ttt_apply/ttt_apply.h"
#include "kernels/ttt_delta/ttt_delta.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
int64_t chunk_count(int64_t n, int chunk) { return (n + chunk - 1) / chunk; }

// x must be (B, n, width) with the B and n of `like`.
void require_tokens(const Tensor& x, const Tensor& like, int64_t width, const char* op, const char* name) {
    require_same_dtype_device(x, like, op, name, "z");
    require_shape(x, {like.dim(0), like.dim(1), width}, op, name);
}

// CPU: 1 direct loops, 2 one blocked GEMM per chunk. CUDA: 1 .. max_cuda
// (ttt_delta / ttt_apply: 1 naive, 2 shared-memory tiles; ttt_clip_deltas has
// only 1). 0 is the best of either; the CPU's 0 is returned as 2.
// Also: CUDA kernels are F32 only.
int require_version(const char* family, const char* op, const Tensor& x, int max_cuda) {
    const int v = version(family);
    if (x.device() == Device::CPU) {
        ITTT_CHECK(v >= 0 && v <= 2, op, ": no CPU version ", v, " of ", family, " (versions: 1 direct loops, 2 per-chunk GEMM)");
        return v == 0 ? 2 : v;
    }
    ITTT_CHECK(v >= 0 && v <= max_cuda, op, ": no CUDA version ", v, " of ", family, " (versions: 1 naive",
               max_cuda >= 2 ? ", 2 shared-memory tiles)" : ")");
    ITTT_CHECK(x.dtype() == DType::F32, op, ": CUDA kernels are F32 only, found ", x.describe());
    return v;
}
}  // namespace

namespace {
struct ApplyShape {
    int64_t B, n, d, f, T;
};
// The checks ttt_apply_forward and _backward share: z (B, n, f), wd (d, f),
// s (B, T, d, f) with T = ceil(n / chunk), a positive chunk and a finite eta.
ApplyShape require_apply_args(const Tensor& z, const Tensor& wd, const Tensor& s, double eta, int chunk, const char* op) {
    require_float(z, op, "z");
    ITTT_CHECK(z.ndim() == 3, op, ": z is ", z.describe(), ", expected 3-D (B, n, f)");
    ITTT_CHECK(chunk >= 1, op, ": chunk must be >= 1, found ", chunk);
    ITTT_CHECK(wd.ndim() == 2, op, ": wd is ", wd.describe(), ", expected 2-D (d, f)");
    require_same_dtype_device(wd, z, op, "wd", "z");
    const ApplyShape sh{z.dim(0), z.dim(1), wd.dim(0), z.dim(2), chunk_count(z.dim(1), chunk)};
    require_shape(wd, {sh.d, sh.f}, op, "wd");
    require_same_dtype_device(s, z, op, "s", "z");
    require_shape(s, {sh.B, sh.T, sh.d, sh.f}, op, "s");
    ITTT_CHECK(std::isfinite(eta), op, ": eta must be finite, found ", eta);
    return sh;
}
}  // namespace

void ttt_chunk_delta(Tensor& delta, const Tensor& v, const Tensor& z, int chunk) {
    ITTT_NVTX_RANGE("ttt_chunk_delta");
    const char* op = "ttt_chunk_delta";
    require_float(z, op, "z");
    ITTT_CHECK(z.ndim() == 3, op, ": z is ", z.describe(), ", expected 3-D (B, n, f)");
    ITTT_CHECK(chunk >= 1, op, ": chunk must be >= 1, found ", chunk);
    ITTT_CHECK(v.ndim() == 3, op, ": v is ", v.describe(), ", expected 3-D (B, n, d)");
    require_tokens(v, z, v.dim(2), op, "v");
    const int64_t B = z.dim(0), n = z.dim(1), d = v.dim(2), f = z.dim(2), T = chunk_count(n, chunk);
    require_same_dtype_device(delta, z, op, "delta", "z");
    require_shape(delta, {B, T, d, f}, op, "delta");
    const int v_kernel = require_version("ttt_delta", op, z, 2);
    if (z.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        kernels::ttt_chunk_delta_cuda(delta.data<float>(), v.data<float>(), z.data<float>(), B, n, d, f, chunk, v_kernel);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    auto run = [&](auto* out, const auto* vv, const auto* zz) {
        if (v_kernel == 1) kernels::ttt_chunk_delta_cpu(out, vv, zz, B, n, d, f, static_cast<int64_t>(chunk));
        else kernels::ttt_chunk_delta_gemm_cpu(out, vv, zz, B, n, d, f, static_cast<int64_t>(chunk));
    };
    if (z.dtype() == DType::F32) run(delta.data<float>(), v.data<float>(), z.data<float>());
    else run(delta.data<double>(), v.data<double>(), z.data<double>());
}

void ttt_clip_deltas(Tensor& delta, double eta, double tau) {
    ITTT_NVTX_RANGE("ttt_clip_deltas");
    const char* op = "ttt_clip_deltas";
    require_float(delta, op, "delta");
    ITTT_CHECK(delta.ndim() >= 2, op, ": delta is ", delta.describe(), ", expected (..., d, f)");
    // Clipping off is the caller's decision (it does not call this); a zero or
    // negative tau reaching here is a wiring mistake, not "no limit".
    ITTT_CHECK(std::isfinite(tau) && tau > 0, op, ": tau must be a finite number > 0, found ", tau,
               " (to disable clipping, do not call ttt_clip_deltas)");
    ITTT_CHECK(std::isfinite(eta), op, ": eta must be finite, found ", eta);
    require_version("ttt_delta", op, delta, 2);  // the family's version picks the delta kernel; clipping has one
    const int64_t size = delta.dim(-2) * delta.dim(-1), count = size ? delta.numel() / size : 0;
    if (delta.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        kernels::ttt_clip_deltas_cuda(delta.data<float>(), count, size, eta, tau);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    if (delta.dtype() == DType::F32) kernels::ttt_clip_deltas_cpu<float>(delta.data<float>(), count, size, eta, tau);
    else kernels::ttt_clip_deltas_cpu<double>(delta.data<double>(), count, size, eta, tau);
}

std::vector<double> ttt_update_norms(const Tensor& delta, double eta) {
    require_float(delta, "ttt_update_norms", "delta");
    ITTT_CHECK(delta.ndim() >= 2, "ttt_update_norms: delta is ", delta.describe(), ", expected (..., d, f)");
    const int64_t size = delta.dim(-2) * delta.dim(-1), count = size ? delta.numel() / size : 0;
    const Tensor rows = delta.view({count, size});
    std::vector<double> norms(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) norms[static_cast<size_t>(i)] = kernels::ttt_update_norm(eta, sum_squares(rows.rows(i, i + 1)));
    return norms;
}

void ttt_apply_forward(Tensor& o, const Tensor& z, const Tensor& wd, const Tensor& s, double eta, int chunk) {
    ITTT_NVTX_RANGE("ttt_apply_forward");
    const char* op = "ttt_apply_forward";
    const ApplyShape sh = require_apply_args(z, wd, s, eta, chunk, op);
    const int64_t B = sh.B, n = sh.n, d = sh.d, f = sh.f;
    require_tokens(o, z, d, op, "o");
    const int v_kernel = require_version("ttt_apply", op, z, 2);

    // The plain MLP's down projection, the very same call: the drop-in guarantee rests on it.
    linear(o, z, wd);
    if (eta == 0) return;
    if (z.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        // Which s_i are nonzero. Freed on return while the kernel may still run:
        // safe, because cudaFree waits for the device's queued work first.
        Tensor flags = Tensor::empty({B * sh.T}, DType::I32, Device::CUDA);
        kernels::ttt_apply_forward_correction_cuda(o.data<float>(), z.data<float>(), s.data<float>(), static_cast<float>(eta), B, n,
                                                   d, f, chunk, flags.data<int32_t>(), v_kernel);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    auto run = [&](auto* out, const auto* zz, const auto* ss) {
        using T = std::remove_const_t<std::remove_pointer_t<decltype(zz)>>;
        if (v_kernel == 1) kernels::ttt_apply_forward_correction_cpu<T>(out, zz, ss, static_cast<T>(eta), B, n, d, f, chunk);
        else kernels::ttt_apply_forward_correction_gemm_cpu<T>(out, zz, ss, static_cast<T>(eta), B, n, d, f, chunk);
    };
    if (z.dtype() == DType::F32) run(o.data<float>(), z.data<float>(), s.data<float>());
    else run(o.data<double>(), z.data<double>(), s.data<double>());
}

void ttt_apply_backward(Tensor& dz, Tensor& dv, const Tensor& dout, const Tensor& z, const Tensor& v, const Tensor& wd,
                        const Tensor& s, const Tensor& g, double eta, int chunk) {
    ITTT_NVTX_RANGE("ttt_apply_backward");
    const char* op = "ttt_apply_backward";
    const ApplyShape sh = require_apply_args(z, wd, s, eta, chunk, op);
    const int64_t B = sh.B, n = sh.n, d = sh.d, f = sh.f, T = sh.T;
    require_tokens(dout, z, d, op, "dout");
    require_tokens(v, z, d, op, "v");
    require_tokens(dz, z, f, op, "dz");
    require_tokens(dv, z, d, op, "dv");
    require_same_dtype_device(g, z, op, "g", "z");
    require_shape(g, {B, T, d, f}, op, "g");
    const int v_kernel = require_version("ttt_apply", op, z, 2);

    // dz = dout @ wd for every token at once; only the per-chunk terms are TTT's.
    Tensor dz_rows = dz.view({B * n, f});
    matmul(dz_rows, dout.view({B * n, d}), false, wd, false);
    if (eta == 0) {
        dv.zero_();
        return;
    }
    if (z.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        Tensor flags = Tensor::empty({2 * B * T}, DType::I32, Device::CUDA);  // which s_i, then which g_i, are nonzero
        kernels::ttt_apply_backward_correction_cuda(dz.data<float>(), dv.data<float>(), dout.data<float>(), z.data<float>(),
                                                    v.data<float>(), s.data<float>(), g.data<float>(), static_cast<float>(eta), B,
                                                    n, d, f, chunk, flags.data<int32_t>(), v_kernel);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    auto run = [&](auto* dzp, auto* dvp, const auto* dop, const auto* zp, const auto* vp, const auto* sp, const auto* gp) {
        using T = std::remove_const_t<std::remove_pointer_t<decltype(zp)>>;
        if (v_kernel == 1) kernels::ttt_apply_backward_correction_cpu<T>(dzp, dvp, dop, zp, vp, sp, gp, static_cast<T>(eta), B, n, d, f, chunk);
        else kernels::ttt_apply_backward_correction_gemm_cpu<T>(dzp, dvp, dop, zp, vp, sp, gp, static_cast<T>(eta), B, n, d, f, chunk);
    };
    if (z.dtype() == DType::F32)
        run(dz.data<float>(), dv.data<float>(), dout.data<float>(), z.data<float>(), v.data<float>(), s.data<float>(), g.data<float>());
    else
        run(dz.data<double>(), dv.data<double>(), dout.data<double>(), z.data<double>(), v.data<double>(), s.data<double>(),
            g.data<double>());
}

}  // namespace ittt::ops
