// ttt_apply.cu: the per-chunk TTT corrections on the GPU, F32.
//
//   forward:   o_[i]  += eta * z_[i] s_i^T                        "NT": out (rows, d), inner f
//   backward:  dv_[i]  = eta * z_[i] g_i^T                        "NT", overwriting
//              dz_[i] += eta * (do_[i] s_i + v_[i] g_i)           "NN": out (rows, f), inner d
//
// The big shared products (z @ wd^T, dout @ wd) stay in ops::matmul; these
// kernels add only what TTT changes (kernels/ttt_apply/ttt_apply.h, docs/ttt.md).
//
// Three versions (their rows: ttt_apply_versions.h, `build/ittt info --kernels`):
//   naive  correction_nt_naive_kernel, correction_nn_naive_kernel   one thread per output element
//   tiled  correction_nt_tiled_kernel, correction_nn_tiled_kernel   16 x 16 shared-memory tiles, each
//          tile inside one chunk, so every loaded value serves 16 outputs
//   gemm   the gemm op's CUDA GEMM, then masked_rows_kernel           strided-batched GEMM calls
// All use matrix_nonzero_kernel first: a chunk whose s_i (g_i) is exactly zero
// is skipped, as on the CPU, so s == 0 leaves o bit-identical to the gemm's output.
//
// Version 3. Each correction is a GEMM per chunk (NT: out (rows, d), inner f; NN: out (rows, f),
// inner d), and the chunks lie at fixed strides (chunk_batches.h): when n % C == 0, ONE
// strided-batched call of the tiled GEMM covers all B*T chunks, a short last chunk one more.
// Versions 1 and 2 do two shared-memory (or global) loads per multiply-add; the GEMM's register
// tiles do far fewer. A GEMM cannot skip some matrices of its batch, and adding a zero chunk's
// eta * z * 0 (beta 1, alpha eta straight into o) would break the skip's bits (-0 becomes +0,
// inf * 0 is NaN), so the GEMM writes each chunk's sum into a scratch (alpha 1, beta 0) and
// masked_rows_kernel adds eta times it (for dv: writes it) only in the rows of chunks whose flag
// is set: one extra pass over the rows, against the GEMM's f (or d) multiply-adds per element,
// and the same `out += eta * sum` as versions 1 and 2. The backward's two dz terms are two such
// GEMMs and two passes, each with its own flags, as the CPU skips them one by one.
//
// Run: ops::ttt_apply_forward / backward on CUDA tensors, or --kernel ttt_apply=1;
// tests: build/ittt_tests "[cuda][ttt_apply]".
//
// Every output sums its inner index in ascending order, starting from 0, and
// adds eta * sum once at the end: the CPU kernel's order.
#include <algorithm>

#include "kernels/ttt_apply/ttt_apply.h"
#include "kernels/ttt_delta/chunk_batches.h"
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

// ---- gemm: the rows of the flagged chunks, from the GEMM's scratch ----

// out: (B, n, width); part: (B, n, width), the GEMM's sum for every row; flags: (B*T).
// Rows of chunks whose flag is set: out += eta * part (accumulate) or out = eta * part, the
// expressions of versions 1 and 2 on the same sum (so one rounding fewer than scaling in the
// GEMM and adding here); other rows: untouched (accumulate) or 0, as versions 1 and 2 leave them.
__global__ void masked_rows_kernel(float* out, const float* part, const int* flags, float eta, int64_t n, int64_t n_chunks,
                                   int64_t width, int64_t chunk, bool accumulate, int64_t total) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t row = e / width, b = row / n, i = row % n / chunk;
        if (flags[b * n_chunks + i]) {
            if (accumulate) out[e] += eta * part[e];
            else out[e] = eta * part[e];
        } else if (!accumulate) {
            out[e] = 0.0f;
        }
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

// out (B, n, width) (+)= eta * part where flagged: the GEMM's sums, row by row.
void masked_rows(float* out, const float* part, const int* flags, float eta, int64_t batch, int64_t n, int64_t width, int64_t chunk,
                 bool accumulate) {
    const int64_t total = batch * n * width;
    if (total == 0) return;
    ITTT_LAUNCH(masked_rows_kernel, grid_for(total), kThreads, 0, 0)(out, part, flags, eta, n, (n + chunk - 1) / chunk, width, chunk,
                                                                     accumulate, total);
    CUDA_CHECK(cudaGetLastError());
}

