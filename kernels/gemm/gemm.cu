// gemm.cu: C = alpha * op(A) @ op(B) + beta * C on the GPU, F32, row-major, strided batched.
//
// One launcher per version (gemm_naive_cuda .. gemm_wmma_tf32_cuda, declared in gemm.h); each
// kernel adds one idea to the one before, and the sentence above each kernel says which. The
// versions' numbers, names and test tolerances are their rows in src/ops/gemm.cpp (the op
// table: `build/ittt info --kernels` lists it).
//
// Run:     ops::matmul / ops::linear on CUDA tensors; build/ittt --kernel gemm=v ... --device cuda
// Test:    build/ittt_tests "[cuda][gemm]"
// Bench:   build/ittt_bench --filter gemm_cuda        (each version at 1024^3 .. 4096^3 against cuBLAS)
// Profile: make profile KERNEL=gemm VERSION=v         (Nsight Compute on the version's kernels, docs/profiling.md)
//
// Layouts. op(A) is M x K, op(B) is K x N. Versions 2 to 4 stage, per step of the K loop,
// a tile of op(A)^T and a tile of op(B), both as tile[k][j]. Whether k or j is the
// contiguous index in global memory depends only on the transpose flags, so the four
// layouts NN, NT, TN, TT differ only in the tile loads (load_tile reads in memory order
// so that a warp's reads are coalesced); the compute loops see one layout. The same
// holds on the CPU (docs/gemm.md, "Packing"). Version 5 copies each tile as it is stored
// and lets the fragment layout (row_major / col_major) absorb the transpose.
//
// Edges. Versions 1 to 4 take any M, N, K >= 0 and any leading dimensions: loads past an
// edge of op(A) or op(B) put zeros in the tile (they add nothing), stores past an edge of
// C are skipped. beta == 0 writes C without reading it.
//
// What this code is not: cuBLAS. No double buffering, no asynchronous copies (cp.async /
// TMA), no split-K, no swizzled block order; docs/profiling.md says what each would buy.
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "kernels/gemm/gemm.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

// Everything a kernel needs, by value. Pointers already point at the first matrix of
// the launch's batch slice; blockIdx.z picks the matrix.
struct GemmArgs {
    int M, N, K;
    float alpha, beta;
    const float* A;  // (M, K) or (K, M) per matrix, row stride lda
    int64_t lda, stride_a;
    const float* B;  // (K, N) or (N, K) per matrix, row stride ldb
    int64_t ldb, stride_b;
    float* C;        // (M, N) per matrix, row stride ldc
    int64_t ldc, stride_c;
};

// Element (r, c) of op(X) for X stored row-major with leading dimension ld.
template <bool TRANS>
__device__ __forceinline__ float op_element(const float* x, int64_t ld, int r, int c) {
    return TRANS ? x[static_cast<int64_t>(c) * ld + r] : x[static_cast<int64_t>(r) * ld + c];
}

