// [cuda][gemm] tests: every CUDA GEMM version (kernels/gemm/gemm.cu) against the CPU.
//
// The oracle is the CPU's naive version run in F64 on the very F32 inputs the GPU gets
// (converted exactly), so what is measured is the GPU's own rounding. Shapes are ragged
// on purpose: 1, 17, 33, one below / at / above the 32- and 128-wide tiles (127, 128,
// 129, 257), in all four layouts NN, NT, TN, TT, with alpha and beta, beta == 0 over a
// C full of NaN (C must not be read), K == 0, 3-D (strided batched) and misaligned views
// (the scalar-load fallback of version 4 and the fallback of version 5 to version 4).
// Every [cuda] case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it is skipped.
//
// Tolerances (inputs are unit normals, so |op(A) op(B)| entries are ~sqrt(K)):
// - F32 (versions 1 to 4): each of the K additions rounds by at most 6e-8 of a partial sum
//   of size ~sqrt(k), in random directions: the error is ~6e-8 * K / sqrt(2) (rms), and
//   atol = 1e-6 * K * |alpha| is > 20x that.
// - TF32 (version 5): inputs keep 10 mantissa bits, each rounds by up to 2^-11 (~4.9e-4)
//   relative, a product by up to ~1e-3 (rms ~4e-4); K independent product errors add like
//   a random walk: rms ~4e-4 * sqrt(K), so atol = 5e-3 * sqrt(K) * |alpha| is > 10 sigma.
//   In short: ~1e-3 per product from the 10-bit mantissa, times sqrt(K) for the sum.
// - The beta * C0 term is one F32 multiply-add: rtol 1e-5 of the reference covers it.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/gemm/gemm.h"
#include "ops/ops.h"
#include "runtime/error.h"
#include "runtime/tensor.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::check_close;
using ittt::test::random_tensor;
using ittt::test::ScopedVersion;

namespace {

constexpr int kTensorCores = 5;
const std::vector<int> kCudaVersions = {1, 2, 3, 4, 5};

Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }

Shape stored_shape(int64_t rows, int64_t cols, bool trans) { return trans ? Shape{cols, rows} : Shape{rows, cols}; }

Tensor nan_tensor(const Shape& shape) {
    Tensor t = Tensor::empty(shape);
    ops::fill(t, std::numeric_limits<double>::quiet_NaN());
    return t;
}

// C = alpha op(A) op(B) + beta C0 from the CPU's naive version in F64 (2-D or 3-D inputs).
Tensor reference(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0, double alpha, double beta) {
    ScopedVersion naive("gemm", 1);
    Tensor C = C0.to_dtype(DType::F64);
    ops::matmul(C, A.to_dtype(DType::F64), ta, B.to_dtype(DType::F64), tb, alpha, beta);
    return C;
}

// The same product on the GPU with `version`; C0 is copied there as the starting C.
Tensor run_cuda(int version, const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0, double alpha, double beta) {
    ScopedVersion use("gemm", version);
    Tensor A_g = gpu(A), B_g = gpu(B), C_g = gpu(C0);
    ops::matmul(C_g, A_g, ta, B_g, tb, alpha, beta);
    return C_g.to(Device::CPU);
}

// The version that runs on the GPU for version v on this 2-D or 3-D call (5 may become 4).
int resolved(int v, const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C) {
#if ITTT_WITH_CUDA
    const int nd = A.ndim();
    const int64_t batch = nd == 3 ? A.dim(0) : 1;
    const int64_t M = C.dim(-2), N = C.dim(-1), K = ta ? A.dim(-2) : A.dim(-1);
    (void)tb;
    // Alignment matters, so ask about the real device buffers of this call.
    Tensor A_g = gpu(A), B_g = gpu(B), C_g = gpu(C);
    if (v == 0) return ops::op_spec("gemm").cuda.best;
    if (v != kTensorCores) return v;
    return kernels::gemm_cuda_tf32_applicable(M, N, K, A_g.data<float>(), A.dim(-1), A.numel() / batch, B_g.data<float>(), B.dim(-1),
                                              B.numel() / batch, C_g.data<float>(), C.dim(-1), C.numel() / batch, batch)
               ? kTensorCores
               : ops::op_spec("gemm").cuda.best;
#else
    (void)A, (void)ta, (void)B, (void)tb, (void)C;
    return v;
#endif
}

