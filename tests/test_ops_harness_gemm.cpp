// The op harness's descriptions of gemm (tests/ops_harness.h): ops::matmul 2-D and 3-D
// (strided batched) and ops::linear; and of gemv, ops::gemv on a few rows.
//
// Shapes are ragged on purpose: 1, 17, 33, sizes one below / at / above the tiles the versions
// use (the CPU micro-tile 6 x 32, its K block 256 and M, N blocks 288 and 512; the CUDA
// 32-, 64- and 128-wide tiles), exact 128 x 128 x 32 tiles (where CUDA version 5 runs the
// tensor cores), in all four layouts NN, NT, TN, TT, with alpha and beta; beta == 0 over a C
// full of NaN (C must not be read), K == 0 (C = beta C), 3-D batches and linear over (B, n, in).
#include <array>
#include <cmath>

#include "kernels/gemm/gemm.h"
#include "ops_harness.h"

namespace ittt::test::harness {

namespace {

enum class Form { Matmul, Linear };

struct GemmShape {
    int64_t M, N, K;
    bool ta, tb;
    double alpha, beta;
    int64_t batch = 0;  // 0: 2-D; otherwise a 3-D (batch, ...) product
    Form form = Form::Matmul;
};

Shape stored(int64_t rows, int64_t cols, bool trans) { return trans ? Shape{cols, rows} : Shape{rows, cols}; }

std::string describe(const GemmShape& s) {
    if (s.form == Form::Linear) return cat("linear x (2, 5, ", s.K, ") W (", s.N, ", ", s.K, ") beta=", s.beta);
    return cat(s.batch ? cat("batch=", s.batch, " ") : std::string(), "M=", s.M, " N=", s.N, " K=", s.K, " ", layout(s.ta, s.tb),
               " alpha=", s.alpha, " beta=", s.beta);
}

// Whether CUDA version 5 runs this call on the tensor cores (else it runs version 4), asked
// with fresh device buffers of the call's shapes, aligned as the harness's copies are.
bool tf32_applies(const GemmShape& s) {
#if ITTT_WITH_CUDA
    const int64_t batch = s.batch ? s.batch : 1, lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    Tensor A = Tensor::zeros({batch * s.M * s.K}, DType::F32, Device::CUDA), B = Tensor::zeros({batch * s.K * s.N}, DType::F32, Device::CUDA);
    Tensor C = Tensor::zeros({batch * s.M * s.N}, DType::F32, Device::CUDA);
    return s.form == Form::Matmul && kernels::gemm_cuda_tf32_applicable(s.M, s.N, s.K, A.data<float>(), lda, s.M * s.K, B.data<float>(), ldb,
                                                                       s.K * s.N, C.data<float>(), s.N, s.M * s.N, batch);
#else
    (void)s;
    return false;
#endif
}

Case make_case(const GemmShape& s, uint64_t seed) {
    Case c;
    c.shape = describe(s);
    c.inputs = [s, seed] {
        Named in;
        if (s.form == Form::Linear) {
            in.add("x", normal({2, 5, s.K}, seed));
            in.add("W", normal({s.N, s.K}, seed + 1));
            in.add("y0", normal({2, 5, s.N}, seed + 2));
            return in;
        }
        Shape a = stored(s.M, s.K, s.ta), b = stored(s.K, s.N, s.tb), cs = {s.M, s.N};
        if (s.batch) {
            a.insert(a.begin(), s.batch);
            b.insert(b.begin(), s.batch);
            cs.insert(cs.begin(), s.batch);
        }
        in.add("A", normal(a, seed));
        in.add("B", normal(b, seed + 1));
        if (s.beta != 0) in.add("C0", normal(cs, seed + 2));
        return in;
    };
    c.run = [s](Named& in, const Target& t) {
        Named out;
        if (s.form == Form::Linear) {
            Tensor y = in["y0"];
            ops::linear(y, in["x"], in["W"], s.beta);
            out.add("y", y);
            return out;
        }
        // beta == 0: C starts as NaN, which the op must neither read nor leave behind.
        const Shape c_shape = s.batch ? Shape{s.batch, s.M, s.N} : Shape{s.M, s.N};
        Tensor C = s.beta != 0 ? in["C0"] : nan_output(c_shape, t);
        ops::matmul(C, in["A"], s.ta, in["B"], s.tb, s.alpha, s.beta);
        out.add("C", C);
        return out;
    };
    // Stricter than the table's rows (written for K = 300), the error models of the old
    // per-device tests, where they apply:
    // - FP32 (versions 1 to 4, and 5 where it falls back to 4): each of the K additions rounds at
    //   6e-8 of a partial sum of size ~sqrt(k), in random directions: ~6e-8 K / sqrt(2) (rms);
    //   1e-6 K |alpha| is > 20x that.
    // - TF32 (version 5 on exact tiles): inputs keep 10 mantissa bits, a product is off by
    //   ~4e-4 (rms), and K of them add like a random walk: 5e-3 sqrt(K) |alpha| is > 10 sigma.
    // - K == 0: C = beta C is one multiply (by 0.5: exact), or zeros.
    c.tighter = [s](const Target& t) {
        std::vector<Tighter> k;
        const std::string output = s.form == Form::Linear ? "y" : "C";
        if (s.K == 0) k.push_back({output, Tighter::F64Reference, 0, 1e-7, false, "beta C: one multiply, or zeros"});
        if (t.device != Device::CUDA) return k;
        const double scale = s.form == Form::Linear ? 1.0 : std::fabs(s.alpha), K = static_cast<double>(s.K);
        if (t.version == 5 && tf32_applies(s))
            k.push_back({output, Tighter::F64Reference, 5e-3 * std::sqrt(K) * scale + 1e-6, 1e-5, false, "TF32: ~4e-4 per product, sqrt(K) of them"});
        else
            k.push_back({output, Tighter::F64Reference, 1e-6 * K * scale + 1e-7, 1e-5, false, "F32: 6e-8 per addition, K additions"});
        return k;
    };
    return c;
}

// The gemv op: ops::gemv (2-D, CPU) on a few rows, the decode shapes' layouts and edges.
Case make_gemv_case(const GemmShape& s, uint64_t seed) {
    Case c;
    c.shape = describe(s);
    c.inputs = [s, seed] {
        Named in;
        in.add("A", normal(stored(s.M, s.K, s.ta), seed));
        in.add("B", normal(stored(s.K, s.N, s.tb), seed + 1));
        if (s.beta != 0) in.add("C0", normal({s.M, s.N}, seed + 2));
        return in;
    };
    c.run = [s](Named& in, const Target& t) {
        Tensor C = s.beta != 0 ? in["C0"] : nan_output({s.M, s.N}, t);  // beta == 0: C must not be read
        ops::gemv(C, in["A"], s.ta, in["B"], s.tb, s.alpha, s.beta);
        Named out;
        out.add("C", C);
        return out;
    };
    c.tighter = [s](const Target&) {
        std::vector<Tighter> k;
        if (s.K == 0) k.push_back({"C", Tighter::F64Reference, 0, 1e-7, false, "beta C: one multiply, or zeros"});
        return k;
    };
    return c;
}

}  // namespace

OpTest describe_gemv() {
    OpTest op;
    op.op = "gemv";
    op.no_backward_why = "a product; its backward is more products (gemm's)";
    uint64_t seed = 5000;
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            // 1 to 4 rows (one pass over op(B) each), 5 and 7 (a second pass); N around the 8- and
            // 16-lane vectors; K around their transposed blocks and the 256 K block.
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {1, 17, 33}, {2, 16, 256}, {3, 7, 257}, {4, 33, 300},
                                                                       {5, 65, 15}, {7, 24, 520}})
                op.cases.push_back(make_gemv_case({M, N, K, ta, tb, 1.0, 0.0}, seed += 10));
            // alpha and beta (beta 1: o_proj adds to the residual), beta 0 with alpha != 1 over NaN
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 129, 300}, {4, 31, 17}})
                for (auto [alpha, beta] : std::vector<std::array<double, 2>>{{0.7, -0.4}, {1.0, 1.0}, {1.5, 0.0}})
                    op.cases.push_back(make_gemv_case({M, N, K, ta, tb, alpha, beta}, seed += 10));
        }
    // K == 0: C = beta C, and zeros over NaN when beta == 0.
    op.cases.push_back(make_gemv_case({3, 40, 0, false, true, 2.0, 0.5}, seed += 10));
    op.cases.push_back(make_gemv_case({3, 40, 0, false, true, 2.0, 0.0}, seed += 10));
    return op;
}

