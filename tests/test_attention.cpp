// Tests of causal grouped-query attention with a sliding window (ops::attention_*).
//
// The naive version (1) is the oracle: it is checked against a hand-worked example,
// against a direct log-sum-exp computation written here, and its backward against
// finite differences. The flash version (2) is then checked against it over ragged
// shapes, windows and KV-group ratios, in the decode form, and in F32 against F64.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "runtime/error.h"
#include "runtime/tensor.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::check_close;
using ittt::test::random_tensor;
using ittt::test::ScopedVersion;

namespace {

constexpr int kNaive = 1, kFlash = 2;

struct Forward {
    Tensor out, lse;
};

Forward forward(int version, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window) {
    ScopedVersion use("attention", version);
    Forward f{Tensor::empty(q.shape(), q.dtype()), Tensor::empty({q.dim(0), q.dim(2), q.dim(1)}, q.dtype())};
    ops::attention_forward(f.out, f.lse, q, k, v, q_pos0, window);
    return f;
}

struct Grads {
    Tensor dq, dk, dv;
};

Grads backward(int version, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Forward& f, int window) {
    ScopedVersion use("attention", version);
    // Start from NaN so that an element the op forgets to overwrite shows up.
    Grads g{Tensor::empty(q.shape(), q.dtype()), Tensor::empty(k.shape(), k.dtype()), Tensor::empty(v.shape(), v.dtype())};
    for (Tensor* t : {&g.dq, &g.dk, &g.dv}) ops::fill(*t, std::numeric_limits<double>::quiet_NaN());
    ops::attention_backward(g.dq, g.dk, g.dv, dout, q, k, v, f.out, f.lse, window);
    return g;
}

struct Case {
    int B, n, Hq, Hkv, hd, window;
    std::string name() const {
        return cat("B=", B, " n=", n, " Hq=", Hq, " Hkv=", Hkv, " hd=", hd, " window=", window);
    }
};

struct Inputs {
    Tensor q, k, v, dout;
};

Inputs make_inputs(const Case& c, uint64_t seed, DType dtype) {
    return {random_tensor({c.B, c.n, c.Hq, c.hd}, seed, 1.0, dtype), random_tensor({c.B, c.n, c.Hkv, c.hd}, seed + 1, 1.0, dtype),
            random_tensor({c.B, c.n, c.Hkv, c.hd}, seed + 2, 1.0, dtype),
            random_tensor({c.B, c.n, c.Hq, c.hd}, seed + 3, 1.0, dtype)};
}

// The sweep: ragged lengths (1, 17: inside one tile; 100: several query and key tiles,
// not a multiple of either), windows at the edges (1: only itself, 3, exactly n, past n,
// 0: none), and KV-group ratios 1, 2 and 4.
std::vector<Case> sweep() {
    std::vector<Case> cases;
    for (int n : {1, 17, 100})
        for (int hd : {8, 16})
            for (int B : {1, 2})
                for (int window : {0, 1, 3, n, n + 7})
                    for (auto [Hq, Hkv] : {std::pair{2, 2}, std::pair{4, 2}, std::pair{4, 1}}) {
                        if (n == 1 && window == 1) continue;  // the same case as window = n
                        cases.push_back({B, n, Hq, Hkv, hd, window});
                    }
    return cases;
}

// Queries [first, first+count) of a (B, n, H, hd) tensor, or of a (B, H, n) lse when lse_layout.
Tensor select_queries(const Tensor& t, int first, int count, bool lse_layout = false) {
    std::vector<double> x = t.to_f64_vector(), y;
    const int64_t B = t.dim(0);
    if (lse_layout) {
        for (int64_t b = 0; b < B; ++b)
            for (int64_t h = 0; h < t.dim(1); ++h)
                for (int i = first; i < first + count; ++i) y.push_back(x[(b * t.dim(1) + h) * t.dim(2) + i]);
        return Tensor::from_vector(y, {B, t.dim(1), count});
    }
    const int64_t row = t.dim(2) * t.dim(3);
    for (int64_t b = 0; b < B; ++b)
        for (int i = first; i < first + count; ++i)
            for (int64_t e = 0; e < row; ++e) y.push_back(x[(b * t.dim(1) + i) * row + e]);
    return Tensor::from_vector(y, {B, count, t.dim(2), t.dim(3)});
}

// A KV cache of cap rows holding rows [0, filled) of kv (B, n, Hkv, hd) and NaN after
// them, as stale memory would; NaN also at rows [0, poison_before), which the caller
// knows to be outside every query's window.
Tensor make_cache(const Tensor& kv, int cap, int filled, int poison_before = 0) {
    std::vector<double> x = kv.to_f64_vector();
    const int64_t B = kv.dim(0), n = kv.dim(1), row = kv.dim(2) * kv.dim(3);
    std::vector<double> y(static_cast<size_t>(B * cap * row), std::numeric_limits<double>::quiet_NaN());
    for (int64_t b = 0; b < B; ++b)
        for (int s = poison_before; s < filled; ++s)
            for (int64_t e = 0; e < row; ++e) y[(b * cap + s) * row + e] = x[(b * n + s) * row + e];
    return Tensor::from_vector(y, {B, cap, kv.dim(2), kv.dim(3)});
}

// out and lse by the definition, in double: lse_i = log sum_{s visible} exp(<q_i, k_s>/sqrt(hd)),
// out_i = sum_s exp(score_is - lse_i) v_s. No max subtraction: the test scores are O(1).
Forward direct_attention(const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window) {
    std::vector<double> Q = q.to_f64_vector(), K = k.to_f64_vector(), V = v.to_f64_vector();
    const int64_t B = q.dim(0), nq = q.dim(1), Hq = q.dim(2), hd = q.dim(3), cap = k.dim(1), Hkv = k.dim(2);
    std::vector<double> out(Q.size()), lse(static_cast<size_t>(B * Hq * nq));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t i = 0; i < nq; ++i) {
                const int64_t p = q_pos0 + i, g = h / (Hq / Hkv);
                std::vector<double> score(static_cast<size_t>(p + 1), 0.0);
                double sum = 0;
                for (int64_t s = 0; s <= p; ++s) {
                    if (window > 0 && s <= p - window) continue;
                    for (int64_t c = 0; c < hd; ++c)
                        score[s] += Q[((b * nq + i) * Hq + h) * hd + c] * K[((b * cap + s) * Hkv + g) * hd + c];
                    score[s] /= std::sqrt(static_cast<double>(hd));
                    sum += std::exp(score[s]);
                }
                const double l = std::log(sum);
                lse[(b * Hq + h) * nq + i] = l;
                for (int64_t s = 0; s <= p; ++s) {
                    if (window > 0 && s <= p - window) continue;
                    for (int64_t c = 0; c < hd; ++c)
                        out[((b * nq + i) * Hq + h) * hd + c] += std::exp(score[s] - l) * V[((b * cap + s) * Hkv + g) * hd + c];
                }
            }
    return {Tensor::from_vector(out, q.shape()), Tensor::from_vector(lse, {B, Hq, nq})};
}

