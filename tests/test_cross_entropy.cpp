// Tests of ops::cross_entropy: a direct double reference, huge logits, ignored rows and bad
// targets. Every version on every device in F64 and F32, and dlogits against finite differences,
// are in the op harness (tests/test_ops_harness.cpp).
#include <cmath>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::check_close;
using ittt::test::random_ints;
using ittt::test::random_tensor;

namespace {

struct ReferenceCrossEntropy {
    double loss_sum = 0;
    int64_t n_scored = 0;
    std::vector<double> dlogits;
};

// Straight from the definition, in double, without the max shift the kernel
// uses: fine for logits of order 1, and a different route to the same numbers.
ReferenceCrossEntropy reference_cross_entropy(const Tensor& logits, const Tensor& targets, double grad_scale, int ignore_index) {
    const int64_t N = logits.dim(0), V = logits.dim(1);
    std::vector<double> x = logits.to_f64_vector();
    std::vector<int32_t> t = targets.to_i32_vector();
    ReferenceCrossEntropy r;
    r.dlogits.assign(x.size(), 0.0);
    for (int64_t i = 0; i < N; ++i) {
        if (t[i] == ignore_index) continue;
        double sum_exp = 0;
        for (int64_t j = 0; j < V; ++j) sum_exp += std::exp(x[i * V + j]);
        r.loss_sum += -std::log(std::exp(x[i * V + t[i]]) / sum_exp);
        ++r.n_scored;
        for (int64_t j = 0; j < V; ++j) {
            double p = std::exp(x[i * V + j]) / sum_exp;
            r.dlogits[i * V + j] = grad_scale * (p - (j == t[i] ? 1.0 : 0.0));
        }
    }
    return r;
}

// Targets uniform in [0, V) with every fifth row (from row 3) ignored.
Tensor targets_with_ignored_rows(int64_t N, int V, uint64_t seed) {
    Tensor t = random_ints({N}, seed, 0, V);
    for (int64_t i = 3; i < N; i += 5) t.data<int32_t>()[i] = -1;
    return t;
}

}  // namespace

TEST_CASE("cross_entropy matches a direct double computation on ragged shapes", "[cross_entropy]") {
    const double grad_scale = 0.37;  // not 1, so a missing factor shows
    for (DType dtype : {DType::F32, DType::F64}) {
        for (auto [N, V] : std::vector<std::pair<int64_t, int>>{{1, 1}, {6, 1}, {4, 17}, {33, 17}, {17, 260}}) {
            INFO(dtype_name(dtype) << " N = " << N << ", V = " << V);
            Tensor logits = random_tensor({N, V}, 100 + N * V, 2.0, dtype);
            Tensor targets = targets_with_ignored_rows(N, V, 200 + N);
            Tensor dlogits = Tensor::empty({N, V}, dtype);
            ops::fill(dlogits, 7.0);  // stale values must be overwritten, ignored rows included

            ops::CrossEntropyResult with_grad = ops::cross_entropy(&dlogits, logits, targets, grad_scale);
            ops::CrossEntropyResult loss_only = ops::cross_entropy(nullptr, logits, targets, grad_scale);
            ReferenceCrossEntropy ref = reference_cross_entropy(logits, targets, grad_scale, -1);

            CHECK(with_grad.n_scored == ref.n_scored);
            CHECK(loss_only.n_scored == ref.n_scored);
            CHECK(loss_only.loss_sum == with_grad.loss_sum);  // the gradient pass must not touch the loss
            // Both sides work in double from the same inputs; only the route differs.
            CHECK(check_close({with_grad.loss_sum}, {ref.loss_sum}, 1e-12, 1e-12, "loss_sum"));
            // F32: one rounding to float of a gradient computed in double; F64: a few ulp of exp.
            const double rtol = dtype == DType::F32 ? 1e-6 : 1e-12;
            CHECK(check_close(dlogits.to_f64_vector(), ref.dlogits, 1e-15, rtol, "dlogits"));
        }
    }
}

TEST_CASE("cross_entropy stays finite and exact with logits of 1e4", "[cross_entropy]") {
    // Rows whose answers are known in closed form; exp(1e4) would overflow without the max shift.
    //   row 0: [1e4, 1e4 - 1, -1e4], target 1: loss 1 + log(1 + e^-1)
    //   row 1: [-1e4, -1e4, -1e4],   target 2: loss log 3, gradient (1/3, 1/3, -2/3)
    //   row 2: [1e4, -1e4, 0],       target 1: loss 2e4, gradient (1, -1, 0)
    const double e1 = std::exp(-1.0);
    const std::vector<double> values = {1e4, 1e4 - 1, -1e4, -1e4, -1e4, -1e4, 1e4, -1e4, 0};
    const std::vector<double> expected_grad = {1 / (1 + e1), e1 / (1 + e1) - 1, 0, 1.0 / 3, 1.0 / 3, -2.0 / 3, 1, -1, 0};
    const double expected_loss = (1 + std::log(1 + e1)) + std::log(3.0) + 2e4;
    Tensor targets = Tensor::from_vector<int32_t>({1, 2, 1}, {3});
    for (DType dtype : {DType::F32, DType::F64}) {
        INFO(dtype_name(dtype));
        Tensor logits = Tensor::from_vector(values, {3, 3}).to_dtype(dtype);  // every value exact in F32
        Tensor dlogits = Tensor::empty({3, 3}, dtype);
        ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, targets, 1.0);
        // The kernel works in double from exact inputs: the loss is right to rounding.
        CHECK(check_close({r.loss_sum}, {expected_loss}, 0, 1e-13, "loss_sum"));
        // F32: one rounding of each gradient to float; F64: a few ulp.
        CHECK(check_close(dlogits.to_f64_vector(), expected_grad, 1e-15, dtype == DType::F32 ? 1e-6 : 1e-12, "dlogits"));
    }

    // Random logits of scale 1e4: everything finite, each gradient row sums to 0.
    const int64_t N = 8, V = 260;
    for (DType dtype : {DType::F32, DType::F64}) {
        INFO(dtype_name(dtype));
        Tensor logits = random_tensor({N, V}, 11, 1e4, dtype);
        Tensor targets = random_ints({N}, 12, 0, V);
        Tensor dlogits = Tensor::empty({N, V}, dtype);
        ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, targets, 1.0);
        CHECK(std::isfinite(r.loss_sum));
        CHECK(r.loss_sum >= 0);
        CHECK(ops::all_finite(dlogits));
        std::vector<double> g = dlogits.to_f64_vector();
        for (int64_t i = 0; i < N; ++i) {
            double row_sum = 0;
            for (int64_t j = 0; j < V; ++j) row_sum += g[i * V + j];
            // Softmax sums to 1 and the one-hot takes 1 away; F32 rounds each of ~V terms once.
            CHECK(std::fabs(row_sum) < 1e-6);
        }
    }
}

