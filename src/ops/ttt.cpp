// ttt.cpp: the In-Place TTT ops (chunk deltas, clipping, apply forward/backward)
// on top of kernels/ttt_delta and kernels/ttt_apply. The math is in docs/ttt.md.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/ttt_apply/ttt_apply_versions.h"
#include "kernels/ttt_delta/ttt_delta_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
int64_t chunk_count(int64_t n, int chunk) { return (n + chunk - 1) / chunk; }

// x must be (B, n, width) with the B and n of `like`.
void require_tokens(const Tensor& x, const Tensor& like, int64_t width, const char* op, const char* name) {
    require_same_dtype_device(x, like, op, name, "z");
    require_shape(x, {like.dim(0), like.dim(1), width}, op, name);
}
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
    if (z.device() == Device::CUDA) {  // its versions take the gemm op's selected CUDA GEMM (version 3 calls it)
        require_cuda_f32(z, op);
        built(cuda_entry(kernels::ttt_delta_versions, op).delta, op)(delta.data<float>(), v.data<float>(), z.data<float>(), B, n, d,
                                                                     f, chunk, selected_cuda_gemm(op));
        return;
    }
    with_float_type(z.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::ttt_delta_versions, op).delta.get<T>()(delta.data<T>(), v.data<T>(), z.data<T>(), B, n, d, f, chunk);
    });
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
    const int64_t size = delta.dim(-2) * delta.dim(-1), count = size ? delta.numel() / size : 0;
    run_kernel(kernels::ttt_delta_versions, op, delta, [](const auto& e) -> const auto& { return e.clip; }, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(delta.data<T>(), count, size, eta, tau);
    });
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

bool ttt_update_clipped(double norm, double tau) { return kernels::ttt_clip_factor(norm, tau) != 1.0; }

void ttt_apply_forward(Tensor& o, const Tensor& z, const Tensor& wd, const Tensor& s, double eta, int chunk) {
    ITTT_NVTX_RANGE("ttt_apply_forward");
    const char* op = "ttt_apply_forward";
    const ApplyShape sh = require_apply_args(z, wd, s, eta, chunk, op);
    const int64_t B = sh.B, n = sh.n, d = sh.d, f = sh.f;
    require_tokens(o, z, d, op, "o");
    // The plain MLP's down projection, the very same call: the drop-in guarantee rests on it.
    linear(o, z, wd);
    if (eta == 0) return;
    if (z.device() == Device::CUDA) {
        require_cuda_f32(z, op);
        const kernels::TttApplyCudaEntry& entry = cuda_entry(kernels::ttt_apply_versions, op);
        // Which s_i are nonzero, and (GEMM version) each correction before it is added. Freed on
        // return while the kernels may still run: safe, because cudaFree waits for the device's
        // queued work first.
        Tensor flags = Tensor::empty({B * sh.T}, DType::I32, Device::CUDA);
        Tensor scratch = entry.scratch ? Tensor::empty({B, n, d}, DType::F32, Device::CUDA) : Tensor();
        built(entry.forward, op)(o.data<float>(), z.data<float>(), s.data<float>(), static_cast<float>(eta), B, n, d, f, chunk,
                                 flags.data<int32_t>(), scratch.defined() ? scratch.data<float>() : nullptr, selected_cuda_gemm(op));
        return;
    }
    with_float_type(z.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::ttt_apply_versions, op).forward.get<T>()(o.data<T>(), z.data<T>(), s.data<T>(), static_cast<T>(eta), B, n, d, f, chunk);
    });
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
    // dz = dout @ wd for every token at once; only the per-chunk terms are TTT's.
    Tensor dz_rows = dz.view({B * n, f});
    matmul(dz_rows, dout.view({B * n, d}), false, wd, false);
    if (eta == 0) {
        dv.zero_();
        return;
    }
    if (z.device() == Device::CUDA) {
        require_cuda_f32(z, op);
        const kernels::TttApplyCudaEntry& entry = cuda_entry(kernels::ttt_apply_versions, op);
        Tensor flags = Tensor::empty({2 * B * T}, DType::I32, Device::CUDA);  // which s_i, then which g_i, are nonzero
        Tensor scratch = entry.scratch ? Tensor::empty({B, n, std::max(d, f)}, DType::F32, Device::CUDA) : Tensor();
        built(entry.backward, op)(dz.data<float>(), dv.data<float>(), dout.data<float>(), z.data<float>(), v.data<float>(),
                                  s.data<float>(), g.data<float>(), static_cast<float>(eta), B, n, d, f, chunk, flags.data<int32_t>(),
                                  scratch.defined() ? scratch.data<float>() : nullptr, selected_cuda_gemm(op));
        return;
    }
    with_float_type(z.dtype(), [&](auto t) {
        using E = decltype(t);
        cpu_entry(kernels::ttt_apply_versions, op).backward.get<E>()(dz.data<E>(), dv.data<E>(), dout.data<E>(), z.data<E>(), v.data<E>(), s.data<E>(),
                                                  g.data<E>(), static_cast<E>(eta), B, n, d, f, chunk);
    });
}

}  // namespace ittt::ops
