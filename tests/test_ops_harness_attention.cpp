// The op harness's description of attention (tests/ops_harness.h): causal grouped-query
// attention with a sliding window, forward (out, lse) and backward (dq, dk, dv), and the
// decode form (queries at q_pos0 > 0 against a larger KV cache).
#include <utility>

#include "ops_harness.h"

namespace ittt::test::harness {

namespace {

struct AttentionShape {
    int B, n, Hq, Hkv, hd, window;
    std::string name() const { return cat("B=", B, " n=", n, " Hq=", Hq, " Hkv=", Hkv, " hd=", hd, " window=", window); }
};

// Stricter than the table's row (written for the gradients, which sum over heads and
// queries) for the forward outputs: out is a convex combination of O(1) values and lse the
// log of a sum of O(1) terms, each a few float roundings from exact (measured: < 1/10).
std::vector<Tighter> forward_bounds(const Target& t) {
    if (t.dtype != DType::F32) return {};
    return {{"out", Tighter::F64Reference, 1e-5, 1e-4, false, "a convex combination of O(1) values in F32"},
            {"lse", Tighter::F64Reference, 1e-5, 1e-5, false, "the log of a sum of O(1) terms in F32"}};
}

// The training form: forward, then the backward from that run's own out and lse, as training does.
Case training_case(const AttentionShape& s, uint64_t seed) {
    Case c;
    c.shape = s.name();
    c.inputs = [s, seed] {
        return Named{{"q", normal({s.B, s.n, s.Hq, s.hd}, seed)},
                     {"k", normal({s.B, s.n, s.Hkv, s.hd}, seed + 1)},
                     {"v", normal({s.B, s.n, s.Hkv, s.hd}, seed + 2)},
                     {"dout", normal({s.B, s.n, s.Hq, s.hd}, seed + 3)}};
    };
    c.run = [s](Named& in, const Target& t) {
        Named out;
        Tensor o = nan_output(in["q"].shape(), t), lse = nan_output({s.B, s.Hq, s.n}, t);
        ops::attention_forward(o, lse, in["q"], in["k"], in["v"], 0, s.window);
        Tensor dq = nan_output(in["q"].shape(), t), dk = nan_output(in["k"].shape(), t), dv = nan_output(in["v"].shape(), t);
        ops::attention_backward(dq, dk, dv, in["dout"], in["q"], in["k"], in["v"], o, lse, s.window);
        out.add("out", o);
        out.add("lse", lse);
        out.add("dq", dq);
        out.add("dk", dk);
        out.add("dv", dv);
        return out;
    };
    c.tighter = forward_bounds;
    return c;
}

// Rows [first, first + count) of x (B, n, H, hd).
Tensor select_rows(const Tensor& x, int first, int count) {
    std::vector<float> all = x.to_f32_vector(), some;
    const int64_t B = x.dim(0), n = x.dim(1), row = x.dim(2) * x.dim(3);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = first; i < first + count; ++i)
            for (int64_t e = 0; e < row; ++e) some.push_back(all[static_cast<size_t>((b * n + i) * row + e)]);
    return Tensor::from_vector(some, {B, count, x.dim(2), x.dim(3)});
}

// A KV cache of cap rows holding rows [0, filled) of kv (B, n, Hkv, hd) and NaN after them,
// as stale memory would: a kernel that reads an unfilled row gives NaN.
Tensor cache_of(const Tensor& kv, int cap, int filled) {
    std::vector<float> all = kv.to_f32_vector();
    const int64_t B = kv.dim(0), n = kv.dim(1), row = kv.dim(2) * kv.dim(3);
    std::vector<float> cache(static_cast<size_t>(B * cap * row), std::numeric_limits<float>::quiet_NaN());
    for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < filled; ++s)
            for (int64_t e = 0; e < row; ++e) cache[static_cast<size_t>((b * cap + s) * row + e)] = all[static_cast<size_t>((b * n + s) * row + e)];
    return Tensor::from_vector(cache, {B, cap, kv.dim(2), kv.dim(3)});
}

// The decode form: queries [first, first + count) of a sequence against a cache of cap rows.
Case decode_case(const AttentionShape& s, int first, int count, int cap, uint64_t seed) {
    Case c;
    c.shape = cat(s.name(), " decode: queries ", first, " .. ", first + count - 1, ", cache of ", cap);
    c.inputs = [s, first, count, cap, seed] {
        Tensor q = normal({s.B, s.n, s.Hq, s.hd}, seed), k = normal({s.B, s.n, s.Hkv, s.hd}, seed + 1),
               v = normal({s.B, s.n, s.Hkv, s.hd}, seed + 2);
        return Named{{"q", select_rows(q, first, count)},
                     {"k", cache_of(k, cap, first + count)},
                     {"v", cache_of(v, cap, first + count)}};
    };
    c.run = [s, first, count](Named& in, const Target& t) {
        Named out;
        Tensor o = nan_output(in["q"].shape(), t), lse = nan_output({s.B, s.Hq, count}, t);
        ops::attention_forward(o, lse, in["q"], in["k"], in["v"], first, s.window);
        out.add("out", o);
        out.add("lse", lse);
        return out;
    };
    c.tighter = forward_bounds;
    return c;
}

}  // namespace

