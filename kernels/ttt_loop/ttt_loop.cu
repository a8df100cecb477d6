// ttt_loop.cu: the chunk loop with a running fast weight on the GPU, forward and backward, F32.
//
// The same steps as ttt_loop_cpu.cpp, one chunk after the other, each a few launches on the
// default stream (no host synchronisation inside the loop). Every launch covers the B
// sequences at once: the GEMMs are strided-batched over the sequences (chunk i of every
// sequence has the same rows, so one call does them all), the small kernels run a block or
// a grid-stride loop per sequence. The number of launches therefore grows with the chunks
// T, not with B*T.
//
// Forward, per chunk i:
//   apply   O_[i] = Z_[i] W_i^T                      the gemm op's CUDA GEMM (rows x d x f, batch B)
//   delta   dW = V_[i]^T Z_[i]                       the same GEMM (d x f x rows, batch B)
//   update  W_{i+1} = W_i + eta c dW                 fold_kernel (no clipping, no reports: a grid)
//                                                    or update_kernel (one block per sequence, which
//                                                    sums ||dW||^2 for the norm and the clipping factor c)
// The update's norm and c are ttt_update_norm and ttt_clip_factor of kernels/ttt_delta/ttt_delta.h,
// the CPU's rule, computed on the device. Training (no clipping, no reports) takes fold_kernel,
// which spreads the d*f elements over the whole GPU; inference with clipping or norm reports
// takes update_kernel, whose one block per sequence streams all of dW and W through one SM:
// at d*f in the millions that pass, not the GEMMs, would bound the step (a two-pass reduction,
// partial sums over many blocks then the factor, would lift it; not written).
//
// Backward, chunks in reverse with G = sum_{j>i} P_j per sequence (ttt_loop.h):
//   dZ_[i] = dO_[i] W_i (+ eta V_[i] G)   dV_[i] = eta Z_[i] G^T   G += dO_[i]^T Z_[i]     five GEMMs, batch B
//   flat form only: W_{i-1} = W_i - eta V_[i-1]^T Z_[i-1]                                   one GEMM, fold_kernel
// and dWd += sum_b G_b (sum_sequences_kernel, in sequence order as on the CPU).
//
// Zero steps. A chunk whose V rows are all zero has dW exactly zero, and must leave W bitwise
// equal (the drop-in property, ttt_loop.h). The CPU tests the V rows; here fold_kernel skips
// every element whose dW is zero (W + eta * 0 would only turn a -0 into +0), and
// update_kernel skips the whole step when sum(dW^2) is zero, so no host round trip decides it.
//
// What stays on chip: nothing across launches by design; W (d*f floats, 12 MB at d = 1024,
// f = 3072) is read by the apply and written by the update of the same chunk, back to back,
// so on a GPU with a large L2 (50 MB on H100) it is served from L2 rather than DRAM. A fused
// persistent kernel that keeps row slices of W in shared memory across chunks is not written.
//
// Run: ops::ttt_loop_forward / backward on CUDA tensors (a CUDA model's loop and flat forms,
// its streaming Session); tests: build/ittt_tests "[cuda][ttt_loop]".
#include <algorithm>

#include "kernels/gemm/gemm.h"
#include "kernels/ttt_delta/block_sum_squares.cuh"
#include "kernels/ttt_delta/ttt_delta.h"
#include "kernels/ttt_loop/ttt_loop.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;

unsigned grid_for(int64_t count) { return static_cast<unsigned>(std::min<int64_t>((count + kThreads - 1) / kThreads, 1 << 16)); }

