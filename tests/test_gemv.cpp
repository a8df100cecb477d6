// Tests of the gemv kernels (kernels/gemv/) beyond the op harness's comparison with the F64
// reference (tests/test_ops_harness_gemm.cpp, describe_gemv): what decode needs of them.
//  - A product of a few rows through a blocked GEMM version (which hands it to its gemv) gives
//    the same bits as the same rows inside a larger product (the blocked path), in every layout,
//    across K blocks, with the betas the model uses: decoded tokens = the prompt's rows.
//  - The result does not depend on the thread count.
//  - Integer products come out exact in every version (the AVX-512 file's GCC 12 pin is in
//    tests/test_cpu_isa.cpp with the other files' pins).
//  - ops::gemv's errors.
#include <cstring>
#include <tuple>
#include <vector>

#include "kernels/gemm/gemm_versions.h"
#include "kernels/gemv/gemv_versions.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::random_tensor;

namespace {

std::vector<float> random_floats(int64_t count, uint64_t seed) { return random_tensor({count}, seed).to_f32_vector(); }

std::string label(int v, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
    return cat("gemm version ", v, " ", ta ? "T" : "N", tb ? "T" : "N", " M=", M, " N=", N, " K=", K, " alpha=", alpha, " beta=", beta);
}

}  // namespace

TEST_CASE("gemv: a few rows through a blocked GEMM equal those rows of a larger product bit for bit", "[gemv][gemm]") {
    // The blocked versions run M <= kGemvMaxRows on their gemv and larger M on the packed
    // micro-kernel; both must sum every element the same way, or a decoded token would round
    // differently from the same token in a prompt. N crosses the 8- and 16-wide vectors and
    // their tails; K the transposed 8 / 16 blocks and the 256 K block.
    const int64_t big = 2 * kernels::kGemvMaxRows + 11;  // rows of the reference product: the packed path
    for (int v : test::cpu_versions_here("gemm", 2)) {
        kernels::GemmCpuFn<float>* gemm = kernels::gemm_versions.cpu[static_cast<size_t>(v - 1)].run.get<float>();
        for (auto [N, K] : {std::tuple<int64_t, int64_t>{1, 1}, {37, 16}, {16, 255}, {129, 257}, {40, 600}})
            for (bool ta : {false, true})
                for (bool tb : {false, true})
                    for (auto [alpha, beta] : {std::pair<float, float>{1, 0}, {1, 1}, {1, 0.5f}, {1.5f, 0}}) {
                        // A: (big, K) or (K, big); B: (K, N) or (N, K); C0: (big, N)
                        const std::vector<float> A = random_floats(big * K, 31), B = random_floats(K * N, 32), C0 = random_floats(big * N, 33);
                        const int64_t lda = ta ? big : K, ldb = tb ? K : N;
                        std::vector<float> whole = C0;
                        gemm(ta, tb, big, N, K, alpha, A.data(), lda, B.data(), ldb, beta, whole.data(), N);
                        for (int64_t rows = 1; rows <= kernels::kGemvMaxRows; ++rows) {
                            const int64_t r0 = big - rows - 3;  // an offset that is not a multiple of any tile
                            std::vector<float> part(C0.begin() + r0 * N, C0.begin() + (r0 + rows) * N);
                            const float* A_rows = ta ? A.data() + r0 : A.data() + r0 * K;
                            gemm(ta, tb, rows, N, K, alpha, A_rows, lda, B.data(), ldb, beta, part.data(), N);
                            INFO(label(v, ta, tb, rows, N, K, alpha, beta) << ", rows " << r0 << " + " << rows << " of " << big);
                            CHECK(std::memcmp(part.data(), whole.data() + r0 * N, part.size() * sizeof(float)) == 0);
                        }
                    }
    }
}

TEST_CASE("gemv: the result does not depend on the thread count", "[gemv]") {
    // The columns of C are split into chunks over the threads; every element is the same sums in
    // any chunk. Shapes large enough to be threaded (>= 2^16 multiply-adds, several chunks).
#ifdef _OPENMP
    for (int v : test::cpu_versions_here("gemv", 1))
        for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1000, 300}, {3, 517, 260}, {4, 4099, 64}})
            for (bool tb : {false, true}) {
                test::ScopedVersion guard("gemv", v);
                Tensor A = random_tensor({M, K}, 41), B = random_tensor(tb ? Shape{N, K} : Shape{K, N}, 42);
                Tensor one = Tensor::empty({M, N}), two = Tensor::empty({M, N});
                test::with_threads(1, [&] { ops::gemv(one, A, false, B, tb, 1.0, 0.0); });
                test::with_threads(2, [&] { ops::gemv(two, A, false, B, tb, 1.0, 0.0); });
                INFO("gemv version " << v << " M=" << M << " N=" << N << " K=" << K << (tb ? " NT" : " NN"));
                CHECK(test::bitwise_equal(one, two));
            }
#endif
}

TEST_CASE("gemv: integer products come out exact in every version", "[gemv]") {
    // (The AVX-512 file's GCC 12 pin: tests/test_cpu_isa.cpp.) Integer inputs: every product and partial sum is exact in float, so every version must
    // give exactly the integer answer, on every edge of the vectors and transposed blocks.
    for (int v : test::cpu_versions_here("gemv", 1)) {
        kernels::GemvCpuFn<float>* gemv = kernels::gemv_versions.cpu[static_cast<size_t>(v - 1)].run.get<float>();
        for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 16, 16}, {3, 33, 300}, {4, 15, 7}, {7, 70, 257}})
            for (bool ta : {false, true})
                for (bool tb : {false, true}) {
                    test::IntegerGemmCase g = test::integer_gemm_case(ta, tb, M, N, K);
                    gemv(ta, tb, M, N, K, 2.f, g.A.data(), g.lda, g.B.data(), g.ldb, -1.f, g.C.data(), g.ldc);
                    INFO("gemv version " << v << " " << (ta ? "T" : "N") << (tb ? "T" : "N") << " M=" << M << " N=" << N << " K=" << K);
                    CHECK(g.C == g.expected);
                }
    }
}

TEST_CASE("gemv: bad shapes, dtypes and devices throw errors that name the problem", "[gemv]") {
    Tensor A = Tensor::zeros({2, 5}), B = Tensor::zeros({7, 5}), C = Tensor::zeros({2, 7});
    ops::gemv(C, A, false, B, true);  // fine
    CHECK_THROWS_WITH(ops::gemv(C, A, false, B, false), Catch::Contains("gemv: inner dimensions differ: op(A) is 2 x 5, op(B) is 7 x 5"));
    Tensor wrong = Tensor::zeros({2, 6});
    CHECK_THROWS_WITH(ops::gemv(wrong, A, false, B, true), Catch::Contains("gemv: C is") && Catch::Contains("expected 2 x 7"));
    Tensor three = Tensor::zeros({1, 2, 5});
    CHECK_THROWS_WITH(ops::gemv(C, three, false, B, true), Catch::Contains("must all be 2-D"));
    Tensor f64 = Tensor::zeros({7, 5}, DType::F64);
    CHECK_THROWS(ops::gemv(C, A, false, f64, true));
}
