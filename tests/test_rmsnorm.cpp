// Tests of ops::rmsnorm_forward / rmsnorm_backward (kernels/rmsnorm): the definition, hand-worked
// values, edge cases and errors. Every version on every device in F64 and F32, and the backward
// against finite differences, are in the op harness (tests/test_ops_harness.cpp).
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {

const double kEps = 1e-6;  // Qwen3's rms_norm_eps

// Shapes of x; the weight has x's last dim. (3, 5, 16) is the per-head q/k norm,
// 130 spans three 64-column blocks of the dweight pass.
const Shape kShapes[] = {{1, 1}, {17, 33}, {3, 5, 16}, {2, 130}};

struct RmsnormReference {
    std::vector<double> out, rstd;
};

// Straight from the definition, in double.
RmsnormReference rmsnorm_reference(const Tensor& x, const Tensor& weight, double eps) {
    std::vector<double> xv = x.to_f64_vector(), w = weight.to_f64_vector();
    const size_t dim = w.size(), rows = xv.size() / dim;
    RmsnormReference ref;
    for (size_t r = 0; r < rows; ++r) {
        double mean_square = 0;
        for (size_t j = 0; j < dim; ++j) mean_square += xv[r * dim + j] * xv[r * dim + j] / static_cast<double>(dim);
        const double rstd = 1.0 / std::sqrt(mean_square + eps);
        ref.rstd.push_back(rstd);
        for (size_t j = 0; j < dim; ++j) ref.out.push_back(xv[r * dim + j] * rstd * w[j]);
    }
    return ref;
}

struct RmsnormResult {
    Tensor out, rstd;
};
RmsnormResult rmsnorm(const Tensor& x, const Tensor& weight, double eps = kEps) {
    RmsnormResult r{Tensor::empty(x.shape(), x.dtype()), Tensor::empty({x.numel() / weight.numel()}, x.dtype())};
    ops::rmsnorm_forward(r.out, r.rstd, x, weight, eps);
    return r;
}

struct RmsnormGrads {
    Tensor dx, dweight;
};
// dweight starts at zero, so it holds exactly this call's gradient.
RmsnormGrads rmsnorm_grads(const Tensor& dout, const Tensor& x, const Tensor& weight) {
    RmsnormResult fwd = rmsnorm(x, weight);
    RmsnormGrads g{Tensor::empty(x.shape(), x.dtype()), Tensor::zeros(weight.shape(), x.dtype())};
    ops::rmsnorm_backward(g.dx, g.dweight, dout, x, weight, fwd.rstd);
    return g;
}

}  // namespace

TEST_CASE("rmsnorm forward matches the definition, ragged shapes, F32 and F64", "[rmsnorm]") {
    for (const Shape& shape : kShapes) {
        for (DType dtype : {DType::F32, DType::F64}) {
            Tensor x = random_tensor(shape, 1, 1.0, dtype);
            Tensor weight = random_tensor({shape.back()}, 2, 1.0, dtype);
            RmsnormResult r = rmsnorm(x, weight);
            RmsnormReference ref = rmsnorm_reference(x, weight, kEps);
            const std::string name = shape_str(shape) + (dtype == DType::F32 ? " F32" : " F64");
            // The reference sums in another order (and divides each term): a few ulp.
            const double tol = dtype == DType::F32 ? 1e-6 : 1e-14;
            CHECK(check_close(r.out.to_f64_vector(), ref.out, tol, tol, "out " + name));
            CHECK(check_close(r.rstd.to_f64_vector(), ref.rstd, 0, tol, "rstd " + name));
        }
    }
}

TEST_CASE("rmsnorm uses the weight directly (Qwen3), not 1 + weight", "[rmsnorm]") {
    // Hand-worked: x = (3, 4), mean(x^2) = 12.5, rstd = 1/sqrt(12.5) with eps 0.
    Tensor x = Tensor::from_vector<double>({3, 4}, {1, 2});
    Tensor weight = Tensor::from_vector<double>({2, 0}, {2});
    RmsnormResult r = rmsnorm(x, weight, 0.0);
    const double rstd = 1 / std::sqrt(12.5);
    // One division and a few products in double.
    CHECK(check_close(r.out.to_f64_vector(), {6 * rstd, 0}, 1e-15, 1e-15, "out"));
    CHECK(check_close(r.rstd.to_f64_vector(), {rstd}, 0, 1e-15, "rstd"));
}

TEST_CASE("rmsnorm of a zero row is zero with rstd = 1/sqrt(eps), and its gradient is finite", "[rmsnorm]") {
    Tensor x = Tensor::zeros({2, 8});
    Tensor weight = random_tensor({8}, 3);
    RmsnormResult r = rmsnorm(x, weight);
    CHECK(ops::sum_squares(r.out) == 0);
    // 1/sqrt(1e-6) = 1000, rounded once to float.
    CHECK(check_close(r.rstd.to_f64_vector(), {1000, 1000}, 0, 1e-7, "rstd"));
    RmsnormGrads g = rmsnorm_grads(random_tensor({2, 8}, 4), x, weight);
    CHECK(ops::all_finite(g.dx));
    CHECK(ops::all_finite(g.dweight));
}