// The one-block-per-sequence update, for clipping and the norm reports: block b computes
// sum(delta_b^2) in double over a fixed split and a fixed tree (as ttt_clip_deltas sums it),
// then the rule, then next_b = w_b + eta c delta_b (next may be w). norm / applied: one double
// per sequence, `report_stride` apart, or null. A delta that is exactly zero leaves w's bits.
// next, w: matrix b at + b * w_stride; delta: (B, size).
__global__ void update_kernel(float* next, const float* w, int64_t w_stride, const float* delta, int64_t size, double eta, double tau,
                              int folds, double* norm, double* applied, int64_t report_stride) {
    __shared__ double sums[kThreads];
    __shared__ float alpha;
    const int64_t b = blockIdx.x;
    const float* w_b = w + b * w_stride;
    const float* delta_b = delta + b * size;
    float* next_b = next + b * w_stride;
    const double sum = block_sum_squares(delta_b, size, sums);
    if (threadIdx.x == 0) {
        const double step_norm = ttt_update_norm(eta, sum), factor = ttt_clip_factor(step_norm, tau);
        if (norm) norm[b * report_stride] = step_norm;
        if (applied && folds) applied[b * report_stride] = step_norm * factor;
        alpha = folds && sum != 0 ? static_cast<float>(eta * factor) : 0.0f;
    }
    __syncthreads();
    if (alpha == 0.0f) {
        if (next_b != w_b)
            for (int64_t j = threadIdx.x; j < size; j += blockDim.x) next_b[j] = w_b[j];
        return;
    }
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) next_b[j] = w_b[j] + alpha * delta_b[j];
}

// next_b = w_b + alpha delta_b where delta_b is nonzero, w_b elsewhere (next may be w): the
// step without clipping or reports, over the whole grid. alpha = eta in the forward, -eta
// when the flat backward undoes a step. next, w: matrix b at + b * w_stride; delta at + b * delta_stride.
__global__ void fold_kernel(float* next, const float* w, int64_t w_stride, const float* delta, int64_t delta_stride, int64_t size,
                            int64_t count, float alpha) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count * size; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t b = e / size, j = e % size;
        const float step = delta[b * delta_stride + j];
        const float old = w[b * w_stride + j];
        next[b * w_stride + j] = step != 0.0f ? old + alpha * step : old;
    }
}

// dst_b = src_b for count matrices of `size` floats; src_stride 0 copies one matrix to all.
__global__ void copy_matrices_kernel(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t size, int64_t count) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count * size; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t b = e / size, j = e % size;
        dst[b * dst_stride + j] = src[b * src_stride + j];
    }
}

// dst_b = 0 for count blocks of `size` floats, `stride` apart (dV of a chunk with no update).
__global__ void zero_matrices_kernel(float* dst, int64_t stride, int64_t size, int64_t count) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count * size; e += int64_t(gridDim.x) * blockDim.x)
        dst[e / size * stride + e % size] = 0.0f;
}

// x[0 .. count) = NaN: the norm reports of updates not (yet) computed, as on the CPU.
__global__ void fill_nan_kernel(double* x, int64_t count) {
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < count; j += int64_t(gridDim.x) * blockDim.x)
        x[j] = __longlong_as_double(0x7ff8000000000000LL);
}

// acc[j] += sum over b of x_b[j], b in order (the CPU's order, whatever the grid): dWd from each G_b.
__global__ void sum_sequences_kernel(float* acc, const float* x, int64_t stride, int64_t size, int64_t count) {
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < size; j += int64_t(gridDim.x) * blockDim.x) {
        float a = acc[j];
        for (int64_t b = 0; b < count; ++b) a += x[b * stride + j];
        acc[j] = a;
    }
}

void copy_matrices(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t size, int64_t count) {
    if (size * count == 0) return;  // a zero-sized grid is a launch error
    ITTT_LAUNCH(copy_matrices_kernel, grid_for(size * count), kThreads, 0, 0)(dst, dst_stride, src, src_stride, size, count);
    CUDA_CHECK(cudaGetLastError());
}

void fold(float* next, const float* w, int64_t w_stride, const float* delta, int64_t delta_stride, int64_t size, int64_t count,
          float alpha) {
    if (size * count == 0) return;
    ITTT_LAUNCH(fold_kernel, grid_for(size * count), kThreads, 0, 0)(next, w, w_stride, delta, delta_stride, size, count, alpha);
    CUDA_CHECK(cudaGetLastError());
}

