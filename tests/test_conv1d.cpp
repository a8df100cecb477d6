// Tests of the chunk-local depthwise conv1d: an explicit loop, chunk locality, the backward as
// the adjoint, and errors. Every version on every device in F64 and F32, and the backward against
// finite differences, are in the op harness (tests/test_ops_harness.cpp).
#include <cmath>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
const std::vector<int> kCentred = {-2, -1, 0, 1, 2};  // the release's K = 5

// The definition in ops.h, read literally: one term per tap, zero outside t's chunk.
std::vector<double> conv_reference(const Tensor& x, const Tensor& weight, const std::vector<int>& offsets, int64_t chunk) {
    const int64_t B = x.dim(0), n = x.dim(1), d = x.dim(2), K = static_cast<int64_t>(offsets.size());
    std::vector<double> xv = x.to_f64_vector(), wv = weight.to_f64_vector(), out(static_cast<size_t>(B * n * d), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < n; ++t)
            for (int64_t c = 0; c < d; ++c) {
                double acc = 0;
                for (int64_t k = 0; k < K; ++k) {
                    int64_t s = t + offsets[static_cast<size_t>(k)];
                    bool same_chunk = s >= 0 && s < n && s / chunk == t / chunk;
                    if (same_chunk) acc += wv[static_cast<size_t>(c * K + k)] * xv[static_cast<size_t>((b * n + s) * d + c)];
                }
                out[static_cast<size_t>((b * n + t) * d + c)] = acc;
            }
    return out;
}

struct ConvCase {
    int64_t n;
    int chunk;
    std::vector<int> offsets;
};

// Ragged lengths, chunks that divide n, do not divide it, exceed it, and chunk = 1.
std::vector<ConvCase> conv_cases() {
    std::vector<ConvCase> cases;
    for (int64_t n : {1, 8, 17})
        for (int chunk : {1, 3, 4, 8, 32}) cases.push_back({n, chunk, kCentred});
    cases.push_back({17, 5, {1}});        // the fixed "next-token" target
    cases.push_back({17, 5, {0}});        // the fixed "reconstruction" target
    cases.push_back({17, 6, {-3, 0, 4}}); // uneven taps
    cases.push_back({9, 4, {7, -9}});     // taps wider than the chunk contribute nothing
    return cases;
}
}  // namespace

TEST_CASE("conv1d_chunked_forward matches the explicit loop on ragged shapes", "[conv1d]") {
    const int64_t B = 2, d = 37;  // d > 32 crosses the backward's channel block
    for (const ConvCase& cc : conv_cases()) {
        INFO("n " << cc.n << ", chunk " << cc.chunk << ", taps " << cc.offsets.size());
        for (DType dtype : {DType::F32, DType::F64}) {
            Tensor x = random_tensor({B, cc.n, d}, 1, 1.0, dtype);
            Tensor w = random_tensor({d, static_cast<int64_t>(cc.offsets.size())}, 2, 0.5, dtype);
            Tensor out = random_tensor({B, cc.n, d}, 3, 1.0, dtype);  // garbage: must be overwritten
            ops::conv1d_chunked_forward(out, x, w, cc.offsets, cc.chunk);
            Tensor ref = Tensor::from_vector(conv_reference(x, w, cc.offsets, cc.chunk), out.shape());
            // At most 5 products per output: F32 rounding is a few ulp of |out| ~ 1.
            double tol = dtype == DType::F32 ? 1e-6 : 1e-14;
            CHECK(check_close(out, ref, tol, tol, "conv out"));
        }
    }
}

