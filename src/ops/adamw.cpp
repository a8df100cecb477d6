// adamw.cpp: ops::adamw_step on top of kernels/adamw, and ops::clip_grad_norm.
#include <cmath>
#include <string>

#include "kernels/adamw/adamw_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
void check_config(const AdamWConfig& cfg) {
    // beta = 1 would make the bias correction 1 - beta^step zero (a division by zero).
    ITTT_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1, "adamw_step: beta1 must be in [0, 1), found ", cfg.beta1);
    ITTT_CHECK(cfg.beta2 >= 0 && cfg.beta2 < 1, "adamw_step: beta2 must be in [0, 1), found ", cfg.beta2);
    ITTT_CHECK(cfg.lr >= 0 && std::isfinite(cfg.lr), "adamw_step: lr must be finite and >= 0, found ", cfg.lr);
    ITTT_CHECK(cfg.eps >= 0 && std::isfinite(cfg.eps), "adamw_step: eps must be finite and >= 0, found ", cfg.eps);
    ITTT_CHECK(cfg.weight_decay >= 0 && std::isfinite(cfg.weight_decay), "adamw_step: weight_decay must be finite and >= 0, found ",
               cfg.weight_decay);
}

}  // namespace


void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWConfig& cfg, int64_t step) {
    ITTT_NVTX_RANGE("adamw_step");
    require_same(param, grad, "adamw_step", "param", "grad");
    require_same(param, m, "adamw_step", "param", "m");
    require_same(param, v, "adamw_step", "param", "v");
    ITTT_CHECK(step >= 1, "adamw_step: step counts from 1, found ", step);
    check_config(cfg);
    // Per-step scalars, so double costs nothing; in F32, 1 - 0.999f is already 1e-5 off.
    const double bias_correction1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(step));
    run_kernel(kernels::adamw_versions, "adamw_step", param, the_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), param.numel(), T(cfg.lr), T(cfg.beta1), T(cfg.beta2), T(cfg.eps),
               T(cfg.weight_decay), T(bias_correction1), T(bias_correction2));
    });
}

// Device-agnostic: on CUDA, sum_squares runs the fixed-order GPU reduction (one
// double back to the host per tensor) and scale_inplace a GPU kernel.
double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm) {
    ITTT_NVTX_RANGE("clip_grad_norm");
    ITTT_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, found ", max_norm,
               " (pass infinity to measure the norm without clipping)");
    double sum_sq = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
        const std::string name = cat("grads[", i, "]");
        ITTT_CHECK(grads[i] != nullptr, "clip_grad_norm: ", name, " is a null pointer");
        require_float(*grads[i], "clip_grad_norm", name.c_str());
        sum_sq += sum_squares(*grads[i]);
    }
    const double norm = std::sqrt(sum_sq);
    clip_grads_to(grads, norm, max_norm);
    return norm;
}

void clip_grads_to(const std::vector<Tensor*>& grads, double norm, double max_norm) {
    // A NaN or infinite norm is left for the trainer to report: scaling by
    // max_norm/inf would silently zero every gradient and hide the blow-up.
    if (!std::isfinite(norm) || norm <= max_norm) return;
    const double scale = max_norm / norm;
    for (Tensor* g : grads) scale_inplace(*g, scale);
}

}  // namespace ittt::ops