void check_shape(const TttLoopShape& s, const char* op) {
    ITTT_CHECK(s.batch >= 0 && s.n >= 0 && s.d >= 0 && s.f >= 0 && s.chunk >= 1 && s.start >= 0 && s.batch <= 2147483647LL, op,
               ": bad sizes B ", s.batch, ", n ", s.n, ", d ", s.d, ", f ", s.f, ", chunk ", s.chunk, ", start ", s.start);
}
}  // namespace

void ttt_loop_forward_cuda(const TttLoopShape& s, float* o, const float* z, const float* v, const float* wd, float eta,
                           const TttLoopUpdates& u, const TttLoopForwardOut<float>& out, float* workspace, GemmCudaLauncher* gemm) {
    check_shape(s, "ttt_loop_forward_cuda");
    ITTT_CHECK(!(out.w_all && out.w_state), "ttt_loop_forward_cuda: w_all and w_state together are not supported");
    const int64_t B = s.batch, n = s.n, d = s.d, f = s.f, C = s.chunk, n_chunks = s.chunks(), df = d * f;
    if (B * n == 0) return;
    if (out.norm) {  // NaN until computed, as on the CPU
        ITTT_LAUNCH(fill_nan_kernel, grid_for(B * n_chunks), kThreads, 0, 0)(out.norm, B * n_chunks);
        CUDA_CHECK(cudaGetLastError());
    }
    if (out.applied) CUDA_CHECK(cudaMemsetAsync(out.applied, 0, static_cast<size_t>(B * n_chunks) * sizeof(double), 0));
    // W of sequence b is W + b * w_stride: in the store of every W_i (chunk i's at + i * df),
    // in the streaming state, or in scratch after the deltas.
    float* W = out.w_all ? out.w_all : out.w_state ? out.w_state : workspace + B * df;
    const int64_t w_stride = out.w_all ? n_chunks * df : df;
    float* delta = workspace;  // (B, d, f)
    if (wd) copy_matrices(W, w_stride, wd, 0, df, B);  // else W continues the state
    for (int64_t i = 0; i < n_chunks; ++i) {
        const int64_t r0 = i * C, rows = std::min(C, n - r0);
        const int64_t seen = i == 0 ? s.start : 0;  // rows of this chunk applied by an earlier call
        float* Wi = out.w_all ? W + i * df : W;
        // apply: O_[i] (rows, d) = Z_[i] (rows, f) @ W_i^T (f, d), for the rows not seen before
        gemm(false, true, rows - seen, d, f, 1.0f, z + (r0 + seen) * f, f, n * f, Wi, f, w_stride, 0.0f,
             o + (r0 + seen - s.start) * d, d, (n - s.start) * d, B);
        if (out.w_last && i == n_chunks - 1) copy_matrices(out.w_last, df, Wi, w_stride, df, B);
        // The last chunk's update reaches no output: only the streaming state of a complete chunk needs it.
        if (i + 1 == n_chunks && !(out.w_state && rows == C)) break;
        float* next = out.w_all ? Wi + df : Wi;
        const bool folds = eta != 0.0f && (u.limit < 0 || i < u.limit);
        if (!folds && !out.norm) {  // no step and no report
            if (next != Wi) copy_matrices(next, w_stride, Wi, w_stride, df, B);
            continue;
        }
        // delta (d, f) = V_[i]^T (d, rows) @ Z_[i] (rows, f), per sequence
        gemm(true, false, d, f, rows, 1.0f, v + r0 * d, d, n * d, z + r0 * f, f, n * f, 0.0f, delta, f, df, B);
        if (u.clip_tau > 0 || out.norm) {
            ITTT_LAUNCH(update_kernel, static_cast<unsigned>(B), kThreads, 0, 0)(
                next, Wi, w_stride, delta, df, static_cast<double>(eta), u.clip_tau, folds ? 1 : 0, out.norm ? out.norm + i : nullptr,
                out.applied ? out.applied + i : nullptr, n_chunks);
            CUDA_CHECK(cudaGetLastError());
        } else {
            fold(next, Wi, w_stride, delta, df, df, B, eta);
        }
    }
}

