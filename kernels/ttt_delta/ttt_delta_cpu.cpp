// ttt_delta_cpu.cpp: per-chunk V^T Z and its Frobenius-norm clipping, on the CPU.
#include <algorithm>

#include "kernels/ttt_delta/ttt_delta.h"

namespace ittt::kernels {

template <class T>
void ttt_chunk_delta_cpu(T* delta, const T* v, const T* z, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    // Row a of dW_i is sum_t v[t,a] * z[t,:]: a sum of scaled rows of z, so
    // the inner loop runs along contiguous memory in both z and delta.
#pragma omp parallel for collapse(2) if (batch * n * d * f > (1 << 16))
    for (int64_t bi = 0; bi < batch * n_chunks; ++bi) {
        for (int64_t a = 0; a < d; ++a) {
            const int64_t b = bi / n_chunks, i = bi % n_chunks;
            const int64_t begin = i * chunk, end = std::min(begin + chunk, n);
            T* out = delta + (bi * d + a) * f;
            std::fill(out, out + f, T(0));
            for (int64_t t = begin; t < end; ++t) {
                const T va = v[(b * n + t) * d + a];
                const T* zt = z + (b * n + t) * f;
                for (int64_t c = 0; c < f; ++c) out[c] += va * zt[c];
            }
        }
    }
}

template <class T>
void ttt_clip_deltas_cpu(T* delta, int64_t count, int64_t size, double eta, double tau) {
#pragma omp parallel for if (count * size > (1 << 16))
    for (int64_t i = 0; i < count; ++i) {
        T* m = delta + i * size;
        double sum_sq = 0;
        for (int64_t j = 0; j < size; ++j) sum_sq += static_cast<double>(m[j]) * static_cast<double>(m[j]);
        const double factor = ttt_clip_factor(ttt_update_norm(eta, sum_sq), tau);
        if (factor == 1.0) continue;
        const T scale = static_cast<T>(factor);
        for (int64_t j = 0; j < size; ++j) m[j] *= scale;
    }
}

template void ttt_chunk_delta_cpu<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void ttt_chunk_delta_cpu<double>(double*, const double*, const double*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void ttt_clip_deltas_cpu<float>(float*, int64_t, int64_t, double, double);
template void ttt_clip_deltas_cpu<double>(double*, int64_t, int64_t, double, double);

}  // namespace ittt::kernels
