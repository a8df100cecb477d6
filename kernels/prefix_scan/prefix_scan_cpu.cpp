// prefix_scan_cpu.cpp: the exclusive chunk scan on the CPU.
#include <algorithm>

#include "kernels/prefix_scan/prefix_scan.h"

namespace ittt::kernels {

template <class T>
void prefix_scan_exclusive_cpu(T* out, const T* in, int64_t batch, int64_t n_chunks, int64_t m, bool reverse) {
    // A block of columns small enough that the running row stays in L1 while
    // the scan walks down T; whole blocks are the unit of parallel work.
    if (batch == 0 || n_chunks == 0 || m == 0) return;
    const int64_t block = 1024;
    const int64_t blocks_per_batch = (m + block - 1) / block;
#pragma omp parallel for if (batch * n_chunks * m > (1 << 16))
    for (int64_t task = 0; task < batch * blocks_per_batch; ++task) {
        const int64_t b = task / blocks_per_batch, j0 = task % blocks_per_batch * block;
        const int64_t width = std::min(block, m - j0);
        auto at = [&](int64_t i) { return (b * n_chunks + i) * m + j0; };  // offset of chunk i's block
        const int64_t first = reverse ? n_chunks - 1 : 0, step = reverse ? -1 : 1;
        std::fill(out + at(first), out + at(first) + width, T(0));
        for (int64_t k = 1; k < n_chunks; ++k) {
            const int64_t i = first + k * step, prev = i - step;
            T* o = out + at(i);
            const T* o_prev = out + at(prev);
            const T* x_prev = in + at(prev);
            for (int64_t j = 0; j < width; ++j) o[j] = o_prev[j] + x_prev[j];
        }
    }
}

template void prefix_scan_exclusive_cpu<float>(float*, const float*, int64_t, int64_t, int64_t, bool);
template void prefix_scan_exclusive_cpu<double>(double*, const double*, int64_t, int64_t, int64_t, bool);

}  // namespace ittt::kernels