void ttt_loop_backward_cuda(const TttLoopShape& s, float* dz, float* dv, float* dwd, const float* dout, const float* z, const float* v,
                            float eta, const TttLoopUpdates& u, const float* w_all, const float* w_last, float* workspace,
                            GemmCudaLauncher* gemm) {
    check_shape(s, "ttt_loop_backward_cuda");
    ITTT_CHECK((w_all == nullptr) != (w_last == nullptr), "ttt_loop_backward_cuda: exactly one of w_all and w_last");
    ITTT_CHECK(u.clip_tau == 0, "ttt_loop_backward_cuda: clipping has no backward");
    const int64_t B = s.batch, n = s.n, d = s.d, f = s.f, C = s.chunk, n_chunks = s.chunks(), df = d * f;
    if (B * n == 0) return;
    // workspace (B, 3, d, f): per sequence G (after chunk 0: this sequence's dWd), the rebuilt W, one delta.
    float* G = workspace;
    float* W_rebuilt = workspace + df;
    float* delta = workspace + 2 * df;
    const int64_t ws = 3 * df;  // the stride of each between sequences
    if (!w_all) copy_matrices(W_rebuilt, ws, w_last, df, df, B);
    bool g_zero = true;  // G = 0 before the last chunk's P is added
    for (int64_t i = n_chunks - 1; i >= 0; --i) {
        const int64_t r0 = i * C, rows = std::min(C, n - r0);
        const float* W = w_all ? w_all + i * df : W_rebuilt;
        const int64_t w_stride = w_all ? n_chunks * df : ws;
        const float* dOi = dout + r0 * d;
        const float* Zi = z + r0 * f;
        const float* Vi = v + r0 * d;
        // dZ_[i] (rows, f) = dO_[i] (rows, d) @ W_i (d, f)
        gemm(false, false, rows, f, d, 1.0f, dOi, d, n * d, W, f, w_stride, 0.0f, dz + r0 * f, f, n * f, B);
        // Chunk i's update reaches the later chunks through G (unless it was dropped).
        const bool folds = eta != 0.0f && (u.limit < 0 || i < u.limit);
        if (folds && !g_zero) {
            gemm(false, false, rows, f, d, eta, Vi, d, n * d, G, f, ws, 1.0f, dz + r0 * f, f, n * f, B);  // dZ_[i] += eta V_[i] G
            gemm(false, true, rows, d, f, eta, Zi, f, n * f, G, f, ws, 0.0f, dv + r0 * d, d, n * d, B);   // dV_[i] = eta Z_[i] G^T
        } else if (d > 0) {
            ITTT_LAUNCH(zero_matrices_kernel, grid_for(rows * d * B), kThreads, 0, 0)(dv + r0 * d, n * d, rows * d, B);
            CUDA_CHECK(cudaGetLastError());
        }
        // G += Wbar_i = dO_[i]^T (d, rows) @ Z_[i] (rows, f)
        gemm(true, false, d, f, rows, 1.0f, dOi, d, n * d, Zi, f, n * f, g_zero ? 0.0f : 1.0f, G, f, ws, B);
        g_zero = false;
        if (i == 0 || w_all) continue;
        // Flat form: W_{i-1} = W_i - eta V_[i-1]^T Z_[i-1], the forward's step undone (chunk i-1 is complete).
        const bool folded = eta != 0.0f && (u.limit < 0 || i - 1 < u.limit);
        if (!folded) continue;
        gemm(true, false, d, f, C, 1.0f, v + (r0 - C) * d, d, n * d, z + (r0 - C) * f, f, n * f, 0.0f, delta, f, ws, B);
        fold(W_rebuilt, W_rebuilt, ws, delta, ws, df, B, -eta);
    }
    // dWd += sum_b G_b, added in sequence order.
    if (df == 0) return;
    ITTT_LAUNCH(sum_sequences_kernel, grid_for(df), kThreads, 0, 0)(dwd, G, ws, df, B);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
