// ttt_apply.cu: the per-chunk TTT corrections on the GPU, F32.
//
//   forward:   o_[i]  += eta * z_[i] s_i^T                        "NT": out (rows, d), inner f
//   backward:  dv_[i]  = eta * z_[i] g_i^T                        "NT", overwriting
//              dz_[i] += eta * (do_[i] s_i + v_[i] g_i)           "NN": out (rows, f), inner d
//
// The big shared products (z @ wd^T, dout @ wd) stay in ops::matmul; these
// kernels add only what TTT changes (kernels/ttt_apply/ttt_apply.h, docs/ttt.md).
//
// Two versions (their rows: src/ops/ttt.cpp, `build/ittt info --kernels`):
//   naive  correction_nt_naive_kernel, correction_nn_naive_kernel   one thread per output element
//   tiled  correction_nt_tiled_kernel, correction_nn_tiled_kernel   16 x 16 shared-memory tiles, each
//          tile inside one chunk, so every loaded value serves 16 outputs
// Both use matrix_nonzero_kernel first: a chunk whose s_i (g_i) is exactly zero
// is skipped, as on the CPU, so s == 0 leaves o bit-identical to the gemm's output.
//
// Run: ops::ttt_apply_forward / backward on CUDA tensors, or --kernel ttt_apply=1;
// tests: build/ittt_tests "[cuda][ttt_apply]".
//
// Every output sums its inner index in ascending order, starting from 0, and
// adds eta * sum once at the end: the CPU kernel's order.
#include <algorithm>

#include "kernels/ttt_apply/ttt_apply.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;
constexpr int kTile = 16;

int grid_for(int64_t count) { return static_cast<int>(std::min<int64_t>((count + kThreads - 1) / kThreads, 1 << 16)); }

// flags: (count); m: (count, size). flags[k] = 1 unless matrix k is all zeros
// (-0 counts as zero; NaN does not, so a NaN still reaches the output).
__global__ void matrix_nonzero_kernel(int* flags, const float* m, int64_t size) {
    const float* mk = m + blockIdx.x * size;
    int any = 0;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) any |= (mk[j] != 0.0f);
    any = __syncthreads_or(any);
    if (threadIdx.x == 0) flags[blockIdx.x] = any;
}

// ---- naive: one thread per output ----

// out: (B, n, d); x: (B, n, f); m: (B, T, d, f); flags: (B*T).
// out[t, a] (+)= eta * sum_c x[t, c] m_i[a, c]; a zero m_i leaves out (accumulate) or writes 0.
__global__ void correction_nt_naive_kernel(float* out, const float* x, const float* m, const int* flags, float eta, int64_t n,
                                           int64_t n_chunks, int64_t d, int64_t f, int64_t chunk, bool accumulate, int64_t total) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t a = e % d, row = e / d, b = row / n, i = row % n / chunk, k = b * n_chunks + i;
        if (!flags[k]) {
            if (!accumulate) out[e] = 0.0f;
            continue;
        }
        const float* x_t = x + row * f;
        const float* m_a = m + (k * d + a) * f;  // row a of m_i: adjacent threads stride by f (what the tiled version fixes)
        float acc = 0.0f;
        for (int64_t c = 0; c < f; ++c) acc += x_t[c] * m_a[c];
        if (accumulate) out[e] += eta * acc;
        else out[e] = eta * acc;
    }
}

// out: (B, n, f); x1, x2: (B, n, d); m1, m2: (B, T, d, f); flags1, flags2: (B*T).
// out[t, c] += eta * (sum_a x1[t, a] m1_i[a, c] + sum_a x2[t, a] m2_i[a, c]), each term only if its m_i is nonzero.
__global__ void correction_nn_naive_kernel(float* out, const float* x1, const float* m1, const int* flags1, const float* x2,
                                           const float* m2, const int* flags2, float eta, int64_t n, int64_t n_chunks, int64_t d,
                                           int64_t f, int64_t chunk, int64_t total) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t c = e % f, row = e / f, b = row / n, i = row % n / chunk, k = b * n_chunks + i;
        const bool use1 = flags1[k], use2 = flags2[k];
        if (!use1 && !use2) continue;
        float acc = 0.0f;
        if (use1)
            for (int64_t a = 0; a < d; ++a) acc += x1[row * d + a] * m1[(k * d + a) * f + c];
        if (use2)
            for (int64_t a = 0; a < d; ++a) acc += x2[row * d + a] * m2[(k * d + a) * f + c];
        out[e] += eta * acc;
    }
}

// ---- tiled: shared-memory tiles inside one chunk ----

// Which rows a tiled block owns: blockIdx.x = (b * T + i) * row_tiles + tile.
struct RowTile {
    int64_t k;      // matrix index b * T + i
    int64_t row0;   // first row of the tile, as an index into (B * n)
    int64_t rows;   // rows of the tile inside the chunk (0 when the tile lies past a short last chunk)
};
__device__ RowTile row_tile(int64_t n, int64_t n_chunks, int64_t chunk, int64_t row_tiles) {
    const int64_t k = blockIdx.x / row_tiles, tile = blockIdx.x % row_tiles;
    const int64_t b = k / n_chunks, i = k % n_chunks;
    const int64_t t0 = i * chunk + tile * kTile, end = min(i * chunk + chunk, n);
    return {k, b * n + t0, max(int64_t(0), min(int64_t(kTile), end - t0))};
}

