// elementwise_versions.h: the elementwise op's versions, one row each (kernels/versions.h says how).
// src/ops/elementwise.cpp runs the row that --kernel elementwise=v selects; `build/ittt info --kernels` lists them.
#pragma once
#include "kernels/elementwise/elementwise.h"
#include "kernels/versions.h"
#include "runtime/cpu_isa.h"

namespace ittt::kernels {

template <class T>
using FillCpu = void(T*, int64_t, double);
template <class T>
using AxpyCpu = void(T*, const T*, int64_t, double);
template <class T>
using SumSquaresCpu = double(const T*, int64_t);
template <class T>
using AllFiniteCpu = bool(const T*, int64_t);
struct ElementwiseCpuEntry {
    CpuKernel<FillCpu> fill, scale;
    CpuKernel<AxpyCpu> axpy;
    CpuKernel<SumSquaresCpu> sum_squares;
    CpuKernel<AllFiniteCpu> all_finite;
};
struct ElementwiseCudaEntry {
    decltype(&fill_cuda) fill;
    decltype(&scale_inplace_cuda) scale;
    decltype(&add_inplace_cuda) axpy;
    decltype(&sum_squares_cuda) sum_squares;
    decltype(&all_finite_cuda) all_finite;
    decltype(&sum_dim0_cuda) sum_dim0;
    decltype(&sum_squares_into_cuda) sum_squares_into;
    decltype(&flag_nonfinite_into_cuda) flag_nonfinite_into;
    decltype(&add_sum_into_cuda) add_sum_into;
};

// One F32 rounding per element (fill, scale, axpy); the reductions sum in double.
inline const Tolerance kElementwiseF32 = {1e-5, 1e-6, "one F32 rounding per element; reductions in double; sum_dim0 adds up to 33 rows (sums ~6) in F32"};
inline const OpVersions<ElementwiseCpuEntry, ElementwiseCudaEntry> elementwise_versions = {
    "elementwise", "fill, y += alpha x, x *= s, sum of squares, all finite, sum over dim 0, and the reductions added into a device scalar", "kernels/elementwise",
    // 0 is version 2 on a CPU with AVX-512, version 1 elsewhere (kernels/versions.h).
    2, {{{1, "loops", "plain loops; the sum of squares in 64 fixed blocks so its bits do not depend on the thread count",
          "fill_cpu|axpy_cpu|scale_cpu|sum_squares_cpu|all_finite_cpu", kElementwiseF32},
         {ITTT_CPU_KERNEL(fill_cpu), ITTT_CPU_KERNEL(scale_cpu), ITTT_CPU_KERNEL(axpy_cpu), ITTT_CPU_KERNEL(sum_squares_cpu),
          ITTT_CPU_KERNEL(all_finite_cpu)}},
        {{2, "reductions AVX-512", "sum of squares (the same 64 blocks, 8 double lanes each) and the finiteness check on 512-bit registers",
          "fill_cpu|axpy_cpu|scale_cpu|sum_squares_avx512_cpu|all_finite_avx512_cpu", kElementwiseF32, "AVX-512", &cpu_runs_avx512},
         {ITTT_CPU_KERNEL(fill_cpu), ITTT_CPU_KERNEL(scale_cpu), ITTT_CPU_KERNEL(axpy_cpu), ITTT_CPU_KERNEL(sum_squares_avx512_cpu),
          ITTT_CPU_KERNEL(all_finite_avx512_cpu)}}},
    1, {{{1, "fixed-order reductions", "one thread per element; reductions over a fixed number of blocks, then in block order",
          "fill_kernel|add_inplace_kernel|scale_inplace_kernel|reduce_blocks_kernel|reduce_final_kernel|reduce_final_add_kernel|add_sum_kernel|sum_dim0_kernel",
          kElementwiseF32},
         {ITTT_CUDA_KERNEL(fill_cuda), ITTT_CUDA_KERNEL(scale_inplace_cuda), ITTT_CUDA_KERNEL(add_inplace_cuda),
          ITTT_CUDA_KERNEL(sum_squares_cuda), ITTT_CUDA_KERNEL(all_finite_cuda),
          ITTT_CUDA_KERNEL(sum_dim0_cuda), ITTT_CUDA_KERNEL(sum_squares_into_cuda), ITTT_CUDA_KERNEL(flag_nonfinite_into_cuda),
          ITTT_CUDA_KERNEL(add_sum_into_cuda)}}},
};

}  // namespace ittt::kernels
