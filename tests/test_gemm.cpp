// Tests of ops::matmul / ops::linear and the CPU GEMM versions (kernels/gemm/). Every version
// on every device against version 1 in F64 (ragged shapes in all layouts, alpha and beta,
// beta == 0 over NaN, K == 0, 3-D) is in the op harness (tests/test_ops_harness.cpp); here:
// what the blocked version promises beyond that, the 3-D and linear forms, version selection,
// and the errors. The blocked versions are 2 (AVX2) and 3 (AVX-512): the thread-count test runs
// every one this CPU runs (test::cpu_versions_here), and the run's end counts the ones it could not.
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/gemm/gemm.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::check_close;
using ittt::test::random_tensor;
using ittt::test::ScopedVersion;

namespace {

Shape stored_shape(int64_t rows, int64_t cols, bool trans) { return trans ? Shape{cols, rows} : Shape{rows, cols}; }

// C = alpha * op(A) op(B) + beta * C0 with the given version, in A's dtype.
Tensor run_matmul(int v, const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0, double alpha, double beta) {
    ScopedVersion guard("gemm", v);
    Tensor C = C0.clone();
    ops::matmul(C, A, ta, B, tb, alpha, beta);
    return C;
}

// The same product from the naive kernel in F64: the oracle for both dtypes.
Tensor reference(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0, double alpha, double beta) {
    return run_matmul(1, A.to_dtype(DType::F64), ta, B.to_dtype(DType::F64), tb, C0.to_dtype(DType::F64), alpha, beta);
}

// Tolerances for K <= 300 products of unit normals, |C| ~ sqrt(K) <= 18: each of
// the K partial sums rounds at 6e-8 relative in float, so the error stays below
// 3e-4 (observed 6e-5); double rounds 2^29 times finer (observed 5e-14).
double atol_for(DType t) { return t == DType::F32 ? 3e-4 : 1e-12; }
double rtol_for(DType t) { return t == DType::F32 ? 1e-5 : 1e-13; }

std::string label(const char* what, DType t, bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
    return cat(what, " ", dtype_name(t), " ", ta ? "T" : "N", tb ? "T" : "N", " M=", M, " N=", N, " K=", K);
}

}  // namespace

// The blocked versions this CPU runs: 2, and 3 where it has AVX-512.
std::vector<int> blocked_versions() { return test::cpu_versions_here("gemm", 2); }
const char* version_name(int v) { return v == 1 ? "naive" : v == 2 ? "blocked" : "blocked AVX-512"; }

TEST_CASE("gemm: blocked result does not depend on the thread count", "[gemm]") {
    // Threads split C into slabs of whole tiles, and each tile is summed by one
    // thread in a fixed order, so 1 and 2 threads agree bit for bit. The shapes
    // split C by rows (tall) and by columns (wide and short), in every layout, and are the
    // op harness's CPU shapes (1, sizes just off the micro-tiles (version 2: 6 x 16 float,
    // version 3: 12 x 32) and the 256 K block, shapes crossing KC, MC (288) and NC (512)):
    // the harness checks one thread count against the oracle, this one the other.
    const std::vector<std::vector<int64_t>> shapes = {{300, 530, 270}, {7, 900, 300}, {601, 45, 300}, {1, 1, 1},     {1, 17, 33},
                                                      {17, 1, 65},     {33, 65, 1},   {6, 32, 16},    {12, 32, 16},  {17, 33, 65},
                                                      {65, 127, 33},   {127, 65, 257}, {293, 97, 300}, {13, 517, 270}};
    for (int v : blocked_versions())
    for (const auto& s : shapes)
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                int64_t M = s[0], N = s[1], K = s[2];
                Tensor A = random_tensor(stored_shape(M, K, ta), 7), B = random_tensor(stored_shape(K, N, tb), 8);
                Tensor C0 = random_tensor({M, N}, 9);
                Tensor one, two;
                test::with_threads(1, [&] { one = run_matmul(v, A, ta, B, tb, C0, 1.0, 0.5); });
                test::with_threads(2, [&] { two = run_matmul(v, A, ta, B, tb, C0, 1.0, 0.5); });
                INFO(label(version_name(v), DType::F32, ta, tb, M, N, K));
                CHECK(test::bitwise_equal(one, two));
            }
}