double atol_for(int resolved_version, int64_t K, double alpha) {
    const double scale = std::fabs(alpha);
    if (resolved_version == kTensorCores) return 5e-3 * std::sqrt(static_cast<double>(K)) * scale + 1e-6;
    return 1e-6 * static_cast<double>(K) * scale + 1e-7;
}
constexpr double kRtol = 1e-5;

std::string label(int v, int rv, bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
    return cat("v", v, rv != v ? cat(" (ran ", rv, ")") : std::string(), " ", ta ? "T" : "N", tb ? "T" : "N", " M=", M, " N=", N,
               " K=", K);
}

struct Mnk {
    int64_t M, N, K;
};
// Ragged sizes around every tile width the versions use (8, 32, 128), plus exact tiles
// that version 5 accepts (M, N multiples of 128 and K of 32).
const std::vector<Mnk> kRaggedShapes = {{1, 1, 1},     {1, 17, 33},    {17, 1, 65},    {33, 65, 1},    {17, 33, 7},
                                        {127, 129, 128}, {128, 128, 128}, {129, 127, 257}, {257, 33, 17}, {64, 300, 130},
                                        {128, 256, 32}, {256, 128, 96}};

}  // namespace

TEST_CASE("CUDA gemm versions 1-5 match the CPU on ragged shapes in all layouts, with alpha and beta", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const double alpha = 0.7, beta = -0.4;
    uint64_t seed = 1000;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const Mnk& s : ittt::test::subset_if_small(kRaggedShapes, 2)) {
                Tensor A = random_tensor(stored_shape(s.M, s.K, ta), seed++), B = random_tensor(stored_shape(s.K, s.N, tb), seed++);
                Tensor C0 = random_tensor({s.M, s.N}, seed++);
                Tensor ref = reference(A, ta, B, tb, C0, alpha, beta);
                for (int v : kCudaVersions) {
                    const int rv = resolved(v, A, ta, B, tb, C0);
                    INFO(label(v, rv, ta, tb, s.M, s.N, s.K));
                    Tensor C = run_cuda(v, A, ta, B, tb, C0, alpha, beta);
                    CHECK(check_close(C, ref, atol_for(rv, s.K, alpha), kRtol, label(v, rv, ta, tb, s.M, s.N, s.K)));
                }
            }
}

TEST_CASE("CUDA gemm with beta == 0 never reads C (C full of NaN)", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const double alpha = 1.5;
    uint64_t seed = 2000;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const Mnk& s : {Mnk{17, 33, 65}, Mnk{129, 127, 40}, Mnk{128, 128, 64}}) {
                Tensor A = random_tensor(stored_shape(s.M, s.K, ta), seed++), B = random_tensor(stored_shape(s.K, s.N, tb), seed++);
                Tensor garbage = nan_tensor({s.M, s.N});
                Tensor ref = reference(A, ta, B, tb, Tensor::zeros({s.M, s.N}), alpha, 0.0);
                for (int v : kCudaVersions) {
                    const int rv = resolved(v, A, ta, B, tb, garbage);
                    INFO(label(v, rv, ta, tb, s.M, s.N, s.K));
                    Tensor C = run_cuda(v, A, ta, B, tb, garbage, alpha, 0.0);
                    CHECK(ops::all_finite(C));
                    CHECK(check_close(C, ref, atol_for(rv, s.K, alpha), kRtol, label(v, rv, ta, tb, s.M, s.N, s.K)));
                }
            }
}

