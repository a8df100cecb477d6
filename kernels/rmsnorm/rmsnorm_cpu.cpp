// rmsnorm_cpu.cpp: the reference RMSNorm. Every sum runs in double, so the F32
// version differs from the exact result only by the final rounding to float: a
// float sum of thousands of squares would lose several digits of rstd.
#include <algorithm>
#include <cmath>

#include "kernels/rmsnorm/rmsnorm.h"

namespace ittt::kernels {

template <class T>
void rmsnorm_forward_cpu(T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, double eps) {
#pragma omp parallel for if (rows * dim > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * dim;
        double sum_squares = 0;
        for (int64_t j = 0; j < dim; ++j) sum_squares += static_cast<double>(xr[j]) * xr[j];
        const double s = 1.0 / std::sqrt(sum_squares / static_cast<double>(dim) + eps);
        rstd[r] = static_cast<T>(s);
        for (int64_t j = 0; j < dim; ++j) out[r * dim + j] = static_cast<T>(xr[j] * s * weight[j]);
    }
}

template <class T>
void rmsnorm_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t rows,
                          int64_t dim) {
    const bool parallel = rows * dim > (1 << 16);
    // dweight sums over rows; splitting the columns between threads (not the
    // rows) gives each thread its own dweight entries and sums every column in row
    // order: no races, the same bits for any thread count. It runs before dx is
    // written so that dx may be the same buffer as dout.
    const int64_t block = 64;
    const int64_t n_blocks = (dim + block - 1) / block;
#pragma omp parallel for if (parallel)
    for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t j0 = b * block, j1 = std::min(dim, j0 + block);
        double sums[block] = {};
        for (int64_t r = 0; r < rows; ++r) {
            const double s = rstd[r];
            for (int64_t j = j0; j < j1; ++j) sums[j - j0] += static_cast<double>(dout[r * dim + j]) * x[r * dim + j] * s;
        }
        for (int64_t j = j0; j < j1; ++j) dweight[j] = static_cast<T>(dweight[j] + sums[j - j0]);
    }
#pragma omp parallel for if (parallel)
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * dim;
        const T* dr = dout + r * dim;
        const double s = rstd[r];
        double dot = 0;  // sum_j x_j * weight_j * dout_j
        for (int64_t j = 0; j < dim; ++j) dot += static_cast<double>(xr[j]) * weight[j] * dr[j];
        const double c = s * s * dot / static_cast<double>(dim);
        for (int64_t j = 0; j < dim; ++j)
            dx[r * dim + j] = static_cast<T>(s * (static_cast<double>(weight[j]) * dr[j] - xr[j] * c));
    }
}

template void rmsnorm_forward_cpu<float>(float*, float*, const float*, const float*, int64_t, int64_t, double);
template void rmsnorm_forward_cpu<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_backward_cpu<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                                          int64_t);
template void rmsnorm_backward_cpu<double>(double*, double*, const double*, const double*, const double*, const double*,
                                           int64_t, int64_t);

}  // namespace ittt::kernels
