// Tests of ops::swiglu_forward / swiglu_backward (kernels/swiglu): the definition, large |g|,
// aliasing and errors. Every version on every device in F64 and F32, and the backward against
// finite differences, are in the op harness (tests/test_ops_harness.cpp).
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {

const Shape kShapes[] = {{1}, {17, 33}, {3, 5, 7}};

// silu(g) * u straight from the definition, in double.
std::vector<double> swiglu_reference(const Tensor& g, const Tensor& u) {
    std::vector<double> gv = g.to_f64_vector(), uv = u.to_f64_vector(), z;
    for (size_t i = 0; i < gv.size(); ++i) z.push_back(gv[i] / (1 + std::exp(-gv[i])) * uv[i]);
    return z;
}

Tensor swiglu(const Tensor& g, const Tensor& u) {
    Tensor z = Tensor::empty(g.shape(), g.dtype());
    ops::swiglu_forward(z, g, u);
    return z;
}

struct SwigluGrads {
    Tensor dg, du;
};
SwigluGrads swiglu_grads(const Tensor& dz, const Tensor& g, const Tensor& u) {
    SwigluGrads r{Tensor::empty(g.shape(), g.dtype()), Tensor::empty(g.shape(), g.dtype())};
    ops::swiglu_backward(r.dg, r.du, dz, g, u);
    return r;
}

}  // namespace

TEST_CASE("swiglu forward matches silu(g) * u, ragged shapes, F32 and F64", "[swiglu]") {
    for (const Shape& shape : kShapes) {
        for (DType dtype : {DType::F32, DType::F64}) {
            Tensor g = random_tensor(shape, 1, 3.0, dtype);
            Tensor u = random_tensor(shape, 2, 1.0, dtype);
            const std::string name = shape_str(shape) + (dtype == DType::F32 ? " F32" : " F64");
            // F64: one exp and a few operations, a few ulp. F32: the same in float.
            const double tol = dtype == DType::F32 ? 1e-6 : 1e-14;
            CHECK(check_close(swiglu(g, u).to_f64_vector(), swiglu_reference(g, u), tol, tol, "z " + name));
        }
    }
}

TEST_CASE("swiglu stays finite and correct for large |g|", "[swiglu]") {
    // Past -88 (float) and -709 (double) exp(-g) overflows; past -103 (float) the
    // sigmoid itself underflows to 0.
    const std::vector<double> gs = {-1000, -720, -100, -89, -30, 0, 30, 89, 100, 720, 1000};
    const int64_t n = static_cast<int64_t>(gs.size());
    for (DType dtype : {DType::F32, DType::F64}) {
        Tensor g = Tensor::from_vector<double>(gs, {n}).to_dtype(dtype);
        Tensor u = random_tensor({n}, 9, 1.0, dtype);
        Tensor dz = random_tensor({n}, 10, 1.0, dtype);
        Tensor z = swiglu(g, u);
        SwigluGrads grads = swiglu_grads(dz, g, u);
        CHECK(ops::all_finite(z));
        CHECK(ops::all_finite(grads.dg));
        CHECK(ops::all_finite(grads.du));
        // In double the plain formulas are fine here: exp overflowing to inf gives
        // a sigmoid of exactly 0, which is the right limit.
        std::vector<double> uv = u.to_f64_vector(), dzv = dz.to_f64_vector(), dg_ref;
        for (int64_t i = 0; i < n; ++i) {
            const double sigmoid = 1 / (1 + std::exp(-gs[i]));
            dg_ref.push_back(dzv[i] * uv[i] * sigmoid * (1 + gs[i] * (1 - sigmoid)));
        }
        const std::string name = dtype == DType::F32 ? "F32" : "F64";
        // A few roundings of the working precision; atol covers the denormal
        // tails of float near g = -100.
        const double rtol = dtype == DType::F32 ? 1e-6 : 1e-14;
        CHECK(check_close(z.to_f64_vector(), swiglu_reference(g, u), 1e-30, rtol, "z at large |g| " + name));
        CHECK(check_close(grads.dg.to_f64_vector(), dg_ref, 1e-30, rtol, "dg at large |g| " + name));
    }
}

TEST_CASE("swiglu may write z into g and dg or du into dz", "[swiglu]") {
    Tensor g = random_tensor({5, 9}, 11, 2.0);
    Tensor u = random_tensor({5, 9}, 12);
    Tensor dz = random_tensor({5, 9}, 13);
    Tensor z_in_g = g.clone();
    ops::swiglu_forward(z_in_g, z_in_g, u);
    CHECK(bitwise_equal(z_in_g, swiglu(g, u)));
    SwigluGrads fresh = swiglu_grads(dz, g, u);
    Tensor dg_in_dz = dz.clone(), du = Tensor::empty({5, 9});
    ops::swiglu_backward(dg_in_dz, du, dg_in_dz, g, u);
    CHECK(bitwise_equal(dg_in_dz, fresh.dg));
    CHECK(bitwise_equal(du, fresh.du));
    Tensor du_in_dz = dz.clone(), dg = Tensor::empty({5, 9});
    ops::swiglu_backward(dg, du_in_dz, du_in_dz, g, u);
    CHECK(bitwise_equal(dg, fresh.dg));
    CHECK(bitwise_equal(du_in_dz, fresh.du));
}

TEST_CASE("swiglu gives the same bits on repeated runs", "[swiglu]") {
    // 300 x 300 is above the kernel's threshold for going parallel.
    Tensor g = random_tensor({300, 300}, 14, 3.0);
    Tensor u = random_tensor({300, 300}, 15);
    Tensor dz = random_tensor({300, 300}, 16);
    CHECK(bitwise_equal(swiglu(g, u), swiglu(g, u)));
    SwigluGrads a = swiglu_grads(dz, g, u), b = swiglu_grads(dz, g, u);
    CHECK(bitwise_equal(a.dg, b.dg));
    CHECK(bitwise_equal(a.du, b.du));
}

TEST_CASE("swiglu rejects mismatched shapes and dtypes with a message naming them", "[swiglu]") {
    Tensor g = random_tensor({3, 4}, 17), u = random_tensor({3, 5}, 18), z = Tensor::empty({3, 4});
    CHECK_THROWS_WITH(ops::swiglu_forward(z, g, u),
                      Catch::Contains("swiglu_forward: g is F32 (3, 4)") && Catch::Contains("u is F32 (3, 5)"));
    Tensor u64 = random_tensor({3, 4}, 19, 1.0, DType::F64);
    CHECK_THROWS_WITH(ops::swiglu_forward(z, g, u64), Catch::Contains("dtype and device must match"));
    Tensor u4 = random_tensor({3, 4}, 20), dg = Tensor::empty({3, 4}), du = Tensor::empty({4, 3}), dz = Tensor::zeros({3, 4});
    CHECK_THROWS_WITH(ops::swiglu_backward(dg, du, dz, g, u4),
                      Catch::Contains("swiglu_backward: du is F32 (4, 3)") && Catch::Contains("shapes must match"));
}