TEST_CASE("CUDA gemm with K == 0 gives beta * C (and zeros over NaN when beta == 0)", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t M = 33, N = 130;
    Tensor A = Tensor::zeros({M, 0}), B = Tensor::zeros({0, N});
    Tensor C0 = random_tensor({M, N}, 2100);
    for (int v : kCudaVersions) {
        INFO("version " << v);
        Tensor scaled = run_cuda(v, A, false, B, false, C0, 2.0, 0.5);
        Tensor expected = C0.clone();
        ops::scale_inplace(expected, 0.5);
        CHECK(check_close(scaled, expected, 0, 1e-7, "K = 0, beta = 0.5"));
        Tensor zeroed = run_cuda(v, A, false, B, false, nan_tensor({M, N}), 2.0, 0.0);
        CHECK(check_close(zeroed, Tensor::zeros({M, N}), 0, 0, "K = 0, beta = 0"));
    }
}

TEST_CASE("CUDA gemm version 5 runs the tensor cores on exact tiles and matches within TF32 rounding", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const double alpha = 1.0, beta = 0.25;
    uint64_t seed = 3000;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const Mnk& s :
                 ittt::test::subset_if_small(std::vector<Mnk>{{128, 128, 32}, {256, 384, 96}, {384, 128, 512}, {128, 256, 1024}}, 2)) {
                Tensor A = random_tensor(stored_shape(s.M, s.K, ta), seed++), B = random_tensor(stored_shape(s.K, s.N, tb), seed++);
                Tensor C0 = random_tensor({s.M, s.N}, seed++);
                const int rv = resolved(kTensorCores, A, ta, B, tb, C0);
                INFO(label(kTensorCores, rv, ta, tb, s.M, s.N, s.K));
                // Every GPU this project targets (sm_80 and newer) has TF32 tensor cores.
                CHECK(rv == kTensorCores);
                CHECK(resolved(0, A, ta, B, tb, C0) == 4);  // "best" stays FP32 version 4 even here: TF32 is opt-in
                Tensor ref = reference(A, ta, B, tb, C0, alpha, beta);
                Tensor C = run_cuda(kTensorCores, A, ta, B, tb, C0, alpha, beta);
                CHECK(check_close(C, ref, atol_for(rv, s.K, alpha), kRtol, label(kTensorCores, rv, ta, tb, s.M, s.N, s.K)));
                // The F32 version on the same call is within F32 rounding: the looser check above is TF32's doing.
                Tensor C4 = run_cuda(4, A, ta, B, tb, C0, alpha, beta);
                CHECK(check_close(C4, ref, atol_for(4, s.K, alpha), kRtol, label(4, 4, ta, tb, s.M, s.N, s.K)));
            }
}

TEST_CASE("CUDA gemm 'best' (0) is FP32 version 4; 5 is TF32 on exact tiles and version 4 elsewhere", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor A = random_tensor({128, 64}, 3500), B = random_tensor({64, 256}, 3501), C = Tensor::zeros({128, 256});
    CHECK(resolved(0, A, false, B, false, C) == 4);  // TF32 is opt-in: the default stays FP32
    CHECK(resolved(5, A, false, B, false, C) == kTensorCores);
    Tensor A2 = random_tensor({129, 64}, 3502), C2 = Tensor::zeros({129, 256});
    CHECK(resolved(5, A2, false, B, false, C2) == 4);  // M not a multiple of 128
    Tensor B3 = random_tensor({60, 256}, 3503), A3 = random_tensor({128, 60}, 3504);
    CHECK(resolved(5, A3, false, B3, false, C) == 4);  // K not a multiple of 32
    CHECK(resolved(3, A, false, B, false, C) == 3);    // other versions run as asked
}

