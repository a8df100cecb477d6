// [cuda] tests of what only a GPU has: which gemm calls the TF32 tensor cores take (and how
// close they stay), the alignment a float4 load needs, the 48 KB shared-memory default and the
// flash kernels' head-dim ceiling. Every comparison of a kernel with the CPU over ragged shapes
// is in the op harness (tests/test_ops_harness.cpp); these are what it cannot express.
// Every case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it is skipped.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/gemm/gemm.h"
#include "ops/ops.h"
#include "runtime/error.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {

constexpr int kTensorCores = 5;

Shape stored_shape(int64_t rows, int64_t cols, bool trans) { return trans ? Shape{cols, rows} : Shape{rows, cols}; }

// C = alpha op(A) op(B) + beta C0 from the CPU's naive version in F64, on the F32 inputs.
Tensor gemm_reference(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0, double alpha, double beta) {
    ScopedVersion naive("gemm", 1);
    Tensor C = C0.to_dtype(DType::F64);
    ops::matmul(C, A.to_dtype(DType::F64), ta, B.to_dtype(DType::F64), tb, alpha, beta);
    return C;
}

// The same product on the GPU with `version`; C0 is copied there as the starting C.
Tensor gemm_on_cuda(int version, const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0, double alpha, double beta) {
    ScopedVersion use("gemm", version);
    Tensor C = gpu(C0);
    ops::matmul(C, gpu(A), ta, gpu(B), tb, alpha, beta);
    return host(C);
}

// The version that runs on the GPU for version v on this 2-D call (5 may become 4).
int resolved(int v, const Tensor& A, bool ta, const Tensor& B, const Tensor& C) {
#if ITTT_WITH_CUDA
    const int64_t M = C.dim(-2), N = C.dim(-1), K = ta ? A.dim(-2) : A.dim(-1);
    // Alignment matters, so ask about the real device buffers of this call.
    Tensor A_g = gpu(A), B_g = gpu(B), C_g = gpu(C);
    if (v == 0) return ops::op_spec("gemm").cuda.best;
    if (v != kTensorCores) return v;
    return kernels::gemm_cuda_tf32_applicable(M, N, K, A_g.data<float>(), A.dim(-1), A.numel(), B_g.data<float>(), B.dim(-1), B.numel(),
                                              C_g.data<float>(), C.dim(-1), C.numel(), 1)
               ? kTensorCores
               : ops::op_spec("gemm").cuda.best;
#else
    (void)A, (void)ta, (void)B, (void)C;
    return v;
#endif
}

// Inputs are unit normals, so |op(A) op(B)| entries are ~sqrt(K):
// - F32: each of the K additions rounds at 6e-8 of a partial sum, in random directions:
//   ~6e-8 K / sqrt(2) (rms), and 1e-6 K |alpha| is > 20x that.
// - TF32: inputs keep 10 mantissa bits, a product is off by ~4e-4 (rms), and K of them add
//   like a random walk: 5e-3 sqrt(K) |alpha| is > 10 sigma.
double gemm_atol(int resolved_version, int64_t K, double alpha) {
    const double scale = std::fabs(alpha);
    if (resolved_version == kTensorCores) return 5e-3 * std::sqrt(static_cast<double>(K)) * scale + 1e-6;
    return 1e-6 * static_cast<double>(K) * scale + 1e-7;
}
constexpr double kGemmRtol = 1e-5;  // the beta C0 term: one F32 multiply-add

std::string gemm_label(int v, int rv, bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
    return cat("v", v, rv != v ? cat(" (ran ", rv, ")") : std::string(), " ", ta ? "T" : "N", tb ? "T" : "N", " M=", M, " N=", N,
               " K=", K);
}

struct Mnk {
    int64_t M, N, K;
};

}  // namespace

