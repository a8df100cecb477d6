// attention_cpu_common.h: the two vector loops of the CPU attention versions.
#pragma once
#include <cstdint>

namespace ittt::kernels::attention_detail {

// <a, b> over n elements. "omp simd reduction" lets the compiler split the sum into
// vector lanes, which it may not do on its own because that reorders the additions.
template <class T>
inline T dot(const T* a, const T* b, int64_t n) {
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < n; ++c) sum += a[c] * b[c];
    return sum;
}

// y += alpha * x over n elements.
template <class T>
inline void axpy(T* y, T alpha, const T* x, int64_t n) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) y[c] += alpha * x[c];
}

}  // namespace ittt::kernels::attention_detail
