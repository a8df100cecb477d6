// adamw.cu: one AdamW step on the GPU, F32.
//
// One version (its row: adamw_versions.h):
//   1  adamw_kernel   one thread per element (grid-stride), the CPU's arithmetic in float
//
// Run: ops::adamw_step on CUDA tensors; tests: build/ittt_tests "[cuda][adamw]".
//
// The step is purely memory-bound: 4 loads and 3 stores per element for ~15
// flops, so the kernel's only job is to stream param, grad, m and v once with
// coalesced accesses. The scalars (bias corrections included) arrive by value,
// worked out in double once per step by the ops layer.
#include <algorithm>

#include "kernels/adamw/adamw.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;

// param, grad, m, v: (n). Same expression order as adamw_step_cpu, so the two
// differ only where a compiler contracts a multiply-add into an FMA.
__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                             float eps, float weight_decay, float bias_correction1, float bias_correction2) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float g = grad[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = mi / bias_correction1;
        const float v_hat = vi / bias_correction2;
        param[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * param[i]);
    }
}
}  // namespace

void adamw_step_cuda(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, float bias_correction1, float bias_correction2) {
    ITTT_CHECK(n >= 0, "adamw_step_cuda: n = ", n);
    ITTT_CHECK(bias_correction1 > 0 && bias_correction2 > 0, "adamw_step_cuda: bias corrections must be > 0, found ", bias_correction1,
               " and ", bias_correction2);
    if (n == 0) return;
    const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 16));
    ITTT_LAUNCH(adamw_kernel, blocks, kThreads, 0, 0)(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bias_correction1,
                                                      bias_correction2);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