TEST_CASE("CUDA gemm version 5 runs the tensor cores on exact tiles and matches within TF32 rounding", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const double alpha = 1.0, beta = 0.25;
    uint64_t seed = 3000;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const Mnk& s : subset_if_small(std::vector<Mnk>{{128, 128, 32}, {256, 384, 96}, {384, 128, 512}, {128, 256, 1024}}, 2)) {
                Tensor A = random_tensor(stored_shape(s.M, s.K, ta), seed++), B = random_tensor(stored_shape(s.K, s.N, tb), seed++);
                Tensor C0 = random_tensor({s.M, s.N}, seed++);
                const int rv = resolved(kTensorCores, A, ta, B, C0);
                INFO(gemm_label(kTensorCores, rv, ta, tb, s.M, s.N, s.K));
                // Every GPU this project targets (sm_80 and newer) has TF32 tensor cores.
                CHECK(rv == kTensorCores);
                CHECK(resolved(0, A, ta, B, C0) == 4);  // "best" stays FP32 version 4 even here: TF32 is opt-in
                Tensor ref = gemm_reference(A, ta, B, tb, C0, alpha, beta);
                Tensor C = gemm_on_cuda(kTensorCores, A, ta, B, tb, C0, alpha, beta);
                CHECK(check_close(C, ref, gemm_atol(rv, s.K, alpha), kGemmRtol, gemm_label(kTensorCores, rv, ta, tb, s.M, s.N, s.K)));
                // The F32 version on the same call is within F32 rounding: the looser check above is TF32's doing.
                Tensor C4 = gemm_on_cuda(4, A, ta, B, tb, C0, alpha, beta);
                CHECK(check_close(C4, ref, gemm_atol(4, s.K, alpha), kGemmRtol, gemm_label(4, 4, ta, tb, s.M, s.N, s.K)));
            }
}

TEST_CASE("CUDA gemm 'best' (0) is FP32 version 4; 5 is TF32 on exact tiles and version 4 elsewhere", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor A = random_tensor({128, 64}, 3500), B = random_tensor({64, 256}, 3501), C = Tensor::zeros({128, 256});
    CHECK(resolved(0, A, false, B, C) == 4);  // TF32 is opt-in: the default stays FP32
    CHECK(resolved(5, A, false, B, C) == kTensorCores);
    Tensor A2 = random_tensor({129, 64}, 3502), C2 = Tensor::zeros({129, 256});
    CHECK(resolved(5, A2, false, B, C2) == 4);  // M not a multiple of 128
    Tensor B3 = random_tensor({60, 256}, 3503), A3 = random_tensor({128, 60}, 3504);
    CHECK(resolved(5, A3, false, B3, C) == 4);  // K not a multiple of 32
    CHECK(resolved(3, A, false, B, C) == 3);    // other versions run as asked
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
            Tensor ref = gemm_reference(A, ta, B, tb, C0, alpha, beta);
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
            for (const ops::VersionInfo& v : ops::op_spec("gemm").cuda.versions) {
                INFO(gemm_label(v.number, v.number == kTensorCores ? 4 : v.number, ta, tb, M, N, K));
                ScopedVersion use("gemm", v.number);
                Tensor C = offset_copy(C0);
                ops::matmul(C, A_g, ta, B_g, tb, alpha, beta);
                CHECK(check_close(host(C), ref, gemm_atol(4, K, alpha), kGemmRtol, gemm_label(v.number, v.number, ta, tb, M, N, K)));
            }
        }
}

namespace {

constexpr int kNaive = 1, kFlash = 2;

struct AttentionOut {
    Tensor out, lse;  // on the host
};
struct AttentionGrads {
    Tensor dq, dk, dv;  // on the host
};

AttentionOut attention_forward_on(Device d, int version, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0) {
    ScopedVersion use("attention", version);
    Tensor out = nan_tensor(q.shape(), q.dtype(), d), lse = nan_tensor({q.dim(0), q.dim(2), q.dim(1)}, q.dtype(), d);
    ops::attention_forward(out, lse, q.to(d), k.to(d), v.to(d), q_pos0, 0);
    return {host(out), host(lse)};
}

AttentionGrads attention_backward_on(Device d, int version, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const AttentionOut& f) {
    ScopedVersion use("attention", version);
    AttentionGrads g{nan_tensor(q.shape(), q.dtype(), d), nan_tensor(k.shape(), k.dtype(), d), nan_tensor(v.shape(), v.dtype(), d)};
    ops::attention_backward(g.dq, g.dk, g.dv, dout.to(d), q.to(d), k.to(d), v.to(d), f.out.to(d), f.lse.to(d), 0);
    return {host(g.dq), host(g.dk), host(g.dv)};
}

// The last `count` queries (B = 1) of q (1, n, H, hd).
Tensor last_queries(const Tensor& q, int count) {
    const int64_t row = q.dim(2) * q.dim(3);
    return q.view({q.dim(1), row}).rows(q.dim(1) - count, q.dim(1)).clone().view({1, count, q.dim(2), q.dim(3)});
}

// Forward against the F64 CPU reference (the op harness's F32 tolerances for attention).
constexpr double kOutAtol = 2e-5, kOutRtol = 1e-4, kLseAtol = 2e-5, kLseRtol = 1e-5;

}  // namespace