TEST_CASE("conv1d_chunked_forward is chunk-local: changing chunk j moves only chunk j", "[conv1d]") {
    const int64_t B = 2, n = 17, d = 6;
    const int chunk = 5;  // chunks [0,5) [5,10) [10,15) [15,17)
    Tensor x = random_tensor({B, n, d}, 4);
    Tensor w = random_tensor({d, 5}, 5);
    Tensor before = Tensor::zeros({B, n, d});
    ops::conv1d_chunked_forward(before, x, w, kCentred, chunk);
    for (int64_t j = 0; j < 4; ++j) {
        const int64_t begin = j * chunk, end = std::min<int64_t>(begin + chunk, n);
        Tensor x2 = x.clone();
        for (int64_t b = 0; b < B; ++b)
            for (int64_t t = begin; t < end; ++t)
                for (int64_t c = 0; c < d; ++c) x2.data<float>()[(b * n + t) * d + c] += 1.0f;
        Tensor after = Tensor::zeros({B, n, d});
        ops::conv1d_chunked_forward(after, x2, w, kCentred, chunk);
        int64_t changed_inside = 0, changed_outside = 0;
        for (int64_t b = 0; b < B; ++b)
            for (int64_t t = 0; t < n; ++t)
                for (int64_t c = 0; c < d; ++c) {
                    int64_t k = (b * n + t) * d + c;
                    bool changed = before.data<float>()[k] != after.data<float>()[k];
                    if (t >= begin && t < end) changed_inside += changed;
                    else changed_outside += changed;
                }
        INFO("chunk " << j);
        CHECK(changed_outside == 0);
        CHECK(changed_inside > 0);
    }
}

TEST_CASE("conv1d_chunked on a shape large enough to run in parallel", "[conv1d]") {
    const int64_t B = 2, n = 100, d = 96;  // B*n*d*K above the kernels' OpenMP threshold
    const int chunk = 24;
    Tensor x = random_tensor({B, n, d}, 13, 1.0, DType::F64);
    Tensor w = random_tensor({d, 5}, 14, 1.0, DType::F64);
    Tensor r = random_tensor({B, n, d}, 15, 1.0, DType::F64);
    Tensor out = Tensor::zeros({B, n, d}, DType::F64);
    ops::conv1d_chunked_forward(out, x, w, kCentred, chunk);
    // Sums of 5 products in double, in the same tap order.
    CHECK(check_close(out.to_f64_vector(), conv_reference(x, w, kCentred, chunk), 1e-13, 1e-13, "conv out"));
    // The conv is linear in x and in w, so the backward is its adjoint:
    // <out, r> = <x, dx> = <w, dweight>. Exact up to double rounding of ~1e5 terms.
    Tensor dx = Tensor::zeros({B, n, d}, DType::F64), dw = Tensor::zeros({d, 5}, DType::F64);
    ops::conv1d_chunked_backward(dx, dw, r, x, w, kCentred, chunk);
    const double loss = dot(out, r);
    CHECK(std::fabs(dot(x, dx) - loss) <= 1e-9 * std::fabs(loss) + 1e-9);
    CHECK(std::fabs(dot(w, dw) - loss) <= 1e-9 * std::fabs(loss) + 1e-9);
}

TEST_CASE("conv1d_chunked rejects bad shapes with errors that name the tensor", "[conv1d]") {
    Tensor x = Tensor::zeros({2, 9, 4}), out = Tensor::zeros({2, 9, 4}), w = Tensor::zeros({4, 5});
    Tensor w_bad = Tensor::zeros({4, 3});
    CHECK_THROWS_WITH(ops::conv1d_chunked_forward(out, x, w_bad, kCentred, 4), Catch::Contains("weight") && Catch::Contains("(4, 5)"));
    CHECK_THROWS_WITH(ops::conv1d_chunked_forward(out, x, w, kCentred, 0), Catch::Contains("chunk"));
    CHECK_THROWS_WITH(ops::conv1d_chunked_forward(out, x, w, {}, 4), Catch::Contains("offsets"));
    Tensor x2 = Tensor::zeros({18, 4});
    CHECK_THROWS_WITH(ops::conv1d_chunked_forward(out, x2, w, kCentred, 4), Catch::Contains("3-D"));
    Tensor out_bad = Tensor::zeros({2, 8, 4});
    CHECK_THROWS_WITH(ops::conv1d_chunked_forward(out_bad, x, w, kCentred, 4), Catch::Contains("out"));
    Tensor x64 = Tensor::zeros({2, 9, 4}, DType::F64);
    CHECK_THROWS_AS(ops::conv1d_chunked_forward(out, x64, w, kCentred, 4), Error);
    Tensor dx = Tensor::zeros({2, 9, 4}), dw_bad = Tensor::zeros({5, 4});
    CHECK_THROWS_WITH(ops::conv1d_chunked_backward(dx, dw_bad, out, x, w, kCentred, 4), Catch::Contains("dweight"));
}