// C = alpha * acc + beta * C, reading C only when beta != 0.
__device__ __forceinline__ void store_c(float* c, float acc, float alpha, float beta) {
    *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// Copies the BK x BJ block Y[k0 .., j0 ..] of a K x J matrix Y into tile[k * LD + j], with
// zeros outside Y. Y(k, j) is y[j * ldy + k] when K_CONTIGUOUS, else y[k * ldy + j]; the
// thread -> element map follows memory order, so consecutive threads read consecutive
// addresses. A's tiles use Y = op(A)^T (K_CONTIGUOUS = !trans_a), B's use Y = op(B)
// (K_CONTIGUOUS = trans_b).
template <int BK, int BJ, int LD, int THREADS, bool K_CONTIGUOUS>
__device__ __forceinline__ void load_tile(float* tile, const float* y, int64_t ldy, int k0, int j0, int K, int J, int tid) {
    for (int idx = tid; idx < BK * BJ; idx += THREADS) {
        const int k = K_CONTIGUOUS ? idx % BK : idx / BJ;
        const int j = K_CONTIGUOUS ? idx / BK : idx % BJ;
        const int gk = k0 + k, gj = j0 + j;
        float v = 0.0f;
        if (gk < K && gj < J) v = K_CONTIGUOUS ? y[static_cast<int64_t>(gj) * ldy + gk] : y[static_cast<int64_t>(gk) * ldy + gj];
        tile[k * LD + j] = v;
    }
}

// load_tile with float4 reads: groups of 4 elements along the contiguous index. Needs y
// 16-byte aligned and ldy % 4 == 0 (then every group starts 16-byte aligned, since k0 and
// j0 are multiples of 4); a group that crosses the matrix edge is read element by element.
// Groups along j are stored as one float4 (LD % 4 == 0); groups along k are scattered
// into 4 rows of the tile (the transpose).
template <int BK, int BJ, int LD, int THREADS, bool K_CONTIGUOUS>
__device__ __forceinline__ void load_tile_float4(float* tile, const float* y, int64_t ldy, int k0, int j0, int K, int J, int tid) {
    static_assert(BK % 4 == 0 && BJ % 4 == 0 && LD % 4 == 0, "float4 groups must tile the block");
    for (int g = tid; g < BK * BJ / 4; g += THREADS) {
        if (K_CONTIGUOUS) {
            const int k = (g % (BK / 4)) * 4, j = g / (BK / 4);
            const int gk = k0 + k, gj = j0 + j;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (gj < J) {
                const float* p = y + static_cast<int64_t>(gj) * ldy + gk;
                if (gk + 3 < K) {
                    v = *reinterpret_cast<const float4*>(p);
                } else {
                    if (gk < K) v.x = p[0];
                    if (gk + 1 < K) v.y = p[1];
                    if (gk + 2 < K) v.z = p[2];
                }
            }
            tile[(k + 0) * LD + j] = v.x;
            tile[(k + 1) * LD + j] = v.y;
            tile[(k + 2) * LD + j] = v.z;
            tile[(k + 3) * LD + j] = v.w;
        } else {
            const int j = (g % (BJ / 4)) * 4, k = g / (BJ / 4);
            const int gk = k0 + k, gj = j0 + j;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (gk < K) {
                const float* p = y + static_cast<int64_t>(gk) * ldy + gj;
                if (gj + 3 < J) {
                    v = *reinterpret_cast<const float4*>(p);
                } else {
                    if (gj < J) v.x = p[0];
                    if (gj + 1 < J) v.y = p[1];
                    if (gj + 2 < J) v.z = p[2];
                }
            }
            *reinterpret_cast<float4*>(&tile[k * LD + j]) = v;
        }
    }
}

// The matrix of this block's batch entry.
__device__ __forceinline__ const float* batch_a(const GemmArgs& p) { return p.A + blockIdx.z * p.stride_a; }
__device__ __forceinline__ const float* batch_b(const GemmArgs& p) { return p.B + blockIdx.z * p.stride_b; }
__device__ __forceinline__ float* batch_c(const GemmArgs& p) { return p.C + blockIdx.z * p.stride_c; }

// ---------------------------------------------------------------- version 1

constexpr int kNaiveCols = 32, kNaiveRows = 8;  // block (32, 8): a warp is 32 consecutive columns of one row

// Version 1: the definition, one thread per output; threadIdx.x runs along a row of C, so a
// warp's stores to C and its reads of op(B) (when B is not transposed) are coalesced and its
// read of op(A) is one broadcast.
// Grid (ceil(M / 8), ceil(N / 32), batch).
template <bool TA, bool TB>
__global__ void __launch_bounds__(kNaiveCols * kNaiveRows) gemm_naive_kernel(GemmArgs p) {
    const int i = blockIdx.x * kNaiveRows + threadIdx.y;  // row of C
    const int j = blockIdx.y * kNaiveCols + threadIdx.x;  // column of C
    if (i >= p.M || j >= p.N) return;
    const float *A = batch_a(p), *B = batch_b(p);
    float acc = 0.0f;
    for (int k = 0; k < p.K; ++k) acc += op_element<TA>(A, p.lda, i, k) * op_element<TB>(B, p.ldb, k, j);
    store_c(batch_c(p) + static_cast<int64_t>(i) * p.ldc + j, acc, p.alpha, p.beta);
}

// ---------------------------------------------------------------- version 2

constexpr int kTile2 = 32;

// Version 2: shared-memory tiles, so each value of op(A) and op(B) read from global memory
// serves 32 outputs instead of 1.
// Block (32, 32) computes a 32 x 32 tile of C, stepping through K 32 at a time; the tiles
// have 33 columns so that the transposing loads (one row of memory into one column of the
// tile) hit 32 different banks. Grid (ceil(M / 32), ceil(N / 32), batch).
template <bool TA, bool TB>
__global__ void __launch_bounds__(kTile2 * kTile2) gemm_smem_kernel(GemmArgs p) {
    __shared__ float a_tile[kTile2][kTile2 + 1];  // [k][m]: op(A) transposed
    __shared__ float b_tile[kTile2][kTile2 + 1];  // [k][n]
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kTile2 + tx;
    const int m0 = blockIdx.x * kTile2, n0 = blockIdx.y * kTile2;
    const float *A = batch_a(p), *B = batch_b(p);
    float acc = 0.0f;
    for (int k0 = 0; k0 < p.K; k0 += kTile2) {
        load_tile<kTile2, kTile2, kTile2 + 1, kTile2 * kTile2, !TA>(&a_tile[0][0], A, p.lda, k0, m0, p.K, p.M, tid);
        load_tile<kTile2, kTile2, kTile2 + 1, kTile2 * kTile2, TB>(&b_tile[0][0], B, p.ldb, k0, n0, p.K, p.N, tid);
        __syncthreads();
        // a_tile[k][ty] is one address for the whole warp (a broadcast), b_tile[k][tx] 32 consecutive ones.
#pragma unroll
        for (int k = 0; k < kTile2; ++k) acc += a_tile[k][ty] * b_tile[k][tx];
        __syncthreads();  // before the next step overwrites the tiles
    }
    const int i = m0 + ty, j = n0 + tx;
    if (i < p.M && j < p.N) store_c(batch_c(p) + static_cast<int64_t>(i) * p.ldc + j, acc, p.alpha, p.beta);
}

// ---------------------------------------------------------------- version 3

constexpr int kBM3 = 128, kBN3 = 128, kBK3 = 8, kTM3 = 8, kTN3 = 8;
constexpr int kThreads3 = (kBM3 / kTM3) * (kBN3 / kTN3);  // 256
constexpr int kPad = 4;  // tile rows of 132 floats: conflict-free transposing loads, 16-byte aligned rows

// Version 3: 2-D register tiles, so each value loaded from shared memory serves 8 multiply-adds
// instead of 1 (an 8 x 8 outer product per k), and shared memory stops being the bottleneck.
// 256 threads compute a 128 x 128 tile of C; thread t owns the 8 x 8 block at rows
// (t / 16) * 8, columns (t % 16) * 8 of it. Grid (ceil(M / 128), ceil(N / 128), batch).
template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads3) gemm_blocktile_kernel(GemmArgs p) {
    __shared__ float a_tile[kBK3][kBM3 + kPad];  // [k][m]
    __shared__ float b_tile[kBK3][kBN3 + kPad];  // [k][n]
    const int tid = threadIdx.x;
    const int row0 = (tid / (kBN3 / kTN3)) * kTM3, col0 = (tid % (kBN3 / kTN3)) * kTN3;
    const int m0 = blockIdx.x * kBM3, n0 = blockIdx.y * kBN3;
    const float *A = batch_a(p), *B = batch_b(p);
    float acc[kTM3][kTN3] = {};
    float a_reg[kTM3], b_reg[kTN3];
    for (int k0 = 0; k0 < p.K; k0 += kBK3) {
        load_tile<kBK3, kBM3, kBM3 + kPad, kThreads3, !TA>(&a_tile[0][0], A, p.lda, k0, m0, p.K, p.M, tid);
        load_tile<kBK3, kBN3, kBN3 + kPad, kThreads3, TB>(&b_tile[0][0], B, p.ldb, k0, n0, p.K, p.N, tid);
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kBK3; ++k) {
#pragma unroll
            for (int i = 0; i < kTM3; ++i) a_reg[i] = a_tile[k][row0 + i];
#pragma unroll
            for (int j = 0; j < kTN3; ++j) b_reg[j] = b_tile[k][col0 + j];
#pragma unroll
            for (int i = 0; i < kTM3; ++i)
#pragma unroll
                for (int j = 0; j < kTN3; ++j) acc[i][j] += a_reg[i] * b_reg[j];
        }
        __syncthreads();
    }
    float* C = batch_c(p);
