// conv1d_cpu.cpp: the chunk-local depthwise conv, forward and backward, on the CPU.
//
// Channels are the contiguous (innermost) dimension, so every inner loop runs
// over c and vectorises; the weights are first copied tap-major for the same reason.
#include <algorithm>
#include <vector>

#include "kernels/conv1d/conv1d.h"

namespace ittt::kernels {

namespace {
// weight (d, K) -> (K, d): one contiguous row of channel weights per tap.
template <class T>
std::vector<T> weights_by_tap(const T* weight, int64_t d, int64_t taps) {
    std::vector<T> w(static_cast<size_t>(taps * d));
    for (int64_t c = 0; c < d; ++c)
        for (int64_t k = 0; k < taps; ++k) w[static_cast<size_t>(k * d + c)] = weight[c * taps + k];
    return w;
}
}  // namespace

template <class T>
void conv1d_chunked_forward_cpu(T* out, const T* x, const T* weight, const int* offsets, int64_t batch, int64_t n, int64_t d,
                                int64_t taps, int64_t chunk) {
    const std::vector<T> w = weights_by_tap(weight, d, taps);
#pragma omp parallel for if (batch * n * d * taps > (1 << 16))
    for (int64_t row = 0; row < batch * n; ++row) {
        const int64_t b = row / n, t = row % n;
        const int64_t begin = t / chunk * chunk, end = std::min(begin + chunk, n);
        T* o = out + row * d;
        std::fill(o, o + d, T(0));
        for (int64_t k = 0; k < taps; ++k) {
            const int64_t s = t + offsets[k];
            if (s < begin || s >= end) continue;  // the zero padding at the chunk's edges
            const T* xs = x + (b * n + s) * d;
            const T* wk = w.data() + k * d;
            for (int64_t c = 0; c < d; ++c) o[c] += wk[c] * xs[c];
        }
    }
}

template <class T>
void conv1d_chunked_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const int* offsets, int64_t batch,
                                 int64_t n, int64_t d, int64_t taps, int64_t chunk) {
    const std::vector<T> w = weights_by_tap(weight, d, taps);
    const bool parallel = batch * n * d * taps > (1 << 16);

    // dx is the transposed conv: x[s] fed out[s - offset] through tap k. s and
    // s - offset share a chunk exactly when t = s - offset and t + offset do, so
    // the same chunk test applies from the input's side.
#pragma omp parallel for if (parallel)
    for (int64_t row = 0; row < batch * n; ++row) {
        const int64_t b = row / n, s = row % n;
        const int64_t begin = s / chunk * chunk, end = std::min(begin + chunk, n);
        T* g = dx + row * d;
        std::fill(g, g + d, T(0));
        for (int64_t k = 0; k < taps; ++k) {
            const int64_t t = s - offsets[k];
            if (t < begin || t >= end) continue;
            const T* go = dout + (b * n + t) * d;
            const T* wk = w.data() + k * d;
            for (int64_t c = 0; c < d; ++c) g[c] += wk[c] * go[c];
        }
    }

    // dweight sums over every (b, t): split the work by channel blocks rather
    // than by rows, so no two threads add into the same weight and the result
    // does not depend on the thread count.
    const int64_t block = 32;
#pragma omp parallel for if (parallel)
    for (int64_t c0 = 0; c0 < d; c0 += block) {
        const int64_t width = std::min(block, d - c0);
        std::vector<T> acc(static_cast<size_t>(taps * width), T(0));  // (K, width)
        for (int64_t row = 0; row < batch * n; ++row) {
            const int64_t b = row / n, t = row % n;
            const int64_t begin = t / chunk * chunk, end = std::min(begin + chunk, n);
            const T* go = dout + row * d + c0;
            for (int64_t k = 0; k < taps; ++k) {
                const int64_t s = t + offsets[k];
                if (s < begin || s >= end) continue;
                const T* xs = x + (b * n + s) * d + c0;
                T* a = acc.data() + k * width;
                for (int64_t c = 0; c < width; ++c) a[c] += go[c] * xs[c];
            }
        }
        for (int64_t c = 0; c < width; ++c)
            for (int64_t k = 0; k < taps; ++k) dweight[(c0 + c) * taps + k] += acc[static_cast<size_t>(k * width + c)];
    }
}

template void conv1d_chunked_forward_cpu<float>(float*, const float*, const float*, const int*, int64_t, int64_t, int64_t, int64_t,
                                                int64_t);
template void conv1d_chunked_forward_cpu<double>(double*, const double*, const double*, const int*, int64_t, int64_t, int64_t,
                                                 int64_t, int64_t);
template void conv1d_chunked_backward_cpu<float>(float*, float*, const float*, const float*, const float*, const int*, int64_t,
                                                 int64_t, int64_t, int64_t, int64_t);
template void conv1d_chunked_backward_cpu<double>(double*, double*, const double*, const double*, const double*, const int*,
                                                  int64_t, int64_t, int64_t, int64_t, int64_t);

}  // namespace ittt::kernels