// Tolerances, each used below with the reason it is what it is.
// F64 vs F64: both versions compute the same sums in a different order; 1e-12 is ~1e4 ulps.
constexpr double kTightAtol = 1e-12, kTightRtol = 1e-10;

}  // namespace

TEST_CASE("attention worked example (docs/attention.md)", "[attention]") {
    // One head, hd = 1 (scale 1). Keys k = (0, 1), values v = (1, 3), queries q = (0, ln 3).
    // Query 1 scores (0, ln 3), so P = (1/4, 3/4), out = 1/4 + 9/4 = 2.5, lse = ln 4;
    // with window 1 it sees only key 1: out = 3, lse = ln 3. Query 0 always sees key 0 alone.
    Tensor q = Tensor::from_vector(std::vector<double>{0.0, std::log(3.0)}, {1, 2, 1, 1});
    Tensor k = Tensor::from_vector(std::vector<double>{0.0, 1.0}, {1, 2, 1, 1});
    Tensor v = Tensor::from_vector(std::vector<double>{1.0, 3.0}, {1, 2, 1, 1});
    for (int version : {kNaive, kFlash}) {
        INFO("version " << version);
        // 1e-15 throughout: every value is exact up to a few roundings of O(1) numbers.
        Forward full = forward(version, q, k, v, 0, 0);
        CHECK(check_close(full.out.to_f64_vector(), {1.0, 2.5}, 1e-15, 1e-15, "out, no window"));
        CHECK(check_close(full.lse.to_f64_vector(), {0.0, std::log(4.0)}, 1e-15, 1e-15, "lse, no window"));
        Forward w1 = forward(version, q, k, v, 0, 1);
        CHECK(check_close(w1.out.to_f64_vector(), {1.0, 3.0}, 1e-15, 1e-15, "out, window 1"));
        CHECK(check_close(w1.lse.to_f64_vector(), {0.0, std::log(3.0)}, 1e-15, 1e-15, "lse, window 1"));
        // Backward with dout = (0, 1): dP_1 = (1, 3), D_1 = <dO_1, O_1> = 2.5,
        // dS_1 = P_1 * (dP_1 - D_1) = (-3/8, 3/8); dq_1 = dS_1 . k = 3/8, dk = dS_1 q_1, dv = P_1.
        Tensor dout = Tensor::from_vector(std::vector<double>{0.0, 1.0}, {1, 2, 1, 1});
        Grads g = backward(version, dout, q, k, v, full, 0);
        const double l3 = std::log(3.0);
        CHECK(check_close(g.dq.to_f64_vector(), {0.0, 0.375}, 1e-15, 1e-15, "dq"));
        CHECK(check_close(g.dk.to_f64_vector(), {-0.375 * l3, 0.375 * l3}, 1e-15, 1e-15, "dk"));
        CHECK(check_close(g.dv.to_f64_vector(), {0.25, 0.75}, 1e-15, 1e-15, "dv"));
    }
}

