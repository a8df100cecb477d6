// swiglu_cpu.cpp: the reference SwiGLU. Each element is read completely before
// it is written, which is what allows the aliasing the header promises.
#include <cmath>

#include "kernels/elementwise/exp_cpu.h"
#include "kernels/swiglu/swiglu.h"

namespace ittt::kernels {

namespace {
// 1/(1+exp(-g)) overflows exp for g < -88 in float (-709 in double); the result is still
// right (1/inf = 0), but exp(g)/(1+exp(g)) on that side never overflows and keeps the tiny
// values instead of flushing them to 0 early. Both sides share e = exp(-|g|) <= 1 and a
// select instead of a branch, so the loops below vectorise (exp_vec: kernels/elementwise/exp_cpu.h).
template <class T>
T sigmoid(T g) {
    const T e = exp_vec(g >= T(0) ? -g : g);
    const T r = T(1) / (T(1) + e);
    return g >= T(0) ? r : e * r;
}
}  // namespace

template <class T>
void swiglu_forward_cpu(T* z, const T* g, const T* u, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
        const T gi = g[i], ui = u[i];
        z[i] = gi * sigmoid(gi) * ui;
    }
}

template <class T>
void swiglu_backward_cpu(T* dg, T* du, const T* dz, const T* g, const T* u, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
        const T gi = g[i], ui = u[i], dzi = dz[i];
        const T s = sigmoid(gi);
        dg[i] = dzi * ui * s * (T(1) + gi * (T(1) - s));
        du[i] = dzi * gi * s;
    }
}

template void swiglu_forward_cpu<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward_cpu<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward_cpu<float>(float*, float*, const float*, const float*, const float*, int64_t);
template void swiglu_backward_cpu<double>(double*, double*, const double*, const double*, const double*, int64_t);

}  // namespace ittt::kernels