TEST_CASE("CUDA gemm on misaligned views: scalar loads in version 4, version 5 falls back", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // Views one float into a buffer: base pointers 4 bytes past 16-byte alignment, with
    // shapes version 5 would otherwise take. Built on the device so the offset survives.
    const int64_t M = 128, N = 128, K = 64;
    const double alpha = 0.9, beta = 0.5;
    uint64_t seed = 4000;
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            Tensor A = random_tensor(stored_shape(M, K, ta), seed++), B = random_tensor(stored_shape(K, N, tb), seed++);
            Tensor C0 = random_tensor({M, N}, seed++);
            Tensor ref = reference(A, ta, B, tb, C0, alpha, beta);
            auto offset_copy = [](const Tensor& t) {
                Tensor buffer = Tensor::zeros({t.numel() + 1}, DType::F32, Device::CUDA);
                Tensor view = buffer.rows(1, t.numel() + 1).view(t.shape());
                view.copy_from(t);
                return view;
            };
            Tensor A_g = offset_copy(A), B_g = offset_copy(B), C_g = offset_copy(C0);
#if ITTT_WITH_CUDA
            CHECK(!kernels::gemm_cuda_tf32_applicable(M, N, K, A_g.data<float>(), A.dim(1), 0, B_g.data<float>(), B.dim(1), 0,
                                                      C_g.data<float>(), N, 0, 1));
#endif
            for (int v : kCudaVersions) {
                INFO(label(v, v == kTensorCores ? 4 : v, ta, tb, M, N, K));
                ScopedVersion use("gemm", v);
                Tensor C = offset_copy(C0);
                ops::matmul(C, A_g, ta, B_g, tb, alpha, beta);
                CHECK(check_close(C.to(Device::CPU), ref, atol_for(4, K, alpha), kRtol, label(v, v, ta, tb, M, N, K)));
            }
        }
}

TEST_CASE("CUDA 3-D matmul (strided batched) matches the CPU, every version", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const double alpha = 1.0, beta = 0.5;
    uint64_t seed = 5000;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const Mnk& s : {Mnk{17, 33, 40}, Mnk{1, 129, 7}, Mnk{128, 128, 64}}) {
                const int64_t batch = 3;
                Shape sa = stored_shape(s.M, s.K, ta), sb = stored_shape(s.K, s.N, tb);
                Tensor A = random_tensor({batch, sa[0], sa[1]}, seed++), B = random_tensor({batch, sb[0], sb[1]}, seed++);
                Tensor C0 = random_tensor({batch, s.M, s.N}, seed++);
                Tensor ref = reference(A, ta, B, tb, C0, alpha, beta);
                for (int v : kCudaVersions) {
                    const int rv = resolved(v, A, ta, B, tb, C0);
                    INFO("batched " << label(v, rv, ta, tb, s.M, s.N, s.K));
                    Tensor C = run_cuda(v, A, ta, B, tb, C0, alpha, beta);
                    CHECK(check_close(C, ref, atol_for(rv, s.K, alpha), kRtol, "batched " + label(v, rv, ta, tb, s.M, s.N, s.K)));
                }
            }
}

TEST_CASE("CUDA linear is x @ W^T over all leading dimensions", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor x = random_tensor({2, 5, 17}, 6000), W = random_tensor({33, 17}, 6001), y0 = random_tensor({2, 5, 33}, 6002);
    Tensor expected = reference(x.view({10, 17}), false, W, true, y0.view({10, 33}), 1.0, 0.25);
    for (int v : kCudaVersions) {
        INFO("version " << v);
        ScopedVersion use("gemm", v);
        Tensor y = gpu(y0);
        ops::linear(y, gpu(x), gpu(W), 0.25);
        CHECK(check_close(y.to(Device::CPU).view({10, 33}), expected, atol_for(4, 17, 1.0), kRtol, cat("linear v", v)));
    }
}

TEST_CASE("CUDA matmul refuses F64 tensors", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor A = random_tensor({4, 3}, 7000, 1.0, DType::F64).to(Device::CUDA), B = random_tensor({3, 5}, 7001, 1.0, DType::F64).to(Device::CUDA);
    Tensor C = Tensor::zeros({4, 5}, DType::F64, Device::CUDA);
    CHECK_THROWS_WITH(ops::matmul(C, A, false, B, false), Catch::Contains("CUDA kernels are F32 only"));
}

TEST_CASE("gemm versions 4 and 5 are CUDA only: a CPU matmul refuses them", "[gemm]") {
    Tensor A = random_tensor({4, 3}, 7100), B = random_tensor({3, 5}, 7101), C = Tensor::zeros({4, 5});
    for (int v : {4, 5}) {
        ScopedVersion use("gemm", v);  // accepted when set: some device has it
        CHECK_THROWS_WITH(ops::matmul(C, A, false, B, false), Catch::Contains(cat("gemm: no CPU version ", v)));
    }
}
