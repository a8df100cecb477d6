// ttt_delta.cu: the per-chunk update dW_i = V_[i]^T Z_[i] and its clipping, on the GPU, F32.
//
// Three versions of ttt_chunk_delta (their rows: ttt_delta_versions.h, `build/ittt info --kernels`):
//   naive  chunk_delta_naive_kernel   one thread per output element, a dot product down the chunk
//   tiled  chunk_delta_tiled_kernel   16 x 16 shared-memory tiles over (d, f), stepping 16 tokens at a time
//   gemm   the gemm op's CUDA GEMM    strided-batched calls, one per run of equally spaced chunks
// ttt_clip_deltas: clip_deltas_kernel, one block per matrix.
//
// Run: ops::ttt_chunk_delta / ttt_clip_deltas on CUDA tensors, or
// build/ittt --kernel ttt_delta=1 ...; tests: build/ittt_tests "[cuda][ttt_delta]".
//
// dW_i is a small GEMM (d x C) @ (C x f) per chunk. Versions 1 and 2 index the chunk
// directly; they teach the tiling, but version 2 does two shared-memory loads per multiply-add
// (about a tenth of FP32 peak). Version 3 hands the products to the tiled GEMM (register tiles,
// float4 loads): with n % C == 0, chunk k = b*T + i starts at row k*C, so every operand
// advances by a fixed stride and ONE strided-batched call (TN, stride C*d for v, C*f for z,
// d*f for delta, batch B*T) does them all; a short last chunk costs one more call
// (chunk_batches.h). Every version adds the chunk's tokens in order t = begin, begin+1, ...
// like the CPU kernel, so they differ from it only by rounding contractions.
#include <algorithm>
#include <cmath>

#include "kernels/ttt_delta/block_sum_squares.cuh"
#include "kernels/ttt_delta/chunk_batches.h"
#include "kernels/ttt_delta/ttt_delta.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;
constexpr int kTile = 16;

// The naive version: the definition, one output per thread.
// delta: (B, T, d, f); v: (B, n, d); z: (B, n, f). Adjacent threads take adjacent c, so
// the z loads are coalesced and the v load is one broadcast per warp.
__global__ void chunk_delta_naive_kernel(float* delta, const float* v, const float* z, int64_t n, int64_t n_chunks, int64_t d,
                                         int64_t f, int64_t chunk, int64_t total) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t c = e % f, a = e / f % d, bi = e / (d * f);
        const int64_t b = bi / n_chunks, i = bi % n_chunks;
        const int64_t begin = i * chunk, end = min(begin + chunk, n);
        float acc = 0.0f;
        for (int64_t t = begin; t < end; ++t) acc += v[(b * n + t) * d + a] * z[(b * n + t) * f + c];
        delta[e] = acc;
    }
}

// Version 2: shared-memory tiling, so each v and z value read from global memory serves 16 outputs instead of 1.
// Block (16, 16) computes delta[b,i][a0 .. a0+15][c0 .. c0+15]; grid x = B*T matrices,
// y = column tiles over f, z = row tiles over d.
__global__ void chunk_delta_tiled_kernel(float* delta, const float* v, const float* z, int64_t n, int64_t n_chunks, int64_t d,
                                         int64_t f, int64_t chunk) {
    __shared__ float v_tile[kTile][kTile];  // [token][a]
    __shared__ float z_tile[kTile][kTile];  // [token][c]
    const int64_t bi = blockIdx.x, b = bi / n_chunks, i = bi % n_chunks;
    const int64_t c0 = blockIdx.y * int64_t(kTile), a0 = blockIdx.z * int64_t(kTile);
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t begin = i * chunk, end = min(begin + chunk, n);
    const float* v_seq = v + b * n * d;  // (n, d)
    const float* z_seq = z + b * n * f;  // (n, f)
    float acc = 0.0f;
    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
        // Thread (tx, ty) loads token t0 + ty, column tx of each tile: consecutive tx
        // read consecutive addresses. Past the matrix edge load zeros (those outputs
        // are never stored); past the chunk's end stop the sum instead.
        const int64_t t = t0 + ty;
        v_tile[ty][tx] = (t < end && a0 + tx < d) ? v_seq[t * d + a0 + tx] : 0.0f;
        z_tile[ty][tx] = (t < end && c0 + tx < f) ? z_seq[t * f + c0 + tx] : 0.0f;
        __syncthreads();
        const int rows = static_cast<int>(min(int64_t(kTile), end - t0));
        for (int r = 0; r < rows; ++r) acc += v_tile[r][ty] * z_tile[r][tx];
        __syncthreads();  // before the next step overwrites the tiles
    }
    const int64_t a = a0 + ty, c = c0 + tx;
    if (a < d && c < f) delta[(bi * d + a) * f + c] = acc;
}