TEST_CASE("attention forward and lse match a direct log-sum-exp computation", "[attention]") {
    // Prefill, a windowed GQA prefill, and queries 5..11 against a cache of 16 (q_pos0 > 0, cap > q_pos0+nq).
    struct DirectCase {
        Case c;
        int q_pos0, cap;
    };
    for (const DirectCase& dc : {DirectCase{{1, 9, 2, 2, 4, 0}, 0, 9}, DirectCase{{2, 11, 4, 2, 8, 3}, 0, 11},
                                 DirectCase{{2, 7, 4, 1, 8, 4}, 5, 16}}) {
        const Case& c = dc.c;
        INFO(c.name() << " q_pos0=" << dc.q_pos0 << " cap=" << dc.cap);
        Tensor q = random_tensor({c.B, c.n, c.Hq, c.hd}, 11, 1.0, DType::F64);
        Tensor k = random_tensor({c.B, dc.cap, c.Hkv, c.hd}, 12, 1.0, DType::F64);
        Tensor v = random_tensor({c.B, dc.cap, c.Hkv, c.hd}, 13, 1.0, DType::F64);
        Forward ref = direct_attention(q, k, v, dc.q_pos0, c.window);
        for (int version : {kNaive, kFlash}) {
            INFO("version " << version);
            Forward f = forward(version, q, k, v, dc.q_pos0, c.window);
            CHECK(check_close(f.out, ref.out, kTightAtol, kTightRtol, "out"));
            CHECK(check_close(f.lse, ref.lse, kTightAtol, kTightRtol, "lse"));
        }
    }
}

