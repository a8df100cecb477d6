// Tests of ops::adamw_step (against a scalar sequence worked in double) and
// ops::clip_grad_norm. Every version on every device in F64 and F32 is in the op harness
// (tests/test_ops_harness.cpp).
#include <cmath>
#include <limits>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::bitwise_equal;
using ittt::test::check_close;
using ittt::test::random_tensor;

namespace {

// The gradient of element i at step s (from 1): varied in sign and size, one exact zero.
double scripted_grad(int64_t i, int64_t s) { return i == 2 ? 0.0 : std::sin(1.7 * static_cast<double>(i) + s) * (1 + 0.3 * s); }

struct AdamWScalarState {
    double param, m = 0, v = 0;
};

// The update rule written out for one scalar, exactly as in the paper's algorithm box.
void adamw_scalar(AdamWScalarState& st, double g, const ops::AdamWConfig& cfg, int64_t step) {
    st.m = cfg.beta1 * st.m + (1 - cfg.beta1) * g;
    st.v = cfg.beta2 * st.v + (1 - cfg.beta2) * g * g;
    double m_hat = st.m / (1 - std::pow(cfg.beta1, static_cast<double>(step)));
    double v_hat = st.v / (1 - std::pow(cfg.beta2, static_cast<double>(step)));
    st.param -= cfg.lr * (m_hat / (std::sqrt(v_hat) + cfg.eps) + cfg.weight_decay * st.param);
}

}  // namespace

TEST_CASE("adamw_step: the first step by hand", "[adamw]") {
    // m = v = 0 before step 1, so mhat = g and vhat = g^2 exactly:
    // p1 = p0 - lr * (g / (|g| + eps) + wd * p0) = 1 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.01).
    ops::AdamWConfig cfg;
    cfg.lr = 0.1;
    cfg.weight_decay = 0.01;
    Tensor p = Tensor::from_vector<double>({1.0}, {1});
    Tensor g = Tensor::from_vector<double>({0.5}, {1});
    Tensor m = Tensor::zeros({1}, DType::F64), v = Tensor::zeros({1}, DType::F64);
    ops::adamw_step(p, g, m, v, cfg, 1);
    const double expected = 1.0 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.01);  // 0.899000002
    // Four or five double operations apart from the closed form.
    CHECK(check_close(p, Tensor::from_vector<double>({expected}, {1}), 0, 1e-15, "param after step 1"));
    CHECK(check_close(m, Tensor::from_vector<double>({0.1 * 0.5}, {1}), 0, 1e-15, "m after step 1"));
    CHECK(check_close(v, Tensor::from_vector<double>({0.05 * 0.25}, {1}), 0, 1e-15, "v after step 1"));
}

TEST_CASE("adamw_step follows a scalar sequence worked in double", "[adamw]") {
    ops::AdamWConfig cfg;
    cfg.lr = 0.05;
    cfg.beta1 = 0.8;
    cfg.beta2 = 0.9;
    cfg.eps = 1e-6;
    cfg.weight_decay = 0.1;
    const int64_t n = 17, steps = 6;
    for (DType dtype : {DType::F32, DType::F64}) {
        INFO(dtype_name(dtype));
        Tensor p0 = random_tensor({n}, 21, 1.0, DType::F64);
        Tensor p = p0.to_dtype(dtype), m = Tensor::zeros({n}, dtype), v = Tensor::zeros({n}, dtype);
        std::vector<AdamWScalarState> ref;
        for (double x : p.to_f64_vector()) ref.push_back({x});
        for (int64_t s = 1; s <= steps; ++s) {
            std::vector<double> g(n);
            for (int64_t i = 0; i < n; ++i) g[i] = scripted_grad(i, s);
            ops::adamw_step(p, Tensor::from_vector(g, {n}).to_dtype(dtype), m, v, cfg, s);
            for (int64_t i = 0; i < n; ++i) adamw_scalar(ref[i], g[i], cfg, s);
        }
        std::vector<double> ref_p, ref_m, ref_v;
        for (const AdamWScalarState& st : ref) {
            ref_p.push_back(st.param);
            ref_m.push_back(st.m);
            ref_v.push_back(st.v);
        }
        // F64: the same operations in the same order. F32: ~10 float roundings per
        // step over 6 steps, and the first step divides g by |g| + eps, so ~1e-6 absolute.
        const double atol = dtype == DType::F32 ? 1e-5 : 1e-14, rtol = dtype == DType::F32 ? 1e-5 : 1e-13;
        CHECK(check_close(p.to_f64_vector(), ref_p, atol, rtol, "param"));
        CHECK(check_close(m.to_f64_vector(), ref_m, atol, rtol, "m"));
        CHECK(check_close(v.to_f64_vector(), ref_v, atol, rtol, "v"));
    }
}

