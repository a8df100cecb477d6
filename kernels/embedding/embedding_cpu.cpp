// embedding_cpu.cpp: the reference embedding lookup and scatter-add.
#include <algorithm>
#include <cstring>

#include "kernels/embedding/embedding.h"

namespace ittt::kernels {

template <class T>
void embedding_forward_cpu(T* out, const T* table, const int32_t* tokens, int64_t n_tokens, int64_t dim) {
#pragma omp parallel for if (n_tokens * dim > (1 << 16))
    for (int64_t t = 0; t < n_tokens; ++t)
        std::memcpy(out + t * dim, table + static_cast<int64_t>(tokens[t]) * dim, static_cast<size_t>(dim) * sizeof(T));
}

// Two tokens with the same id write the same dtable row, so splitting the tokens
// between threads would race. Splitting the columns instead gives each thread its
// own slice of every row: no races, no atomics, and every element sums its
// contributions in token order, so the bits do not depend on the thread count.
// Blocks of 64 columns keep each thread's reads of a dout row contiguous.
template <class T>
void embedding_backward_cpu(T* dtable, const T* dout, const int32_t* tokens, int64_t n_tokens, int64_t dim) {
    const int64_t block = 64;
    const int64_t n_blocks = (dim + block - 1) / block;
#pragma omp parallel for if (n_tokens * dim > (1 << 16))
    for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t j0 = b * block, j1 = std::min(dim, j0 + block);
        for (int64_t t = 0; t < n_tokens; ++t) {
            T* row = dtable + static_cast<int64_t>(tokens[t]) * dim;
            const T* grad = dout + t * dim;
            for (int64_t j = j0; j < j1; ++j) row[j] += grad[j];
        }
    }
}

template void embedding_forward_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void embedding_forward_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t);
template void embedding_backward_cpu<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void embedding_backward_cpu<double>(double*, const double*, const int32_t*, int64_t, int64_t);

}  // namespace ittt::kernels
