// elementwise_cpu.cpp: the whole-tensor helpers on the CPU (fill, axpy, scale, norms, finiteness).
#include <cmath>
#include <cstdint>

#include "kernels/elementwise/elementwise.h"

namespace ittt::kernels {

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

#define ITTT_INSTANTIATE(T)                                          \
    template void fill_cpu<T>(T*, int64_t, double);                 \
    template void axpy_cpu<T>(T*, const T*, int64_t, double);       \
    template void scale_cpu<T>(T*, int64_t, double);                \
    template double sum_squares_cpu<T>(const T*, int64_t);          \
    template bool all_finite_cpu<T>(const T*, int64_t);
ITTT_INSTANTIATE(float)
ITTT_INSTANTIATE(double)
#undef ITTT_INSTANTIATE

}  // namespace ittt::kernels
