// gemm_naive_cpu.cpp: the reference GEMM. Accumulates each dot product in T
// in the natural k order; simple enough to trust by reading.
#include "kernels/gemm/gemm.h"

namespace ittt::kernels {

template <class T>
void gemm_naive_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel for if (M * N * K > (1 << 18))
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            T acc = 0;
            for (int64_t k = 0; k < K; ++k) {
                T a = trans_a ? A[k * lda + i] : A[i * lda + k];
                T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
            }
            // beta == 0 overwrites C without reading it (C may hold NaN garbage).
            C[i * ldc + j] = beta == T(0) ? alpha * acc : alpha * acc + beta * C[i * ldc + j];
        }
    }
}

template void gemm_naive_cpu<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                                    float, float*, int64_t);
template void gemm_naive_cpu<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                     int64_t, double, double*, int64_t);

}  // namespace ittt::kernels