TEST_CASE("gemm: a block of rows computed alone gives the rows of the whole product bit for bit", "[gemm]") {
    // What the TTT loop form's drop-in property rests on (kernels/ttt_loop/ttt_loop.h): each
    // element is summed over K in the same order whatever M, the row offset or the tiling,
    // so Z_[i] Wd^T chunk by chunk equals the plain MLP's Z Wd^T over all rows.
    const int64_t M = 2048, N = 128, K = 384;
    Tensor A = random_tensor({M, K}, 13), B = random_tensor({N, K}, 14);
    std::vector<int> versions = blocked_versions();
    versions.insert(versions.begin(), 1);
    for (int v : versions) {
        ScopedVersion guard("gemm", v);
        Tensor whole = Tensor::empty({M, N});
        ops::matmul(whole, A, false, B, true);
        for (auto [r0, rows] : {std::pair<int64_t, int64_t>{0, 64}, {448, 64}, {1000, 13}, {2047, 1}}) {
            Tensor part = Tensor::empty({rows, N});
            ops::matmul(part, A.rows(r0, r0 + rows), false, B, true);
            INFO("version " << v << ", rows " << r0 << " + " << rows);
            CHECK(test::bitwise_equal(part, whole.rows(r0, r0 + rows)));
        }
    }
}

TEST_CASE("gemm: version 0 is the best blocked version this CPU runs; versions can be switched", "[gemm]") {
    // 3 with AVX-512, else 2 (the rule of kernels/versions.h; tests/test_cpu_isa.cpp lowers the ISA).
    Tensor A = random_tensor({19, 23}, 11), B = random_tensor({23, 41}, 12), C0 = Tensor::zeros({19, 41});
    Tensor best = run_matmul(0, A, false, B, false, C0, 1.0, 0.0);
    const int best_here = ops::op_spec("gemm").cpu.best_here();
    Tensor blocked = run_matmul(best_here, A, false, B, false, C0, 1.0, 0.0);
    CHECK(test::bitwise_equal(best, blocked));
    CHECK(ops::selected_version("gemm", Device::CPU, "test") == best_here);
    {
        ScopedVersion guard("gemm", 1);
        CHECK(ops::version("gemm") == 1);
    }
    CHECK(ops::version("gemm") == 0);
    // An unknown version is refused when it is set, before any op runs.
    CHECK_THROWS_WITH(ops::set_version("gemm", 7), Catch::Contains("expected 0 (best) to 5, found 7"));
    CHECK(ops::version("gemm") == 0);
}

TEST_CASE("gemm AVX-512: integer products come out exact on every edge of the tile", "[gemm][avx512]") {
    // Integer inputs, whose products and sums are exact in float, give exactly the integer
    // answer, on every edge of the 12 x 32 tile. (The file's GCC 12 pin: tests/test_cpu_isa.cpp.)
    if (test::cpu_versions_here("gemm", 3).empty()) return;  // counted and reported: no AVX-512 here

    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{12, 32, 7}, {13, 33, 300}, {11, 31, 5}, {25, 70, 257}})
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                test::IntegerGemmCase g = test::integer_gemm_case(ta, tb, M, N, K);
                kernels::gemm_blocked_avx512_cpu<float>(ta, tb, M, N, K, 2.f, g.A.data(), g.lda, g.B.data(), g.ldb, -1.f, g.C.data(), g.ldc);
                INFO(label("blocked AVX-512", DType::F32, ta, tb, M, N, K));
                CHECK(g.C == g.expected);
            }
}

TEST_CASE("gemm: 3-D batched matmul equals one 2-D matmul per batch", "[gemm]") {
    const int64_t batch = 3, M = 17, N = 33, K = 40;
    for (DType dt : {DType::F32, DType::F64})
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                Shape sa = stored_shape(M, K, ta), sb = stored_shape(K, N, tb);
                Tensor A = random_tensor({batch, sa[0], sa[1]}, 21, 1.0, dt);
                Tensor B = random_tensor({batch, sb[0], sb[1]}, 22, 1.0, dt);
                Tensor C0 = random_tensor({batch, M, N}, 23, 1.0, dt);
                Tensor C = run_matmul(0, A, ta, B, tb, C0, 1.0, 0.5);
                for (int64_t b = 0; b < batch; ++b) {
                    Tensor Ab = A.rows(b, b + 1).view(sa), Bb = B.rows(b, b + 1).view(sb);
                    Tensor Cb0 = C0.rows(b, b + 1).view({M, N});
                    Tensor expected = reference(Ab, ta, Bb, tb, Cb0, 1.0, 0.5);
                    CHECK(check_close(C.rows(b, b + 1).view({M, N}), expected, atol_for(dt), rtol_for(dt),
                                      cat(label("batched", dt, ta, tb, M, N, K), " batch ", b)));
                }
            }
}