// delta: (count, size); block m owns matrix m: its sum of squares in double over
// a fixed split and a fixed tree, then, if ||eta delta_m|| > tau, a rescale.
__global__ void clip_deltas_kernel(float* delta, int64_t size, double eta, double tau) {
    __shared__ double sums[kThreads];
    __shared__ float scale;
    __shared__ bool clip;
    float* m = delta + blockIdx.x * size;
    const double sum = block_sum_squares(m, size, sums);
    if (threadIdx.x == 0) {
        const double factor = ttt_clip_factor(ttt_update_norm(eta, sum), tau);  // the rule of ttt_delta.h
        clip = factor != 1.0;
        scale = static_cast<float>(factor);
    }
    __syncthreads();
    if (!clip) return;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) m[j] *= scale;
}
}  // namespace

namespace {
// Checks the sizes; returns T*d*f*B, the number of outputs (0: nothing to launch).
int64_t delta_outputs(const char* op, int64_t batch, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    ITTT_CHECK(batch >= 0 && n >= 0 && d >= 0 && f >= 0 && chunk >= 1, op, ": bad sizes B ", batch, ", n ", n, ", d ", d, ", f ", f,
               ", chunk ", chunk);
    return batch * ((n + chunk - 1) / chunk) * d * f;
}
}  // namespace

void ttt_chunk_delta_naive_cuda(float* delta, const float* v, const float* z, int64_t batch, int64_t n, int64_t d, int64_t f,
                                int64_t chunk, GemmCudaLauncher* /*gemm*/) {
    const int64_t total = delta_outputs("ttt_chunk_delta_naive_cuda", batch, n, d, f, chunk);
    if (total == 0) return;
    const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 16));
    ITTT_LAUNCH(chunk_delta_naive_kernel, blocks, kThreads, 0, 0)(delta, v, z, n, (n + chunk - 1) / chunk, d, f, chunk, total);
    CUDA_CHECK(cudaGetLastError());
}

void ttt_chunk_delta_tiled_cuda(float* delta, const float* v, const float* z, int64_t batch, int64_t n, int64_t d, int64_t f,
                                int64_t chunk, GemmCudaLauncher* /*gemm*/) {
    const char* op = "ttt_chunk_delta_tiled_cuda";
    if (delta_outputs(op, batch, n, d, f, chunk) == 0) return;
    const int64_t n_chunks = (n + chunk - 1) / chunk, col_tiles = (f + kTile - 1) / kTile, row_tiles = (d + kTile - 1) / kTile;
    ITTT_CHECK(col_tiles <= 65535 && row_tiles <= 65535 && batch * n_chunks <= 2147483647LL, op, ": d ", d, ", f ", f, " or B*T ",
               batch * n_chunks, " exceeds the grid limits");
    const dim3 grid(static_cast<unsigned>(batch * n_chunks), static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles));
    ITTT_LAUNCH(chunk_delta_tiled_kernel, grid, dim3(kTile, kTile), 0, 0)(delta, v, z, n, n_chunks, d, f, chunk);
    CUDA_CHECK(cudaGetLastError());
}

// Version 3: each run of equally spaced chunks is one strided-batched TN GEMM,
// delta_k (d, f) = v_k^T (d, rows) @ z_k (rows, f), so the multiply-adds run in the tiled GEMM's
// register tiles instead of a kernel of their own.
void ttt_chunk_delta_gemm_cuda(float* delta, const float* v, const float* z, int64_t batch, int64_t n, int64_t d, int64_t f,
                               int64_t chunk, GemmCudaLauncher* gemm) {
    if (delta_outputs("ttt_chunk_delta_gemm_cuda", batch, n, d, f, chunk) == 0) return;
    for (const ChunkBatch& c : chunk_batches(batch, n, chunk))
        gemm(true, false, d, f, c.rows, 1.0f, v + c.row0 * d, d, c.row_step * d, z + c.row0 * f, f, c.row_step * f, 0.0f,
             delta + c.k0 * d * f, f, c.k_step * d * f, c.count);
}

void ttt_clip_deltas_cuda(float* delta, int64_t count, int64_t size, double eta, double tau) {
    ITTT_CHECK(count >= 0 && size >= 0 && count <= 2147483647LL, "ttt_clip_deltas_cuda: bad sizes count ", count, ", size ", size);
    ITTT_CHECK(tau > 0, "ttt_clip_deltas_cuda: tau must be > 0, found ", tau);
    if (count == 0 || size == 0) return;
    ITTT_LAUNCH(clip_deltas_kernel, static_cast<unsigned>(count), kThreads, 0, 0)(delta, size, eta, tau);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
