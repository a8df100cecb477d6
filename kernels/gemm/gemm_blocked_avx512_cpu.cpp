// gemm_blocked_avx512_cpu.cpp: version 3, version 2 (gemm_blocked_cpu.cpp) with AVX-512.
//
// The same blocked algorithm, loop nest and thread slabs as version 2 (read that file and
// docs/gemm.md first); what changes is the register tile. With 32 registers of 16 floats
// (8 doubles) the micro-kernel keeps a 12 x 32 tile of C (12 x 16 for double) in 24
// accumulators, and B is packed in panels 32 floats wide (two 512-bit vectors). Edges use
// AVX-512 masks: the partial tiles of C are read and written with masked loads and stores,
// so every element of C, at an edge or not, is computed by the same instructions.
//
// How this file gets AVX-512 without the rest of the program: the pragmas below give every
// function defined after them the target attribute avx512f,avx512vl,avx512bw,avx512dq
// (the set runtime/cpu_isa.cpp checks cpuid for), and the op table runs version 3 only
// where cpu_runs_avx512(). Three rules keep that safe:
//   - every header is included above the pragmas, so the inline functions and templates
//     they define (std::min, operator new) stay AVX2 code, even where they are
//     instantiated here: no AVX-512 copy of a shared function can reach the linker;
//   - nothing in this file runs at program start (no globals with constructors), so an
//     AVX2 machine never executes a line of it;
//   - the compiler's vectorisers are off here (no-tree-vectorize): GCC 12.2 with AVX-512
//     turns constant vectors such as {1, 1, 0, 0} into broadcasts {1, 1, 1, 1} (the case
//     tests/test_runtime.cpp pins), and its SLP vectoriser builds such constants from
//     ordinary code. Every vector instruction of this file is written out with intrinsics
//     instead; gemm_avx512_known_answers() below is that pin, compiled here, and
//     tests/test_gemm.cpp checks it.
// The registers' operations come from kernels/elementwise/zmm_avx512.h, shared by every AVX-512
// file (it includes <immintrin.h> with GCC 12's false uninitialised warnings silenced, bug 105593).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "kernels/elementwise/zmm_avx512.h"  // last: it switches on AVX-512 for what follows it

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

// Zmm<T> (one 512-bit register of T, its operations and the L x L transpose) and first_lanes<T>
// come from the AVX-512 kernels' shared header.
using avx512::first_lanes;
using avx512::Zmm;

// The register tile is MR x NR with NR two vectors wide: 2 * MR accumulators (24 of the 32
// registers), plus the two B vectors and the broadcast A value. Twice version 2's MR:
// each B vector loaded from the packed panel now feeds 12 FMAs instead of 6, which halves
// what the micro-kernel streams from L2 per FMA. KC, MC and NC as in version 2: one A
// micro-panel (12 x 256 floats, 12 KB) stays in the 48 KB L1 of this generation, the packed
// B block (256 x 512 floats, 512 KB) in its 2 MB L2. MC is a multiple of MR.
template <class T>
struct Tiling {
    static constexpr int64_t MR = 12;
    static constexpr int64_t NR = 2 * Zmm<T>::lanes;  // 32 floats, 16 doubles
    static constexpr int64_t KC = 256;
    static constexpr int64_t NC = 512 * 1024 / (KC * sizeof(T)) / NR * NR;  // a 512 KB block of B
    static constexpr int64_t MC = 24 * MR;
};

// A 64-byte aligned scratch buffer per calling thread, grown on demand (as in version 2).
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

// The transposing copy both packings need when the matrix is stored the other way round:
// panel[k*width + r] = src[r*ld + k] for r < rows, k < kc, and zero for rows <= r < width.
// Blocks of lanes x lanes go through registers: `lanes` masked row loads (a row past `rows`
// is not read, and is zero), one transpose, `lanes` masked stores of `width` columns.
// src: (rows, kc) with leading dimension ld; panel: (kc, width).
template <class T>
void pack_transposed(const T* src, int64_t ld, int64_t rows, int64_t kc, T* panel, int64_t width) {
    using Z = Zmm<T>;
    constexpr int64_t L = Z::lanes;
    for (int64_t r0 = 0; r0 < width; r0 += L) {
        const typename Z::Mask columns = first_lanes<T>(width - r0);
        for (int64_t k0 = 0; k0 < kc; k0 += L) {
            const typename Z::Mask ks = first_lanes<T>(kc - k0);
            typename Z::V block[L];
            for (int64_t i = 0; i < L; ++i) block[i] = r0 + i < rows ? Z::load(ks, src + (r0 + i) * ld + k0) : Z::zero();
            Z::transpose(block);
            for (int64_t i = 0; i < std::min(L, kc - k0); ++i) Z::store(panel + (k0 + i) * width + r0, columns, block[i]);
        }
    }
}

