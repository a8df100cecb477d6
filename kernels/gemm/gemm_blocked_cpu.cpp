// gemm_blocked_cpu.cpp: version 2, a cache-blocked GEMM in the GotoBLAS / BLIS
// style: copy blocks of op(A) and op(B) into contiguous "packed" panels, then
// sweep a small register-resident tile of C over them. docs/gemm.md explains the
// block sizes with numbers; the short version is in the Tiling comments below.
//
// Loop nest of one thread (outermost first), with what each level keeps where:
//   jc: columns of C in steps of NC
//     pc: the K dimension in steps of KC     -> pack op(B)[pc:+KC, jc:+NC] (L2)
//       ic: rows of C in steps of MC         -> pack op(A)[ic:+MC, pc:+KC]
//         ir: MR-row panels of C             -> one A micro-panel (MR x KC) in L1
//           jr: NR-column panels of C
//             micro_kernel: KC rank-1 updates of an MR x NR tile held in registers
// Packing also absorbs the transposes: after it, NN, NT, TN and TT run the same
// micro-kernel on the same layout.
//
// Threads: C is cut into slabs of whole tiles (rows, or columns when C is wide
// and short), and each thread runs the loop nest above on its slabs with its own
// packing buffers. Packing B once per row slab costs ~1% more copying than
// sharing one packed B, but leaves no barrier inside the call: on a machine
// shared with other processes a barrier waits for the slowest, descheduled thread.
#include <algorithm>
#include <cstddef>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"