OpTest describe_gemm() {
    OpTest op;
    op.op = "gemm";
    op.no_backward_why = "the backward of a product is two more products (the model's linear layers); gemm has no backward of its own";
    op.small_stride = 3;
    uint64_t seed = 1000;
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            // Around the CPU's tiles (6 x 32 micro-tile, K block 256, M block 288, N block 512),
            // alpha 1 and beta 0 over NaN.
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {1, 17, 33}, {17, 1, 65}, {33, 65, 1}, {6, 32, 16},
                                                                       {17, 33, 65}, {65, 127, 33}, {127, 65, 257}, {293, 97, 300},
                                                                       {13, 517, 270}})
                op.cases.push_back(make_case({M, N, K, ta, tb, 1.0, 0.0}, seed += 10));
            // Around the CUDA tiles (8, 32, 128) and exact 128 x 128 x 32 tiles, alpha 0.7 and beta -0.4.
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {17, 33, 7}, {127, 129, 128}, {128, 128, 128},
                                                                       {129, 127, 257}, {257, 33, 17}, {64, 300, 130}, {128, 256, 32},
                                                                       {256, 128, 96}})
                op.cases.push_back(make_case({M, N, K, ta, tb, 0.7, -0.4}, seed += 10));
            // beta == 0 with alpha != 1, over NaN, on tiles partial and exact.
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{17, 33, 65}, {129, 127, 40}, {128, 128, 64}, {37, 45, 29}})
                op.cases.push_back(make_case({M, N, K, ta, tb, 1.5, 0.0}, seed += 10));
            op.cases.push_back(make_case({37, 45, 29, ta, tb, 0.5, -1.5}, seed += 10));
            // A few rows: the blocked versions' gemv path (M <= 4), across the K block of 256 and
            // on both sides of the row limit, with beta 0 over NaN and beta 1 (decode's o_proj).
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{2, 45, 300}, {3, 129, 520}, {4, 33, 257}, {5, 40, 70}})
                op.cases.push_back(make_case({M, N, K, ta, tb, 1.0, M == 3 ? 1.0 : 0.0}, seed += 10));
            // 3-D: three matrices, strided.
            for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{17, 33, 40}, {1, 129, 7}, {128, 128, 64}})
                op.cases.push_back(make_case({M, N, K, ta, tb, 1.0, 0.5, 3}, seed += 10));
        }
    // K == 0: C = beta C, and zeros over NaN when beta == 0.
    op.cases.push_back(make_case({33, 130, 0, false, false, 2.0, 0.5}, seed += 10));
    op.cases.push_back(make_case({33, 130, 0, false, false, 2.0, 0.0}, seed += 10));
    // linear: x (2, 5, 17) @ W^T + 0.25 y over all leading dimensions.
    GemmShape linear{10, 33, 17, false, true, 1.0, 0.25};
    linear.form = Form::Linear;
    op.cases.push_back(make_case(linear, seed += 10));
    return op;
}

}  // namespace ittt::test::harness
