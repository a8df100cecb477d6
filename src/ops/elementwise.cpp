// elementwise.cpp: small whole-tensor helpers (fill, axpy, scale, norms, finiteness, sum over
// dim 0) on top of kernels/elementwise.
#include <cmath>

#include "kernels/elementwise/elementwise_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"

namespace ittt::ops {

namespace {

// The CUDA entry for x (F32 required), or nullptr when x is on the CPU.
const kernels::ElementwiseCudaEntry* on_cuda(const Tensor& x, const char* op) {
    if (x.device() != Device::CUDA) return nullptr;
    require_cuda_f32(x, op);
    const kernels::ElementwiseCudaEntry& e = cuda_entry(kernels::elementwise_versions, op);
    built(e.fill, op);
    return &e;
}

// Scratch for the two-stage GPU reductions, a tensor so the allocation is visible.
Tensor reduce_workspace() { return Tensor::empty({kernels::kReduceWorkspace}, DType::F64, Device::CUDA); }
}  // namespace

void fill(Tensor& x, double value) {
    require_float(x, "fill", "x");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(x, "fill")) return cuda->fill(x.data<float>(), x.numel(), static_cast<float>(value));
    with_float_type(x.dtype(), [&](auto t) { cpu_entry(kernels::elementwise_versions, "fill").fill.get<decltype(t)>()(x.data<decltype(t)>(), x.numel(), value); });
}

void add_inplace(Tensor& y, const Tensor& x, double alpha) {
    require_same(y, x, "add_inplace", "y", "x");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(y, "add_inplace"))
        return cuda->axpy(y.data<float>(), x.data<float>(), y.numel(), static_cast<float>(alpha));
    with_float_type(y.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::elementwise_versions, "add_inplace").axpy.get<T>()(y.data<T>(), x.data<T>(), y.numel(), alpha);
    });
}

void scale_inplace(Tensor& x, double s) {
    require_float(x, "scale_inplace", "x");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(x, "scale_inplace")) return cuda->scale(x.data<float>(), x.numel(), static_cast<float>(s));
    with_float_type(x.dtype(), [&](auto t) { cpu_entry(kernels::elementwise_versions, "scale_inplace").scale.get<decltype(t)>()(x.data<decltype(t)>(), x.numel(), s); });
}

double sum_squares(const Tensor& x) {
    require_float(x, "sum_squares", "x");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(x, "sum_squares")) {
        Tensor workspace = reduce_workspace();
        return cuda->sum_squares(x.data<float>(), x.numel(), workspace.data<double>());
    }
    return with_float_type(x.dtype(), [&](auto t) {
        return cpu_entry(kernels::elementwise_versions, "sum_squares").sum_squares.get<decltype(t)>()(x.data<decltype(t)>(), x.numel());
    });
}

bool all_finite(const Tensor& x) {
    require_float(x, "all_finite", "x");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(x, "all_finite")) {
        Tensor workspace = reduce_workspace();
        return cuda->all_finite(x.data<float>(), x.numel(), workspace.data<double>());
    }
    return with_float_type(x.dtype(), [&](auto t) {
        return cpu_entry(kernels::elementwise_versions, "all_finite").all_finite.get<decltype(t)>()(x.data<decltype(t)>(), x.numel());
    });
}

namespace {
// acc must be an F64 tensor with a slot on x's device.
double* acc_slot(Tensor& acc, int64_t slot, const Tensor& x, const char* op) {
    ITTT_CHECK(acc.defined() && acc.dtype() == DType::F64 && acc.device() == x.device(), op, ": acc is ", acc.describe(),
               ", expected F64 on the device of x ", x.describe());
    ITTT_CHECK(slot >= 0 && slot < acc.numel(), op, ": slot ", slot, " is outside acc ", acc.describe());
    return acc.data<double>() + slot;
}
}  // namespace

void sum_squares_into(Tensor& acc, int64_t slot, const Tensor& x) {
    require_float(x, "sum_squares_into", "x");
    double* into = acc_slot(acc, slot, x, "sum_squares_into");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(x, "sum_squares_into")) {
        Tensor workspace = reduce_workspace();
        return built(cuda->sum_squares_into, "sum_squares_into")(into, x.data<float>(), x.numel(), workspace.data<double>());
    }
    *into += sum_squares(x);
}

void flag_nonfinite_into(Tensor& acc, int64_t slot, const Tensor& x) {
    require_float(x, "flag_nonfinite_into", "x");
    double* into = acc_slot(acc, slot, x, "flag_nonfinite_into");
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(x, "flag_nonfinite_into")) {
        Tensor workspace = reduce_workspace();
        return built(cuda->flag_nonfinite_into, "flag_nonfinite_into")(into, x.data<float>(), x.numel(), workspace.data<double>());
    }
    if (!all_finite(x)) *into += 1;
}

void sum_dim0(Tensor& out, const Tensor& in, bool accumulate) {
    require_float(in, "sum_dim0", "in");
    ITTT_CHECK(in.ndim() >= 1 && out.numel() * in.dim(0) == in.numel(), "sum_dim0: out ", out.describe(),
               " is not in ", in.describe(), " without its first dimension");
    require_same_dtype_device(out, in, "sum_dim0", "out", "in");
    int64_t k = in.dim(0), m = out.numel();
    if (const kernels::ElementwiseCudaEntry* cuda = on_cuda(in, "sum_dim0")) return cuda->sum_dim0(out.data<float>(), in.data<float>(), k, m, accumulate);
    if (!accumulate) out.zero_();
    for (int64_t i = 0; i < k; ++i) {
        Tensor slice = in.view({k, m}).rows(i, i + 1).view(out.shape());
        add_inplace(out, slice, 1.0);
    }
}

}  // namespace ittt::ops