#pragma unroll
    for (int i = 0; i < kTM3; ++i) {
        const int r = m0 + row0 + i;
        if (r >= p.M) break;
#pragma unroll
        for (int j = 0; j < kTN3; ++j) {
            const int c = n0 + col0 + j;
            if (c < p.N) store_c(C + static_cast<int64_t>(r) * p.ldc + c, acc[i][j], p.alpha, p.beta);
        }
    }
}

// ---------------------------------------------------------------- version 4

constexpr int kBM4 = 128, kBN4 = 128, kBK4 = 8, kThreads4 = 256;
constexpr int kWarpM = 64, kWarpN = 32;      // 8 warps as 2 (rows) x 4 (columns) of the block tile
constexpr int kSubM = 32, kSubN = 16;        // a warp tile is 2 x 2 sub-tiles of 32 x 16 ...
constexpr int kLaneRows = 8, kLaneCols = 4;  // ... each covered by the 32 lanes as 8 x 4 blocks of 4 x 4
static_assert((kBM4 / kWarpM) * (kBN4 / kWarpN) * 32 == kThreads4, "one warp per warp tile");
static_assert(kLaneRows * 4 == kSubM && kLaneCols * 4 == kSubN, "lanes cover a sub-tile");

// Version 4: float4 loads and a warp tiling: global memory is read 16 bytes per thread
// (fewer, wider transactions), and each warp computes a compact 64 x 32 piece of the block
// tile, so its float4 reads of shared memory touch 128 + 64 consecutive bytes per k
// (broadcast to the lanes that share them, no bank conflicts).
// 256 threads compute a 128 x 128 tile of C, BK = 8. Warp w owns rows (w / 4) * 64 and
// columns (w % 4) * 32; lane l owns, in each of the warp's 2 x 2 sub-tiles of 32 x 16, the
// 4 x 4 block at rows (l / 4) * 4, columns (l % 4) * 4: 64 accumulators per thread.
// VEC: the float4 global loads (A and B 16-byte aligned, lda, ldb, strides multiples of 4);
// without it the loads are load_tile's scalar ones. vec_c: C can be written as float4.
// Grid (ceil(M / 128), ceil(N / 128), batch).
template <bool TA, bool TB, bool VEC>
__global__ void __launch_bounds__(kThreads4) gemm_warptile_kernel(GemmArgs p, bool vec_c) {
    __shared__ __align__(16) float a_tile[kBK4][kBM4 + kPad];  // [k][m]
    __shared__ __align__(16) float b_tile[kBK4][kBN4 + kPad];  // [k][n]
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = (warp / (kBN4 / kWarpN)) * kWarpM, wn = (warp % (kBN4 / kWarpN)) * kWarpN;
    const int lm = (lane / kLaneCols) * 4, ln = (lane % kLaneCols) * 4;
    const int m0 = blockIdx.x * kBM4, n0 = blockIdx.y * kBN4;
    const float *A = batch_a(p), *B = batch_b(p);
    float acc[2][2][4][4] = {};  // [sub-tile row][sub-tile column][r][c]
    for (int k0 = 0; k0 < p.K; k0 += kBK4) {
        if (VEC) {
            load_tile_float4<kBK4, kBM4, kBM4 + kPad, kThreads4, !TA>(&a_tile[0][0], A, p.lda, k0, m0, p.K, p.M, tid);
            load_tile_float4<kBK4, kBN4, kBN4 + kPad, kThreads4, TB>(&b_tile[0][0], B, p.ldb, k0, n0, p.K, p.N, tid);
        } else {
            load_tile<kBK4, kBM4, kBM4 + kPad, kThreads4, !TA>(&a_tile[0][0], A, p.lda, k0, m0, p.K, p.M, tid);
            load_tile<kBK4, kBN4, kBN4 + kPad, kThreads4, TB>(&b_tile[0][0], B, p.ldb, k0, n0, p.K, p.N, tid);
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kBK4; ++k) {
            float a[2][4], b[2][4];
#pragma unroll
            for (int s = 0; s < 2; ++s) {
                const float4 av = *reinterpret_cast<const float4*>(&a_tile[k][wm + s * kSubM + lm]);
                const float4 bv = *reinterpret_cast<const float4*>(&b_tile[k][wn + s * kSubN + ln]);
                a[s][0] = av.x, a[s][1] = av.y, a[s][2] = av.z, a[s][3] = av.w;
                b[s][0] = bv.x, b[s][1] = bv.y, b[s][2] = bv.z, b[s][3] = bv.w;
            }
#pragma unroll
            for (int si = 0; si < 2; ++si)
#pragma unroll
                for (int sj = 0; sj < 2; ++sj)
#pragma unroll
                    for (int r = 0; r < 4; ++r)
#pragma unroll
                        for (int c = 0; c < 4; ++c) acc[si][sj][r][c] += a[si][r] * b[sj][c];
        }
        __syncthreads();
    }
    float* C = batch_c(p);
#pragma unroll
    for (int si = 0; si < 2; ++si)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int row = m0 + wm + si * kSubM + lm + r;
            if (row >= p.M) continue;
            float* c_row = C + static_cast<int64_t>(row) * p.ldc;
#pragma unroll
            for (int sj = 0; sj < 2; ++sj) {
                const int col = n0 + wn + sj * kSubN + ln;
                if (vec_c && col + 3 < p.N) {
                    float4* dst = reinterpret_cast<float4*>(c_row + col);
                    float4 out = make_float4(p.alpha * acc[si][sj][r][0], p.alpha * acc[si][sj][r][1], p.alpha * acc[si][sj][r][2],
                                             p.alpha * acc[si][sj][r][3]);
                    if (p.beta != 0.0f) {
                        const float4 old = *dst;
                        out.x += p.beta * old.x, out.y += p.beta * old.y, out.z += p.beta * old.z, out.w += p.beta * old.w;
                    }
                    *dst = out;
                } else {
#pragma unroll
                    for (int c = 0; c < 4; ++c)
                        if (col + c < p.N) store_c(c_row + col + c, acc[si][sj][r][c], p.alpha, p.beta);
                }
            }
        }
}

