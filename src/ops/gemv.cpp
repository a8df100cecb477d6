// gemv.cpp: ops::gemv on top of kernels/gemv, the gemv op's versions.
//
// The model reaches the gemv kernels through ops::matmul (the blocked GEMM versions call them
// for products of a few rows); this op runs one version by itself, for the op harness and the
// benchmarks.
#include "kernels/gemv/gemv_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

void gemv(Tensor& C, const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, double alpha, double beta) {
    ITTT_NVTX_RANGE("gemv");
    require_float(A, "gemv", "A");
    require_same_dtype_device(A, B, "gemv", "A", "B");
    require_same_dtype_device(A, C, "gemv", "A", "C");
    ITTT_CHECK(A.ndim() == 2 && B.ndim() == 2 && C.ndim() == 2, "gemv: A ", A.describe(), ", B ", B.describe(), ", C ", C.describe(),
               " must all be 2-D");
    ITTT_CHECK(C.device() == Device::CPU, "gemv: ", C.describe(), " is not a CPU tensor (gemv has no CUDA version; matmul has)");
    const int64_t M = trans_a ? A.dim(1) : A.dim(0), K = trans_a ? A.dim(0) : A.dim(1);
    const int64_t Kb = trans_b ? B.dim(1) : B.dim(0), N = trans_b ? B.dim(0) : B.dim(1);
    ITTT_CHECK(K == Kb, "gemv: inner dimensions differ: op(A) is ", M, " x ", K, ", op(B) is ", Kb, " x ", N);
    ITTT_CHECK(C.dim(0) == M && C.dim(1) == N, "gemv: C is ", C.describe(), ", expected ", M, " x ", N);
    with_float_type(A.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::gemv_versions, "gemv").get<T>()(trans_a, trans_b, M, N, K, T(alpha), A.data<T>(), A.dim(1), B.data<T>(),
                                                         B.dim(1), T(beta), C.data<T>(), C.dim(1));
    });
}

}  // namespace ittt::ops
