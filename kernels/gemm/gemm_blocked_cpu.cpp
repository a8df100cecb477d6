// gemm_blocked_cpu.cpp: version 2, a cache-blocked GEMM in the GotoBLAS / BLIS
// style: copy blocks of op(A) and op(B) into contiguous "packed" panels, then
// sweep a small register-resident tile of C over them. docs/gemm.md explains the
// block sizes with numbers; the short version is in the Tiling comments below.
//
// Loop nest (outermost first), with what each level keeps in which cache:
//   jc: columns of C in steps of NC
//     pc: the K dimension in steps of KC     -> pack op(B)[pc:+KC, jc:+NC] (L2)
//       ic: rows of C in steps of MC         -> pack op(A)[ic:+MC, pc:+KC]
//         ir, jr: MR x NR tiles of C (split between the OpenMP threads)
//           micro_kernel: KC rank-1 updates of an MR x NR tile held in registers
// Packing also absorbs the transposes: after it, NN, NT, TN and TT run the same
// micro-kernel on the same layout.
#include <algorithm>
#include <cstddef>
#include <new>

#include "kernels/gemm/gemm.h"

namespace ittt::kernels {

namespace {

// Register tile MR x NR and cache blocks KC, MC, NC per element type. A row of
// the tile is two 64-byte vectors (32 floats or 16 doubles), so the tile is 12
// vector accumulators of the 32 that AVX-512 has, leaving room for the two B
// vectors and the broadcast A value without spilling. KC is chosen so that one
// packed A micro-panel (MR x KC, 6 KB for float) stays in the 32 KB L1 while the
// B micro-panels stream past it; the packed B block (KC x NC, 512 KB) fits in
// the 1 MB per-core L2, so every pass over it for a new A micro-panel hits L2.
template <class T>
struct Tiling {
    static constexpr int64_t MR = 6;
    static constexpr int64_t NR = 128 / sizeof(T);
    static constexpr int64_t KC = 256;
    static constexpr int64_t NC = 2048 * 256 / (KC * sizeof(T)) / NR * NR;  // a 512 KB block of B
    static constexpr int64_t MC = 48 * MR;  // bounds the A buffer; each A micro-panel is reused across NC/NR tiles
};

// A 64-byte aligned scratch buffer, kept per calling thread and grown on demand,
// so that repeated small GEMMs in the model do not allocate.
template <class T>
struct Scratch {
    T* data = nullptr;
    size_t capacity = 0;
    ~Scratch() { release(); }
    T* get(size_t n) {
        if (n > capacity) {
            release();
            data = static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t{64}));
            capacity = n;
        }
        return data;
    }
    void release() {
        if (data) ::operator delete[](data, std::align_val_t{64});
        data = nullptr;
        capacity = 0;
    }
};

// Copy op(A)[row0 : row0+mc, k0 : k0+kc] into MR-row panels, each laid out k-major:
// packed[p*MR*kc + k*MR + i] = op(A)(row0 + p*MR + i, k0 + k). Rows past M are
// zero, so the micro-kernel never needs a short-tile case on its inputs.
// A: (M, K) or (K, M) when trans_a; packed: (ceil(mc/MR), kc, MR).
template <class T>
void pack_a_panel(bool trans_a, const T* A, int64_t lda, int64_t row0, int64_t rows, int64_t k0, int64_t kc, T* panel) {
    constexpr int64_t MR = Tiling<T>::MR;
    if (trans_a) {
        // op(A)(r, k) = A[k][r]: MR neighbouring rows of op(A) are contiguous in memory.
        for (int64_t k = 0; k < kc; ++k) {
            const T* src = A + (k0 + k) * lda + row0;
            for (int64_t i = 0; i < MR; ++i) panel[k * MR + i] = i < rows ? src[i] : T(0);
        }
    } else {
        // Read each row of A contiguously and scatter it with stride MR.
        for (int64_t i = 0; i < MR; ++i) {
            const T* src = A + (row0 + i) * lda + k0;
            for (int64_t k = 0; k < kc; ++k) panel[k * MR + i] = i < rows ? src[k] : T(0);
        }
    }
}

// Copy op(B)[k0 : k0+kc, col0 : col0+NR] into one panel laid out k-major:
// panel[k*NR + j] = op(B)(k0 + k, col0 + j), zero for columns past N.
// B: (K, N) or (N, K) when trans_b; panel: (kc, NR).
template <class T>
void pack_b_panel(bool trans_b, const T* B, int64_t ldb, int64_t col0, int64_t cols, int64_t k0, int64_t kc, T* panel) {
    constexpr int64_t NR = Tiling<T>::NR;
    if (trans_b) {
        // op(B)(k, c) = B[c][k]: read each row of B contiguously, scatter with stride NR.
        for (int64_t j = 0; j < NR; ++j) {
            const T* src = B + (col0 + j) * ldb + k0;
            for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = j < cols ? src[k] : T(0);
        }
    } else {
        for (int64_t k = 0; k < kc; ++k) {
            const T* src = B + (k0 + k) * ldb + col0;
            for (int64_t j = 0; j < NR; ++j) panel[k * NR + j] = j < cols ? src[j] : T(0);
        }
    }
}