// ---------------------------------------------------------------- version 5

namespace wmma = nvcuda::wmma;

constexpr int kBM5 = 128, kBN5 = 128, kBK5 = 32, kThreads5 = 256;
constexpr int kWarpM5 = 64, kWarpN5 = 32;  // 8 warps as 2 x 4; a warp tile is 4 x 2 fragments of 16 x 16
static_assert((kBM5 / kWarpM5) * (kBN5 / kWarpN5) * 32 == kThreads5, "one warp per warp tile");

template <bool TRANS>
using FragmentLayout = std::conditional_t<TRANS, wmma::col_major, wmma::row_major>;

// Copies a ROWS x COLS block of a row-major matrix (every element in bounds, g and ldg
// 16-byte aligned) into s[r * LDS + c] with float4 reads and writes.
template <int ROWS, int COLS, int LDS, int THREADS>
__device__ __forceinline__ void copy_tile_float4(float* s, const float* g, int64_t ldg, int tid) {
    for (int q = tid; q < ROWS * COLS / 4; q += THREADS) {
        const int r = q / (COLS / 4), c = (q % (COLS / 4)) * 4;
        *reinterpret_cast<float4*>(&s[r * LDS + c]) = *reinterpret_cast<const float4*>(g + static_cast<int64_t>(r) * ldg + c);
    }
}

