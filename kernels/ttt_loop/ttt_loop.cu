// ttt_loop.cu: the chunk loop with a running fast weight on the GPU, forward only, F32.
//
// The same steps as ttt_loop_cpu.cpp's forward, one chunk after the other, each a few launches
// on the default stream (no host synchronisation inside the loop):
//   apply   O_[i] = Z_[i] W^T                        the gemm op's CUDA GEMM (rows x d x f)
//   delta   dW = V_[i]^T Z_[i]                       the same GEMM (d x f x C)
//   update  W += eta c dW                            update_kernel, one block
// The update's norm and clipping factor c are ttt_update_norm and ttt_clip_factor of
// kernels/ttt_delta/ttt_delta.h, the CPU's rule, computed on the device.
//
// Run: ops::ttt_loop_forward on CUDA tensors (streaming with a Session on a CUDA model, or an
// inference forward with ForwardOptions::ttt_form = Loop); tests: build/ittt_tests "[cuda][ttt_loop]".
#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/gemm/gemm.h"
#include "kernels/ttt_delta/block_sum_squares.cuh"
#include "kernels/ttt_delta/ttt_delta.h"
#include "kernels/ttt_loop/ttt_loop.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;

// w (size) += eta c delta on one block: sum(delta^2) in double over a fixed split and a fixed
// tree (as ttt_clip_deltas sums it), then the rule. norm / applied: one double each, or null.
// A delta that is exactly zero (V == 0: the drop-in case) leaves w untouched, bit for bit.
__global__ void update_kernel(float* w, const float* delta, int64_t size, double eta, double tau, int folds, double* norm,
                              double* applied) {
    __shared__ double sums[kThreads];
    __shared__ float alpha;
    const double sum = block_sum_squares(delta, size, sums);
    if (threadIdx.x == 0) {
        const double step_norm = ttt_update_norm(eta, sum), factor = ttt_clip_factor(step_norm, tau);
        if (norm) *norm = step_norm;
        if (applied && folds) *applied = step_norm * factor;
        alpha = folds && sum != 0 ? static_cast<float>(eta * factor) : 0.0f;
    }
    __syncthreads();
    if (alpha == 0.0f) return;
    for (int64_t j = threadIdx.x; j < size; j += blockDim.x) w[j] += alpha * delta[j];
}
}  // namespace

void ttt_loop_forward_cuda(const TttLoopShape& s, float* o, const float* z, const float* v, const float* wd, float eta,
                           const TttLoopUpdates& u, const TttLoopForwardOut<float>& out, float* workspace, GemmCudaLauncher* gemm) {
    ITTT_CHECK(!out.w_all && !out.w_last, "ttt_loop_forward_cuda: no backward on CUDA, so nothing is kept for one");
    const int64_t n = s.n, d = s.d, f = s.f, C = s.chunk, n_chunks = s.chunks(), df = d * f;
    const size_t reports = static_cast<size_t>(s.batch * n_chunks) * sizeof(double);
    if (out.norm) {  // NaN until computed, as on the CPU
        const std::vector<double> nan(static_cast<size_t>(s.batch * n_chunks), std::numeric_limits<double>::quiet_NaN());
        CUDA_CHECK(cudaMemcpy(out.norm, nan.data(), reports, cudaMemcpyHostToDevice));
    }
    if (out.applied) CUDA_CHECK(cudaMemset(out.applied, 0, reports));
    for (int64_t b = 0; b < s.batch; ++b) {
        float* W = out.w_state ? out.w_state + b * df : workspace + (s.batch + b) * df;
        float* delta = workspace + b * df;
        if (wd) CUDA_CHECK(cudaMemcpyAsync(W, wd, static_cast<size_t>(df) * sizeof(float), cudaMemcpyDeviceToDevice, 0));
        for (int64_t i = 0; i < n_chunks; ++i) {
            const int64_t r0 = i * C, rows = std::min(C, n - r0), k = b * n_chunks + i;
            const int64_t seen = i == 0 ? s.start : 0;  // rows of this chunk applied by an earlier call
            const float* Zi = z + (b * n + r0) * f;
            const float* Vi = v + (b * n + r0) * d;
            gemm(false, true, rows - seen, d, f, 1.0f, Zi + seen * f, f, 0, W, f, 0, 0.0f,
                 o + (b * (n - s.start) + r0 + seen - s.start) * d, d, 0, 1);
            if (i + 1 == n_chunks && !(out.w_state && rows == C)) break;  // an update no output and no state uses
            const bool folds = eta != 0.0f && (u.limit < 0 || i < u.limit);
            if (!folds && !out.norm) continue;
            gemm(true, false, d, f, rows, 1.0f, Vi, d, 0, Zi, f, 0, 0.0f, delta, f, 0, 1);
            ITTT_LAUNCH(update_kernel, 1, kThreads, 0, 0)(W, delta, df, static_cast<double>(eta), u.clip_tau, folds ? 1 : 0,
                                                         out.norm ? out.norm + k : nullptr, out.applied ? out.applied + k : nullptr);
            CUDA_CHECK(cudaGetLastError());
        }
    }
}

}  // namespace ittt::kernels
