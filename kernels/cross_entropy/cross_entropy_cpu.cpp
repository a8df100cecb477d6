// cross_entropy_cpu.cpp: the reference cross-entropy. Every intermediate is a
// double whatever T is, so the F32 path differs from F64 only by the rounding
// of its inputs and of the gradient it writes.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cross_entropy/cross_entropy.h"

namespace ittt::kernels {

template <class T>
double cross_entropy_cpu(T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V, double grad_scale,
                         int32_t ignore_index) {
    // One slot per row, added up in row order at the end: an OpenMP reduction
    // combines partial sums in whatever order the threads finish, and the loss
    // would change in its last bits from run to run.
    std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
#pragma omp parallel for schedule(static) if (N * V > (1 << 15))
    for (int64_t i = 0; i < N; ++i) {
        const T* x = logits + i * V;
        T* dx = dlogits ? dlogits + i * V : nullptr;
        const int32_t target = targets[i];
        if (target == ignore_index) {
            if (dx) std::fill(dx, dx + V, T(0));
            continue;
        }
        // Shift by the row max so the largest term is exp(0) = 1: a logit of 1e4
        // overflows exp even in double (which gives up past ~709).
        double max_logit = x[0];
        for (int64_t j = 1; j < V; ++j) max_logit = std::max(max_logit, static_cast<double>(x[j]));
        double sum_exp = 0;  // in [1, V]: the max contributes exactly 1, so log(sum_exp) is finite
        for (int64_t j = 0; j < V; ++j) sum_exp += std::exp(static_cast<double>(x[j]) - max_logit);
        const double log_sum_exp_shifted = std::log(sum_exp);
        // (max - x[t]) + log(sum) rather than logsumexp - x[t]: no cancellation
        // between two large numbers when the logits are large.
        row_loss[static_cast<size_t>(i)] = (max_logit - static_cast<double>(x[target])) + log_sum_exp_shifted;
        if (!dx) continue;
        for (int64_t j = 0; j < V; ++j) {
            double p = std::exp(static_cast<double>(x[j]) - max_logit - log_sum_exp_shifted);
            dx[j] = static_cast<T>(grad_scale * (j == target ? p - 1.0 : p));
        }
    }
    double loss_sum = 0;
    for (double l : row_loss) loss_sum += l;
    return loss_sum;
}

template double cross_entropy_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t, double, int32_t);
template double cross_entropy_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t, double, int32_t);

}  // namespace ittt::kernels
