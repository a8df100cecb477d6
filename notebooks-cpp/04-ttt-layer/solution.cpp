// Lab 04's reference solutions. Try the exercises in lab.cpp before you read this.
#include <algorithm>
#include <vector>

#include "ops/ops.h"

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

using namespace ittt;

// U[t, c] = sum_k conv[c, k] * src[t + offsets[k], c] over the taps that stay inside t's chunk
// (zeros past its edges: a chunk's update must not carry the next chunk's tokens); V = U P.
bool build_targets(Tensor& v, const Tensor& src, const Tensor& conv, const Tensor& P, const std::vector<int>& offsets, int C) {
    const int64_t n = src.dim(0), d = src.dim(1), K = static_cast<int64_t>(offsets.size());
    std::vector<double> u(static_cast<size_t>(n * d), 0.0);
    for (int64_t t = 0; t < n; ++t) {
        const int64_t begin = t / C * C, end = std::min<int64_t>(begin + C, n);
        for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t + offsets[static_cast<size_t>(k)];
            if (s < begin || s >= end) continue;
            for (int64_t c = 0; c < d; ++c) u[static_cast<size_t>(t * d + c)] += lab::get(conv, c * K + k) * lab::get(src, s * d + c);
        }
    }
    for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < d; ++j) {
            double sum = 0;
            for (int64_t c = 0; c < d; ++c) sum += u[static_cast<size_t>(t * d + c)] * lab::get(P, c * d + j);
            lab::set(v, t * d + j, sum);
        }
    return true;
}

// Apply, then update: chunk i is read with Wd + eta (dW_0 + ... + dW_{i-1}), then dW_i is folded in.
bool ttt_chunk_loop(Tensor& o, const Tensor& z, const Tensor& v, const Tensor& wd, int C, double eta) {
    const int64_t n = z.dim(0);
    Tensor W = wd.clone(), dW = Tensor::empty(wd.shape(), wd.dtype());
    for (int64_t begin = 0; begin < n; begin += C) {
        const int64_t end = std::min<int64_t>(begin + C, n);
        Tensor o_i = o.rows(begin, end);
        ops::linear(o_i, z.rows(begin, end), W);                               // O_[i] = Z_[i] W_i^T
        ops::matmul(dW, v.rows(begin, end), true, z.rows(begin, end), false);  // dW_i = V_[i]^T Z_[i]
        ops::add_inplace(W, dW, eta);                                          // W_{i+1} = W_i + eta dW_i
    }
    return true;
}

// A running sum over the chunks; exclusive writes it before adding chunk i, inclusive after.
bool chunk_scan(Tensor& out, const Tensor& deltas, bool inclusive) {
    const int64_t T = deltas.dim(1), block = deltas.dim(2) * deltas.dim(3);
    std::vector<double> running(static_cast<size_t>(block), 0.0);
    for (int64_t i = 0; i < T; ++i)
        for (int64_t e = 0; e < block; ++e) {
            const int64_t at = i * block + e;
            if (inclusive) running[static_cast<size_t>(e)] += lab::get(deltas, at);
            lab::set(out, at, running[static_cast<size_t>(e)]);
            if (!inclusive) running[static_cast<size_t>(e)] += lab::get(deltas, at);
        }
    return true;
}

}  // namespace solution