// Version 5: tensor cores, which do a 16 x 16 x 8 multiply-add per warp instruction on
// TF32 inputs (10-bit mantissa: about 1e-3 relative per product) with F32 sums.
// 256 threads compute a 128 x 128 tile of C, BK = 32; warp w owns rows (w / 4) * 64 and
// columns (w % 4) * 32 as 4 x 2 accumulator fragments. Shapes must tile exactly (the
// launcher checks), so there are no edge cases. Grid (M / 128, N / 128, batch).
template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads5) gemm_wmma_tf32_kernel(GemmArgs p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    constexpr int kFragM = 16, kFragN = 16, kFragK = 8;
    constexpr int kFragsM = kWarpM5 / kFragM, kFragsN = kWarpN5 / kFragN;
    // Shared tiles keep global memory's orientation (row length + 4 floats of padding, which
    // keeps rows 16-byte aligned and fragment pointers 32-byte aligned); the fragment layout
    // (row_major / col_major) absorbs the transpose instead of the load.
    constexpr int kATileFloats5 = kBM5 * (kBK5 + kPad) > kBK5 * (kBM5 + kPad) ? kBM5 * (kBK5 + kPad) : kBK5 * (kBM5 + kPad);
    constexpr int kBTileFloats5 = kBK5 * (kBN5 + kPad) > kBN5 * (kBK5 + kPad) ? kBK5 * (kBN5 + kPad) : kBN5 * (kBK5 + kPad);
    __shared__ __align__(32) float a_tile[kATileFloats5];  // op(A) block as stored: [m][k], or [k][m] when TA
    __shared__ __align__(32) float b_tile[kBTileFloats5];  // op(B) block as stored: [k][n], or [n][k] when TB
    constexpr int lda_s = TA ? kBM5 + kPad : kBK5 + kPad;
    constexpr int ldb_s = TB ? kBK5 + kPad : kBN5 + kPad;
    const int tid = threadIdx.x, warp = tid / 32;
    const int wm = (warp / (kBN5 / kWarpN5)) * kWarpM5, wn = (warp % (kBN5 / kWarpN5)) * kWarpN5;
    const int m0 = blockIdx.x * kBM5, n0 = blockIdx.y * kBN5;
    const float *A = batch_a(p), *B = batch_b(p);

    wmma::fragment<wmma::accumulator, kFragM, kFragN, kFragK, float> acc[kFragsM][kFragsN];
#pragma unroll
    for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int k0 = 0; k0 < p.K; k0 += kBK5) {
        if (TA) copy_tile_float4<kBK5, kBM5, lda_s, kThreads5>(a_tile, A + static_cast<int64_t>(k0) * p.lda + m0, p.lda, tid);
        else copy_tile_float4<kBM5, kBK5, lda_s, kThreads5>(a_tile, A + static_cast<int64_t>(m0) * p.lda + k0, p.lda, tid);
        if (TB) copy_tile_float4<kBN5, kBK5, ldb_s, kThreads5>(b_tile, B + static_cast<int64_t>(n0) * p.ldb + k0, p.ldb, tid);
        else copy_tile_float4<kBK5, kBN5, ldb_s, kThreads5>(b_tile, B + static_cast<int64_t>(k0) * p.ldb + n0, p.ldb, tid);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK5; kk += kFragK) {
            wmma::fragment<wmma::matrix_a, kFragM, kFragN, kFragK, wmma::precision::tf32, FragmentLayout<TA>> a[kFragsM];
            wmma::fragment<wmma::matrix_b, kFragM, kFragN, kFragK, wmma::precision::tf32, FragmentLayout<TB>> b[kFragsN];
#pragma unroll
            for (int i = 0; i < kFragsM; ++i) {
                const int m = wm + i * kFragM;  // element (m, kk) of op(A)'s block
                wmma::load_matrix_sync(a[i], TA ? &a_tile[kk * lda_s + m] : &a_tile[m * lda_s + kk], lda_s);
#pragma unroll
                for (int t = 0; t < a[i].num_elements; ++t) a[i].x[t] = wmma::__float_to_tf32(a[i].x[t]);
            }
#pragma unroll
            for (int j = 0; j < kFragsN; ++j) {
                const int n = wn + j * kFragN;  // element (kk, n) of op(B)'s block
                wmma::load_matrix_sync(b[j], TB ? &b_tile[n * ldb_s + kk] : &b_tile[kk * ldb_s + n], ldb_s);
#pragma unroll
                for (int t = 0; t < b[j].num_elements; ++t) b[j].x[t] = wmma::__float_to_tf32(b[j].x[t]);
            }
#pragma unroll
            for (int i = 0; i < kFragsM; ++i)
#pragma unroll
                for (int j = 0; j < kFragsN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    // Epilogue on the fragments: two accumulator fragments of one type map their elements to
    // the same positions, so alpha * acc + beta * C can be done element by element.
    float* C = batch_c(p);
#pragma unroll
    for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j) {
            float* c = C + static_cast<int64_t>(m0 + wm + i * kFragM) * p.ldc + n0 + wn + j * kFragN;
            if (p.beta != 0.0f) {
                wmma::fragment<wmma::accumulator, kFragM, kFragN, kFragK, float> old;
                wmma::load_matrix_sync(old, c, static_cast<unsigned>(p.ldc), wmma::mem_row_major);
                for (int t = 0; t < old.num_elements; ++t) acc[i][j].x[t] = p.alpha * acc[i][j].x[t] + p.beta * old.x[t];
            } else {
                for (int t = 0; t < acc[i][j].num_elements; ++t) acc[i][j].x[t] *= p.alpha;
            }
            wmma::store_matrix_sync(c, acc[i][j], static_cast<unsigned>(p.ldc), wmma::mem_row_major);
        }
#else
    __trap();  // the launcher never picks version 5 below sm_80
#endif
}

