// gemv_loops_cpu.cpp: version 1, the reference: the sums of gemv.h as plain loops.
//
// Every element of C is a running sum over k in blocks of kGemvKBlock, each product added with
// one rounding (std::fma), then alpha and beta as the blocked GEMM applies them. Versions 2 and
// 3 compute exactly these sums with vectors; this one is what they are tested against.
#include <algorithm>
#include <cmath>

#include "kernels/gemv/gemv.h"

namespace ittt::kernels {

template <class T>
void gemv_loops_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel for collapse(2) if (M * N * K > (1 << 18))
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            T c = beta == T(0) ? T(0) : beta * C[i * ldc + j];  // K == 0: C = beta C (zeros when beta == 0)
            for (int64_t k0 = 0; k0 < K; k0 += kGemvKBlock) {
                T acc = 0;
                for (int64_t k = k0; k < std::min(K, k0 + kGemvKBlock); ++k) {
                    const T a = trans_a ? A[k * lda + i] : A[i * lda + k];
                    const T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                    acc = std::fma(a, b, acc);
                }
                // the first block applies beta (beta == 0: C is never read), later blocks add
                c = k0 == 0 && beta == T(0) ? alpha * acc : alpha * acc + c;
            }
            C[i * ldc + j] = c;
        }
}

template void gemv_loops_cpu<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                                    float, float*, int64_t);
template void gemv_loops_cpu<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                     int64_t, double, double*, int64_t);

}  // namespace ittt::kernels