TEST_CASE("rmsnorm rstd keeps float precision for long rows of large values", "[rmsnorm]") {
    // Squares near 1e8 summed 4099 times: a float accumulator would lose ~1e-6
    // of rstd; summing in double leaves only the final rounding to float.
    Tensor x = random_tensor({3, 4099}, 5, 1.0, DType::F64);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] += 1e4;
    Tensor x32 = x.to_dtype(DType::F32);
    Tensor weight = Tensor::zeros({4099});
    ops::fill(weight, 1.0);
    RmsnormResult r = rmsnorm(x32, weight);
    RmsnormReference ref = rmsnorm_reference(x32, weight, kEps);
    // One rounding to float: 2^-24 ~ 6e-8 relative.
    CHECK(check_close(r.rstd.to_f64_vector(), ref.rstd, 0, 1.2e-7, "rstd of large rows"));
}

TEST_CASE("rmsnorm backward accumulates dweight and may write dx into dout", "[rmsnorm]") {
    Tensor x = random_tensor({5, 16}, 12, 1.0, DType::F64);
    Tensor weight = random_tensor({16}, 13, 1.0, DType::F64);
    Tensor dout = random_tensor({5, 16}, 14, 1.0, DType::F64);
    RmsnormResult fwd = rmsnorm(x, weight);
    RmsnormGrads fresh = rmsnorm_grads(dout, x, weight);

    Tensor start = random_tensor({16}, 15, 1.0, DType::F64);
    Tensor dweight = start.clone();
    Tensor dx_in_dout = dout.clone();
    ops::rmsnorm_backward(dx_in_dout, dweight, dx_in_dout, x, weight, fwd.rstd);
    CHECK(bitwise_equal(dx_in_dout, fresh.dx));
    std::vector<double> expected = start.to_f64_vector(), grad = fresh.dweight.to_f64_vector();
    for (size_t j = 0; j < expected.size(); ++j) expected[j] += grad[j];
    // One addition in double.
    CHECK(check_close(dweight.to_f64_vector(), expected, 0, 1e-15, "accumulated dweight"));
}

TEST_CASE("rmsnorm gives the same bits for 1 and 2 threads", "[rmsnorm]") {
    // 700 x 100 is above the kernels' threshold for going parallel.
    Tensor x = random_tensor({700, 100}, 16);
    Tensor weight = random_tensor({100}, 17);
    Tensor dout = random_tensor({700, 100}, 18);
    std::vector<RmsnormResult> fwd;
    std::vector<RmsnormGrads> grads;
    for (int threads : {1, 2, 2}) {
        with_threads(threads, [&] {
            fwd.push_back(rmsnorm(x, weight));
            grads.push_back(rmsnorm_grads(dout, x, weight));
        });
    }
    for (int i : {1, 2}) {
        CHECK(bitwise_equal(fwd[0].out, fwd[i].out));
        CHECK(bitwise_equal(fwd[0].rstd, fwd[i].rstd));
        CHECK(bitwise_equal(grads[0].dx, grads[i].dx));
        CHECK(bitwise_equal(grads[0].dweight, grads[i].dweight));
    }
}

TEST_CASE("rmsnorm rejects bad shapes, dtypes and eps with a message naming them", "[rmsnorm]") {
    Tensor x = random_tensor({4, 8}, 19);
    Tensor out = Tensor::empty({4, 8}), rstd = Tensor::empty({4});
    Tensor weight6 = Tensor::zeros({6});
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out, rstd, x, weight6, kEps),
                      Catch::Contains("rmsnorm_forward: x is F32 (4, 8)") && Catch::Contains("last dim to be 6"));
    Tensor weight = Tensor::zeros({8});
    Tensor rstd5 = Tensor::empty({5});
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out, rstd5, x, weight, kEps),
                      Catch::Contains("rstd is F32 (5)") && Catch::Contains("expected 4 elements"));
    Tensor weight64 = Tensor::zeros({8}, DType::F64);
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out, rstd, x, weight64, kEps), Catch::Contains("dtype and device must match"));
    Tensor out_wrong = Tensor::empty({8, 4});
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out_wrong, rstd, x, weight, kEps), Catch::Contains("shapes must match"));
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out, rstd, x, weight, -1.0), Catch::Contains("eps must be finite and >= 0"));
    Tensor dx = Tensor::empty({4, 8}), dweight = Tensor::zeros({8}), dout_wrong = Tensor::zeros({4, 9});
    CHECK_THROWS_WITH(ops::rmsnorm_backward(dx, dweight, dout_wrong, x, weight, rstd),
                      Catch::Contains("rmsnorm_backward: dout is F32 (4, 9)"));
    Tensor dweight_wrong = Tensor::zeros({9}), dout = Tensor::zeros({4, 8});
    CHECK_THROWS_WITH(ops::rmsnorm_backward(dx, dweight_wrong, dout, x, weight, rstd),
                      Catch::Contains("dweight is F32 (9)"));
}