// Version 2: stage 16 x 16 tiles of x and m_i in shared memory, so each value loaded from global memory serves 16
// outputs; a block's rows never straddle a chunk, so one m_i (and one flag) serves the whole block.
// out: (B, n, d); x: (B, n, f); m: (B, T, d, f); flags: (B*T). Block (16, 16): tx = output column a,
// ty = token row. Both tiles are loaded along f, the contiguous dimension of x and m_i.
__global__ void correction_nt_tiled_kernel(float* out, const float* x, const float* m, const int* flags, float eta, int64_t n,
                                           int64_t n_chunks, int64_t d, int64_t f, int64_t chunk, int64_t row_tiles,
                                           bool accumulate) {
    // +1 column: m_tile is read down a column (m_tile[tx][r]); the padding puts
    // those 16 reads in 16 different banks.
    __shared__ float x_tile[kTile][kTile + 1];  // [token][c]
    __shared__ float m_tile[kTile][kTile + 1];  // [a][c]
    const RowTile rt = row_tile(n, n_chunks, chunk, row_tiles);
    if (rt.rows == 0) return;  // the whole block agrees: no thread is left at a barrier
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t a0 = blockIdx.y * int64_t(kTile), a = a0 + tx, row = rt.row0 + ty;
    const bool in_range = ty < rt.rows && a < d;
    if (!flags[rt.k]) {
        if (!accumulate && in_range) out[row * d + a] = 0.0f;
        return;
    }
    const float* m_i = m + rt.k * d * f;
    float acc = 0.0f;
    for (int64_t c0 = 0; c0 < f; c0 += kTile) {
        x_tile[ty][tx] = (ty < rt.rows && c0 + tx < f) ? x[(rt.row0 + ty) * f + c0 + tx] : 0.0f;
        m_tile[ty][tx] = (a0 + ty < d && c0 + tx < f) ? m_i[(a0 + ty) * f + c0 + tx] : 0.0f;
        __syncthreads();
        const int width = static_cast<int>(min(int64_t(kTile), f - c0));  // no padded zeros in the sum
        for (int r = 0; r < width; ++r) acc += x_tile[ty][r] * m_tile[tx][r];
        __syncthreads();
    }
    if (!in_range) return;
    if (accumulate) out[row * d + a] += eta * acc;
    else out[row * d + a] = eta * acc;
}

// Version 2 for the "NN" product: the same tiling, with the inner index a running over d.
// out: (B, n, f); x1, x2: (B, n, d); m1, m2: (B, T, d, f); flags1, flags2: (B*T).
// Block (16, 16): tx = output column c, ty = token row.
__global__ void correction_nn_tiled_kernel(float* out, const float* x1, const float* m1, const int* flags1, const float* x2,
                                           const float* m2, const int* flags2, float eta, int64_t n, int64_t n_chunks, int64_t d,
                                           int64_t f, int64_t chunk, int64_t row_tiles) {
    __shared__ float x_tile[kTile][kTile];  // [token][a]
    __shared__ float m_tile[kTile][kTile];  // [a][c], read along a row: no conflicts, no padding needed
    const RowTile rt = row_tile(n, n_chunks, chunk, row_tiles);
    if (rt.rows == 0) return;
    const bool use[2] = {flags1[rt.k] != 0, flags2[rt.k] != 0};
    if (!use[0] && !use[1]) return;
    const float* xs[2] = {x1, x2};
    const float* ms[2] = {m1 + rt.k * d * f, m2 + rt.k * d * f};
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t c = blockIdx.y * int64_t(kTile) + tx, row = rt.row0 + ty;
    float acc = 0.0f;
    for (int term = 0; term < 2; ++term) {  // the s term, then the g term: the CPU's order
        if (!use[term]) continue;           // uniform over the block
        for (int64_t a0 = 0; a0 < d; a0 += kTile) {
            x_tile[ty][tx] = (ty < rt.rows && a0 + tx < d) ? xs[term][(rt.row0 + ty) * d + a0 + tx] : 0.0f;
            m_tile[ty][tx] = (a0 + ty < d && c < f) ? ms[term][(a0 + ty) * f + c] : 0.0f;
            __syncthreads();
            const int width = static_cast<int>(min(int64_t(kTile), d - a0));
            for (int r = 0; r < width; ++r) acc += x_tile[ty][r] * m_tile[r][tx];
            __syncthreads();
        }
    }
    if (ty < rt.rows && c < f) out[row * f + c] += eta * acc;
}

void check_sizes(const char* op, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    ITTT_CHECK(batch >= 0 && n >= 0 && d >= 0 && f >= 0 && chunk >= 1, op, ": bad sizes B ", batch, ", n ", n, ", d ", d, ", f ", f,
               ", chunk ", chunk);
}

