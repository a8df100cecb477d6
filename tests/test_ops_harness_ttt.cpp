// The op harness's descriptions of the TTT ops (tests/ops_harness.h): conv1d, ttt_delta (with
// ttt_clip_deltas), prefix_scan, ttt_apply and ttt_loop.
//
// Shapes are ragged on purpose: n = 1, chunk = 1, chunks that divide n and chunks that do not
// (a short last chunk), chunk = n, chunk > n, chunks longer than one 16-row CUDA tile, widths
// d, f that are not multiples of the 16-wide tiles, batch 2 and 3.
#include <cmath>

#include "ops_harness.h"

namespace ittt::test::harness {

namespace {

struct Ragged {
    int64_t n;
    int chunk;
};
// n = 1, chunk = 1, chunks that divide n, that do not, chunk = n, chunk > n, and chunks
// longer than one 16-row tile (a chunk spans several tiles, the last partial).
const std::vector<Ragged> kRagged = {{1, 1}, {1, 4}, {4, 1}, {8, 4}, {7, 3}, {9, 2}, {6, 6}, {5, 8}, {17, 5}, {70, 16}, {70, 33}, {40, 100}};

std::string offsets_str(const std::vector<int>& offsets) {
    std::string s;
    for (int o : offsets) s += cat(s.empty() ? "" : ",", o);
    return "{" + s + "}";
}

}  // namespace

// ---------------- conv1d ----------------

OpTest describe_conv1d() {
    OpTest op;
    op.op = "conv1d";
    const std::vector<int> centred = {-2, -1, 0, 1, 2};  // the release's K = 5
    struct ConvShape {
        int64_t n, d;
        int chunk;
        std::vector<int> offsets;
    };
    std::vector<ConvShape> shapes;
    // Ragged lengths; chunks that divide n, do not, exceed it, and chunk = 1; d = 1, 33 and 37
    // (past the CPU backward's 32-channel block).
    for (int64_t n : {1, 8, 17})
        for (int chunk : {1, 3, 4, 8, 32}) shapes.push_back({n, 37, chunk, centred});
    for (int64_t n : {1, 17, 40})
        for (int chunk : {1, 4, 16, 64})
            for (int64_t d : {1, 33}) shapes.push_back({n, d, chunk, centred});
    shapes.push_back({17, 100, 5, {1}});         // the fixed "next-token" target
    shapes.push_back({17, 37, 5, {0}});          // the fixed "reconstruction" target
    shapes.push_back({17, 7, 6, {-3, 0, 4}});    // uneven taps
    shapes.push_back({9, 5, 4, {7, -9}});        // taps wider than the chunk contribute nothing
    shapes.push_back({300, 70, 64, centred});    // 600 rows for the weight-gradient reduction
    const int64_t B = 2;
    uint64_t seed = 101;
    for (const ConvShape& s : shapes) {
        Case c;
        c.shape = cat("B=", B, " n=", s.n, " d=", s.d, " chunk=", s.chunk, " offsets ", offsets_str(s.offsets));
        const int64_t K = static_cast<int64_t>(s.offsets.size());
        c.inputs = [s, K, seed] {
            Named in;
            in.add("x", normal({B, s.n, s.d}, seed));
            in.add("weight", normal({s.d, K}, seed + 1, 0.5));
            in.add("dout", normal({B, s.n, s.d}, seed + 2));
            in.add("dweight0", normal({s.d, K}, seed + 3));  // the backward adds into it
            return in;
        };
        c.run = [s](Named& in, const Target& t) {
            Tensor out = nan_output(in["x"].shape(), t), dx = nan_output(in["x"].shape(), t);
            ops::conv1d_chunked_forward(out, in["x"], in["weight"], s.offsets, s.chunk);
            Tensor dweight = in["dweight0"];
            ops::conv1d_chunked_backward(dx, dweight, in["dout"], in["x"], in["weight"], s.offsets, s.chunk);
            return Named{{"out", out}, {"dx", dx}, {"dweight", dweight}};
        };
        const char* why = "at most 5 products per element, in the CPU's tap order; only FMA contraction differs";
        c.tighter = on_cuda({{"out", Tighter::CpuF32, 1e-6, 1e-6, false, why}, {"dx", Tighter::CpuF32, 1e-6, 1e-6, false, why}});
        op.cases.push_back(c);
        seed += 10;
    }
    // Finite differences, d = 3: ragged lengths and chunks, and every kind of taps.
    std::vector<ConvShape> fd_shapes;
    for (int64_t n : {1, 8, 17})
        for (int chunk : {1, 3, 4, 8, 32}) fd_shapes.push_back({n, 3, chunk, centred});
    for (const std::vector<int>& taps : {std::vector<int>{1}, std::vector<int>{0}}) fd_shapes.push_back({17, 3, 5, taps});
    fd_shapes.push_back({17, 3, 6, {-3, 0, 4}});
    fd_shapes.push_back({9, 3, 4, {7, -9}});
    for (const ConvShape& s : fd_shapes) {
        GradCase g;
        const int64_t d = s.d, K = static_cast<int64_t>(s.offsets.size());
        g.shape = cat("B=", B, " n=", s.n, " d=", d, " chunk=", s.chunk, " offsets ", offsets_str(s.offsets));
        g.inputs = [s, d, K] {
            Named in;
            in.add("x", random_tensor({B, s.n, d}, 6, 1.0, DType::F64));
            in.add("weight", random_tensor({d, K}, 7, 1.0, DType::F64));
            in.add("r", random_tensor({B, s.n, d}, 8, 1.0, DType::F64));  // loss = <out, r>, so dout = r
            return in;
        };
        g.wrt = {"x", "weight"};
        g.loss = [s](const Named& in) {
            Tensor out = Tensor::empty(in["x"].shape(), DType::F64);
            ops::conv1d_chunked_forward(out, in["x"], in["weight"], s.offsets, s.chunk);
            return dot(out, in["r"]);
        };
        g.gradient = [s](const Named& in) {
            Named grads;
            grads.add("x", Tensor::empty(in["x"].shape(), DType::F64));
            grads.add("weight", Tensor::zeros(in["weight"].shape(), DType::F64));
            ops::conv1d_chunked_backward(grads["x"], grads["weight"], in["r"], in["x"], in["weight"], s.offsets, s.chunk);
            return grads;
        };
        g.fd = {1e-8, 1e-7, "linear in each input: central differences are exact up to cancellation, ~1e-9"};
        op.grad_cases.push_back(g);
    }
    return op;
}

// ---------------- ttt_delta and ttt_clip_deltas ----------------

OpTest describe_ttt_delta() {
    OpTest op;
    op.op = "ttt_delta";
    op.no_backward_why =
        "delta is bilinear: its backward is the same op with dO in place of V (the TTT core's finite differences, tests/test_ttt_apply.cpp)";
    op.small_stride = 3;
    const int64_t B = 2;
    struct DeltaShape {
        int64_t n;
        int chunk;
        int64_t d, f;
    };
    std::vector<DeltaShape> shapes;
    for (const Ragged& r : kRagged)
        for (auto [d, f] : {std::pair<int64_t, int64_t>{3, 5}, {17, 33}, {40, 16}}) shapes.push_back({r.n, r.chunk, d, f});
    for (auto [n, chunk] : {std::pair{1, 1}, {17, 5}, {32, 8}, {40, 64}}) shapes.push_back({n, chunk, 12, 20});
    uint64_t seed = 121;
    for (const DeltaShape& s : shapes) {
        Case c;
        c.shape = cat("delta: B=", B, " n=", s.n, " chunk=", s.chunk, " d=", s.d, " f=", s.f);
        c.inputs = [s, seed] {
            return Named{{"v", normal({B, s.n, s.d}, seed)}, {"z", normal({B, s.n, s.f}, seed + 1)}};
        };
        c.run = [s](Named& in, const Target& t) {
            Tensor delta = nan_output({B, chunk_count(s.n, s.chunk), s.d, s.f}, t);
            ops::ttt_chunk_delta(delta, in["v"], in["z"], s.chunk);
            return Named{{"delta", delta}};
        };
        c.tighter = on_cuda({{"delta", Tighter::CpuF32, 2e-5, 1e-5, false,
                              "both add a chunk's tokens in order; only FMA contraction differs: ~1 ulp per add over <= 100 adds of ~1"}});
        op.cases.push_back(c);
        seed += 10;
    }
    // Clipping: matrices of very different norms, so some are clipped and some are not; an
    // all-zero one (no 0/0); eta of either sign and 0 (never clips); sizes not multiples of 256.
    struct ClipShape {
        Shape shape;
        std::vector<double> norms;  // of eta * delta_i, or empty: entries scaled by 10^(i - 3)
        double eta, tau;
    };
    std::vector<ClipShape> clips;
    for (double eta : {0.3, -2.0, 0.0}) clips.push_back({{7, 13, 29}, {}, eta, 0.5});
    for (double eta : {0.3, -2.0}) clips.push_back({{2, 3, 4, 6}, {0.1, 0.3, 0.9, 2.7, 8.1, 24.3}, eta, 1.0});
    for (const ClipShape& s : clips) {
        Case c;
        c.shape = cat("clip: delta ", shape_str(s.shape), " eta=", s.eta, " tau=", s.tau,
                      s.norms.empty() ? " entries x 10^(i-3), matrix 2 zero" : " norms 0.1 .. 24.3");
        c.inputs = [s] {
            Tensor delta = normal(s.shape, 131);
            const int64_t count = s.shape[0] * (s.shape.size() == 4 ? s.shape[1] : 1), size = delta.numel() / count;
            float* p = delta.data<float>();
            for (int64_t i = 0; i < count; ++i) {
                double factor = std::pow(10.0, static_cast<double>(i - 3));
                if (!s.norms.empty()) {
                    double norm = 0;
                    for (int64_t j = 0; j < size; ++j) norm += double(p[i * size + j]) * p[i * size + j];
                    factor = s.norms[static_cast<size_t>(i)] / std::fabs(s.eta) / std::sqrt(norm);
                } else if (i == 2) {
                    factor = 0;
                }
                for (int64_t j = 0; j < size; ++j) p[i * size + j] = static_cast<float>(p[i * size + j] * factor);
            }
            return Named{{"delta", delta}};
        };
        c.run = [s](Named& in, const Target&) {
            Tensor delta = in["delta"];
            ops::ttt_clip_deltas(delta, s.eta, s.tau);
            return Named{{"clipped", delta}};
        };
        c.tighter = on_cuda({{"clipped", Tighter::CpuF32, 0, 1e-6, false,
                              "the norm is a double sum in another order: the float scale may differ by 1 ulp"}});
        op.cases.push_back(c);
    }
    return op;
}

// ---------------- prefix_scan ----------------

OpTest describe_prefix_scan() {
    OpTest op;
    op.op = "prefix_scan";
    for (int64_t chunks : {1, 2, 7})
        for (const Shape& tail : {Shape{3, 5}, Shape{5000}, Shape{}, Shape{0}})  // 5000: several column blocks
            for (bool reverse : {false, true}) {
                Shape shape = {2, chunks};
                shape.insert(shape.end(), tail.begin(), tail.end());
                Case c;
                c.shape = cat("in ", shape_str(shape), reverse ? " reverse" : " forward");
                c.inputs = [shape] {
                    return Named{{"in", normal(shape, 141)}};
                };
                c.run = [reverse](Named& in, const Target& t) {
                    Tensor out = nan_output(in["in"].shape(), t);
                    ops::prefix_scan_exclusive(out, in["in"], reverse);
                    return Named{{"out", out}};
                };
                c.tighter = on_cuda({{"out", Tighter::CpuF32, 0, 0, true, "the same additions in the same order (previous output + previous input)"}});
                op.cases.push_back(c);
            }
    // The backward of a forward scan is the reverse scan of the output's gradient, and back.
    for (bool reverse : {false, true}) {
        GradCase g;
        g.shape = cat("in (2, 5, 3)", reverse ? " reverse" : " forward");
        g.inputs = [] {
            return Named{{"in", random_tensor({2, 5, 3}, 11, 1.0, DType::F64)},
                         {"r", random_tensor({2, 5, 3}, 12, 1.0, DType::F64)}};
        };
        g.wrt = {"in"};
        g.loss = [reverse](const Named& in) {
            Tensor out = Tensor::empty({2, 5, 3}, DType::F64);
            ops::prefix_scan_exclusive(out, in["in"], reverse);
            return dot(out, in["r"]);
        };
        g.gradient = [reverse](const Named& in) {
            Named grads;
            grads.add("in", Tensor::empty({2, 5, 3}, DType::F64));
            ops::prefix_scan_exclusive(grads["in"], in["r"], !reverse);
            return grads;
        };
        g.fd = {1e-8, 1e-8, "linear: central differences are exact up to cancellation, ~1e-10"};
        op.grad_cases.push_back(g);
    }
    return op;
}

// ---------------- ttt_apply ----------------

OpTest describe_ttt_apply() {
    OpTest op;
    op.op = "ttt_apply";
    op.no_backward_why =
        "its backward takes g, the reverse scan of the whole core's Wbar_i: checked against finite differences of the core (tests/test_ttt_apply.cpp)";
    op.small_stride = 3;
    const int64_t B = 2;
    const double eta = 0.7;
    struct ApplyShape {
        int64_t n;
        int chunk;
        int64_t d, f;
        bool s_zero = false;  // s = 0 everywhere: o is the plain MLP's bit for bit
    };
    std::vector<ApplyShape> shapes;
    for (const Ragged& r : kRagged)
        for (auto [d, f] : {std::pair<int64_t, int64_t>{5, 7}, {33, 47}, {16, 32}}) shapes.push_back({r.n, r.chunk, d, f});
    for (auto [n, chunk] : {std::pair{1, 1}, {17, 5}, {32, 8}, {40, 64}}) shapes.push_back({n, chunk, 12, 20});
    shapes.push_back({17, 5, 6, 24, true});
    uint64_t seed = 181;
    for (const ApplyShape& s : shapes) {
        Case c;
        c.shape = cat("B=", B, " n=", s.n, " chunk=", s.chunk, " d=", s.d, " f=", s.f, " eta=", eta, s.s_zero ? " s = 0" : "");
        c.inputs = [s, seed] {
            const int64_t T = chunk_count(s.n, s.chunk), size = s.d * s.f;
            Named in;
            in.add("z", normal({B, s.n, s.f}, seed));
            in.add("wd", normal({s.d, s.f}, seed + 1, 0.3));
            Tensor S = normal({B, T, s.d, s.f}, seed + 2, 0.5), G = normal({B, T, s.d, s.f}, seed + 3, 0.5);
            // s_0 of sequence 0 is zero, as in the model (and the zero-chunk skip runs); so is the last g.
            for (int64_t j = 0; j < (s.s_zero ? S.numel() : size); ++j) S.data<float>()[j] = 0;
            if (B * T > 1)
                for (int64_t j = 0; j < size; ++j) G.data<float>()[(B * T - 1) * size + j] = 0;
            in.add("s", S);
            in.add("g", G);
            in.add("v", normal({B, s.n, s.d}, seed + 4));
            in.add("dout", normal({B, s.n, s.d}, seed + 5));
            return in;
        };
        c.run = [s, eta](Named& in, const Target& t) {
            Tensor o = nan_output({B, s.n, s.d}, t), dz = nan_output({B, s.n, s.f}, t), dv = nan_output({B, s.n, s.d}, t);
            ops::ttt_apply_forward(o, in["z"], in["wd"], in["s"], eta, s.chunk);
            ops::ttt_apply_backward(dz, dv, in["dout"], in["z"], in["v"], in["wd"], in["s"], in["g"], eta, s.chunk);
            // The rows of every chunk whose s_i is zero are the plain MLP's, z wd^T, bit for bit
            // (what the drop-in property rests on).
            Tensor plain = nan_output({B, s.n, s.d}, t);
            ops::linear(plain, in["z"], in["wd"]);
            const std::vector<double> S = in["s"].to_f64_vector(), O = o.to_f64_vector(), P = plain.to_f64_vector();
            const int64_t T = chunk_count(s.n, s.chunk), size = s.d * s.f;
            for (int64_t b = 0; b < B; ++b)
                for (int64_t i = 0; i < T; ++i) {
                    bool zero = true;
                    for (int64_t j = 0; j < size && zero; ++j) zero = S[static_cast<size_t>((b * T + i) * size + j)] == 0;
                    if (!zero) continue;
                    const int64_t first = (b * s.n + i * s.chunk) * s.d, last = (b * s.n + std::min<int64_t>((i + 1) * s.chunk, s.n)) * s.d;
                    INFO(t.describe() << ": rows of chunk " << i << " of sequence " << b << " (s = 0) against the plain z wd^T");
                    CHECK(std::equal(O.begin() + first, O.begin() + last, P.begin() + first));
                }
            return Named{{"o", o}, {"dz", dz}, {"dv", dv}};
        };
        op.cases.push_back(c);
        seed += 10;
    }
    return op;
}

// ---------------- ttt_loop ----------------

OpTest describe_ttt_loop() {
    OpTest op;
    op.op = "ttt_loop";
    struct LoopShape {
        int64_t n;
        int chunk;
    };
    // Short last chunks, one chunk, one-token chunks, chunk longer than the sequence.
    const std::vector<LoopShape> shapes = {{1, 1}, {5, 1}, {7, 3}, {8, 4}, {9, 4}, {3, 8}, {33, 8}};
    const int64_t B = 3, d = 5, f = 12;
    const double eta = 0.7;
    uint64_t seed = 1;
    for (const LoopShape& s : shapes)
        for (bool flat : {false, true}) {
            // Training: the forward keeps every W_i (the loop form) or only the last (the flat
            // form, whose backward rebuilds them in reverse); then the backward.
            Case c;
            c.shape = cat("B=", B, " n=", s.n, " chunk=", s.chunk, " d=", d, " f=", f, flat ? " flat (W rebuilt)" : " loop (every W kept)");
            c.inputs = [s, seed] {
                return Named{{"v", normal({B, s.n, d}, seed, 0.5)},
                             {"z", normal({B, s.n, f}, seed + 1, 0.5)},
                             {"wd", normal({d, f}, seed + 2, 0.5)},
                             {"dout", normal({B, s.n, d}, seed + 3)}};
            };
            c.run = [s, flat, eta](Named& in, const Target& t) {
                Tensor o = nan_output({B, s.n, d}, t), dz = nan_output({B, s.n, f}, t), dv = nan_output({B, s.n, d}, t);
                Tensor dwd = Tensor::zeros({d, f}, t.dtype, t.device);
                ops::TttLoopOptions opt;
                opt.keep_all = !flat;
                opt.keep_last = flat;
                ops::TttLoopResult r = ops::ttt_loop_forward(o, in["z"], in["v"], in["wd"], eta, s.chunk, opt);
                ops::ttt_loop_backward(dz, dv, dwd, in["dout"], in["z"], in["v"], eta, s.chunk, flat ? r.w_last : r.w_all);
                return Named{{"o", o}, {"dz", dz}, {"dv", dv}, {"dwd", dwd}};
            };
            op.cases.push_back(c);
            seed += 10;
        }
    // Inference: clipping (tau 0.05 clips most chunks), an update limit, the norms, from a
    // fast-weight state (so the last chunk's update is computed and its norm is not NaN).
    for (int limit : {-1, 2}) {
        Case c;
        const LoopShape s{16, 4};
        c.shape = cat("inference: B=", B, " n=", s.n, " chunk=", s.chunk, " clip tau 0.05, update limit ", limit, ", state and norms");
        c.inputs = [s, seed] {
            return Named{{"v", normal({B, s.n, d}, seed, 0.5)},
                         {"z", normal({B, s.n, f}, seed + 1, 0.5)},
                         {"wd", normal({d, f}, seed + 2, 0.5)},
                         {"w_state", normal({B, d, f}, seed + 3, 0.5)}};
        };
        c.run = [s, limit, eta](Named& in, const Target& t) {
            Tensor o = nan_output({B, s.n, d}, t);
            ops::TttLoopOptions opt;
            opt.update_limit = limit;
            opt.clip_tau = 0.05;
            opt.w_state = in["w_state"];
            opt.norms = true;
            ops::TttLoopResult r = ops::ttt_loop_forward(o, in["z"], in["v"], in["wd"], eta, s.chunk, opt);
            return Named{{"o", o},
                         {"w_state", in["w_state"]},
                         {"norm", Tensor::from_vector(r.norm, {static_cast<int64_t>(r.norm.size())})},
                         {"applied", Tensor::from_vector(r.applied, {static_cast<int64_t>(r.applied.size())})}};
        };
        op.cases.push_back(c);
        seed += 10;
    }
    // A stream: the rows after `start` rows of the first chunk, continued from a fast-weight
    // state (one per sequence) that the run updates in place, as decode does.
    for (const LoopShape& s : {LoopShape{9, 4}, LoopShape{16, 4}, LoopShape{5, 8}}) {
        Case c;
        const int start = std::min(s.chunk - 1, static_cast<int>(s.n) - 1);
        c.shape = cat("stream: B=", B, " n=", s.n, " chunk=", s.chunk, " from row ", start, " of a state, clip tau 0.5");
        c.inputs = [s, seed] {
            return Named{{"v", normal({B, s.n, d}, seed, 0.5)},
                         {"z", normal({B, s.n, f}, seed + 1, 0.5)},
                         {"wd", normal({d, f}, seed + 2, 0.5)},
                         {"w_state", normal({B, d, f}, seed + 3, 0.5)}};
        };
        c.run = [s, start, eta](Named& in, const Target& t) {
            Tensor o = nan_output({B, s.n - start, d}, t);
            ops::TttLoopOptions opt;
            opt.clip_tau = 0.5;
            opt.start = start;
            opt.w_state = in["w_state"];
            ops::ttt_loop_forward(o, in["z"], in["v"], in["wd"], eta, s.chunk, opt);
            return Named{{"o", o}, {"w_state", in["w_state"]}};
        };
        op.cases.push_back(c);
        seed += 10;
    }
    for (const LoopShape& s : shapes)
        for (bool flat : {false, true}) {
            GradCase g;
            const int64_t gd = 3, gf = 4, gB = 2;
            g.shape = cat("B=", gB, " n=", s.n, " chunk=", s.chunk, " d=", gd, " f=", gf, flat ? " flat" : " loop");
            g.inputs = [s] {
                Named in;
                in.add("v", random_tensor({gB, s.n, gd}, 11, 1.0, DType::F64));
                in.add("z", random_tensor({gB, s.n, gf}, 12, 1.0, DType::F64));
                in.add("wd", random_tensor({gd, gf}, 13, 1.0, DType::F64));
                in.add("r", random_tensor({gB, s.n, gd}, 14, 1.0, DType::F64));  // loss = <O, R>, so dO = R
                return in;
            };
            g.wrt = {"v", "z", "wd"};
            g.loss = [s](const Named& in) {
                Tensor o = Tensor::empty({gB, s.n, gd}, DType::F64);
                ops::ttt_loop_forward(o, in["z"], in["v"], in["wd"], 0.6, s.chunk);
                return dot(o, in["r"]);
            };
            g.gradient = [s, flat](const Named& in) {
                Tensor o = Tensor::empty({gB, s.n, gd}, DType::F64);
                ops::TttLoopOptions opt;
                opt.keep_all = !flat;
                opt.keep_last = flat;
                ops::TttLoopResult r = ops::ttt_loop_forward(o, in["z"], in["v"], in["wd"], 0.6, s.chunk, opt);
                Named grads;
                grads.add("v", Tensor::empty({gB, s.n, gd}, DType::F64));
                grads.add("z", Tensor::empty({gB, s.n, gf}, DType::F64));
                grads.add("wd", Tensor::zeros({gd, gf}, DType::F64));
                ops::ttt_loop_backward(grads["z"], grads["v"], grads["wd"], in["r"], in["z"], in["v"], 0.6, s.chunk, flat ? r.w_last : r.w_all);
                return grads;
            };
            g.fd = {1e-7, 1e-7, "quadratic in each input: no truncation error, only cancellation ~1e-16 |loss| / h ~ 1e-9"};
            op.grad_cases.push_back(g);
        }
    return op;
}

}  // namespace ittt::test::harness