OpTest describe_attention() {
    OpTest op;
    op.op = "attention";
    op.small_stride = 14;  // under small shapes: 28 of the 390 cases, every kind among them
    uint64_t seed = 100;
    // Lengths 1 and 17 (inside one tile), 100 (several 32-query and 32- or 64-key tiles, not a
    // multiple of either); windows 0 (none), 1 (only itself), 3, exactly n and past n; KV-group
    // ratios 1, 2 and 4; head dims 8 and 16 with batch 1 and 2, and 1 (far below a tile), 33
    // (just past a 32-wide one), 64 and 128 (full tiles) with batch 1.
    for (int n : {1, 17, 100})
        for (int hd : {1, 8, 16, 33, 64, 128})
            for (int B : {1, 2}) {
                if (B == 2 && hd != 8 && hd != 16) continue;
                for (int window : {0, 1, 3, n, n + 7})
                    for (auto [Hq, Hkv] : {std::pair{2, 2}, std::pair{4, 2}, std::pair{4, 1}}) {
                        if (n == 1 && window == 1) continue;  // the same case as window = n
                        op.cases.push_back(training_case({B, n, Hq, Hkv, hd, window}, seed += 4));
                    }
            }
    // Longer rows: many key tiles, and windows that skip whole tiles.
    for (int window : {0, 50})
        for (int hd : {16, 64, 128}) op.cases.push_back(training_case({1, 300, 8, 2, hd, window}, seed += 4));
    // Decode: n = 70 crosses two 32-key tiles; single queries at tile edges, then blocks of queries.
    for (int hd : {16, 128})
        for (int window : {0, 5, 40})
            for (auto [first, count] : {std::pair{0, 1}, std::pair{31, 1}, std::pair{32, 1}, std::pair{64, 1}, std::pair{69, 1},
                                        std::pair{37, 20}, std::pair{50, 20}, std::pair{1, 69}})
                op.cases.push_back(decode_case({2, 70, 4, 2, hd, window}, first, count, 80, seed += 4));

    // Finite differences: with and without a window, KV-group ratios 1, 2 and 4, batch 2.
    for (const AttentionShape& s : {AttentionShape{1, 7, 2, 2, 4, 0}, AttentionShape{2, 6, 4, 2, 3, 3}, AttentionShape{1, 9, 4, 1, 4, 2},
                                    AttentionShape{1, 5, 2, 1, 2, 1}}) {
        GradCase g;
        g.shape = s.name();
        g.inputs = [s] {
            return Named{{"q", random_tensor({s.B, s.n, s.Hq, s.hd}, 500, 1.0, DType::F64)},
                         {"k", random_tensor({s.B, s.n, s.Hkv, s.hd}, 501, 1.0, DType::F64)},
                         {"v", random_tensor({s.B, s.n, s.Hkv, s.hd}, 502, 1.0, DType::F64)},
                         {"dout", random_tensor({s.B, s.n, s.Hq, s.hd}, 503, 1.0, DType::F64)}};
        };
        g.wrt = {"q", "k", "v"};
        auto forward = [s](const Named& in) {
            Tensor o = Tensor::empty(in["q"].shape(), DType::F64), lse = Tensor::empty({s.B, s.Hq, s.n}, DType::F64);
            ops::attention_forward(o, lse, in["q"], in["k"], in["v"], 0, s.window);
            return std::pair{o, lse};
        };
        g.loss = [forward](const Named& in) { return dot(forward(in).first, in["dout"]); };  // d loss / d out = dout
        g.gradient = [s, forward](const Named& in) {
            auto [o, lse] = forward(in);
            Named grads;
            grads.add("q", Tensor::empty(in["q"].shape(), DType::F64));
            grads.add("k", Tensor::empty(in["k"].shape(), DType::F64));
            grads.add("v", Tensor::empty(in["v"].shape(), DType::F64));
            ops::attention_backward(grads["q"], grads["k"], grads["v"], in["dout"], in["q"], in["k"], in["v"], o, lse, s.window);
            return grads;
        };
        // h = 1e-6 on a loss of size ~10: cancellation ~1e-16 * 10 / 1e-6 = 1e-9 (measured 3e-9).
        g.fd = {1e-7, 1e-6, "central differences, h = 1e-6: cancellation ~1e-9 on a loss of ~10"};
        op.grad_cases.push_back(g);
    }
    return op;
}

}  // namespace ittt::test::harness
