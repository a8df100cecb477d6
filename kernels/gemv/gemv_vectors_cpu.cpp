// gemv_vectors_cpu.cpp: version 2, the gemv of gemm version 2: vectors of 32 bytes (8 floats,
// 4 doubles; AVX2 registers in the default build), written with GCC's vector types.
//
// Each vector lane is one element of C, so the lanes hold L neighbouring columns j of one row
// of C and each lane runs its own sum over k, in order, as gemv.h specifies:
//   op(B) = B   (K, N):  for each k, the L values B[k][j0 : j0+L] are one vector load;
//   op(B) = B^T (N, K):  the L values B[j0 : j0+L][k] are L rows apart. So L rows of B are read
//                        L values at a time (L loads, each reading along a row, as the matrix is
//                        stored) and the L x L block is transposed in registers; then each of its
//                        L columns is the vector for one k.
// The model's weights are (out, in) = (N, K) and linear() is x @ W^T: the second case, which
// reads every row of W from start to end once.
//
// Why GCC vector types and not AVX2 intrinsics: the arithmetic is then written `acc += a * b`,
// as in gemm_blocked_cpu.cpp's micro-kernel, so the compiler treats both alike: fused into one
// FMA where the build has FMA (-O2 and up), a multiply and an add where it does not (make
// sanitize: -O1, no -march). Both versions therefore always give the same bits, which decode =
// prefill needs. The transposes are __builtin_shuffle, which GCC turns into the AVX2 unpack and
// lane-permute instructions (and into SSE pairs in a build without AVX).
#include <algorithm>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemv/gemv.h"

// A build without -march (make sanitize) passes 32-byte vectors in memory, not in AVX registers,
// and GCC warns that the calling convention differs from an AVX build's. These functions are
// internal to this file (an anonymous namespace), so no call ever crosses the two.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ittt::kernels {

