// elementwise.cpp: small whole-tensor helpers (fill, axpy, norms, finiteness).
//
// These are too small to deserve a kernels/ folder of their own on the CPU; on
// the GPU they call kernels/elementwise/elementwise.cu.
#include <cmath>

#include "kernels/elementwise/elementwise.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

namespace ittt::ops {

namespace {
template <class T>
void fill_cpu(T* x, int64_t n, double v) {
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(v);
}
template <class T>
void axpy_cpu(T* y, const T* x, int64_t n, double alpha) {
    const T a = static_cast<T>(alpha);
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
template <class T>
void scale_cpu(T* x, int64_t n, double s) {
    const T a = static_cast<T>(s);
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) x[i] *= a;
}
// Fixed-order sum: 64 blocks summed in parallel, then added in block order, so the
// result is the same bits whatever the thread count (an OpenMP reduction combines
// partial sums in an unspecified order, and exact --resume depends on this norm).
template <class T>
double sum_squares_cpu(const T* x, int64_t n) {
    constexpr int64_t kBlocks = 64;
    double partial[kBlocks];
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t b = 0; b < kBlocks; ++b) {
        double s = 0;
        for (int64_t i = b * n / kBlocks; i < (b + 1) * n / kBlocks; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
        partial[b] = s;
    }
    double total = 0;
    for (int64_t b = 0; b < kBlocks; ++b) total += partial[b];
    return total;
}
template <class T>
bool all_finite_cpu(const T* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) return false;
    return true;
}

// True when x is on the GPU (then F32 is required); the CPU-only build says so plainly.
bool on_cuda(const Tensor& x, const char* op) {
    if (x.device() != Device::CUDA) return false;
#if ITTT_WITH_CUDA
    ITTT_CHECK(x.dtype() == DType::F32, op, ": CUDA kernels are F32 only, found ", x.describe());
    return true;
#else
    no_cuda_kernel(op);
#endif
}

#if ITTT_WITH_CUDA
// Scratch for the two-stage GPU reductions, a tensor so the allocation is visible.
Tensor reduce_workspace() { return Tensor::empty({kernels::kReduceWorkspace}, DType::F64, Device::CUDA); }
#endif
}  // namespace

void fill(Tensor& x, double value) {
    require_float(x, "fill", "x");
    if (on_cuda(x, "fill")) {
#if ITTT_WITH_CUDA
        kernels::fill_cuda(x.data<float>(), x.numel(), static_cast<float>(value));
#endif
        return;
    }
    if (x.dtype() == DType::F32) fill_cpu(x.data<float>(), x.numel(), value);
    else fill_cpu(x.data<double>(), x.numel(), value);
}

void add_inplace(Tensor& y, const Tensor& x, double alpha) {
    require_same(y, x, "add_inplace", "y", "x");
    if (on_cuda(y, "add_inplace")) {
#if ITTT_WITH_CUDA
        kernels::add_inplace_cuda(y.data<float>(), x.data<float>(), y.numel(), static_cast<float>(alpha));
#endif
        return;
    }
    if (y.dtype() == DType::F32) axpy_cpu(y.data<float>(), x.data<float>(), y.numel(), alpha);
    else axpy_cpu(y.data<double>(), x.data<double>(), y.numel(), alpha);
}

void scale_inplace(Tensor& x, double s) {
    require_float(x, "scale_inplace", "x");
    if (on_cuda(x, "scale_inplace")) {
#if ITTT_WITH_CUDA
        kernels::scale_inplace_cuda(x.data<float>(), x.numel(), static_cast<float>(s));
#endif
        return;
    }
    if (x.dtype() == DType::F32) scale_cpu(x.data<float>(), x.numel(), s);
    else scale_cpu(x.data<double>(), x.numel(), s);
}

double sum_squares(const Tensor& x) {
    require_float(x, "sum_squares", "x");
    if (on_cuda(x, "sum_squares")) {
#if ITTT_WITH_CUDA
        Tensor workspace = reduce_workspace();
        return kernels::sum_squares_cuda(x.data<float>(), x.numel(), workspace.data<double>());
#endif
    }
    return x.dtype() == DType::F32 ? sum_squares_cpu(x.data<float>(), x.numel()) : sum_squares_cpu(x.data<double>(), x.numel());
}

bool all_finite(const Tensor& x) {
    require_float(x, "all_finite", "x");
    if (on_cuda(x, "all_finite")) {
#if ITTT_WITH_CUDA
        Tensor workspace = reduce_workspace();
        return kernels::all_finite_cuda(x.data<float>(), x.numel(), workspace.data<double>());
#endif
    }
    return x.dtype() == DType::F32 ? all_finite_cpu(x.data<float>(), x.numel()) : all_finite_cpu(x.data<double>(), x.numel());
}

void sum_dim0(Tensor& out, const Tensor& in, bool accumulate) {
    require_float(in, "sum_dim0", "in");
    ITTT_CHECK(in.ndim() >= 1 && out.numel() * in.dim(0) == in.numel(), "sum_dim0: out ", out.describe(),
               " is not in ", in.describe(), " without its first dimension");
    require_same_dtype_device(out, in, "sum_dim0", "out", "in");
    int64_t k = in.dim(0), m = out.numel();
    if (on_cuda(in, "sum_dim0")) {
#if ITTT_WITH_CUDA
        kernels::sum_dim0_cuda(out.data<float>(), in.data<float>(), k, m, accumulate);
#endif
        return;
    }
    if (!accumulate) out.zero_();
    for (int64_t i = 0; i < k; ++i) {
        Tensor slice = in.view({k, m}).rows(i, i + 1).view(out.shape());
        add_inplace(out, slice, 1.0);
    }
}

}  // namespace ittt::ops