TEST_CASE("attention flash forward matches naive over ragged shapes, windows and KV groups", "[attention]") {
    int checked = 0;
    for (const Case& c : sweep()) {
        INFO(c.name());
        Inputs x64 = make_inputs(c, 100 + checked, DType::F64), x32 = make_inputs(c, 100 + checked, DType::F32);
        Forward ref = forward(kNaive, x64.q, x64.k, x64.v, 0, c.window);
        Forward flash = forward(kFlash, x64.q, x64.k, x64.v, 0, c.window);
        CHECK(check_close(flash.out, ref.out, kTightAtol, kTightRtol, "flash F64 out, " + c.name()));
        CHECK(check_close(flash.lse, ref.lse, kTightAtol, kTightRtol, "flash F64 lse, " + c.name()));
        for (int version : {kNaive, kFlash}) {
            Forward f32 = forward(version, x32.q, x32.k, x32.v, 0, c.window);
            // F32 vs F64: outputs are convex combinations of O(1) values and lse a log of
            // <= 100 O(1) terms; the float rounding measured here is at most 1.2e-6.
            CHECK(check_close(f32.out, ref.out, 1e-5, 1e-4, cat("F32 out v", version, ", ", c.name())));
            CHECK(check_close(f32.lse, ref.lse, 1e-5, 1e-5, cat("F32 lse v", version, ", ", c.name())));
        }
        ++checked;
    }
    CHECK(checked > 100);
}

TEST_CASE("attention flash backward matches naive over ragged shapes, windows and KV groups", "[attention][grad]") {
    int checked = 0;
    for (const Case& c : sweep()) {
        INFO(c.name());
        Inputs x64 = make_inputs(c, 300 + checked, DType::F64), x32 = make_inputs(c, 300 + checked, DType::F32);
        Forward f64 = forward(kNaive, x64.q, x64.k, x64.v, 0, c.window);
        Grads ref = backward(kNaive, x64.dout, x64.q, x64.k, x64.v, f64, c.window);
        Grads flash = backward(kFlash, x64.dout, x64.q, x64.k, x64.v, f64, c.window);
        CHECK(check_close(flash.dq, ref.dq, kTightAtol, kTightRtol, "flash F64 dq, " + c.name()));
        CHECK(check_close(flash.dk, ref.dk, kTightAtol, kTightRtol, "flash F64 dk, " + c.name()));
        CHECK(check_close(flash.dv, ref.dv, kTightAtol, kTightRtol, "flash F64 dv, " + c.name()));
        for (int version : {kNaive, kFlash}) {
            Forward f32 = forward(version, x32.q, x32.k, x32.v, 0, c.window);
            Grads g32 = backward(version, x32.dout, x32.q, x32.k, x32.v, f32, c.window);
            // F32 vs F64: dk, dv sum up to 4 heads x 100 queries of O(1) terms in float;
            // the largest error measured here is 6e-6, so 5e-5 leaves a margin of ~8.
            CHECK(check_close(g32.dq, ref.dq, 5e-5, 1e-4, cat("F32 dq v", version, ", ", c.name())));
            CHECK(check_close(g32.dk, ref.dk, 5e-5, 1e-4, cat("F32 dk v", version, ", ", c.name())));
            CHECK(check_close(g32.dv, ref.dv, 5e-5, 1e-4, cat("F32 dv v", version, ", ", c.name())));
        }
        ++checked;
    }
    CHECK(checked > 100);
}