namespace {

// A vector of 32 bytes of T and its transpose.
template <class T>
struct Vec;
template <>
struct Vec<float> {
    typedef float V __attribute__((vector_size(32)));
    typedef int Mask __attribute__((vector_size(32)));
    static constexpr int64_t lanes = 8;
    // r[i][j] -> r[j][i] for an 8 x 8 block: interleave the floats of row pairs, then their
    // pairs, then swap 128-bit halves (the lane numbers of the shuffles are those of
    // _mm256_unpacklo_ps, _mm256_shuffle_ps and _mm256_permute2f128_ps).
    static void transpose(V r[8]) {
        V t[8], s[8];
#pragma GCC unroll 8
        for (int p = 0; p < 4; ++p) {
            t[2 * p] = __builtin_shuffle(r[2 * p], r[2 * p + 1], Mask{0, 8, 1, 9, 4, 12, 5, 13});
            t[2 * p + 1] = __builtin_shuffle(r[2 * p], r[2 * p + 1], Mask{2, 10, 3, 11, 6, 14, 7, 15});
        }
        // s[4q + c]: column c (and c + 4) of rows 4q .. 4q + 3
#pragma GCC unroll 8
        for (int q = 0; q < 2; ++q)
#pragma GCC unroll 8
            for (int h = 0; h < 2; ++h) {
                s[4 * q + 2 * h] = __builtin_shuffle(t[4 * q + h], t[4 * q + 2 + h], Mask{0, 1, 8, 9, 4, 5, 12, 13});
                s[4 * q + 2 * h + 1] = __builtin_shuffle(t[4 * q + h], t[4 * q + 2 + h], Mask{2, 3, 10, 11, 6, 7, 14, 15});
            }
#pragma GCC unroll 8
        for (int c = 0; c < 4; ++c) {
            r[c] = __builtin_shuffle(s[c], s[4 + c], Mask{0, 1, 2, 3, 8, 9, 10, 11});
            r[4 + c] = __builtin_shuffle(s[c], s[4 + c], Mask{4, 5, 6, 7, 12, 13, 14, 15});
        }
    }
};
template <>
struct Vec<double> {
    typedef double V __attribute__((vector_size(32)));
    typedef long long Mask __attribute__((vector_size(32)));
    static constexpr int64_t lanes = 4;
    // r[i][j] -> r[j][i] for a 4 x 4 block: interleave row pairs, then swap 128-bit halves.
    static void transpose(V r[4]) {
        const V t0 = __builtin_shuffle(r[0], r[1], Mask{0, 4, 2, 6}), t1 = __builtin_shuffle(r[0], r[1], Mask{1, 5, 3, 7});
        const V t2 = __builtin_shuffle(r[2], r[3], Mask{0, 4, 2, 6}), t3 = __builtin_shuffle(r[2], r[3], Mask{1, 5, 3, 7});
        r[0] = __builtin_shuffle(t0, t2, Mask{0, 1, 4, 5});
        r[1] = __builtin_shuffle(t1, t3, Mask{0, 1, 4, 5});
        r[2] = __builtin_shuffle(t0, t2, Mask{2, 3, 6, 7});
        r[3] = __builtin_shuffle(t1, t3, Mask{2, 3, 6, 7});
    }
};

// The first n lanes from p (all when n >= lanes), zeros after; and their store.
template <class T>
typename Vec<T>::V load(const T* p, int64_t n) {
    typename Vec<T>::V v = {};
    if (n >= Vec<T>::lanes) std::memcpy(&v, p, sizeof v);
    else
        for (int64_t i = 0; i < n; ++i) v[i] = p[i];
    return v;
}
template <class T>
void store(T* p, int64_t n, const typename Vec<T>::V& v) {
    if (n >= Vec<T>::lanes) std::memcpy(p, &v, sizeof v);
    else
        for (int64_t i = 0; i < n; ++i) p[i] = v[i];
}

// C[0 : cols] = alpha * acc + beta * C, or alpha * acc when beta == 0 (C not read): the blocked
// GEMM's epilogue, on one vector of one row of C, written as gemm_blocked_cpu.cpp writes it:
// where the build fuses multiply-adds, GCC fuses the first product of `alpha * acc + beta * C`
// into the addition (fma(alpha, acc, beta * C)), so C is loaded before, not inside, the
// expression (a call there can be evaluated first and change which product is fused).
template <class T>
void finish(T* c, int64_t cols, const typename Vec<T>::V& acc, T alpha, T beta) {
    if (beta == T(0)) {
        store(c, cols, alpha * acc);
        return;
    }
    const typename Vec<T>::V c_old = load(c, cols);
    store(c, cols, alpha * acc + beta * c_old);
}

// The rows [i0, i0 + R) and the column panel [j0, j0 + cols) (cols <= L) of C, K block by K
// block, with op(B) = B^T: L rows of B, transposed L x L at a time.
template <class T, int R>
void panel_transposed(bool trans_a, int64_t i0, int64_t j0, int64_t cols, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc) {
    using V = typename Vec<T>::V;
    constexpr int64_t L = Vec<T>::lanes;
    auto a = [&](int64_t i, int64_t k) { return trans_a ? A[k * lda + i0 + i] : A[(i0 + i) * lda + k]; };
    for (int64_t k0 = 0; k0 < K; k0 += kGemvKBlock) {
        const int64_t k_end = std::min(K, k0 + kGemvKBlock);
        V acc[R] = {};
        for (int64_t k = k0; k < k_end; k += L) {
            const int64_t n = std::min(L, k_end - k);
            V t[L];
#pragma GCC unroll 16
            for (int64_t r = 0; r < L; ++r) t[r] = r < cols ? load(B + (j0 + r) * ldb + k, n) : V{};
            Vec<T>::transpose(t);  // t[kk]: lane r holds B[j0 + r][k + kk]
            if (n == L) {  // unrolled, so that t stays in registers
#pragma GCC unroll 16
                for (int64_t kk = 0; kk < L; ++kk)
                    for (int i = 0; i < R; ++i) acc[i] += a(i, k + kk) * t[kk];
            } else {
                for (int64_t kk = 0; kk < n; ++kk)
                    for (int i = 0; i < R; ++i) acc[i] += a(i, k + kk) * t[kk];
            }
        }
        for (int i = 0; i < R; ++i) finish(C + (i0 + i) * ldc + j0, cols, acc[i], alpha, k0 == 0 ? beta : T(1));
    }
}

// The same with op(B) = B: each k is one vector of a row of B. The columns [j_begin, j_end) are
// taken K block by K block, so that consecutive loads run along rows of B.
template <class T, int R>
void columns_direct(bool trans_a, int64_t i0, int64_t j_begin, int64_t j_end, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
    using V = typename Vec<T>::V;
    constexpr int64_t L = Vec<T>::lanes;
    auto a = [&](int64_t i, int64_t k) { return trans_a ? A[k * lda + i0 + i] : A[(i0 + i) * lda + k]; };
    for (int64_t k0 = 0; k0 < K; k0 += kGemvKBlock) {
        const int64_t k_end = std::min(K, k0 + kGemvKBlock);
        for (int64_t j0 = j_begin; j0 < j_end; j0 += L) {
            const int64_t cols = std::min(L, j_end - j0);
            V acc[R] = {};
            for (int64_t k = k0; k < k_end; ++k) {
                const V b = load(B + k * ldb + j0, cols);
                for (int i = 0; i < R; ++i) acc[i] += a(i, k) * b;
            }
            for (int i = 0; i < R; ++i) finish(C + (i0 + i) * ldc + j0, cols, acc[i], alpha, k0 == 0 ? beta : T(1));
        }
    }
}

// Rows [i0, i0 + R) of C, columns [j_begin, j_end) (a multiple of L wide except at the end of C).
template <class T, int R>
void rows_of_c(bool trans_a, bool trans_b, int64_t i0, int64_t j_begin, int64_t j_end, int64_t K, T alpha, const T* A, int64_t lda,
               const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    constexpr int64_t L = Vec<T>::lanes;
    if (!trans_b) {
        columns_direct<T, R>(trans_a, i0, j_begin, j_end, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    for (int64_t j0 = j_begin; j0 < j_end; j0 += L)
        panel_transposed<T, R>(trans_a, i0, j0, std::min(L, j_end - j0), K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// C = beta * C, for K == 0 where no product touches C (as the blocked GEMM does).
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

}  // namespace

template <class T>
void gemv_vectors_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc) {
    constexpr int64_t L = Vec<T>::lanes;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    // Columns of C in chunks of whole vectors, about 128 KB of op(B) each, handed to the threads
    // as they come free; every element is computed the same way in any chunk.
    const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 15) / (L * K)) * L;
    const int64_t n_chunks = (N + chunk - 1) / chunk;
#ifdef _OPENMP
    const bool threaded = M * N * K >= (int64_t(1) << 16) && n_chunks > 1 && !omp_in_parallel();
#else
    const bool threaded = false;
#endif
#pragma omp parallel for schedule(dynamic) if (threaded)
    for (int64_t c = 0; c < n_chunks; ++c) {
        const int64_t j_begin = c * chunk, j_end = std::min(N, j_begin + chunk);
        for (int64_t i0 = 0; i0 < M; i0 += kGemvMaxRows) {
            switch (std::min(kGemvMaxRows, M - i0)) {
                case 1: rows_of_c<T, 1>(trans_a, trans_b, i0, j_begin, j_end, K, alpha, A, lda, B, ldb, beta, C, ldc); break;
                case 2: rows_of_c<T, 2>(trans_a, trans_b, i0, j_begin, j_end, K, alpha, A, lda, B, ldb, beta, C, ldc); break;
                case 3: rows_of_c<T, 3>(trans_a, trans_b, i0, j_begin, j_end, K, alpha, A, lda, B, ldb, beta, C, ldc); break;
                default: rows_of_c<T, 4>(trans_a, trans_b, i0, j_begin, j_end, K, alpha, A, lda, B, ldb, beta, C, ldc); break;
            }
        }
    }
}
static_assert(kGemvMaxRows == 4, "gemv_vectors_cpu's switch covers 1 to 4 rows");

template void gemv_vectors_cpu<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                                      float, float*, int64_t);
template void gemv_vectors_cpu<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                       int64_t, double, double*, int64_t);

}  // namespace ittt::kernels