// ---------------------------------------------------------------- launchers

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// True when the current GPU has TF32 tensor cores (sm_80 or newer). Asked once.
bool device_has_tf32() {
    static const bool has = [] {
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        return major >= 8;
    }();
    return has;
}

// float4 loads of A and B are safe: base pointers 16-byte aligned, and every row and
// every matrix of the batch starts at a multiple of 4 elements from them.
bool float4_loads_ok(const GemmArgs& p, int64_t batch) {
    return aligned(p.A, 16) && aligned(p.B, 16) && p.lda % 4 == 0 && p.ldb % 4 == 0 &&
           (batch == 1 || (p.stride_a % 4 == 0 && p.stride_b % 4 == 0));
}
bool float4_stores_ok(const GemmArgs& p, int64_t batch) {
    return aligned(p.C, 16) && p.ldc % 4 == 0 && (batch == 1 || p.stride_c % 4 == 0);
}

// The checks and the batch slicing every version shares; `launch(ta, tb, args, count)` starts
// one version's kernel for `count` matrices, with ta and tb as std::bool_constant so that the
// layout is a template argument. col_tile: the version's block width (grid y holds 65535).
template <class Launch>
void run_batched(const char* op, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                 int64_t stride_c, int64_t batch, int64_t col_tile, Launch launch) {
    ITTT_CHECK(M >= 0 && N >= 0 && K >= 0 && batch >= 0, op, ": bad sizes M ", M, ", N ", N, ", K ", K, ", batch ", batch);
    ITTT_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, op, ": M ", M, ", N ", N, ", K ", K, " must each fit in an int");
    ITTT_CHECK(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
               op, ": leading dimensions lda ", lda, ", ldb ", ldb, ", ldc ", ldc, " are shorter than the rows they hold");
    if (M == 0 || N == 0 || batch == 0) return;
    if (batch == 1) stride_a = stride_b = stride_c = 0;
    // Block rows go on grid x (up to 2^31 - 1), block columns on grid y (up to 65535).
    ITTT_CHECK((N + col_tile - 1) / col_tile <= 65535, op, ": N = ", N, " needs more than 65535 column blocks");
    GemmArgs p{static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, beta, A, lda, stride_a, B, ldb, stride_b, C,
               ldc, stride_c};
    // Grid z holds at most 65535 matrices: larger batches go in slices.
    constexpr int64_t kMaxGridZ = 65535;
    for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridZ) {
        GemmArgs slice = p;
        slice.A = A + b0 * stride_a;
        slice.B = B + b0 * stride_b;
        slice.C = C + b0 * stride_c;
        const unsigned count = static_cast<unsigned>(std::min(kMaxGridZ, batch - b0));
        using T = std::true_type;
        using F = std::false_type;
        if (trans_a) {
            if (trans_b) launch(T{}, T{}, slice, count);
            else launch(T{}, F{}, slice, count);
        } else {
            if (trans_b) launch(F{}, T{}, slice, count);
            else launch(F{}, F{}, slice, count);
        }
        CUDA_CHECK(cudaGetLastError());
    }
}