TEST_CASE("gemm: linear is x @ W^T over all leading dimensions", "[gemm]") {
    for (DType dt : {DType::F32, DType::F64}) {
        Tensor x = random_tensor({2, 5, 17}, 31, 1.0, dt);   // (B, n, in)
        Tensor W = random_tensor({33, 17}, 32, 1.0, dt);     // (out, in)
        Tensor y0 = random_tensor({2, 5, 33}, 33, 1.0, dt);  // (B, n, out)
        Tensor expected = reference(x.view({10, 17}), false, W, true, y0.view({10, 33}), 1.0, 0.25);
        Tensor y = y0.clone();
        ops::linear(y, x, W, 0.25);
        CHECK(check_close(y.view({10, 33}), expected, atol_for(dt), rtol_for(dt), cat("linear ", dtype_name(dt))));
    }
}

TEST_CASE("gemm: bad shapes and dtypes throw errors that name the problem", "[gemm]") {
    Tensor A = Tensor::zeros({4, 5}), B = Tensor::zeros({5, 6}), C = Tensor::zeros({4, 6});
    Tensor B_bad = Tensor::zeros({7, 6});
    CHECK_THROWS_WITH(ops::matmul(C, A, false, B_bad, false), Catch::Contains("inner dimensions differ") && Catch::Contains("4 x 5"));
    CHECK_THROWS_WITH(ops::matmul(C, A, true, B, false), Catch::Contains("inner dimensions differ"));
    Tensor C_bad = Tensor::zeros({4, 7});
    CHECK_THROWS_WITH(ops::matmul(C_bad, A, false, B, false), Catch::Contains("expected 4 x 6"));
    Tensor B64 = Tensor::zeros({5, 6}, DType::F64);
    CHECK_THROWS_WITH(ops::matmul(C, A, false, B64, false), Catch::Contains("dtype and device must match"));
    Tensor Ai = Tensor::zeros({4, 5}, DType::I32);
    CHECK_THROWS_WITH(ops::matmul(C, Ai, false, Ai, false), Catch::Contains("expected F32 or F64"));
    Tensor B3 = Tensor::zeros({1, 5, 6});
    CHECK_THROWS_WITH(ops::matmul(C, A, false, B3, false), Catch::Contains("must all be 2-D or all 3-D"));
    Tensor A3 = Tensor::zeros({2, 4, 5}), C3 = Tensor::zeros({2, 4, 6}), B3_other = Tensor::zeros({3, 5, 6});
    CHECK_THROWS_WITH(ops::matmul(C3, A3, false, B3_other, false), Catch::Contains("batch sizes differ"));

    Tensor x = Tensor::zeros({3, 5}), W = Tensor::zeros({6, 5}), y = Tensor::zeros({3, 6});
    CHECK_THROWS_WITH(ops::linear(y, x, Tensor::zeros({6, 5, 1})), Catch::Contains("W must be 2-D"));
    CHECK_THROWS_WITH(ops::linear(y, Tensor::zeros({3, 4}), W), Catch::Contains("expected in = 5"));
    Tensor y_bad = Tensor::zeros({3, 7});
    CHECK_THROWS_WITH(ops::linear(y_bad, x, W), Catch::Contains("must hold 3 x 6 values"));
}

TEST_CASE("gemm versions that only CUDA has: a CPU matmul refuses them", "[gemm]") {
    Tensor A = random_tensor({4, 3}, 7100), B = random_tensor({3, 5}, 7101), C = Tensor::zeros({4, 5});
    const ops::OpSpec& gemm = ops::op_spec("gemm");
    int refused = 0;
    for (const ops::VersionInfo& cuda : gemm.cuda.versions) {
        const int v = cuda.number;
        if (gemm.cpu.find(v) != nullptr) continue;
        ++refused;
        ScopedVersion use("gemm", v);  // accepted when set: some device has it
        CHECK_THROWS_WITH(ops::matmul(C, A, false, B, false), Catch::Contains(cat("gemm: no CPU version ", v)));
    }
    CHECK(refused > 0);
}
