// The op harness's descriptions of attention (tests/ops_harness.h): causal grouped-query
// attention with a sliding window, forward (out, lse) and backward (dq, dk, dv), and the
// decode form (queries at q_pos0 > 0 against a larger KV cache); and of attention_block, the
// pieces ring attention is made of (one block of keys at a time, merged online).
#include <limits>
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

// ---------------- attention_block ----------------

namespace {

// Queries [q_pos0, q_pos0 + nq) against two blocks of keys, [k_pos0[0], + nk[0]) and
// [k_pos0[1], + nk[1]), as ring attention sees them on one rank.
struct BlockShape {
    int B, nq, Hq, Hkv, hd, window;
    int64_t q_pos0;
    int64_t k_pos0[2];
    int nk[2];
    std::string name() const {
        return cat("B=", B, " queries ", q_pos0, "+", nq, " keys ", k_pos0[0], "+", nk[0], " and ", k_pos0[1], "+", nk[1], " Hq=", Hq,
                   " Hkv=", Hkv, " hd=", hd, " window=", window);
    }
};

// lse is -inf where a query sees none of a block's keys; -inf - -inf is NaN, so the runs
// report it as -1e4 (every finite lse here is O(1)): the -inf rule itself is then compared.
Tensor lse_for_compare(const Tensor& lse) {
    std::vector<double> x = host(lse).to_f64_vector();
    for (double& e : x)
        if (e == -std::numeric_limits<double>::infinity()) e = -1e4;
    return Tensor::from_vector(x, lse.shape());
}

// Both blocks' forwards, their merge (as the ring does: block 0's result, then block 1 folded
// in), and the backward of each block from the merged out and lse with dq accumulated.
Named run_blocks(const BlockShape& s, Named& in, DType dtype, Device device) {
    auto empty = [&](const Shape& shape) { return nan_tensor(shape, dtype, device); };
    Named out;
    Tensor o[2], lse[2];
    for (int b = 0; b < 2; ++b) {
        o[b] = empty(in["q"].shape());
        lse[b] = empty({s.B, s.Hq, s.nq});
        ops::attention_block_forward(o[b], lse[b], in["q"], in[cat("k", b)], in[cat("v", b)], s.q_pos0, s.k_pos0[b], s.window);
        out.add(cat("out", b), o[b]);
        out.add(cat("lse", b), lse_for_compare(lse[b]));
    }
    Tensor merged = o[0].clone(), merged_lse = lse[0].clone();
    ops::attention_block_merge(merged, merged_lse, o[1], lse[1]);
    out.add("out", merged);
    out.add("lse", lse_for_compare(merged_lse));
    Tensor dq = Tensor::zeros(in["q"].shape(), dtype, device);
    for (int b = 0; b < 2; ++b) {
        Tensor dk = empty(in[cat("k", b)].shape()), dv = empty(in[cat("v", b)].shape());
        ops::attention_block_backward(dq, dk, dv, in["dout"], in["q"], in[cat("k", b)], in[cat("v", b)], merged, merged_lse, s.q_pos0,
                                      s.k_pos0[b], s.window);
        out.add(cat("dk", b), dk);
        out.add(cat("dv", b), dv);
    }
    out.add("dq", dq);
    return out;
}

Named block_inputs(const BlockShape& s, uint64_t seed, DType dtype) {
    auto make = [&](const Shape& shape, uint64_t k) { return dtype == DType::F32 ? normal(shape, seed + k) : random_tensor(shape, seed + k, 1.0, dtype); };
    Named in{{"q", make({s.B, s.nq, s.Hq, s.hd}, 0)}, {"dout", make({s.B, s.nq, s.Hq, s.hd}, 1)}};
    for (int b = 0; b < 2; ++b) {
        in.add(cat("k", b), make({s.B, s.nk[b], s.Hkv, s.hd}, 2 + 2 * b));
        in.add(cat("v", b), make({s.B, s.nk[b], s.Hkv, s.hd}, 3 + 2 * b));
    }
    return in;
}

}  // namespace

OpTest describe_attention_block() {
    OpTest op;
    op.op = "attention_block";
    uint64_t seed = 900;
    // The rank's own (diagonal) block and an earlier one; a block wholly in the future (every
    // query sees none of it: out 0, lse -inf); windows that reach into the earlier block for
    // some queries only (5), for none (1) and past it (40); KV-group ratios 1, 2 and 4.
    const std::vector<BlockShape> shapes = {
        {1, 5, 2, 1, 4, 0, 7, {0, 7}, {7, 5}},       {2, 17, 4, 2, 16, 0, 17, {0, 17}, {17, 17}},
        {2, 17, 4, 2, 16, 5, 17, {0, 17}, {17, 17}}, {1, 17, 4, 4, 8, 1, 17, {0, 17}, {17, 17}},
        {1, 33, 4, 1, 33, 40, 33, {0, 33}, {33, 33}}, {2, 9, 2, 2, 8, 0, 9, {0, 18}, {9, 9}},
        {1, 40, 8, 2, 64, 0, 40, {0, 40}, {40, 40}},
    };
    for (const BlockShape& s : shapes) {
        Case c;
        c.shape = s.name();
        c.inputs = [s, seed] { return block_inputs(s, seed, DType::F32); };
        c.run = [s](Named& in, const Target& t) { return run_blocks(s, in, t.dtype, t.device); };
        op.cases.push_back(c);
        seed += 10;
    }
    // Finite differences of <merged out, dout> with respect to q and both blocks' keys and values.
    for (const BlockShape& s : {BlockShape{1, 4, 2, 1, 3, 0, 4, {0, 4}, {4, 4}}, BlockShape{2, 5, 4, 2, 2, 3, 5, {0, 5}, {5, 5}}}) {
        GradCase g;
        g.shape = s.name();
        g.inputs = [s] { return block_inputs(s, 950, DType::F64); };
        g.wrt = {"q", "k0", "v0", "k1", "v1"};
        g.loss = [s](const Named& in) {
            Named copy = in;
            return dot(run_blocks(s, copy, DType::F64, Device::CPU)["out"], in["dout"]);
        };
        g.gradient = [s](const Named& in) {
            Named copy = in;
            Named out = run_blocks(s, copy, DType::F64, Device::CPU);
            return Named{{"q", out["dq"]}, {"k0", out["dk0"]}, {"v0", out["dv0"]}, {"k1", out["dk1"]}, {"v1", out["dv1"]}};
        };
        g.fd = {1e-7, 1e-6, "central differences, h = 1e-6: cancellation ~1e-9 on a loss of ~10"};
        op.grad_cases.push_back(g);
    }
    return op;
}

}  // namespace ittt::test::harness