unsigned blocks(int n, int tile) { return static_cast<unsigned>((n + tile - 1) / tile); }

}  // namespace

// The arguments of every version's launcher, in gemm.h's order, and run_batched's.
#define ITTT_GEMM_PARAMS                                                                                                        \
    bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int64_t stride_a,   \
        const float *B, int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch
#define ITTT_GEMM_ARGS trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch

void gemm_naive_cuda(ITTT_GEMM_PARAMS) {
    run_batched("gemm_naive_cuda", ITTT_GEMM_ARGS, kNaiveCols, [](auto ta, auto tb, const GemmArgs& p, unsigned count) {
        ITTT_LAUNCH((gemm_naive_kernel<ta.value, tb.value>), dim3(blocks(p.M, kNaiveRows), blocks(p.N, kNaiveCols), count),
                    dim3(kNaiveCols, kNaiveRows), 0, 0)(p);
    });
}

void gemm_smem_cuda(ITTT_GEMM_PARAMS) {
    run_batched("gemm_smem_cuda", ITTT_GEMM_ARGS, kTile2, [](auto ta, auto tb, const GemmArgs& p, unsigned count) {
        ITTT_LAUNCH((gemm_smem_kernel<ta.value, tb.value>), dim3(blocks(p.M, kTile2), blocks(p.N, kTile2), count),
                    dim3(kTile2, kTile2), 0, 0)(p);
    });
}

