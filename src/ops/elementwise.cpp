// elementwise.cpp: small whole-tensor helpers (fill, axpy, norms, finiteness).
//
// These are too small to deserve a kernels/ folder of their own on the CPU; on
// the GPU they call kernels/elementwise/elementwise.cu.
#include <cmath>

#include "kernels/elementwise/elementwise.h"
#include "ops/ops.h"
#include "ops/versions.h"

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

template <class T>
using FillCpu = void(T*, int64_t, double);
template <class T>
using AxpyCpu = void(T*, const T*, int64_t, double);
template <class T>
using SumSquaresCpu = double(const T*, int64_t);
template <class T>
using AllFiniteCpu = bool(const T*, int64_t);
struct CpuEntry {
    CpuKernel<FillCpu> fill, scale;
    CpuKernel<AxpyCpu> axpy;
    CpuKernel<SumSquaresCpu> sum_squares;
    CpuKernel<AllFiniteCpu> all_finite;
};
struct CudaEntry {
    decltype(&kernels::fill_cuda) fill;
    decltype(&kernels::scale_inplace_cuda) scale;
    decltype(&kernels::add_inplace_cuda) axpy;
    decltype(&kernels::sum_squares_cuda) sum_squares;
    decltype(&kernels::all_finite_cuda) all_finite;
    decltype(&kernels::sum_dim0_cuda) sum_dim0;
};

// The CPU's scale takes the value as double like fill; one wrapper keeps the table's types regular.
template <class T>
void scale_value_cpu(T* x, int64_t n, double s) { scale_cpu(x, n, s); }

// One F32 rounding per element (fill, scale, axpy); the reductions sum in double.
const Tolerance kElementwiseF32 = {1e-5, 1e-6, "one F32 rounding per element; reductions in double; sum_dim0 adds up to 33 rows (sums ~6) in F32"};
const KernelOp<CpuEntry, CudaEntry> kElementwise = {
    "elementwise", "fill, y += alpha x, x *= s, sum of squares, all finite, sum over dim 0", "src/ops/elementwise.cpp (CPU), kernels/elementwise",
    1, {{{1, "loops", "plain loops; the sum of squares in 64 fixed blocks so its bits do not depend on the thread count",
          "src/ops/elementwise.cpp", kElementwiseF32},
         {ITTT_CPU_KERNEL(fill_cpu), ITTT_CPU_KERNEL(scale_value_cpu), ITTT_CPU_KERNEL(axpy_cpu), ITTT_CPU_KERNEL(sum_squares_cpu),
          ITTT_CPU_KERNEL(all_finite_cpu)}}},
    1, {{{1, "fixed-order reductions", "one thread per element; reductions over a fixed number of blocks, then in block order",
          "fill_kernel|add_inplace_kernel|scale_inplace_kernel|reduce_blocks_kernel|reduce_final_kernel|sum_dim0_kernel",
          kElementwiseF32},
         {ITTT_CUDA_KERNEL(kernels::fill_cuda), ITTT_CUDA_KERNEL(kernels::scale_inplace_cuda), ITTT_CUDA_KERNEL(kernels::add_inplace_cuda),
          ITTT_CUDA_KERNEL(kernels::sum_squares_cuda), ITTT_CUDA_KERNEL(kernels::all_finite_cuda),
          ITTT_CUDA_KERNEL(kernels::sum_dim0_cuda)}}},
};

// The CUDA entry for x (F32 required), or nullptr when x is on the CPU.
const CudaEntry* on_cuda(const Tensor& x, const char* op) {
    if (x.device() != Device::CUDA) return nullptr;
    require_cuda_f32(x, op);
    const CudaEntry& e = kElementwise.cuda_entry(op);
    built(e.fill, op);
    return &e;
}

// Scratch for the two-stage GPU reductions, a tensor so the allocation is visible.
Tensor reduce_workspace() { return Tensor::empty({kernels::kReduceWorkspace}, DType::F64, Device::CUDA); }
}  // namespace

OpSpec elementwise_op_spec() { return kElementwise.spec(); }

void fill(Tensor& x, double value) {
    require_float(x, "fill", "x");
    if (const CudaEntry* cuda = on_cuda(x, "fill")) return cuda->fill(x.data<float>(), x.numel(), static_cast<float>(value));
    with_float_type(x.dtype(), [&](auto t) { kElementwise.cpu_entry("fill").fill.get<decltype(t)>()(x.data<decltype(t)>(), x.numel(), value); });
}

void add_inplace(Tensor& y, const Tensor& x, double alpha) {
    require_same(y, x, "add_inplace", "y", "x");
    if (const CudaEntry* cuda = on_cuda(y, "add_inplace"))
        return cuda->axpy(y.data<float>(), x.data<float>(), y.numel(), static_cast<float>(alpha));
    with_float_type(y.dtype(), [&](auto t) {
        using T = decltype(t);
        kElementwise.cpu_entry("add_inplace").axpy.get<T>()(y.data<T>(), x.data<T>(), y.numel(), alpha);
    });
}

void scale_inplace(Tensor& x, double s) {
    require_float(x, "scale_inplace", "x");
    if (const CudaEntry* cuda = on_cuda(x, "scale_inplace")) return cuda->scale(x.data<float>(), x.numel(), static_cast<float>(s));
    with_float_type(x.dtype(), [&](auto t) { kElementwise.cpu_entry("scale_inplace").scale.get<decltype(t)>()(x.data<decltype(t)>(), x.numel(), s); });
}

double sum_squares(const Tensor& x) {
    require_float(x, "sum_squares", "x");
    if (const CudaEntry* cuda = on_cuda(x, "sum_squares")) {
        Tensor workspace = reduce_workspace();
        return cuda->sum_squares(x.data<float>(), x.numel(), workspace.data<double>());
    }
    return with_float_type(x.dtype(), [&](auto t) {
        return kElementwise.cpu_entry("sum_squares").sum_squares.get<decltype(t)>()(x.data<decltype(t)>(), x.numel());
    });
}

bool all_finite(const Tensor& x) {
    require_float(x, "all_finite", "x");
    if (const CudaEntry* cuda = on_cuda(x, "all_finite")) {
        Tensor workspace = reduce_workspace();
        return cuda->all_finite(x.data<float>(), x.numel(), workspace.data<double>());
    }
    return with_float_type(x.dtype(), [&](auto t) {
        return kElementwise.cpu_entry("all_finite").all_finite.get<decltype(t)>()(x.data<decltype(t)>(), x.numel());
    });
}

void sum_dim0(Tensor& out, const Tensor& in, bool accumulate) {
    require_float(in, "sum_dim0", "in");
    ITTT_CHECK(in.ndim() >= 1 && out.numel() * in.dim(0) == in.numel(), "sum_dim0: out ", out.describe(),
               " is not in ", in.describe(), " without its first dimension");
    require_same_dtype_device(out, in, "sum_dim0", "out", "in");
    int64_t k = in.dim(0), m = out.numel();
    if (const CudaEntry* cuda = on_cuda(in, "sum_dim0")) return cuda->sum_dim0(out.data<float>(), in.data<float>(), k, m, accumulate);
    if (!accumulate) out.zero_();
    for (int64_t i = 0; i < k; ++i) {
        Tensor slice = in.view({k, m}).rows(i, i + 1).view(out.shape());
        add_inplace(out, slice, 1.0);
    }
}

}  // namespace ittt::ops
