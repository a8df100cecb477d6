// ttt_delta_gemm_cpu.cpp: the chunk delta as per-chunk calls of the blocked GEMM.
//
// One new idea: dW_i = V_[i]^T Z_[i] is a (d x rows) @ (rows x f) product, so
// each chunk is one call of the blocked GEMM (TN) instead of rank-1 row updates.
#include <algorithm>

#include "kernels/gemm/gemm.h"
#include "kernels/ttt_delta/ttt_delta.h"

namespace ittt::kernels {

template <class T>
void ttt_chunk_delta_gemm_cpu(T* delta, const T* v, const T* z, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    const int64_t T_chunks = (n + chunk - 1) / chunk;
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < T_chunks; ++i) {
            int64_t r0 = i * chunk, rows = std::min(chunk, n - r0);
            // dW_i (d, f) = v_[i]^T (d, rows) @ z_[i] (rows, f)
            gemm_blocked_cpu<T>(true, false, d, f, rows, T(1), v + (b * n + r0) * d, d, z + (b * n + r0) * f, f, T(0),
                                delta + (b * T_chunks + i) * d * f, f);
        }
}

template void ttt_chunk_delta_gemm_cpu<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void ttt_chunk_delta_gemm_cpu<double>(double*, const double*, const double*, int64_t, int64_t, int64_t, int64_t, int64_t);

}  // namespace ittt::kernels
