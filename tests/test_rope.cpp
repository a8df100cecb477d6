// Tests of ops::rope_forward / rope_backward (kernels/rope): the rotate-half formula, hand-worked
// values, properties and errors. Every version on every device in F64 and F32, and the backward
// against finite differences, are in the op harness (tests/test_ops_harness.cpp).
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {

const double kTheta = 1e6;  // Qwen3's rope_theta

// Shapes of x (N, H, hd): hd = 2 is a single pair, hd = 10 has an odd number of
// pairs; the 4-D case takes (B, n) positions.
const Shape kShapes[] = {{1, 1, 2}, {17, 3, 10}, {5, 2, 64}, {2, 3, 4, 8}};

// The formula of the Hugging Face rotate-half convention, element by element.
std::vector<double> rope_reference(const Tensor& x, const Tensor& positions, double theta) {
    std::vector<double> xv = x.to_f64_vector(), out(xv.size());
    std::vector<int32_t> pos = positions.to_i32_vector();
    const int64_t hd = x.dim(-1), half = hd / 2, heads = x.dim(-2);
    for (size_t t = 0; t < pos.size(); ++t)
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < half; ++i) {
                const int64_t base = (static_cast<int64_t>(t) * heads + h) * hd;
                const double angle = pos[t] * std::pow(theta, -2.0 * i / hd);
                out[base + i] = xv[base + i] * std::cos(angle) - xv[base + i + half] * std::sin(angle);
                out[base + i + half] = xv[base + i + half] * std::cos(angle) + xv[base + i] * std::sin(angle);
            }
    return out;
}

Shape token_shape(const Shape& x_shape) { return Shape(x_shape.begin(), x_shape.end() - 2); }

Tensor rope(const Tensor& x, const Tensor& positions, double theta = kTheta) {
    Tensor out = Tensor::empty(x.shape(), x.dtype());
    ops::rope_forward(out, x, positions, theta);
    return out;
}

Tensor rope_back(const Tensor& dout, const Tensor& positions, double theta = kTheta) {
    Tensor dx = Tensor::empty(dout.shape(), dout.dtype());
    ops::rope_backward(dx, dout, positions, theta);
    return dx;
}

}  // namespace

TEST_CASE("rope forward matches the rotate-half formula, ragged shapes, F32 and F64", "[rope]") {
    for (const Shape& shape : kShapes) {
        for (double theta : {kTheta, 1e4}) {
            Tensor positions = random_ints(token_shape(shape), 1, 0, 100000);
            Tensor x64 = random_tensor(shape, 2, 1.0, DType::F64);
            Tensor x32 = x64.to_dtype(DType::F32);
            const std::string name = shape_str(shape) + " theta " + std::to_string(theta);
            // Same formula in double, the kernel only hoists cos/sin out of the head loop.
            CHECK(check_close(rope(x64, positions, theta).to_f64_vector(), rope_reference(x64, positions, theta), 1e-14, 1e-14,
                              "F64 " + name));
            // Angles in double, so F32 only rounds its inputs and the result: a few ulp.
            CHECK(check_close(rope(x32, positions, theta).to_f64_vector(), rope_reference(x32, positions, theta), 1e-6, 1e-6,
                              "F32 " + name));
        }
    }
}

TEST_CASE("rope hand-worked values: the first pair turns by the position in radians", "[rope]") {
    // hd = 4, theta = 100: pair 0 has frequency 1, pair 1 has frequency 100^(-1/2) = 0.1.
    Tensor x = Tensor::from_vector<double>({1, 1, 0, 0}, {1, 1, 4});
    Tensor positions = Tensor::from_vector<int32_t>({3}, {1});
    Tensor out = rope(x, positions, 100.0);
    // A handful of double operations.
    CHECK(check_close(out.to_f64_vector(), {std::cos(3.0), std::cos(0.3), std::sin(3.0), std::sin(0.3)}, 1e-15, 1e-15, "out"));
}

TEST_CASE("rope at position 0 is the identity, other positions change x", "[rope]") {
    Tensor x = random_tensor({1, 2, 8}, 3);
    Tensor zero = Tensor::from_vector<int32_t>({0}, {1});
    CHECK(bitwise_equal(rope(x, zero), x));
    std::vector<double> xv = x.to_f64_vector();
    for (int32_t p : {1, 2, 1000}) {
        std::vector<double> out = rope(x, Tensor::from_vector<int32_t>({p}, {1})).to_f64_vector();
        double max_change = 0;
        for (size_t i = 0; i < xv.size(); ++i) max_change = std::max(max_change, std::fabs(out[i] - xv[i]));
        INFO("position " << p);
        CHECK(max_change > 0.1);
    }
}

