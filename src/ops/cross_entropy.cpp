// cross_entropy.cpp: ops::cross_entropy on top of kernels/cross_entropy, and the op's versions.
#include "kernels/cross_entropy/cross_entropy.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {
template <class T>
using CrossEntropyCpu = decltype(kernels::cross_entropy_cpu<T>);

// Each row's log-sum-exp of up to ~150k F32 exponentials, summed in float on the GPU.
const Tolerance kCrossEntropyF32 = {1e-7, 1e-5, "F32 sums of up to V exponentials per row: p to ~1e-6 relative, 1e-7 where p - 1 cancels"};
const KernelOp<CpuKernel<CrossEntropyCpu>, kernels::CrossEntropyCuda*> kCrossEntropy = {
    "cross_entropy", "fused softmax + negative log-likelihood per row, and its gradient", "kernels/cross_entropy",
    1, {{{1, "three pass", "three passes per row (max, sum of exp, gradient), all in double", "cross_entropy_cpu", kCrossEntropyF32},
         ITTT_CPU_KERNEL(kernels::cross_entropy_cpu)}},
    2, {{{1, "three pass", "one block per row: max, then sum of exp, then gradient", "cross_entropy_three_pass_kernel",
          kCrossEntropyF32},
         ITTT_CUDA_KERNEL(kernels::cross_entropy_three_pass_cuda)},
        {{2, "online softmax", "one block per row: max and sum of exp in one pass (online softmax), then gradient",
          "cross_entropy_online_kernel", kCrossEntropyF32},
         ITTT_CUDA_KERNEL(kernels::cross_entropy_online_cuda)}},
};

// Checks every target here, not in the kernel, so a bad one is an Error naming
// its row instead of a read past the end of the row (and so every kernel version,
// CPU or CUDA, may assume valid targets). Returns the number of scored rows.
int64_t check_targets_and_count_scored(const Tensor& targets, int64_t V, int ignore_index) {
    Tensor host = targets.device() == Device::CPU ? targets : targets.to(Device::CPU);
    const int32_t* t = host.data<int32_t>();
    int64_t n_scored = 0;
    for (int64_t i = 0; i < host.numel(); ++i) {
        if (t[i] == ignore_index) continue;
        ITTT_CHECK(t[i] >= 0 && t[i] < V, "cross_entropy: row ", i, " has target ", t[i], ", outside [0, V) for V = ", V,
                   " and not the ignore_index ", ignore_index);
        ++n_scored;
    }
    return n_scored;
}
}  // namespace

OpSpec cross_entropy_op_spec() { return kCrossEntropy.spec(); }

CrossEntropyResult cross_entropy(Tensor* dlogits, const Tensor& logits, const Tensor& targets, double grad_scale,
                                 int ignore_index) {
    ITTT_NVTX_RANGE("cross_entropy");
    require_float(logits, "cross_entropy", "logits");
    ITTT_CHECK(logits.ndim() == 2, "cross_entropy: logits is ", logits.describe(), ", expected 2-D (N, V)");
    const int64_t N = logits.dim(0), V = logits.dim(1);
    ITTT_CHECK(V >= 1, "cross_entropy: logits is ", logits.describe(), ", expected at least one vocabulary entry");
    require_i32(targets, logits, "cross_entropy", "targets");
    require_shape(targets, {N}, "cross_entropy", "targets");
    if (dlogits) require_same(*dlogits, logits, "cross_entropy", "dlogits", "logits");

    CrossEntropyResult result;
    result.n_scored = check_targets_and_count_scored(targets, V, ignore_index);
    const char* op = "cross_entropy";
    if (logits.device() == Device::CUDA) {
        require_cuda_f32(logits, op);
        // One loss per row, added here in row order: the same bits every run.
        Tensor row_loss = Tensor::empty({N}, DType::F64, Device::CUDA);
        kCrossEntropy.cuda_entry(op)(dlogits ? dlogits->data<float>() : nullptr, row_loss.data<double>(), logits.data<float>(),
                                     targets.data<int32_t>(), N, V, static_cast<float>(grad_scale), ignore_index);
        for (double l : row_loss.to_f64_vector()) result.loss_sum += l;
        return result;
    }
    with_float_type(logits.dtype(), [&](auto t) {
        using T = decltype(t);
        result.loss_sum = kCrossEntropy.cpu_entry(op).get<T>()(dlogits ? dlogits->data<T>() : nullptr, logits.data<T>(),
                                                               targets.data<int32_t>(), N, V, grad_scale, ignore_index);
    });
    return result;
}

}  // namespace ittt::ops
