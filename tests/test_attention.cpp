// Tests of causal grouped-query attention with a sliding window (ops::attention_*).
//
// The naive version (1) is the oracle: it is checked against a hand-worked example and
// against a direct log-sum-exp computation written here. Every version on every device is
// checked against it by the op harness (tests/test_ops_harness.cpp: ragged shapes, windows,
// KV-group ratios, head dims, the decode form, the backward against finite differences).
// Here: the decode form against the prefill, reads outside the window, and the errors.
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
using ittt::test::host;
using ittt::test::nan_tensor;
using ittt::test::random_tensor;
using ittt::test::ScopedVersion;

namespace {

constexpr int kNaive = 1, kFlash = 2;

struct Forward {
    Tensor out, lse;
};

// The forward with `version` on device d (inputs on the host, results copied back).
Forward forward(int version, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window, Device d = Device::CPU) {
    ScopedVersion use("attention", version);
    Forward f{nan_tensor(q.shape(), q.dtype(), d), nan_tensor({q.dim(0), q.dim(2), q.dim(1)}, q.dtype(), d)};
    ops::attention_forward(f.out, f.lse, q.to(d), k.to(d), v.to(d), q_pos0, window);
    return {host(f.out), host(f.lse)};
}

struct Grads {
    Tensor dq, dk, dv;
};

// The backward with `version` on device d; outputs start as NaN, so an element the op forgets
// to overwrite shows up.
Grads backward(int version, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Forward& f, int window,
               Device d = Device::CPU) {
    ScopedVersion use("attention", version);
    Grads g{nan_tensor(q.shape(), q.dtype(), d), nan_tensor(k.shape(), k.dtype(), d), nan_tensor(v.shape(), v.dtype(), d)};
    ops::attention_backward(g.dq, g.dk, g.dv, dout.to(d), q.to(d), k.to(d), v.to(d), f.out.to(d), f.lse.to(d), window);
    return {host(g.dq), host(g.dk), host(g.dv)};
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

// Queries [first, first+count) of a (B, n, H, hd) tensor, or of a (B, H, n) lse when lse_layout.
Tensor select_queries(const Tensor& t, int first, int count, bool lse_layout = false) {
    std::vector<double> x = t.to_f64_vector(), y;
    const int64_t B = t.dim(0);
    if (lse_layout) {
        for (int64_t b = 0; b < B; ++b)
            for (int64_t h = 0; h < t.dim(1); ++h)
                for (int i = first; i < first + count; ++i) y.push_back(x[(b * t.dim(1) + h) * t.dim(2) + i]);
        return Tensor::from_vector(y, {B, t.dim(1), count}).to_dtype(t.dtype());
    }
    const int64_t row = t.dim(2) * t.dim(3);
    for (int64_t b = 0; b < B; ++b)
        for (int i = first; i < first + count; ++i)
            for (int64_t e = 0; e < row; ++e) y.push_back(x[(b * t.dim(1) + i) * row + e]);
    return Tensor::from_vector(y, {B, count, t.dim(2), t.dim(3)}).to_dtype(t.dtype());
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
    return Tensor::from_vector(y, {B, cap, kv.dim(2), kv.dim(3)}).to_dtype(kv.dtype());
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

namespace {

// The worked example of docs/attention.md with every version of device d, in dtype dt, within tol.
// One head, hd = 1 (scale 1). Keys k = (0, 1), values v = (1, 3), queries q = (0, ln 3).
// Query 1 scores (0, ln 3), so P = (1/4, 3/4), out = 1/4 + 9/4 = 2.5, lse = ln 4;
// with window 1 it sees only key 1: out = 3, lse = ln 3. Query 0 always sees key 0 alone.
// Backward with dout = (0, 1): dP_1 = (1, 3), D_1 = <dO_1, O_1> = 2.5,
// dS_1 = P_1 * (dP_1 - D_1) = (-3/8, 3/8); dq_1 = dS_1 . k = 3/8, dk = dS_1 q_1, dv = P_1.
void check_worked_example(Device d, DType dt, double tol) {
    const double l3 = std::log(3.0);
    Tensor q = Tensor::from_vector(std::vector<double>{0.0, l3}, {1, 2, 1, 1}).to_dtype(dt);
    Tensor k = Tensor::from_vector(std::vector<double>{0.0, 1.0}, {1, 2, 1, 1}).to_dtype(dt);
    Tensor v = Tensor::from_vector(std::vector<double>{1.0, 3.0}, {1, 2, 1, 1}).to_dtype(dt);
    Tensor dout = Tensor::from_vector(std::vector<double>{0.0, 1.0}, {1, 2, 1, 1}).to_dtype(dt);
    for (const ops::VersionInfo& version : ops::op_spec("attention").on(d).versions) {
        if (d == Device::CPU && test::cpu_versions_here("attention", version.number).empty()) continue;  // counted: not on this CPU
        INFO(device_name(d) << " version " << version.number << " (" << version.name << ")");
        Forward full = forward(version.number, q, k, v, 0, 0, d);
        CHECK(check_close(full.out.to_f64_vector(), {1.0, 2.5}, tol, tol, "out, no window"));
        CHECK(check_close(full.lse.to_f64_vector(), {0.0, std::log(4.0)}, tol, tol, "lse, no window"));
        Forward w1 = forward(version.number, q, k, v, 0, 1, d);
        CHECK(check_close(w1.out.to_f64_vector(), {1.0, 3.0}, tol, tol, "out, window 1"));
        CHECK(check_close(w1.lse.to_f64_vector(), {0.0, l3}, tol, tol, "lse, window 1"));
        Grads g = backward(version.number, dout, q, k, v, full, 0, d);
        CHECK(check_close(g.dq.to_f64_vector(), {0.0, 0.375}, tol, tol, "dq"));
        CHECK(check_close(g.dk.to_f64_vector(), {-0.375 * l3, 0.375 * l3}, tol, tol, "dk"));
        CHECK(check_close(g.dv.to_f64_vector(), {0.25, 0.75}, tol, tol, "dv"));
    }
}

}  // namespace

TEST_CASE("attention worked example (docs/attention.md)", "[attention]") {
    // 1e-15 throughout: every value is exact up to a few roundings of O(1) numbers.
    check_worked_example(Device::CPU, DType::F64, 1e-15);
}

TEST_CASE("attention CUDA worked example (docs/attention.md)", "[cuda][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // 1e-6: every value is a few float roundings of O(1) numbers (2^-24 ~ 6e-8 each).
    check_worked_example(Device::CUDA, DType::F32, 1e-6);
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
        for (int version : test::cpu_versions_here("attention")) {
            INFO("version " << version);
            Forward f = forward(version, q, k, v, dc.q_pos0, c.window);
            CHECK(check_close(f.out, ref.out, kTightAtol, kTightRtol, "out"));
            CHECK(check_close(f.lse, ref.lse, kTightAtol, kTightRtol, "lse"));
        }
    }
}

TEST_CASE("attention decode form: queries at q_pos0 > 0 against a larger KV cache equal rows of the prefill", "[attention]") {
    // n = 70 crosses a key tile (64) and two query tiles (32); the cache holds 80 rows,
    // NaN past the filled ones, so reading an unfilled row would show. Head dims 8, and 16 and
    // 128 (the op harness's decode shapes, where every device is checked against this CPU decode).
    for (int hd : {8, 16, 128}) {
        const Case c{2, 70, 4, 2, hd, 0};
        Inputs x = make_inputs(c, 700, DType::F64);
        const int cap = 80;
        for (int window : {0, 5, 40}) {
            for (int version : test::cpu_versions_here("attention")) {
                Forward full = forward(version, x.q, x.k, x.v, 0, window);
                // (first query, count): single-token decode at several positions, then blocks of queries
                for (auto [first, count] : {std::pair{0, 1}, std::pair{31, 1}, std::pair{32, 1}, std::pair{64, 1}, std::pair{69, 1},
                                            std::pair{37, 20}, std::pair{50, 20}, std::pair{1, 69}}) {
                    INFO("hd " << hd << " window " << window << " version " << version << " queries " << first << " .. " << first + count - 1);
                    Tensor q = select_queries(x.q, first, count);
                    Tensor k = make_cache(x.k, cap, first + count), v = make_cache(x.v, cap, first + count);
                    Forward dec = forward(version, q, k, v, first, window);
                    CHECK(check_close(dec.out, select_queries(full.out, first, count), kTightAtol, kTightRtol, "decode out"));
                    CHECK(check_close(dec.lse, select_queries(full.lse, first, count, true), kTightAtol, kTightRtol, "decode lse"));
                }
            }
        }
    }
}

namespace {

// Queries 60..69 with window 8 see keys 53..69 at most; keys 0..52 are NaN in the cache, as
// stale memory might be. A version that touches only keys in [first visible, position] sees
// no NaN. The reference is the naive version's F64 prefill, whose cache holds every key.
void check_never_reads_outside_window(Device d, DType dt, const std::vector<int>& versions, double atol_out, double rtol_out,
                                      double atol_lse, double rtol_lse) {
    const Case c{1, 70, 4, 2, 8, 8};
    Inputs x = make_inputs(c, 800, dt);
    Forward full = forward(kNaive, x.q.to_dtype(DType::F64), x.k.to_dtype(DType::F64), x.v.to_dtype(DType::F64), 0, c.window);
    Tensor q = select_queries(x.q, 60, 10);
    Tensor k = make_cache(x.k, 70, 70, 53), v = make_cache(x.v, 70, 70, 53);
    for (int version : versions) {
        INFO(device_name(d) << " version " << version);
        Forward dec = forward(version, q, k, v, 60, c.window, d);
        CHECK(check_close(dec.out, select_queries(full.out, 60, 10), atol_out, rtol_out, "windowed decode out"));
        CHECK(check_close(dec.lse, select_queries(full.lse, 60, 10, true), atol_lse, rtol_lse, "windowed decode lse"));
    }
}

}  // namespace

TEST_CASE("attention flash never reads keys outside the window", "[attention]") {
    // The CPU's naive version multiplies those NaN values by zero probabilities: only the flash
    // versions (2, and 3 where the CPU has AVX-512) are asked.
    check_never_reads_outside_window(Device::CPU, DType::F64, test::cpu_versions_here("attention", kFlash), kTightAtol, kTightRtol,
                                     kTightAtol, kTightRtol);
}

TEST_CASE("attention flash AVX-512: decode steps and blocks of queries give their prefill rows bit for bit (F32)", "[attention]") {
    // Version 3 starts its key blocks at fixed positions (multiples of 128) and sums a row's
    // probabilities lane by lane, so a query's result does not depend on the other queries of
    // its call: a decode step is its row of the prefill exactly, also past the first key block
    // and with a window that straddles a block edge. (Version 2 agrees within rounding: above.)
    if (test::cpu_versions_here("attention", 3).empty()) return;  // counted and reported: no AVX-512 here
    for (int window : {0, 40, 150}) {
        const Case c{1, 300, 4, 2, 32, window};
        Inputs x = make_inputs(c, 900, DType::F32);
        Forward full = forward(3, x.q, x.k, x.v, 0, window);
        for (auto [first, count] : {std::pair{0, 1}, std::pair{127, 1}, std::pair{128, 1}, std::pair{200, 1}, std::pair{299, 1},
                                    std::pair{100, 70}, std::pair{250, 50}}) {
            INFO("window " << window << " queries " << first << " .. " << first + count - 1);
            Tensor k = make_cache(x.k, 320, first + count), v = make_cache(x.v, 320, first + count);
            Forward dec = forward(3, select_queries(x.q, first, count), k, v, first, window);
            CHECK(test::bitwise_equal(dec.out, select_queries(full.out, first, count)));
            CHECK(test::bitwise_equal(dec.lse, select_queries(full.lse, first, count, true)));
        }
    }
}

TEST_CASE("attention CUDA flash and naive never read keys outside the window", "[cuda][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // Both CUDA versions only ever touch keys in [first visible, position]. F32 against F64:
    // the op harness's attention bounds (a convex combination of O(1) values; a log of a sum).
    std::vector<int> versions = test::versions_with_best("attention", Device::CUDA);
    versions.erase(versions.begin());  // every CUDA version, by number
    check_never_reads_outside_window(Device::CUDA, DType::F32, versions, 2e-5, 1e-4, 2e-5, 1e-5);
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

TEST_CASE("attention version switch: every version of the table and 0 (best) run; others rejected", "[attention]") {
    Tensor q = Tensor::zeros({1, 3, 2, 4}), k = Tensor::zeros({1, 3, 1, 4});
    Tensor out = Tensor::zeros({1, 3, 2, 4}), lse = Tensor::zeros({1, 2, 3});
    using Catch::Contains;
    for (int version : test::versions_with_best("attention", Device::CPU)) {
        ScopedVersion use("attention", version);
        CHECK_NOTHROW(ops::attention_forward(out, lse, q, k, k, 0, 0));
    }
    // Versions past the last one are refused when they are set, before any op runs.
    const ops::OpSpec& spec = ops::op_spec("attention");
    const int last = std::max(spec.cpu.versions.back().number, spec.cuda.versions.back().number);
    CHECK_THROWS_WITH(ops::set_version("attention", last + 1), Contains(cat("expected 0 (best) to ", last, ", found ", last + 1)));
    CHECK(ops::version("attention") == 0);
}