// op(A)[row0 : row0+rows, k0 : k0+kc] (rows <= MR) into one panel laid out k-major,
// panel[k*MR + i] = op(A)(row0 + i, k0 + k), zero past `rows`: as in version 2.
// A: (M, K) or (K, M) when trans_a; panel: (kc, MR).
template <class T>
void pack_a_panel(bool trans_a, const T* A, int64_t lda, int64_t row0, int64_t rows, int64_t k0, int64_t kc, T* panel) {
    using Z = Zmm<T>;
    constexpr int64_t MR = Tiling<T>::MR;
    if (trans_a) {
        // op(A)(r, k) = A[k][r]: the MR rows of op(A) are neighbours in memory, so each k
        // is a masked copy of MR values (one vector for float, two for double) that reads
        // only the `rows` that exist and writes zeros for the rest.
        for (int64_t k = 0; k < kc; ++k) {
            const T* src = A + (k0 + k) * lda + row0;
            for (int64_t i = 0; i < MR; i += Z::lanes)
                Z::store(panel + k * MR + i, first_lanes<T>(MR - i), Z::load(first_lanes<T>(rows - i), src + i));
        }
    } else {
        pack_transposed(A + row0 * lda + k0, lda, rows, kc, panel, MR);
    }
}

// op(B)[k0 : k0+kc, col0 : col0+cols] (cols <= NR) into one panel laid out k-major,
// panel[k*NR + j] = op(B)(k0 + k, col0 + j), zero past `cols`.
// B: (K, N) or (N, K) when trans_b; panel: (kc, NR), 64-byte aligned.
template <class T>
void pack_b_panel(bool trans_b, const T* B, int64_t ldb, int64_t col0, int64_t cols, int64_t k0, int64_t kc, T* panel) {
    using Z = Zmm<T>;
    constexpr int64_t NR = Tiling<T>::NR, L = Z::lanes;
    if (trans_b) {
        pack_transposed(B + col0 * ldb + k0, ldb, cols, kc, panel, NR);
    } else {
        // A row of the panel is two vectors of B's row; the masks zero the columns past `cols`
        // without reading them.
        const typename Z::Mask m0 = first_lanes<T>(cols), m1 = first_lanes<T>(cols - L);
        for (int64_t k = 0; k < kc; ++k) {
            const T* src = B + (k0 + k) * ldb + col0;
            Z::store(panel + k * NR, Z::load(m0, src));
            Z::store(panel + k * NR + L, Z::load(m1, src + L));
        }
    }
}

// One MR x NR tile of C: kc rank-1 updates accumulated in 2*MR registers, then
// C = alpha * acc + beta * C on the m x n corner that lies inside C (masked, so the corner
// is computed exactly as a full tile would be). beta == 0 never reads C.
// a: (kc, MR) packed; b: (kc, NR) packed, 64-byte aligned; C: (m, n) with leading dimension ldc.
template <class T>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T alpha, T beta, T* __restrict C, int64_t ldc,
                  int64_t m, int64_t n) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int64_t MR = Tiling<T>::MR, NR = Tiling<T>::NR, L = Z::lanes;
    V acc[MR][2];
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = Z::zero();
    for (int64_t k = 0; k < kc; ++k) {
        const V b0 = Z::load(b + k * NR), b1 = Z::load(b + k * NR + L);
#pragma GCC unroll 16
        for (int64_t i = 0; i < MR; ++i) {
            const V ai = Z::broadcast(a[k * MR + i]);
            acc[i][0] = Z::fma(ai, b0, acc[i][0]);
            acc[i][1] = Z::fma(ai, b1, acc[i][1]);
        }
    }
    const typename Z::Mask m0 = first_lanes<T>(n), m1 = first_lanes<T>(n - L);
    const V va = Z::broadcast(alpha), vb = Z::broadcast(beta);
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) {
        if (i >= m) break;
        T* c = C + i * ldc;
        if (beta == T(0)) {
            Z::store(c, m0, Z::mul(va, acc[i][0]));
            Z::store(c + L, m1, Z::mul(va, acc[i][1]));
        } else {
            Z::store(c, m0, Z::fma(va, acc[i][0], Z::mul(vb, Z::load(m0, c))));
            Z::store(c + L, m1, Z::fma(va, acc[i][1], Z::mul(vb, Z::load(m1, c + L))));
        }
    }
}

