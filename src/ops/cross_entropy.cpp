// cross_entropy.cpp: ops::cross_entropy on top of kernels/cross_entropy, and the op's versions.
#include "kernels/cross_entropy/cross_entropy_versions.h"
#include "kernels/elementwise/elementwise_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {

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


namespace {

// The checks both forms share; returns the number of scored rows (targets read on the host).
int64_t check_arguments(Tensor* dlogits, const Tensor& logits, const Tensor& targets, const Tensor& host_targets, int ignore_index) {
    require_float(logits, "cross_entropy", "logits");
    ITTT_CHECK(logits.ndim() == 2, "cross_entropy: logits is ", logits.describe(), ", expected 2-D (N, V)");
    const int64_t N = logits.dim(0), V = logits.dim(1);
    ITTT_CHECK(V >= 1, "cross_entropy: logits is ", logits.describe(), ", expected at least one vocabulary entry");
    require_i32(targets, logits, "cross_entropy", "targets");
    require_shape(targets, {N}, "cross_entropy", "targets");
    ITTT_CHECK(host_targets.device() == Device::CPU && host_targets.dtype() == DType::I32 && host_targets.numel() == N,
               "cross_entropy: host_targets is ", host_targets.describe(), ", expected the ", N, " targets on the CPU");
    if (dlogits) require_same(*dlogits, logits, "cross_entropy", "dlogits", "logits");
    return check_targets_and_count_scored(host_targets, V, ignore_index);
}

// Runs the selected kernel. CPU: returns the loss sum. CUDA: leaves one loss per row in
// row_loss (N doubles on the GPU) and returns 0; the caller adds them up.
double run_cross_entropy(Tensor* dlogits, const Tensor& logits, const Tensor& targets, double grad_scale, int ignore_index,
                         Tensor* row_loss) {
    const char* op = "cross_entropy";
    const int64_t N = logits.dim(0), V = logits.dim(1);
    if (logits.device() == Device::CUDA) {
        require_cuda_f32(logits, op);
        *row_loss = Tensor::empty({N}, DType::F64, Device::CUDA);
        cuda_entry(kernels::cross_entropy_versions, op)(dlogits ? dlogits->data<float>() : nullptr, row_loss->data<double>(),
                                                        logits.data<float>(), targets.data<int32_t>(), N, V, static_cast<float>(grad_scale),
                                                        ignore_index);
        return 0;
    }
    return with_float_type(logits.dtype(), [&](auto t) {
        using T = decltype(t);
        return cpu_entry(kernels::cross_entropy_versions, op).get<T>()(dlogits ? dlogits->data<T>() : nullptr, logits.data<T>(),
                                                                       targets.data<int32_t>(), N, V, grad_scale, ignore_index);
    });
}
}  // namespace

CrossEntropyResult cross_entropy(Tensor* dlogits, const Tensor& logits, const Tensor& targets, double grad_scale,
                                 int ignore_index) {
    ITTT_NVTX_RANGE("cross_entropy");
    require_float(logits, "cross_entropy", "logits");
    require_i32(targets, logits, "cross_entropy", "targets");
    const Tensor host_targets = targets.device() == Device::CPU ? targets : targets.to(Device::CPU);
    CrossEntropyResult result;
    result.n_scored = check_arguments(dlogits, logits, targets, host_targets, ignore_index);
    Tensor row_loss;
    result.loss_sum = run_cross_entropy(dlogits, logits, targets, grad_scale, ignore_index, &row_loss);
    if (row_loss.defined())  // one loss per row, added here in row order: the same bits every run
        for (double l : row_loss.to_f64_vector()) result.loss_sum += l;
    return result;
}

int64_t cross_entropy_into(Tensor& loss_acc, int64_t slot, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                           const Tensor& host_targets, double grad_scale, int ignore_index) {
    ITTT_NVTX_RANGE("cross_entropy");
    const int64_t n_scored = check_arguments(dlogits, logits, targets, host_targets, ignore_index);
    ITTT_CHECK(loss_acc.defined() && loss_acc.dtype() == DType::F64 && loss_acc.device() == logits.device() && slot >= 0 &&
                   slot < loss_acc.numel(),
               "cross_entropy_into: loss_acc is ", loss_acc.describe(), " and slot ", slot, ", expected an F64 slot on the device of ",
               logits.describe());
    Tensor row_loss;
    const double loss_sum = run_cross_entropy(dlogits, logits, targets, grad_scale, ignore_index, &row_loss);
    if (!row_loss.defined()) {
        loss_acc.data<double>()[slot] += loss_sum;
        return n_scored;
    }
    // The same row-order sum as cross_entropy's host loop, on the GPU.
    built(cuda_entry(kernels::elementwise_versions, "cross_entropy_into").add_sum_into, "cross_entropy_into")(
        loss_acc.data<double>() + slot, row_loss.data<double>(), logits.dim(0));
    return n_scored;
}

}  // namespace ittt::ops