TEST_CASE("rope backward undoes the forward at the same positions, also in place", "[rope][grad]") {
    for (const Shape& shape : kShapes) {
        Tensor positions = random_ints(token_shape(shape), 4, 0, 1000000);
        Tensor x = random_tensor(shape, 5, 1.0, DType::F64);
        // Rotations preserve length, so the round trip only adds rounding.
        CHECK(check_close(rope_back(rope(x, positions), positions).to_f64_vector(), x.to_f64_vector(), 1e-14, 1e-14,
                          "round trip " + shape_str(shape)));
        Tensor in_place = x.clone();
        ops::rope_forward(in_place, in_place, positions, kTheta);
        CHECK(bitwise_equal(in_place, rope(x, positions)));
        Tensor out_of_place = rope_back(in_place, positions);
        ops::rope_backward(in_place, in_place, positions, kTheta);
        CHECK(bitwise_equal(in_place, out_of_place));
    }
}

TEST_CASE("rope: <rope(q, p1), rope(k, p2)> depends only on p1 - p2", "[rope]") {
    const int64_t hd = 16;
    Tensor q = random_tensor({1, 1, hd}, 10, 1.0, DType::F64);
    Tensor k = random_tensor({1, 1, hd}, 11, 1.0, DType::F64);
    auto score = [&](int32_t p1, int32_t p2) {
        return dot(rope(q, Tensor::from_vector<int32_t>({p1}, {1})), rope(k, Tensor::from_vector<int32_t>({p2}, {1})));
    };
    const double at_origin = score(4, 0);
    // Each angle up to 1e6 rad carries ~1e6 * 1e-16 absolute error.
    const std::pair<int32_t, int32_t> same_offset[] = {{7, 3}, {104, 100}, {1000004, 1000000}};
    for (auto [p1, p2] : same_offset) {
        INFO("p1 " << p1 << ", p2 " << p2);
        CHECK(std::fabs(score(p1, p2) - at_origin) < 1e-8);
    }
    // And the score does depend on the offset, or the check above says nothing.
    CHECK(std::fabs(score(5, 0) - at_origin) > 1e-3);
}

TEST_CASE("rope gives the same bits on repeated runs", "[rope]") {
    // 300 x 4 x 64 is above the kernel's threshold for going parallel.
    Tensor positions = random_ints({300}, 12, 0, 1000000);
    Tensor x = random_tensor({300, 4, 64}, 13);
    CHECK(bitwise_equal(rope(x, positions), rope(x, positions)));
    CHECK(bitwise_equal(rope_back(x, positions), rope_back(x, positions)));
}

TEST_CASE("rope rejects bad shapes, positions and theta with a message naming them", "[rope]") {
    Tensor x = random_tensor({3, 2, 8}, 14);
    Tensor out = Tensor::empty({3, 2, 8});
    Tensor positions = Tensor::from_vector<int32_t>({0, 1, 2}, {3});
    Tensor odd = random_tensor({3, 2, 7}, 15), odd_out = Tensor::empty({3, 2, 7});
    CHECK_THROWS_WITH(ops::rope_forward(odd_out, odd, positions, kTheta), Catch::Contains("must be even"));
    Tensor flat = random_tensor({3, 16}, 16), flat_out = Tensor::empty({3, 16});
    CHECK_THROWS_WITH(ops::rope_forward(flat_out, flat, positions, kTheta), Catch::Contains("x must be (N, H, hd)"));
    Tensor four = Tensor::from_vector<int32_t>({0, 1, 2, 3}, {4});
    CHECK_THROWS_WITH(ops::rope_forward(out, x, four, kTheta),
                      Catch::Contains("positions is I32 (4)") && Catch::Contains("expected shape (3)"));
    Tensor float_positions = Tensor::zeros({3});
    CHECK_THROWS_WITH(ops::rope_forward(out, x, float_positions, kTheta), Catch::Contains("positions must be I32"));
    Tensor negative = Tensor::from_vector<int32_t>({0, 1, -5}, {3});
    CHECK_THROWS_WITH(ops::rope_backward(out, x, negative, kTheta), Catch::Contains("rope_backward: positions[2] = -5"));
    CHECK_THROWS_WITH(ops::rope_forward(out, x, positions, 0.0), Catch::Contains("theta must be finite and > 0"));
    Tensor out_wrong = Tensor::empty({3, 2, 6});
    CHECK_THROWS_WITH(ops::rope_forward(out_wrong, x, positions, kTheta), Catch::Contains("shapes must match"));
}