namespace ittt::kernels {

namespace {

// Register tile MR x NR and cache blocks KC, MC, NC per element type. A row of
// the tile is two vectors of the widest vector ISA compiled for (64 bytes under
// AVX-512, 32 under AVX2, the default -march=x86-64-v3), so the tile is 12
// vector accumulators, leaving room for the two B vectors and the broadcast A
// value without spilling. KC is chosen so that one
// packed A micro-panel (MR x KC, 6 KB for float) stays in the 32 KB L1 while the
// B micro-panels stream past it; the packed B block (KC x NC, 512 KB) fits in
// the 1 MB per-core L2, so every pass over it for a new A micro-panel hits L2.
template <class T>
struct Tiling {
    static constexpr int64_t MR = 6;
    // Two vector registers per row of the tile: 6 x 2 = 12 accumulators, which fit
    // the 16 vector registers of AVX2 and AVX-512 alike with room for the A
    // broadcasts. (Sized for 512-bit registers under AVX2, the tile spills.)
#if defined(__AVX512F__)
    static constexpr int64_t NR = 128 / sizeof(T);
#else
    static constexpr int64_t NR = 64 / sizeof(T);
#endif
    static constexpr int64_t KC = 256;
    static constexpr int64_t NC = 512 * 1024 / (KC * sizeof(T)) / NR * NR;  // a 512 KB block of B: 512 floats, 256 doubles
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

// Copy op(A)[row0 : row0+rows, k0 : k0+kc] (rows <= MR) into one panel laid out
// k-major: panel[k*MR + i] = op(A)(row0 + i, k0 + k). Rows past `rows` are zero,
// so the micro-kernel never needs a short-tile case on its inputs.
// A: (M, K) or (K, M) when trans_a; panel: (kc, MR).
template <class T>
void pack_a_panel(bool trans_a, const T* A, int64_t lda, int64_t row0, int64_t rows, int64_t k0, int64_t kc, T* panel) {
    constexpr int64_t MR = Tiling<T>::MR;
    if (trans_a) {
        // op(A)(r, k) = A[k][r]: the MR rows of op(A) are neighbours in memory.
        for (int64_t k = 0; k < kc; ++k) {
            const T* src = A + (k0 + k) * lda + row0;
            for (int64_t i = 0; i < MR; ++i) panel[k * MR + i] = i < rows ? src[i] : T(0);
        }
    } else {
        // Read each row of A contiguously and scatter it with stride MR (the panel,
        // 6 KB for float, stays in L1 while it is written).
        for (int64_t i = 0; i < rows; ++i) {
            const T* src = A + (row0 + i) * lda + k0;
            for (int64_t k = 0; k < kc; ++k) panel[k * MR + i] = src[k];
        }
        for (int64_t i = rows; i < MR; ++i)
            for (int64_t k = 0; k < kc; ++k) panel[k * MR + i] = T(0);
    }
}

// Copy op(B)[k0 : k0+kc, col0 : col0+cols] (cols <= NR) into one panel laid out
// k-major: panel[k*NR + j] = op(B)(k0 + k, col0 + j), zero for columns past `cols`.
// B: (K, N) or (N, K) when trans_b; panel: (kc, NR).
template <class T>
void pack_b_panel(bool trans_b, const T* B, int64_t ldb, int64_t col0, int64_t cols, int64_t k0, int64_t kc, T* panel) {
    constexpr int64_t NR = Tiling<T>::NR;
    if (trans_b) {
        // op(B)(k, c) = B[c][k]: read each row of B contiguously, scatter it with
        // stride NR. (Strip-mining this transpose to keep the panel in L1 measured
        // no faster: a 6 x 1024 x 1024 NT product took 0.28 ms either way, the same
        // as NN.)
        for (int64_t j = 0; j < cols; ++j) {
            const T* src = B + (col0 + j) * ldb + k0;
            for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = src[k];
        }
        for (int64_t j = cols; j < NR; ++j)
            for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = T(0);
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

// The single-threaded loop nest on all of C (or on one slab of it).
template <class T>
void gemm_blocked_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                         const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    using Tile = Tiling<T>;
    constexpr int64_t MR = Tile::MR, NR = Tile::NR, KC = Tile::KC, MC = Tile::MC, NC = Tile::NC;
    // Buffers sized for this call's blocks (a 1 x 1 x 1 GEMM needs one panel each);
    // thread_local, so every OpenMP thread packs into its own.
    thread_local Scratch<T> a_scratch, b_scratch;
    const int64_t kc_max = std::min(K, KC);
    T* a_packed = a_scratch.get(static_cast<size_t>(std::min((M + MR - 1) / MR * MR, MC) * kc_max));  // (mc/MR, kc, MR)
    T* b_packed = b_scratch.get(static_cast<size_t>(std::min((N + NR - 1) / NR * NR, NC) * kc_max));  // (nc/NR, kc, NR)

    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        const int64_t n_panels = (nc + NR - 1) / NR;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            // Only the first K block applies the caller's beta; later blocks add to it.
            const T beta_block = pc == 0 ? beta : T(1);
            for (int64_t q = 0; q < n_panels; ++q)
                pack_b_panel(trans_b, B, ldb, jc + q * NR, std::min(NR, nc - q * NR), pc, kc, b_packed + q * kc * NR);
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = std::min(MC, M - ic);
                const int64_t m_panels = (mc + MR - 1) / MR;
                for (int64_t p = 0; p < m_panels; ++p)
                    pack_a_panel(trans_a, A, lda, ic + p * MR, std::min(MR, mc - p * MR), pc, kc, a_packed + p * kc * MR);
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

}  // namespace

template <class T>
void gemm_blocked_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                      int64_t ldb, T beta, T* C, int64_t ldc) {
    using Tile = Tiling<T>;
    constexpr int64_t MR = Tile::MR, NR = Tile::NR;
    // A product of a few rows (decoding one token) does one multiply-add per element of op(B):
    // reading op(B) is the whole cost, and packing would read and write it once more. The gemv
    // reads it once and sums every element exactly as below (kernels/gemv/gemv.h).
    static_assert(Tile::KC == kGemvKBlock, "the gemv sums in the K blocks of this GEMM");
    if (M <= kGemvMaxRows) {
        gemv_vectors_cpu(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    // Threads pay off only when each gets enough work to hide the fork/join
    // (microseconds, far more when another process holds a core); 2^20
    // multiply-adds is about 20 us on one core.
#ifdef _OPENMP
    // Inside a parallel region (the TTT loop runs one sequence per thread) the call is
    // serial from the start instead of opening a nested team of one.
    const int threads = M * N * K >= (int64_t(1) << 20) && !omp_in_parallel() ? omp_get_max_threads() : 1;
#else
    const int threads = 1;
#endif
    // Cut along the dimension with more tiles, into a multiple of the thread count
    // of slabs no bigger than one cache block (MC rows or NC columns), so that
    // dynamic scheduling can hand a free thread the next slab.
    const bool split_rows = (M + MR - 1) / MR >= (N + NR - 1) / NR;
    const int64_t extent = split_rows ? M : N, unit = split_rows ? MR : NR, block = split_rows ? Tile::MC : Tile::NC;
    const int64_t units = (extent + unit - 1) / unit;
    const int64_t wanted = std::min<int64_t>(units, threads * ((extent + threads * block - 1) / (threads * block)));
    if (threads <= 1 || wanted <= 1) {
        gemm_blocked_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    // Slab edges fall on multiples of MR (NR), so each element of C sits in the
    // same tile position as with one thread: the result is bitwise the same.
    const int64_t slab = (units + wanted - 1) / wanted * unit;
    const int64_t n_slabs = (extent + slab - 1) / slab;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int64_t s = 0; s < n_slabs; ++s) {
        const int64_t begin = s * slab, size = std::min(slab, extent - begin);
        if (split_rows) {
            // Rows [begin, begin+size) of op(A) and of C.
            const T* A_slab = trans_a ? A + begin : A + begin * lda;
            gemm_blocked_serial(trans_a, trans_b, size, N, K, alpha, A_slab, lda, B, ldb, beta, C + begin * ldc, ldc);
        } else {
            // Columns [begin, begin+size) of op(B) and of C.
            const T* B_slab = trans_b ? B + begin * ldb : B + begin;
            gemm_blocked_serial(trans_a, trans_b, M, size, K, alpha, A, lda, B_slab, ldb, beta, C + begin, ldc);
        }
    }
}

template void gemm_blocked_cpu<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                                      float, float*, int64_t);
template void gemm_blocked_cpu<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                       int64_t, double, double*, int64_t);

}  // namespace ittt::kernels