TEST_CASE("adamw_step: weight decay is decoupled from the gradient", "[adamw]") {
    // With g = 0 the Adam term is 0 / (0 + eps) = 0, so param shrinks by exactly
    // (1 - lr * wd) per step; coupled L2 decay would instead pass through m / sqrt(v)
    // and move it by about lr per step.
    ops::AdamWConfig cfg;
    cfg.lr = 0.1;
    cfg.weight_decay = 0.5;
    Tensor p = Tensor::from_vector<double>({2.0, -3.0}, {2});
    Tensor g = Tensor::zeros({2}, DType::F64), m = Tensor::zeros({2}, DType::F64), v = Tensor::zeros({2}, DType::F64);
    for (int64_t s = 1; s <= 3; ++s) ops::adamw_step(p, g, m, v, cfg, s);
    const double shrink = std::pow(1 - 0.1 * 0.5, 3);
    // Three multiply-subtracts in double.
    CHECK(check_close(p, Tensor::from_vector<double>({2.0 * shrink, -3.0 * shrink}, {2}), 0, 1e-15, "decayed param"));
}

TEST_CASE("adamw_step rejects mismatched tensors, step < 1 and bad settings", "[adamw]") {
    ops::AdamWConfig cfg;
    Tensor p = Tensor::zeros({3, 4}), g = Tensor::zeros({3, 4}), m = Tensor::zeros({3, 4}), v = Tensor::zeros({3, 4});
    Tensor g_transposed = Tensor::zeros({4, 3});
    CHECK_THROWS_WITH(ops::adamw_step(p, g_transposed, m, v, cfg, 1),
                      Catch::Contains("adamw_step") && Catch::Contains("grad") && Catch::Contains("shapes must match"));
    Tensor m_short = Tensor::zeros({3, 3});
    CHECK_THROWS_WITH(ops::adamw_step(p, g, m_short, v, cfg, 1), Catch::Contains("m is F32 (3, 3)"));
    Tensor v_f64 = Tensor::zeros({3, 4}, DType::F64);
    CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v_f64, cfg, 1), Catch::Contains("v is F64") && Catch::Contains("dtype"));
    Tensor p_int = Tensor::zeros({3, 4}, DType::I32);
    CHECK_THROWS_WITH(ops::adamw_step(p_int, g, m, v, cfg, 1), Catch::Contains("expected F32 or F64"));

    CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, cfg, 0), Catch::Contains("step counts from 1, found 0"));
    CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, cfg, -3), Catch::Contains("found -3"));

    ops::AdamWConfig bad = cfg;
    bad.beta2 = 1.0;
    CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, bad, 1), Catch::Contains("beta2 must be in [0, 1)"));
    bad = cfg;
    bad.lr = -1e-3;
    CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, bad, 1), Catch::Contains("lr must be"));
    bad = cfg;
    bad.weight_decay = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, bad, 1), Catch::Contains("weight_decay must be"));
}