void gemm_blocktile_cuda(ITTT_GEMM_PARAMS) {
    run_batched("gemm_blocktile_cuda", ITTT_GEMM_ARGS, kBN3, [](auto ta, auto tb, const GemmArgs& p, unsigned count) {
        ITTT_LAUNCH((gemm_blocktile_kernel<ta.value, tb.value>), dim3(blocks(p.M, kBM3), blocks(p.N, kBN3), count), kThreads3, 0,
                    0)(p);
    });
}

void gemm_warptile_cuda(ITTT_GEMM_PARAMS) {
    run_batched("gemm_warptile_cuda", ITTT_GEMM_ARGS, kBN4, [batch](auto ta, auto tb, const GemmArgs& p, unsigned count) {
        const dim3 grid(blocks(p.M, kBM4), blocks(p.N, kBN4), count);
        const bool vec_stores = float4_stores_ok(p, batch);
        if (float4_loads_ok(p, batch)) ITTT_LAUNCH((gemm_warptile_kernel<ta.value, tb.value, true>), grid, kThreads4, 0, 0)(p, vec_stores);
        else ITTT_LAUNCH((gemm_warptile_kernel<ta.value, tb.value, false>), grid, kThreads4, 0, 0)(p, vec_stores);
    });
}

void gemm_wmma_tf32_cuda(ITTT_GEMM_PARAMS) {
    // Tensor cores only where the tiles fit exactly; any other call is version 4's.
    if (!gemm_cuda_tf32_applicable(M, N, K, A, lda, batch == 1 ? 0 : stride_a, B, ldb, batch == 1 ? 0 : stride_b, C, ldc,
                                   batch == 1 ? 0 : stride_c, batch))
        return gemm_warptile_cuda(ITTT_GEMM_ARGS);
    run_batched("gemm_wmma_tf32_cuda", ITTT_GEMM_ARGS, kBN5, [](auto ta, auto tb, const GemmArgs& p, unsigned count) {
        ITTT_LAUNCH((gemm_wmma_tf32_kernel<ta.value, tb.value>), dim3(blocks(p.M, kBM5), blocks(p.N, kBN5), count), kThreads5, 0,
                    0)(p);
    });
}

bool gemm_cuda_tf32_applicable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, int64_t stride_a, const float* B,
                               int64_t ldb, int64_t stride_b, const float* C, int64_t ldc, int64_t stride_c, int64_t batch) {
    const bool shape = M > 0 && N > 0 && K > 0 && M % kBM5 == 0 && N % kBN5 == 0 && K % kBK5 == 0;
    // wmma::load/store_matrix_sync want 32-byte-aligned pointers and ldm % 4 == 0; the
    // fragments of C start at rows that are multiples of 16, so C's base alignment carries.
    const bool layout = aligned(A, 16) && aligned(B, 16) && aligned(C, 32) && lda % 4 == 0 && ldb % 4 == 0 && ldc % 4 == 0 &&
                        (batch <= 1 || (stride_a % 4 == 0 && stride_b % 4 == 0 && stride_c % 8 == 0)) && ldc <= UINT_MAX;
    return shape && layout && device_has_tf32();
}

}  // namespace ittt::kernels