TEST_CASE("attention backward matches finite differences in double", "[attention][grad]") {
    // Small shapes: with and without a window, KV-group ratios 1, 2 and 4, batch 2.
    for (const Case& c : {Case{1, 7, 2, 2, 4, 0}, Case{2, 6, 4, 2, 3, 3}, Case{1, 9, 4, 1, 4, 2}, Case{1, 5, 2, 1, 2, 1}}) {
        Inputs x = make_inputs(c, 500, DType::F64);
        for (int version : {kNaive, kFlash}) {
            INFO(c.name() << " version " << version);
            // loss = <out, dout>, so d loss / d out = dout
            auto loss = [&] { return ittt::test::dot(forward(version, x.q, x.k, x.v, 0, c.window).out, x.dout); };
            Grads g = backward(version, x.dout, x.q, x.k, x.v, forward(version, x.q, x.k, x.v, 0, c.window), c.window);
            // Central differences with h = 1e-6 on a loss of size ~10: cancellation error
            // ~1e-16 * 10 / 1e-6 = 1e-9 (measured max 3e-9), truncation ~h^2 negligible.
            CHECK(check_close(g.dq.to_f64_vector(), ittt::test::finite_difference(x.q, loss), 1e-7, 1e-6, "dq vs FD"));
            CHECK(check_close(g.dk.to_f64_vector(), ittt::test::finite_difference(x.k, loss), 1e-7, 1e-6, "dk vs FD"));
            CHECK(check_close(g.dv.to_f64_vector(), ittt::test::finite_difference(x.v, loss), 1e-7, 1e-6, "dv vs FD"));
        }
    }
}

TEST_CASE("attention decode form: queries at q_pos0 > 0 against a larger KV cache equal rows of the prefill", "[attention]") {
    // n = 70 crosses a key tile (64) and two query tiles (32); the cache holds 80 rows,
    // NaN past the filled ones, so reading an unfilled row would show.
    const Case c{2, 70, 4, 2, 8, 0};
    Inputs x = make_inputs(c, 700, DType::F64);
    const int cap = 80;
    for (int window : {0, 5, 40}) {
        for (int version : {kNaive, kFlash}) {
            Forward full = forward(version, x.q, x.k, x.v, 0, window);
            // (first query, count): single-token decode at several positions, then blocks of queries
            for (auto [first, count] : {std::pair{0, 1}, std::pair{31, 1}, std::pair{64, 1}, std::pair{69, 1}, std::pair{37, 20},
                                        std::pair{50, 20}, std::pair{1, 69}}) {
                INFO("window " << window << " version " << version << " queries " << first << " .. " << first + count - 1);
                Tensor q = select_queries(x.q, first, count);
                Tensor k = make_cache(x.k, cap, first + count), v = make_cache(x.v, cap, first + count);
                Forward dec = forward(version, q, k, v, first, window);
                CHECK(check_close(dec.out, select_queries(full.out, first, count), kTightAtol, kTightRtol, "decode out"));
                CHECK(check_close(dec.lse, select_queries(full.lse, first, count, true), kTightAtol, kTightRtol, "decode lse"));
            }
        }
    }
}

TEST_CASE("attention flash never reads keys outside the window", "[attention]") {
    // Queries 60..69 with window 8 see keys 53..69 at most; keys 0..52 are NaN. The naive
    // version would multiply those NaN values by zero probabilities and return NaN.
    const Case c{1, 70, 4, 2, 8, 8};
    Inputs x = make_inputs(c, 800, DType::F64);
    Forward full = forward(kFlash, x.q, x.k, x.v, 0, c.window);
    Tensor q = select_queries(x.q, 60, 10);
    Tensor k = make_cache(x.k, 70, 70, 53), v = make_cache(x.v, 70, 70, 53);
    Forward dec = forward(kFlash, q, k, v, 60, c.window);
    CHECK(check_close(dec.out, select_queries(full.out, 60, 10), kTightAtol, kTightRtol, "windowed decode out"));
    CHECK(check_close(dec.lse, select_queries(full.lse, 60, 10, true), kTightAtol, kTightRtol, "windowed decode lse"));
}