// part (B, n, width) = op(x)_[i] @ op(m_i) for every chunk (alpha 1, beta 0): for each run of
// equally spaced chunks one strided-batched call. x: (B, n, inner) token rows; m: (B, T, d, f).
// trans_m: the NT product (m_i^T: width d, inner f) or the NN one (m_i: width f, inner d).
void chunk_products(GemmCudaLauncher* gemm, bool trans_m, float* part, const float* x, const float* m, int64_t batch, int64_t n,
                    int64_t d, int64_t f, int64_t chunk) {
    const int64_t inner = trans_m ? f : d, width = trans_m ? d : f, df = d * f;
    for (const ChunkBatch& c : chunk_batches(batch, n, chunk))
        gemm(false, trans_m, c.rows, width, inner, 1.0f, x + c.row0 * inner, inner, c.row_step * inner, m + c.k0 * df, f,
             c.k_step * df, 0.0f, part + c.row0 * width, width, c.row_step * width, c.count);
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
                                             int64_t f, int64_t chunk, int* flags, float* /*scratch*/, GemmCudaLauncher* /*gemm*/) {
    forward_correction(false, o, z, s, eta, batch, n, d, f, chunk, flags);
}
void ttt_apply_forward_correction_tiled_cuda(float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                                             int64_t f, int64_t chunk, int* flags, float* /*scratch*/, GemmCudaLauncher* /*gemm*/) {
    forward_correction(true, o, z, s, eta, batch, n, d, f, chunk, flags);
}
void ttt_apply_backward_correction_naive_cuda(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                              const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                              int* flags, float* /*scratch*/, GemmCudaLauncher* /*gemm*/) {
    backward_correction(false, dz, dv, dout, z, v, s, g, eta, batch, n, d, f, chunk, flags);
}
void ttt_apply_backward_correction_tiled_cuda(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                              const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                              int* flags, float* /*scratch*/, GemmCudaLauncher* /*gemm*/) {
    backward_correction(true, dz, dv, dout, z, v, s, g, eta, batch, n, d, f, chunk, flags);
}

// Version 3: z_[i] s_i^T as strided-batched NT GEMMs into the scratch, then eta times the rows
// of the chunks with a nonzero s_i added to o.
void ttt_apply_forward_correction_gemm_cuda(float* o, const float* z, const float* s, float eta, int64_t batch, int64_t n, int64_t d,
                                            int64_t f, int64_t chunk, int* flags, float* scratch, GemmCudaLauncher* gemm) {
    check_sizes("ttt_apply_forward_correction_gemm_cuda", batch, n, d, f, chunk);
    if (batch * n * d == 0) return;
    nonzero_flags(flags, s, batch * ((n + chunk - 1) / chunk), d * f);
    chunk_products(gemm, /*trans_m=*/true, scratch, z, s, batch, n, d, f, chunk);  // (B, n, d)
    masked_rows(o, scratch, flags, eta, batch, n, d, chunk, /*accumulate=*/true);
}

// Version 3, backward: dv = eta z g^T (NT), then dz += eta dout s (NN) and dz += eta v g (NN),
// each a set of strided-batched GEMMs into the scratch and a pass that scales by eta the rows
// of the flagged chunks.
// The three share the scratch one after the other (stream order).
void ttt_apply_backward_correction_gemm_cuda(float* dz, float* dv, const float* dout, const float* z, const float* v, const float* s,
                                             const float* g, float eta, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk,
                                             int* flags, float* scratch, GemmCudaLauncher* gemm) {
    check_sizes("ttt_apply_backward_correction_gemm_cuda", batch, n, d, f, chunk);
    const int64_t count = batch * ((n + chunk - 1) / chunk);
    if (batch * n == 0) return;
    int* s_flags = flags;
    int* g_flags = flags + count;
    nonzero_flags(s_flags, s, count, d * f);
    nonzero_flags(g_flags, g, count, d * f);
    if (d > 0) {
        chunk_products(gemm, /*trans_m=*/true, scratch, z, g, batch, n, d, f, chunk);  // (B, n, d)
        masked_rows(dv, scratch, g_flags, eta, batch, n, d, chunk, /*accumulate=*/false);
    }
    if (f == 0) return;
    chunk_products(gemm, /*trans_m=*/false, scratch, dout, s, batch, n, d, f, chunk);  // (B, n, f)
    masked_rows(dz, scratch, s_flags, eta, batch, n, f, chunk, /*accumulate=*/true);
    chunk_products(gemm, /*trans_m=*/false, scratch, v, g, batch, n, d, f, chunk);
    masked_rows(dz, scratch, g_flags, eta, batch, n, f, chunk, /*accumulate=*/true);
}

}  // namespace ittt::kernels