TEST_CASE("attention CUDA naive holds long score rows past 48 KB of shared memory", "[cuda][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // 12300 keys are 49.2 KB of floats (forward) and 6200 keys x 2 rows are 49.6 KB
    // (backward): both need the opt-in shared-memory limit.
    {
        // The forward in the decode form: the last 3 queries of a 12300-token sequence
        // against its whole KV cache. Their rows are as long as a prefill's longest, at
        // 1/4000 of its cost, so the CPU in F64 can be the oracle.
        const int n = 12300, count = 3;
        Tensor q = last_queries(random_tensor({1, n, 1, 8}, 900), count);
        Tensor k = random_tensor({1, n, 1, 8}, 901), v = random_tensor({1, n, 1, 8}, 902);
        AttentionOut ref = attention_forward_on(Device::CPU, kNaive, q.to_dtype(DType::F64), k.to_dtype(DType::F64), v.to_dtype(DType::F64),
                                                n - count);
        AttentionOut naive = attention_forward_on(Device::CUDA, kNaive, q, k, v, n - count);
        // a softmax over 12300 O(1) scores in F32: each sum ~1e-6 from exact
        CHECK(check_close(naive.out, ref.out, kOutAtol, kOutRtol, "long-row out"));
        CHECK(check_close(naive.lse, ref.lse, kLseAtol, kLseRtol, "long-row lse"));
    }
    if (small_shapes()) {
        std::printf("small shapes: the 6200-token naive backward is left to the full-size runs\n");
    } else {
        // The backward has only the training form, so all 6200 queries; the flash version,
        // tested against the CPU by the op harness, is the reference (a CPU one at this length is slow).
        const int n = 6200;
        Tensor q = random_tensor({1, n, 2, 8}, 910), k = random_tensor({1, n, 1, 8}, 911), v = random_tensor({1, n, 1, 8}, 912);
        Tensor dout = random_tensor({1, n, 2, 8}, 913);
        AttentionOut f = attention_forward_on(Device::CUDA, kFlash, q, k, v, 0);
        AttentionGrads flash = attention_backward_on(Device::CUDA, kFlash, dout, q, k, v, f);
        AttentionGrads naive = attention_backward_on(Device::CUDA, kNaive, dout, q, k, v, f);
        // dk, dv of early keys sum ~2 x 6200 terms; in F32 each sum is ~1e-5 from exact
        CHECK(check_close(naive.dq, flash.dq, 1e-4, 1e-4, "long-row dq"));
        CHECK(check_close(naive.dk, flash.dk, 1e-3, 1e-4, "long-row dk"));
        CHECK(check_close(naive.dv, flash.dv, 1e-3, 1e-4, "long-row dv"));
    }
}

TEST_CASE("attention CUDA: flash refuses head dims past its ceiling, naive takes them", "[cuda][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // hd = 160: the flash kernels refuse it, the naive one handles any hd.
    Tensor q = random_tensor({1, 9, 2, 160}, 950), k = random_tensor({1, 9, 1, 160}, 951), v = random_tensor({1, 9, 1, 160}, 952);
    CHECK_THROWS_WITH(attention_forward_on(Device::CUDA, kFlash, q, k, v, 0), Catch::Contains("head_dim 160") && Catch::Contains("ceiling"));
    AttentionOut ref = attention_forward_on(Device::CPU, kNaive, q.to_dtype(DType::F64), k.to_dtype(DType::F64), v.to_dtype(DType::F64), 0);
    AttentionOut naive = attention_forward_on(Device::CUDA, kNaive, q, k, v, 0);
    CHECK(check_close(naive.out, ref.out, kOutAtol, kOutRtol, "naive hd=160 out"));
    CHECK(check_close(naive.lse, ref.lse, kLseAtol, kLseRtol, "naive hd=160 lse"));
}
