// gemm.cpp: ops::matmul and ops::linear on top of kernels/gemm, and the gemm op's versions.
//
// A 3-D matmul is one strided-batched call on the GPU and a loop of 2-D calls on the CPU.
#include "kernels/gemm/gemm_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {


template <class T>
kernels::GemmCpuFn<T>* selected_cpu_gemm(const char* caller) {
    return cpu_entry(kernels::gemm_versions, caller).get<T>();
}
template kernels::GemmCpuFn<float>* selected_cpu_gemm<float>(const char*);
template kernels::GemmCpuFn<double>* selected_cpu_gemm<double>(const char*);
kernels::GemmCudaLauncher* selected_cuda_gemm(const char* caller) { return cuda_entry(kernels::gemm_versions, caller); }

void matmul(Tensor& C, const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, double alpha, double beta) {
    ITTT_NVTX_RANGE("gemm");
    require_float(A, "matmul", "A");
    require_same_dtype_device(A, B, "matmul", "A", "B");
    require_same_dtype_device(A, C, "matmul", "A", "C");
    int nd = A.ndim();
    ITTT_CHECK((nd == 2 || nd == 3) && B.ndim() == nd && C.ndim() == nd, "matmul: A ", A.describe(), ", B ", B.describe(), ", C ",
               C.describe(), " must all be 2-D or all 3-D");
    int64_t batch = nd == 3 ? A.dim(0) : 1;
    ITTT_CHECK(nd == 2 || (B.dim(0) == batch && C.dim(0) == batch), "matmul: batch sizes differ: A ", A.describe(), ", B ",
               B.describe(), ", C ", C.describe());
    int64_t M = trans_a ? A.dim(-1) : A.dim(-2), K = trans_a ? A.dim(-2) : A.dim(-1);
    int64_t Kb = trans_b ? B.dim(-1) : B.dim(-2), N = trans_b ? B.dim(-2) : B.dim(-1);
    ITTT_CHECK(K == Kb, "matmul: inner dimensions differ: op(A) is ", M, " x ", K, ", op(B) is ", Kb, " x ", N, " (A ",
               A.describe(), trans_a ? " transposed" : "", ", B ", B.describe(), trans_b ? " transposed" : "", ")");
    ITTT_CHECK(C.dim(-2) == M && C.dim(-1) == N, "matmul: C is ", C.describe(), ", expected ", M, " x ", N);
    int64_t lda = A.dim(-1), ldb = B.dim(-1), ldc = C.dim(-1);
    int64_t sa = A.numel() / batch, sb = B.numel() / batch, sc = C.numel() / batch;
    if (C.device() == Device::CUDA) {
        require_cuda_f32(A, "matmul");
        cuda_entry(kernels::gemm_versions, "matmul")(trans_a, trans_b, M, N, K, static_cast<float>(alpha), A.data<float>(), lda, sa, B.data<float>(), ldb,
                                   sb, static_cast<float>(beta), C.data<float>(), ldc, sc, batch);
        return;
    }
    with_float_type(A.dtype(), [&](auto t) {
        using T = decltype(t);
        auto* gemm = cpu_entry(kernels::gemm_versions, "matmul").get<T>();
        for (int64_t b = 0; b < batch; ++b)
            gemm(trans_a, trans_b, M, N, K, T(alpha), A.data<T>() + b * sa, lda, B.data<T>() + b * sb, ldb, T(beta), C.data<T>() + b * sc,
                 ldc);
    });
}

void linear(Tensor& y, const Tensor& x, const Tensor& W, double beta) {
    ITTT_CHECK(W.ndim() == 2, "linear: W must be 2-D (out, in), found ", W.describe());
    ITTT_CHECK(x.ndim() >= 1 && x.dim(-1) == W.dim(1), "linear: x ", x.describe(), " has last dim ", x.ndim() ? x.dim(-1) : 0,
               ", expected in = ", W.dim(1), " (W ", W.describe(), ")");
    int64_t rows = x.numel() / W.dim(1);
    ITTT_CHECK(y.numel() == rows * W.dim(0), "linear: y ", y.describe(), " must hold ", rows, " x ", W.dim(0), " values");
    Tensor x2 = x.view({rows, W.dim(1)});
    Tensor y2 = y.view({rows, W.dim(0)});
    matmul(y2, x2, false, W, true, 1.0, beta);
}

}  // namespace ittt::ops