// C = beta * C, for K == 0 where no rank-1 update ever touches C.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

// The single-threaded loop nest on all of C (or on one slab of it): version 2's.
template <class T>
void gemm_blocked_avx512_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    using Tile = Tiling<T>;
    constexpr int64_t MR = Tile::MR, NR = Tile::NR, KC = Tile::KC, MC = Tile::MC, NC = Tile::NC;
    thread_local Scratch<T> a_scratch, b_scratch;
    const int64_t kc_max = std::min(K, KC);
    T* a_packed = a_scratch.get(static_cast<size_t>(std::min((M + MR - 1) / MR * MR, MC) * kc_max));  // (mc/MR, kc, MR)
    T* b_packed = b_scratch.get(static_cast<size_t>(std::min((N + NR - 1) / NR * NR, NC) * kc_max));  // (nc/NR, kc, NR)

    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        const int64_t n_panels = (nc + NR - 1) / NR;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            const T beta_block = pc == 0 ? beta : T(1);  // later K blocks add to the first
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
void gemm_blocked_avx512_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                             const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    using Tile = Tiling<T>;
    constexpr int64_t MR = Tile::MR, NR = Tile::NR;
    // A few rows (decode): op(B) read once, no packing, the same sums (as in version 2).
    static_assert(Tile::KC == kGemvKBlock, "the gemv sums in the K blocks of this GEMM");
    if (M <= kGemvMaxRows) {
        gemv_avx512_cpu(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    // Threads and slabs exactly as version 2: whole tiles per slab, so the result is bitwise
    // the same for any thread count.
#ifdef _OPENMP
    const int threads = M * N * K >= (int64_t(1) << 20) && !omp_in_parallel() ? omp_get_max_threads() : 1;
#else
    const int threads = 1;
#endif
    const bool split_rows = (M + MR - 1) / MR >= (N + NR - 1) / NR;
    const int64_t extent = split_rows ? M : N, unit = split_rows ? MR : NR, block = split_rows ? Tile::MC : Tile::NC;
    const int64_t units = (extent + unit - 1) / unit;
    const int64_t wanted = std::min<int64_t>(units, threads * ((extent + threads * block - 1) / (threads * block)));
    if (threads <= 1 || wanted <= 1) {
        gemm_blocked_avx512_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int64_t slab = (units + wanted - 1) / wanted * unit;
    const int64_t n_slabs = (extent + slab - 1) / slab;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int64_t s = 0; s < n_slabs; ++s) {
        const int64_t begin = s * slab, size = std::min(slab, extent - begin);
        if (split_rows) {
            const T* A_slab = trans_a ? A + begin : A + begin * lda;
            gemm_blocked_avx512_serial(trans_a, trans_b, size, N, K, alpha, A_slab, lda, B, ldb, beta, C + begin * ldc, ldc);
        } else {
            const T* B_slab = trans_b ? B + begin * ldb : B + begin;
            gemm_blocked_avx512_serial(trans_a, trans_b, M, size, K, alpha, A, lda, B_slab, ldb, beta, C + begin, ldc);
        }
    }
}

template void gemm_blocked_avx512_cpu<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                             int64_t, float, float*, int64_t);
template void gemm_blocked_avx512_cpu<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                              int64_t, double, double*, int64_t);

// The pin of tests/test_runtime.cpp, compiled with this file's options: a 256-bit array
// initialised with constants whose non-zero values are equal, copied out (what the
// std::vector<double>{1, 1, 0, 0} of that test does). GCC 12.2's vectoriser turns the copy
// into one integer vector constant, and with AVX-512 loads that constant as a broadcast of
// its first element: compiled without this file's no-tree-vectorize line, {1, 1, 0, 0} comes
// out {1, 1, 1, 1} and {3, 3, 3, 3, 3, 3, 0, 0} as eight 3s (checked when this was written).
void gemm_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