TEST_CASE("clip_grad_norm returns the global norm and leaves small gradients alone", "[clip]") {
    // sqrt(3^2 + 4^2 + 12^2) = 13 across two tensors of different dtypes.
    Tensor a = Tensor::from_vector<float>({3.0f, 4.0f}, {2});
    Tensor b = Tensor::from_vector<double>({12.0}, {1, 1});
    Tensor a_before = a.clone(), b_before = b.clone();
    CHECK(ops::clip_grad_norm({&a, &b}, 13.5) == 13.0);  // sums of squares of small integers are exact
    CHECK(bitwise_equal(a, a_before));
    CHECK(bitwise_equal(b, b_before));
    CHECK(ops::clip_grad_norm({&a, &b}, 13.0) == 13.0);  // norm == max_norm: not above it, no scaling
    CHECK(bitwise_equal(a, a_before));
    CHECK(ops::clip_grad_norm({&a, &b}, std::numeric_limits<double>::infinity()) == 13.0);
    CHECK(bitwise_equal(b, b_before));
}

TEST_CASE("clip_grad_norm scales every gradient so the norm becomes max_norm", "[clip]") {
    for (DType dtype : {DType::F32, DType::F64}) {
        INFO(dtype_name(dtype));
        std::vector<Tensor> grads = {random_tensor({17}, 41, 1.0, dtype), random_tensor({3, 5}, 42, 2.0, dtype),
                                     random_tensor({1}, 43, 1.0, dtype)};
        std::vector<Tensor> before;
        std::vector<Tensor*> pointers;
        double sum_sq = 0;
        for (Tensor& g : grads) {
            before.push_back(g.clone());
            pointers.push_back(&g);
            for (double x : g.to_f64_vector()) sum_sq += x * x;
        }
        const double expected_norm = std::sqrt(sum_sq), max_norm = expected_norm / 4;
        const double norm = ops::clip_grad_norm(pointers, max_norm);
        // Both sums of squares in double over the same values, in different orders.
        CHECK(check_close({norm}, {expected_norm}, 0, 1e-14, "norm before clipping"));

        double sum_sq_after = 0;
        for (Tensor& g : grads) sum_sq_after += ops::sum_squares(g);
        // F32: each element rounded once after scaling; F64: a few ulp.
        const double rtol = dtype == DType::F32 ? 1e-6 : 1e-14;
        CHECK(check_close({std::sqrt(sum_sq_after)}, {max_norm}, 0, rtol, "norm after clipping"));
        for (size_t k = 0; k < grads.size(); ++k) {
            std::vector<double> scaled = before[k].to_f64_vector();
            for (double& x : scaled) x *= max_norm / expected_norm;
            CHECK(check_close(grads[k].to_f64_vector(), scaled, 0, rtol, "grads[" + std::to_string(k) + "]"));
        }
    }
}

TEST_CASE("clip_grad_norm: empty list, non-finite norms and bad arguments", "[clip]") {
    CHECK(ops::clip_grad_norm({}, 1.0) == 0.0);

    // An infinite or NaN norm is returned unscaled for the trainer to report.
    Tensor finite = Tensor::from_vector<float>({1e3f, -2e3f}, {2});
    Tensor blown_up = Tensor::from_vector<float>({std::numeric_limits<float>::infinity(), 1.0f}, {2});
    Tensor finite_before = finite.clone(), blown_up_before = blown_up.clone();
    CHECK(std::isinf(ops::clip_grad_norm({&finite, &blown_up}, 1.0)));
    CHECK(bitwise_equal(finite, finite_before));
    CHECK(bitwise_equal(blown_up, blown_up_before));
    Tensor nan = Tensor::from_vector<double>({std::numeric_limits<double>::quiet_NaN()}, {1});
    CHECK(std::isnan(ops::clip_grad_norm({&finite, &nan}, 1.0)));
    CHECK(bitwise_equal(finite, finite_before));

    CHECK_THROWS_WITH(ops::clip_grad_norm({&finite, nullptr}, 1.0), Catch::Contains("grads[1] is a null pointer"));
    Tensor ints = Tensor::zeros({2}, DType::I32);
    CHECK_THROWS_WITH(ops::clip_grad_norm({&ints}, 1.0), Catch::Contains("grads[0]") && Catch::Contains("expected F32 or F64"));
    CHECK_THROWS_WITH(ops::clip_grad_norm({&finite}, 0.0), Catch::Contains("max_norm must be > 0"));
}
