// elementwise.cpp: small whole-tensor helpers (fill, axpy, norms, finiteness).
//
// These are too small to deserve a kernels/ folder of their own on the CPU; on
// the GPU they call kernels/elementwise/elementwise.cu.
#include <cmath>

#include "ops/ops.h"
#include "ops/dispatch.h"

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
}  // namespace

void fill(Tensor& x, double value) {
    require_float(x, "fill", "x");
    ITTT_CHECK(x.device() == Device::CPU, "fill: CUDA path not built yet");
    if (x.dtype() == DType::F32) fill_cpu(x.data<float>(), x.numel(), value);
    else fill_cpu(x.data<double>(), x.numel(), value);
}

void add_inplace(Tensor& y, const Tensor& x, double alpha) {
    require_same(y, x, "add_inplace", "y", "x");
    ITTT_CHECK(y.device() == Device::CPU, "add_inplace: CUDA path not built yet");
    if (y.dtype() == DType::F32) axpy_cpu(y.data<float>(), x.data<float>(), y.numel(), alpha);
    else axpy_cpu(y.data<double>(), x.data<double>(), y.numel(), alpha);
}

void scale_inplace(Tensor& x, double s) {
    require_float(x, "scale_inplace", "x");
    ITTT_CHECK(x.device() == Device::CPU, "scale_inplace: CUDA path not built yet");
    if (x.dtype() == DType::F32) scale_cpu(x.data<float>(), x.numel(), s);
    else scale_cpu(x.data<double>(), x.numel(), s);
}

double sum_squares(const Tensor& x) {
    require_float(x, "sum_squares", "x");
    Tensor h = x.device() == Device::CPU ? x : x.to(Device::CPU);
    return h.dtype() == DType::F32 ? sum_squares_cpu(h.data<float>(), h.numel()) : sum_squares_cpu(h.data<double>(), h.numel());
}

bool all_finite(const Tensor& x) {
    require_float(x, "all_finite", "x");
    Tensor h = x.device() == Device::CPU ? x : x.to(Device::CPU);
    return h.dtype() == DType::F32 ? all_finite_cpu(h.data<float>(), h.numel()) : all_finite_cpu(h.data<double>(), h.numel());
}

void sum_dim0(Tensor& out, const Tensor& in, bool accumulate) {
    require_float(in, "sum_dim0", "in");
    ITTT_CHECK(in.ndim() >= 1 && out.numel() * in.dim(0) == in.numel(), "sum_dim0: out ", out.describe(),
               " is not in ", in.describe(), " without its first dimension");
    require_same_dtype_device(out, in, "sum_dim0", "out", "in");
    if (!accumulate) out.zero_();
    int64_t k = in.dim(0), m = out.numel();
    for (int64_t i = 0; i < k; ++i) {
        Tensor slice = in.view({k, m}).rows(i, i + 1).view(out.shape());
        add_inplace(out, slice, 1.0);
    }
}

}  // namespace ittt::ops
