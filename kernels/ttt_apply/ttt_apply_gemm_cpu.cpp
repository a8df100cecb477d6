// ttt_apply_gemm_cpu.cpp: the TTT apply corrections as per-chunk calls of the blocked GEMM.
//
// One new idea: each chunk's correction is a small matrix product, so hand it to
// the blocked GEMM (packing, register tiles, OpenMP) instead of looping over
// token rows. Same math and the same zero-chunk skips as the direct loops.
#include <algorithm>

#include "kernels/gemm/gemm.h"
#include "kernels/ttt_apply/ttt_apply.h"

namespace ittt::kernels {

namespace {
template <class T>
bool all_zero(const T* p, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
        if (p[i] != T(0)) return false;
    return true;
}
}  // namespace

template <class T>
void ttt_apply_forward_correction_gemm_cpu(T* o, const T* z, const T* s, T eta, int64_t batch, int64_t n, int64_t d, int64_t f,
                                           int64_t chunk) {
    const int64_t T_chunks = (n + chunk - 1) / chunk;
    if (eta == T(0)) return;
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < T_chunks; ++i) {
            const T* s_i = s + (b * T_chunks + i) * d * f;  // (d, f)
            if (all_zero(s_i, d * f)) continue;              // keeps s == 0 bit-exact (see ttt_apply.h)
            int64_t r0 = i * chunk, rows = std::min(chunk, n - r0);
            // o_[i] (rows, d) += eta * z_[i] (rows, f) @ s_i^T (f, d)
            gemm_blocked_cpu<T>(false, true, rows, d, f, eta, z + (b * n + r0) * f, f, s_i, f, T(1), o + (b * n + r0) * d, d);
        }
}

template <class T>
void ttt_apply_backward_correction_gemm_cpu(T* dz, T* dv, const T* dout, const T* z, const T* v, const T* s, const T* g, T eta,
                                            int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    const int64_t T_chunks = (n + chunk - 1) / chunk;
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < T_chunks; ++i) {
            const T* s_i = s + (b * T_chunks + i) * d * f;
            const T* g_i = g + (b * T_chunks + i) * d * f;
            int64_t r0 = i * chunk, rows = std::min(chunk, n - r0);
            const T* do_i = dout + (b * n + r0) * d;
            const T* z_i = z + (b * n + r0) * f;
            const T* v_i = v + (b * n + r0) * d;
            T* dz_i = dz + (b * n + r0) * f;
            T* dv_i = dv + (b * n + r0) * d;
            // dz_[i] (rows, f) += eta * do_[i] (rows, d) @ s_i (d, f) + eta * v_[i] (rows, d) @ g_i (d, f)
            if (eta != T(0) && !all_zero(s_i, d * f)) gemm_blocked_cpu<T>(false, false, rows, f, d, eta, do_i, d, s_i, f, T(1), dz_i, f);
            if (eta != T(0) && !all_zero(g_i, d * f)) gemm_blocked_cpu<T>(false, false, rows, f, d, eta, v_i, d, g_i, f, T(1), dz_i, f);
            // dv_[i] (rows, d) = eta * z_[i] (rows, f) @ g_i^T (f, d)
            gemm_blocked_cpu<T>(false, true, rows, d, f, eta, z_i, f, g_i, f, T(0), dv_i, d);
        }
}

template void ttt_apply_forward_correction_gemm_cpu<float>(float*, const float*, const float*, float, int64_t, int64_t, int64_t,
                                                           int64_t, int64_t);
template void ttt_apply_forward_correction_gemm_cpu<double>(double*, const double*, const double*, double, int64_t, int64_t,
                                                            int64_t, int64_t, int64_t);
template void ttt_apply_backward_correction_gemm_cpu<float>(float*, float*, const float*, const float*, const float*, const float*,
                                                            const float*, float, int64_t, int64_t, int64_t, int64_t, int64_t);
template void ttt_apply_backward_correction_gemm_cpu<double>(double*, double*, const double*, const double*, const double*,
                                                             const double*, const double*, double, int64_t, int64_t, int64_t,
                                                             int64_t, int64_t);

}  // namespace ittt::kernels
