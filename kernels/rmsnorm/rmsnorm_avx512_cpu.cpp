// rmsnorm_avx512_cpu.cpp: version 2, the reference RMSNorm (rmsnorm_cpu.cpp) on 512-bit registers.
//
// Version 1 sums in double one element at a time: a double sum the compiler may not reorder,
// so its loops stay scalar. This version keeps every sum in double too, but 8 at a time: each
// group of 8 elements is loaded (floats widened to doubles in one instruction), and a row's
// sum of squares runs in 8 double lanes, added across the lanes at the end (within F32
// rounding of version 1's order; the harness checks it). dweight sums each column in 16 fixed
// blocks of rows, each in row order, then adds the blocks in order: the same bits for any
// thread count, with 16 x (dim / 64) tasks to share out (version 1 splits only the columns, so
// a 32-wide per-head norm is one task). It is computed before dx is written, so dx may be
// dout's buffer. How the file is AVX-512 while the
// program is AVX2: gemm_blocked_avx512_cpu.cpp's header comment; the op table runs it only where
// cpu_runs_avx512(). rmsnorm_avx512_known_answers() is this file's GCC 12 pin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/elementwise/zmm_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#pragma GCC optimize("no-tree-vectorize")

namespace ittt::kernels {

namespace {

using avx512::first_lanes;
using Z = avx512::Zmm<double>;  // every sum and product of this file is in double, 8 lanes

// 8 elements of T as doubles (lanes outside m: 0), and back (T rounded once).
__m512d load8(__mmask8 m, const float* p) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p)); }
__m512d load8(__mmask8 m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
void store8(float* p, __mmask8 m, __m512d v) { _mm256_mask_storeu_ps(p, m, _mm512_cvtpd_ps(v)); }
void store8(double* p, __mmask8 m, __m512d v) { _mm512_mask_storeu_pd(p, m, v); }

}  // namespace

template <class T>
void rmsnorm_avx512_forward_cpu(T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, double eps) {
#pragma omp parallel for if (rows * dim > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * dim;
        __m512d squares = Z::zero();
        for (int64_t j = 0; j < dim; j += 8) {
            const __m512d xv = load8(first_lanes<double>(dim - j), xr + j);
            squares = Z::fma(xv, xv, squares);  // exact products of widened floats
        }
        const double s = 1.0 / std::sqrt(Z::sum(squares) / static_cast<double>(dim) + eps);
        rstd[r] = static_cast<T>(s);
        const __m512d sv = Z::broadcast(s);
        for (int64_t j = 0; j < dim; j += 8) {
            const __mmask8 m = first_lanes<double>(dim - j);
            store8(out + r * dim + j, m, Z::mul(Z::mul(load8(m, xr + j), sv), load8(m, weight + j)));  // x * s * weight
        }
    }
}

template <class T>
void rmsnorm_avx512_backward_cpu(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t rows,
                                 int64_t dim) {
    const bool parallel = rows * dim > (1 << 16);
    // dweight: each of kRowBlocks fixed blocks of rows sums its rows in order, 64 columns (8
    // registers) per task, then the blocks are added in block order: the same bits for any thread
    // count, and as many tasks as row blocks x column blocks (the per-head norms, 32 columns wide,
    // would otherwise be one task).
    constexpr int64_t block = 64, per_block = block / 8, kRowBlocks = 16;
    const int64_t n_blocks = (dim + block - 1) / block;
    std::vector<double> partial(static_cast<size_t>(kRowBlocks * n_blocks * block));
#pragma omp parallel for collapse(2) if (parallel)
    for (int64_t rb = 0; rb < kRowBlocks; ++rb)
        for (int64_t b = 0; b < n_blocks; ++b) {
            const int64_t j0 = b * block, width = std::min(block, dim - j0);
            __m512d sums[per_block];
            __mmask8 mask[per_block];
            for (int64_t k = 0; k < per_block; ++k) sums[k] = Z::zero(), mask[k] = first_lanes<double>(width - 8 * k);
            for (int64_t r = rb * rows / kRowBlocks; r < (rb + 1) * rows / kRowBlocks; ++r) {
                const __m512d s = Z::broadcast(static_cast<double>(rstd[r]));
                const T *d = dout + r * dim + j0, *xr = x + r * dim + j0;
                for (int64_t k = 0; k < per_block; ++k) {
                    if (mask[k] == 0) break;
                    sums[k] = Z::add(sums[k], Z::mul(Z::mul(load8(mask[k], d + 8 * k), load8(mask[k], xr + 8 * k)), s));  // dout * x * s
                }
            }
            for (int64_t k = 0; k < per_block; ++k) Z::store(&partial[static_cast<size_t>((rb * n_blocks + b) * block + 8 * k)], sums[k]);
        }
    for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t j0 = b * block, width = std::min(block, dim - j0);
        for (int64_t k = 0; 8 * k < width; ++k) {
            const __mmask8 m = first_lanes<double>(width - 8 * k);
            __m512d total = load8(m, dweight + j0 + 8 * k);
            for (int64_t rb = 0; rb < kRowBlocks; ++rb)
                total = Z::add(total, Z::load(&partial[static_cast<size_t>((rb * n_blocks + b) * block + 8 * k)]));
            store8(dweight + j0 + 8 * k, m, total);
        }
    }
#pragma omp parallel for if (parallel)
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * dim;
        const T* dr = dout + r * dim;
        const double s = rstd[r];
        __m512d dot = Z::zero();  // sum_j x_j * weight_j * dout_j
        for (int64_t j = 0; j < dim; j += 8) {
            const __mmask8 m = first_lanes<double>(dim - j);
            dot = Z::fma(Z::mul(load8(m, xr + j), load8(m, weight + j)), load8(m, dr + j), dot);
        }
        const __m512d c = Z::broadcast(s * s * Z::sum(dot) / static_cast<double>(dim)), sv = Z::broadcast(s);
        for (int64_t j = 0; j < dim; j += 8) {  // dx = s * (weight * dout - x * c)
            const __mmask8 m = first_lanes<double>(dim - j);
            store8(dx + r * dim + j, m, Z::mul(sv, Z::sub(Z::mul(load8(m, weight + j), load8(m, dr + j)), Z::mul(load8(m, xr + j), c))));
        }
    }
}

template void rmsnorm_avx512_forward_cpu<float>(float*, float*, const float*, const float*, int64_t, int64_t, double);
template void rmsnorm_avx512_forward_cpu<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_avx512_backward_cpu<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                                                 int64_t);
template void rmsnorm_avx512_backward_cpu<double>(double*, double*, const double*, const double*, const double*, const double*,
                                                  int64_t, int64_t);

// This file's GCC 12 pin (gemm_avx512_known_answers says why; tests/test_cpu_isa.cpp checks it).
void rmsnorm_avx512_known_answers(double out_f64[4], float out_f32[8]) {
    const double d[4] = {1, 1, 0, 0};
    std::memcpy(out_f64, d, sizeof d);
    const float f[8] = {3, 3, 3, 3, 3, 3, 0, 0};
    std::memcpy(out_f32, f, sizeof f);
}

}  // namespace ittt::kernels

#pragma GCC pop_options