void nonzero_flags(int* flags, const float* m, int64_t count, int64_t size) {
    ITTT_CHECK(count <= 2147483647LL, "ttt_apply: ", count, " matrices exceed the grid limit");
    ITTT_LAUNCH(matrix_nonzero_kernel, static_cast<unsigned>(count), kThreads, 0, 0)(flags, m, size);
    CUDA_CHECK(cudaGetLastError());
}

// Tiles per chunk: a chunk longer than the sequence still has only n rows.
int64_t row_tiles_per_chunk(int64_t n, int64_t chunk) { return (std::min(chunk, n) + kTile - 1) / kTile; }

void launch_nt(bool tiled, float* out, const float* x, const float* m, const int* flags, float eta, int64_t batch, int64_t n,
               int64_t d, int64_t f, int64_t chunk, bool accumulate) {
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    if (!tiled) {
        const int64_t total = batch * n * d;
        ITTT_LAUNCH(correction_nt_naive_kernel, grid_for(total), kThreads, 0, 0)(out, x, m, flags, eta, n, n_chunks, d, f, chunk,
                                                                                 accumulate, total);
    } else {
        const int64_t row_tiles = row_tiles_per_chunk(n, chunk), col_tiles = (d + kTile - 1) / kTile;
        ITTT_CHECK(batch * n_chunks * row_tiles <= 2147483647LL && col_tiles <= 65535, "ttt_apply: shape exceeds the grid limits");
        const dim3 grid(static_cast<unsigned>(batch * n_chunks * row_tiles), static_cast<unsigned>(col_tiles));
        ITTT_LAUNCH(correction_nt_tiled_kernel, grid, dim3(kTile, kTile), 0, 0)(out, x, m, flags, eta, n, n_chunks, d, f, chunk,
                                                                                row_tiles, accumulate);
    }
    CUDA_CHECK(cudaGetLastError());
}

void launch_nn(bool tiled, float* out, const float* x1, const float* m1, const int* flags1, const float* x2, const float* m2,
               const int* flags2, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    if (!tiled) {
        const int64_t total = batch * n * f;
        ITTT_LAUNCH(correction_nn_naive_kernel, grid_for(total), kThreads, 0, 0)(out, x1, m1, flags1, x2, m2, flags2, eta, n, n_chunks,
                                                                                 d, f, chunk, total);
    } else {
        const int64_t row_tiles = row_tiles_per_chunk(n, chunk), col_tiles = (f + kTile - 1) / kTile;
        ITTT_CHECK(batch * n_chunks * row_tiles <= 2147483647LL && col_tiles <= 65535, "ttt_apply: shape exceeds the grid limits");
        const dim3 grid(static_cast<unsigned>(batch * n_chunks * row_tiles), static_cast<unsigned>(col_tiles));
        ITTT_LAUNCH(correction_nn_tiled_kernel, grid, dim3(kTile, kTile), 0, 0)(out, x1, m1, flags1, x2, m2, flags2, eta, n, n_chunks, d,
                                                                                f, chunk, row_tiles);
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace

namespace {
void forward_correction(bool tiled, float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                        int64_t f, int64_t chunk, int* flags) {
    check_sizes("ttt_apply_forward_correction_cuda", batch, n, d, f, chunk);
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    if (batch * n * d == 0) return;
    nonzero_flags(flags, s, batch * n_chunks, d * f);
    launch_nt(tiled, o, z, s, flags, eta, batch, n, d, f, chunk, /*accumulate=*/true);
}

void backward_correction(bool tiled, float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                         const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk, int* flags) {
    check_sizes("ttt_apply_backward_correction_cuda", batch, n, d, f, chunk);
    const int64_t n_chunks = (n + chunk - 1) / chunk, count = batch * n_chunks;
    if (batch * n == 0) return;
    int* s_flags = flags;
    int* g_flags = flags + count;
    nonzero_flags(s_flags, s, count, d * f);
    nonzero_flags(g_flags, g, count, d * f);
    if (d > 0) launch_nt(tiled, dv, z, g, g_flags, eta, batch, n, d, f, chunk, /*accumulate=*/false);
    if (f > 0) launch_nn(tiled, dz, dout, s, s_flags, v, g, g_flags, eta, batch, n, d, f, chunk);
}
}  // namespace

void ttt_apply_forward_correction_naive_cuda(float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                                             int64_t f, int64_t chunk, int* flags) {
    forward_correction(false, o, z, s, eta, batch, n, d, f, chunk, flags);
}
void ttt_apply_forward_correction_tiled_cuda(float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                                             int64_t f, int64_t chunk, int* flags) {
    forward_correction(true, o, z, s, eta, batch, n, d, f, chunk, flags);
}
void ttt_apply_backward_correction_naive_cuda(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                              const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                              int* flags) {
    backward_correction(false, dz, dv, dout, z, v, s, g, eta, batch, n, d, f, chunk, flags);
}
void ttt_apply_backward_correction_tiled_cuda(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                              const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                              int* flags) {
    backward_correction(true, dz, dv, dout, z, v, s, g, eta, batch, n, d, f, chunk, flags);
}

}  // namespace ittt::kernels