// One MR x NR tile of C: kc rank-1 updates accumulated in registers, then
// C = alpha * acc + beta * C on the m x n corner that lies inside C.
// The "omp simd" pragmas matter: without them GCC 12's straight-line (SLP)
// vectoriser shuffles lanes and spills accumulators; with them every inner j
// loop becomes two 512-bit FMAs against a broadcast of a[i].
// a: (kc, MR) packed; b: (kc, NR) packed; C: (m, n) with leading dimension ldc.
template <class T>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T alpha, T beta, T* __restrict C, int64_t ldc,
                  int64_t m, int64_t n) {
    constexpr int64_t MR = Tiling<T>::MR, NR = Tiling<T>::NR;
    alignas(64) T acc[MR][NR];
    for (int64_t i = 0; i < MR; ++i)
#pragma omp simd
        for (int64_t j = 0; j < NR; ++j) acc[i][j] = 0;
    for (int64_t k = 0; k < kc; ++k) {
        const T* ak = a + k * MR;
        const T* bk = b + k * NR;
#pragma GCC unroll 16
        for (int64_t i = 0; i < MR; ++i) {
            T ai = ak[i];
#pragma omp simd
            for (int64_t j = 0; j < NR; ++j) acc[i][j] += ai * bk[j];
        }
    }
    if (m == MR && n == NR) {
        // beta == 0 overwrites C without reading it (C may hold NaN garbage).
        if (beta == T(0)) {
            for (int64_t i = 0; i < MR; ++i)
#pragma omp simd
                for (int64_t j = 0; j < NR; ++j) C[i * ldc + j] = alpha * acc[i][j];
        } else {
            for (int64_t i = 0; i < MR; ++i)
#pragma omp simd
                for (int64_t j = 0; j < NR; ++j) C[i * ldc + j] = alpha * acc[i][j] + beta * C[i * ldc + j];
        }
    } else {
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j)
                C[i * ldc + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * C[i * ldc + j];
    }
}

// C = beta * C, for K == 0 where no rank-1 update ever touches C.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

}  // namespace

template <class T>
void gemm_blocked_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc) {
    using Tile = Tiling<T>;
    constexpr int64_t MR = Tile::MR, NR = Tile::NR, KC = Tile::KC, MC = Tile::MC, NC = Tile::NC;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    // Buffers sized for this call's blocks (a 1 x 1 x 1 GEMM needs one panel each).
    const int64_t kc_max = std::min(K, KC);
    const int64_t mc_max = std::min((M + MR - 1) / MR * MR, MC);
    const int64_t nc_max = std::min((N + NR - 1) / NR * NR, NC);
    thread_local Scratch<T> a_scratch, b_scratch;
    T* a_packed = a_scratch.get(static_cast<size_t>(mc_max * kc_max));  // (mc/MR, kc, MR)
    T* b_packed = b_scratch.get(static_cast<size_t>(kc_max * nc_max));  // (nc/NR, kc, NR)

    // Threads pay off only when each gets enough work to hide the fork/join and
    // the barriers (microseconds, far more when another process holds a core);
    // 2^20 multiply-adds is about 20 us on one core.
#pragma omp parallel if (M * N * K >= (int64_t(1) << 20))
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        const int64_t n_panels = (nc + NR - 1) / NR;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            // Only the first K block applies the caller's beta; later blocks add to it.
            const T beta_block = pc == 0 ? beta : T(1);
#pragma omp for schedule(static)
            for (int64_t q = 0; q < n_panels; ++q)
                pack_b_panel(trans_b, B, ldb, jc + q * NR, std::min(NR, nc - q * NR), pc, kc, b_packed + q * kc * NR);
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = std::min(MC, M - ic);
                const int64_t m_panels = (mc + MR - 1) / MR;
#pragma omp for schedule(static)
                for (int64_t p = 0; p < m_panels; ++p)
                    pack_a_panel(trans_a, A, lda, ic + p * MR, std::min(MR, mc - p * MR), pc, kc, a_packed + p * kc * MR);
                // Tiles in row-panel-major order: a static schedule hands each thread
                // consecutive tiles, so its A micro-panel stays in L1 across the row.
#pragma omp for schedule(static) collapse(2)
                for (int64_t p = 0; p < m_panels; ++p)
                    for (int64_t q = 0; q < n_panels; ++q) {
                        const int64_t row = ic + p * MR, col = jc + q * NR;
                        micro_kernel(kc, a_packed + p * kc * MR, b_packed + q * kc * NR, alpha, beta_block, C + row * ldc + col,
                                     ldc, std::min(MR, M - row), std::min(NR, N - col));
                    }
            }
        }
    }
}

template void gemm_blocked_cpu<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                                      float, float*, int64_t);
template void gemm_blocked_cpu<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                       int64_t, double, double*, int64_t);

}  // namespace ittt::kernels