TEST_CASE("attention rejects bad shapes with messages naming the problem", "[attention]") {
    Tensor q = Tensor::zeros({1, 5, 4, 8}), k = Tensor::zeros({1, 5, 2, 8}), v = Tensor::zeros({1, 5, 2, 8});
    Tensor out = Tensor::zeros({1, 5, 4, 8}), lse = Tensor::zeros({1, 4, 5});
    using Catch::Contains;

    Tensor k3 = Tensor::zeros({1, 5, 3, 8});
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k3, k3, 0, 0),
                      Contains("attention_forward") && Contains("4 query heads") && Contains("not a multiple of 3 KV heads"));
    Tensor k_hd = Tensor::zeros({1, 5, 2, 4});
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k_hd, k_hd, 0, 0), Contains("head dims differ"));
    Tensor k_b = Tensor::zeros({2, 5, 2, 8});
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k_b, k_b, 0, 0), Contains("batch sizes differ"));
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k, Tensor::zeros({1, 6, 2, 8}), 0, 0),
                      Contains("v is F32 (1, 6, 2, 8)") && Contains("expected shape (1, 5, 2, 8)"));
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k, v, 1, 0),
                      Contains("5 positions cannot hold keys 0 .. 5") && Contains("q_pos0 1"));
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k, v, -1, 0), Contains("q_pos0 must be >= 0"));
    Tensor lse_bad = Tensor::zeros({1, 5, 4});
    CHECK_THROWS_WITH(ops::attention_forward(out, lse_bad, q, k, v, 0, 0),
                      Contains("lse") && Contains("expected shape (1, 4, 5)"));
    Tensor out_bad = Tensor::zeros({1, 5, 4, 4});
    CHECK_THROWS_WITH(ops::attention_forward(out_bad, lse, q, k, v, 0, 0), Contains("out is") && Contains("shapes must match"));
    Tensor q3 = Tensor::zeros({5, 4, 8});
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q3, k, v, 0, 0), Contains("expected 4-D (B, nq, Hq, hd)"));
    Tensor k64 = Tensor::zeros({1, 5, 2, 8}, DType::F64);
    CHECK_THROWS_WITH(ops::attention_forward(out, lse, q, k64, k64, 0, 0), Contains("dtype and device must match"));

    // The backward is the training form: as many keys as queries.
    Tensor k_cache = Tensor::zeros({1, 8, 2, 8}), dk_cache = Tensor::zeros({1, 8, 2, 8});
    Tensor dq = Tensor::zeros({1, 5, 4, 8}), dk = Tensor::zeros({1, 5, 2, 8}), dv = Tensor::zeros({1, 5, 2, 8});
    CHECK_THROWS_WITH(ops::attention_backward(dq, dk_cache, dk_cache, out, q, k_cache, k_cache, out, lse, 0),
                      Contains("attention_backward") && Contains("training form"));
    CHECK_THROWS_WITH(ops::attention_backward(dq, dk, dv, out, q, k, v, out, lse_bad, 0), Contains("lse"));
    Tensor dk_bad = Tensor::zeros({1, 5, 4, 8});
    CHECK_THROWS_WITH(ops::attention_backward(dq, dk_bad, dv, out, q, k, v, out, lse, 0),
                      Contains("dk is") && Contains("shapes must match"));
}

TEST_CASE("attention version switch: 1 naive, 2 flash, 0 best; others rejected", "[attention]") {
    Tensor q = Tensor::zeros({1, 3, 2, 4}), k = Tensor::zeros({1, 3, 1, 4});
    Tensor out = Tensor::zeros({1, 3, 2, 4}), lse = Tensor::zeros({1, 2, 3});
    using Catch::Contains;
    for (int version : {0, 1, 2}) {
        ScopedVersion use("attention", version);
        CHECK_NOTHROW(ops::attention_forward(out, lse, q, k, k, 0, 0));
    }
    // Versions past the last one are refused when they are set, before any op runs.
    CHECK_THROWS_WITH(ops::set_version("attention", 3), Contains("expected 0 (best) to 2, found 3"));
    CHECK(ops::version("attention") == 0);
}
