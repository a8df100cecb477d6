// exp_vec (kernels/elementwise/exp_cpu.h): accuracy against a correctly rounded exp, and
// the special values the attention and SwiGLU kernels rely on.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "test_util.h"

#include "kernels/elementwise/exp_cpu.h"
#include "kernels/swiglu/swiglu.h"

using ittt::kernels::exp_vec;

namespace {
// exp16 (kernels/elementwise/zmm_avx512.h) on one float, through the array entry compiled in
// swiglu_avx512_cpu.cpp; the AVX-512 kernels use it where exp_vec serves the AVX2 ones.
float exp16(float x) {
    float y;
    ittt::kernels::exp_avx512_cpu(&y, &x, 1);
    return y;
}
bool avx512_here() { return !ittt::test::cpu_versions_here("swiglu", 2).empty(); }  // counted and reported when not
}  // namespace

TEST_CASE("exp_vec and exp16 are within 1 ulp of exp over the normal range, sampled every 601st float", "[exp]") {
  for (bool wide : {false, true}) {
    if (wide && !avx512_here()) continue;
    INFO((wide ? "exp16 (AVX-512)" : "exp_vec"));
    double worst = 0;
    float at = 0;
    int64_t checked = 0;
    auto check = [&](float x) {
        const double ref = std::exp(static_cast<double>(x));  // double: correctly rounded to float below
        const float ref_f = static_cast<float>(ref);
        const double ulp = std::nextafter(ref_f, std::numeric_limits<float>::infinity()) - ref_f;
        const double err = std::fabs(static_cast<double>(wide ? exp16(x) : exp_vec(x)) - ref) / ulp;
        if (err > worst) worst = err, at = x;
        ++checked;
    };
    // Walk the bit patterns: [0, 88.7] upwards, and [-87.3, -0] (sign bit set) likewise.
    auto bits = [](float f) {
        uint32_t b;
        std::memcpy(&b, &f, sizeof b);
        return b;
    };
    auto value = [](uint32_t b) {
        float f;
        std::memcpy(&f, &b, sizeof f);
        return f;
    };
    for (uint32_t b = bits(0.0f); b <= bits(88.7f); b += 601) check(value(b));
    for (uint32_t b = bits(-0.0f); b <= bits(-87.3f); b += 601) check(value(b));
    INFO("worst " << worst << " ulp at x = " << at << " over " << checked << " values");
    CHECK(checked > 3000000);
    CHECK(worst <= 1.0);  // measured 0.94 over every float of the range (exp_vec)
  }
}

TEST_CASE("exp_vec special values: exp(-inf) = 0 exactly, underflow to 0, overflow to inf, NaN stays NaN", "[exp]") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(exp_vec(-inf) == 0.0f);
    CHECK(exp_vec(-100.0f) == 0.0f);
    CHECK(exp_vec(0.0f) == 1.0f);
    CHECK(exp_vec(89.0f) == inf);
    CHECK(exp_vec(inf) == inf);
    CHECK(std::isnan(exp_vec(std::numeric_limits<float>::quiet_NaN())));
    CHECK(std::isfinite(exp_vec(88.72f)));
    CHECK(exp_vec(1.0) == std::exp(1.0));  // double is std::exp
    if (!avx512_here()) return;
    CHECK(exp16(-inf) == 0.0f);
    CHECK(exp16(-100.0f) == 0.0f);
    CHECK(exp16(0.0f) == 1.0f);
    CHECK(exp16(89.0f) == inf);
    CHECK(exp16(inf) == inf);
    CHECK(std::isnan(exp16(std::numeric_limits<float>::quiet_NaN())));
    CHECK(std::isfinite(exp16(88.72f)));
}