TEST_CASE("cross_entropy with every row ignored gives 0 loss and 0 gradients", "[cross_entropy]") {
    const int64_t N = 4;
    const int V = 17;
    Tensor logits = random_tensor({N, V}, 3);
    Tensor targets = Tensor::from_vector<int32_t>({-1, -1, -1, -1}, {N});
    Tensor dlogits = Tensor::empty({N, V});
    ops::fill(dlogits, 7.0);
    ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, targets, 0.25);
    CHECK(r.loss_sum == 0.0);
    CHECK(r.n_scored == 0);
    CHECK(ops::sum_squares(dlogits) == 0.0);

    // N = 0 is a valid, empty batch.
    Tensor no_logits = Tensor::zeros({0, V});
    Tensor no_targets = Tensor::zeros({0}, DType::I32);
    ops::CrossEntropyResult empty = ops::cross_entropy(nullptr, no_logits, no_targets, 1.0);
    CHECK(empty.loss_sum == 0.0);
    CHECK(empty.n_scored == 0);
}

TEST_CASE("cross_entropy honours a custom ignore_index", "[cross_entropy]") {
    const int V = 17;
    Tensor logits = random_tensor({3, V}, 5);
    Tensor targets = Tensor::from_vector<int32_t>({4, 99, 16}, {3});
    Tensor dlogits = Tensor::empty({3, V});
    ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, targets, 1.0, 99);
    ReferenceCrossEntropy ref = reference_cross_entropy(logits, targets, 1.0, 99);
    CHECK(r.n_scored == 2);
    // Double inside the kernel and in the reference; only the route differs.
    CHECK(check_close({r.loss_sum}, {ref.loss_sum}, 1e-12, 1e-12, "loss_sum"));
    // One rounding of each gradient to float.
    CHECK(check_close(dlogits.to_f64_vector(), ref.dlogits, 1e-15, 1e-6, "dlogits"));

    // With another ignore_index, -1 is an ordinary (and invalid) target.
    Tensor minus_one = Tensor::from_vector<int32_t>({4, -1, 16}, {3});
    CHECK_THROWS_WITH(ops::cross_entropy(nullptr, logits, minus_one, 1.0, 99),
                      Catch::Contains("row 1") && Catch::Contains("target -1") && Catch::Contains("ignore_index 99"));
}

TEST_CASE("cross_entropy rejects bad targets and shapes with a message naming them", "[cross_entropy]") {
    const int V = 17;
    Tensor logits = random_tensor({4, V}, 1);
    Tensor dlogits = Tensor::empty({4, V});

    Tensor too_big = Tensor::from_vector<int32_t>({0, 3, V, 1}, {4});
    CHECK_THROWS_WITH(ops::cross_entropy(&dlogits, logits, too_big, 1.0),
                      Catch::Contains("row 2") && Catch::Contains("target 17") && Catch::Contains("V = 17"));
    Tensor negative = Tensor::from_vector<int32_t>({0, -2, 5, 1}, {4});
    CHECK_THROWS_WITH(ops::cross_entropy(nullptr, logits, negative, 1.0),
                      Catch::Contains("row 1") && Catch::Contains("target -2"));

    Tensor short_targets = Tensor::from_vector<int32_t>({0, 1, 2}, {3});
    CHECK_THROWS_WITH(ops::cross_entropy(nullptr, logits, short_targets, 1.0),
                      Catch::Contains("targets") && Catch::Contains("expected shape (4)"));
    Tensor float_targets = Tensor::zeros({4});
    CHECK_THROWS_WITH(ops::cross_entropy(nullptr, logits, float_targets, 1.0), Catch::Contains("targets must be I32"));
    Tensor targets = Tensor::from_vector<int32_t>({0, 1, 2, 3}, {4});
    Tensor wrong_dlogits = Tensor::empty({4, V + 1});
    CHECK_THROWS_WITH(ops::cross_entropy(&wrong_dlogits, logits, targets, 1.0), Catch::Contains("dlogits"));
    Tensor f64_dlogits = Tensor::empty({4, V}, DType::F64);
    CHECK_THROWS_WITH(ops::cross_entropy(&f64_dlogits, logits, targets, 1.0), Catch::Contains("dlogits"));
    CHECK_THROWS_WITH(ops::cross_entropy(nullptr, logits.view({4 * V}), targets, 1.0), Catch::Contains("expected 2-D"));
    CHECK_THROWS_WITH(ops::cross_entropy(nullptr, Tensor::zeros({4, 0}), targets, 1.0),
                      Catch::Contains("at least one vocabulary entry"));
}
