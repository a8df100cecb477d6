// ttt_apply_cpu.cpp: the per-chunk TTT corrections on the CPU.
//
// Every loop is over one token row t of chunk i against the d x f matrices s_i
// and g_i, whose rows are contiguous in f: dot products for the outputs of
// width d, scaled-row sums for the outputs of width f.
#include <algorithm>
#include <vector>

#include "kernels/ttt_apply/ttt_apply.h"

namespace ittt::kernels {

namespace {
template <class T>
bool all_zero(const T* m, int64_t size) {
    for (int64_t j = 0; j < size; ++j)
        if (m[j] != T(0)) return false;  // -0 counts as zero, NaN does not
    return true;
}

// is_zero[b * n_chunks + i]: whether matrix (b, i) of m (B, T, d, f) is all zeros.
template <class T>
std::vector<char> zero_chunks(const T* m, int64_t count, int64_t size) {
    std::vector<char> is_zero(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) is_zero[static_cast<size_t>(k)] = all_zero(m + k * size, size);
    return is_zero;
}

template <class T>
T dot(const T* x, const T* y, int64_t len) {
    T acc = 0;
    for (int64_t j = 0; j < len; ++j) acc += x[j] * y[j];
    return acc;
}

// y += alpha * x
template <class T>
void axpy(T* y, T alpha, const T* x, int64_t len) {
    for (int64_t j = 0; j < len; ++j) y[j] += alpha * x[j];
}
}  // namespace

template <class T>
void ttt_apply_forward_correction_cpu(T* o, const T* z, const T* s, T eta, int64_t batch, int64_t n, int64_t d, int64_t f,
                                      int64_t chunk) {
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    const std::vector<char> s_is_zero = zero_chunks(s, batch * n_chunks, d * f);
#pragma omp parallel for if (batch * n * d * f > (1 << 16))
    for (int64_t row = 0; row < batch * n; ++row) {
        const int64_t b = row / n, i = row % n / chunk;
        if (s_is_zero[static_cast<size_t>(b * n_chunks + i)]) continue;
        const T* s_i = s + (b * n_chunks + i) * d * f;
        const T* z_t = z + row * f;
        T* o_t = o + row * d;
        for (int64_t a = 0; a < d; ++a) o_t[a] += eta * dot(z_t, s_i + a * f, f);
    }
}

template <class T>
void ttt_apply_backward_correction_cpu(T* dz, T* dv, const T* dout, const T* z, const T* v, const T* s, const T* g, T eta,
                                       int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    const std::vector<char> s_is_zero = zero_chunks(s, batch * n_chunks, d * f);
    const std::vector<char> g_is_zero = zero_chunks(g, batch * n_chunks, d * f);
#pragma omp parallel if (batch * n * d * f > (1 << 16))
    {
        std::vector<T> acc(static_cast<size_t>(f));  // this row's do s_i + v g_i, before the eta
#pragma omp for
        for (int64_t row = 0; row < batch * n; ++row) {
            const int64_t b = row / n, i = row % n / chunk, k = b * n_chunks + i;
            const bool use_s = !s_is_zero[static_cast<size_t>(k)], use_g = !g_is_zero[static_cast<size_t>(k)];
            const T* s_i = s + k * d * f;
            const T* g_i = g + k * d * f;
            const T* do_t = dout + row * d;
            const T* v_t = v + row * d;
            T* dv_t = dv + row * d;
            for (int64_t a = 0; a < d; ++a) dv_t[a] = use_g ? eta * dot(z + row * f, g_i + a * f, f) : T(0);
            if (!use_s && !use_g) continue;
            std::fill(acc.begin(), acc.end(), T(0));
            if (use_s)
                for (int64_t a = 0; a < d; ++a) axpy(acc.data(), do_t[a], s_i + a * f, f);
            if (use_g)
                for (int64_t a = 0; a < d; ++a) axpy(acc.data(), v_t[a], g_i + a * f, f);
            T* dz_t = dz + row * f;
            for (int64_t c = 0; c < f; ++c) dz_t[c] += eta * acc[static_cast<size_t>(c)];
        }
    }
}

template void ttt_apply_forward_correction_cpu<float>(float*, const float*, const float*, float, int64_t, int64_t, int64_t, int64_t,
                                                      int64_t);
template void ttt_apply_forward_correction_cpu<double>(double*, const double*, const double*, double, int64_t, int64_t, int64_t,
                                                       int64_t, int64_t);
template void ttt_apply_backward_correction_cpu<float>(float*, float*, const float*, const float*, const float*, const float*,
                                                       const float*, float, int64_t, int64_t, int64_t, int64_t, int64_t);
template void ttt_apply_backward_correction_cpu<double>(double*, double*, const double*, const double*, const double*,
                                                        const double*, const double*, double, int64_t, int64_t, int64_t, int64_t,
                                                        int64_t);

}  // namespace ittt::kernels
