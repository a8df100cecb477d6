// The op harness's descriptions of the per-token layers (tests/ops_harness.h): embedding,
// rmsnorm, rope and swiglu, forward and backward.
#include <cmath>

#include "ops_harness.h"

namespace ittt::test::harness {

namespace {

Shape with_last(Shape s, int64_t last) {
    s.push_back(last);
    return s;
}

}  // namespace

// ---------------- embedding ----------------

OpTest describe_embedding() {
    OpTest op;
    op.op = "embedding";
    op.small_stride = 2;
    struct EmbeddingShape {
        int64_t vocab, dim;
        Shape tokens;
        int max_id;  // ids drawn from [0, max_id): a small max_id repeats ids many times
    };
    // One token of one column; ragged sizes; dims 70 and 130 across the CPU backward's 64-column
    // blocks; (B, n) tokens; thousands of tokens over 5 ids (long runs for one block each); the
    // project's vocabulary (260) with dim 64; a large, sparse vocabulary where most blocks of the
    // sorted CUDA version find no token.
    const std::vector<EmbeddingShape> shapes = {{1, 1, {1}, 1},       {17, 13, {29}, 17},         {17, 13, {29}, 4},         {5, 70, {3}, 4},
                                        {3, 130, {41}, 3},    {5, 70, {3, 7}, 5},         {300, 33, {5000}, 5},      {260, 64, {4, 1000}, 260},
                                        {100000, 16, {777}, 100000}};
    uint64_t seed = 60;
    for (const EmbeddingShape& s : shapes) {
        Case c;
        c.shape = cat("vocab ", s.vocab, " dim ", s.dim, " tokens ", shape_str(s.tokens), " ids < ", s.max_id);
        c.inputs = [s, seed] {
            Named in;
            in.add("table", normal({s.vocab, s.dim}, seed));
            in.add("tokens", random_ints(s.tokens, seed + 1, 0, s.max_id));
            in.add("dout", normal(with_last(s.tokens, s.dim), seed + 2));
            in.add("dtable0", normal({s.vocab, s.dim}, seed + 3));  // the backward adds into it
            return in;
        };
        c.run = [s](Named& in, const Target& t) {
            Named out;
            Tensor rows = nan_output(with_last(s.tokens, s.dim), t);
            ops::embedding_forward(rows, in["table"], in["tokens"]);
            Tensor dtable = in["dtable0"];
            ops::embedding_backward(dtable, in["dout"], in["tokens"]);
            out.add("out", rows);
            out.add("dtable", dtable);
            return out;
        };
        c.tighter = [](const Target& t) {
            std::vector<Tighter> k;
            if (t.device != Device::CUDA) return k;
            k.push_back({"out", Tighter::CpuF32, 0, 0, true, "a lookup copies bits"});
            // Version 2 adds each id's rows in token order, as the CPU does: the same float sums.
            if (t.version == 2) k.push_back({"dtable", Tighter::CpuF32, 0, 0, true, "the same additions in the same order as the CPU"});
            return k;
        };
        op.cases.push_back(c);
        seed += 10;
    }
    GradCase g;
    g.shape = "vocab 7 dim 5, 11 tokens";
    g.inputs = [] {
        return Named{{"table", random_tensor({7, 5}, 8, 1.0, DType::F64)},
                     {"tokens", random_ints({11}, 9, 0, 7)},
                     {"weights", random_tensor({11, 5}, 10, 1.0, DType::F64)}};
    };
    g.wrt = {"table"};
    g.loss = [](const Named& in) {
        Tensor rows = Tensor::empty({11, 5}, DType::F64);
        ops::embedding_forward(rows, in["table"], in["tokens"]);
        return dot(rows, in["weights"]);
    };
    g.gradient = [](const Named& in) {
        Named grads;
        grads.add("table", Tensor::zeros({7, 5}, DType::F64));
        ops::embedding_backward(grads["table"], in["weights"], in["tokens"]);
        return grads;
    };
    g.fd = {1e-8, 1e-8, "the loss is linear in the table: central differences are exact up to cancellation, ~1e-9"};
    op.grad_cases.push_back(g);
    return op;
}

// ---------------- rmsnorm ----------------

OpTest describe_rmsnorm() {
    OpTest op;
    op.op = "rmsnorm";
    const double eps = 1e-6;  // Qwen3's rms_norm_eps
    // Rows of x (the weight has x's last dim): one element; ragged sizes; the per-head (N, H, hd)
    // form; 130 across three 64-column blocks of the CPU dweight pass; rows longer than a warp's
    // 32 lanes; more than 256 rows (several row groups in the CUDA dweight reduction); one column;
    // and long rows of large values (x + 1e4), where a float sum of squares would lose ~1e-6 of rstd.
    struct Rows {
        Shape shape;
        float offset;
    };
    const std::vector<Rows> shapes = {{{1, 1}, 0},    {{17, 33}, 0},   {{3, 5, 16}, 0}, {{2, 130}, 0}, {{600, 70}, 0},
                                      {{5, 4099}, 0}, {{257, 1}, 0},   {{1000, 96}, 0}, {{3, 4099}, 1e4f}};
    uint64_t seed = 10;
    for (const Rows& r : shapes) {
        Case c;
        c.shape = cat("x ", shape_str(r.shape), r.offset != 0 ? cat(" + ", r.offset) : std::string());
        c.inputs = [r, seed] {
            Named in;
            Tensor x = normal(r.shape, seed);
            for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += r.offset;
            in.add("x", x);
            in.add("weight", normal({r.shape.back()}, seed + 1));
            in.add("dout", normal(r.shape, seed + 2));
            in.add("dweight0", normal({r.shape.back()}, seed + 3));  // nonzero: the backward must add to it
            return in;
        };
        c.run = [eps](Named& in, const Target& t) {
            const Tensor& x = in["x"];
            const int64_t rows = x.numel() / in["weight"].numel();
            Tensor out = nan_output(x.shape(), t), rstd = nan_output({rows}, t), dx = nan_output(x.shape(), t);
            ops::rmsnorm_forward(out, rstd, x, in["weight"], eps);
            Tensor dweight = in["dweight0"];
            ops::rmsnorm_backward(dx, dweight, in["dout"], x, in["weight"], rstd);
            return Named{{"out", out}, {"rstd", rstd}, {"dx", dx}, {"dweight", dweight}};
        };
        // Both devices sum in double and round the same double value to float once; their sums
        // differ only in order (~1e-16 relative), which can move a float result by one ulp
        // (1.2e-7 relative): 2.5e-7 allows two; atol only guards zeros.
        const char* why = "double sums rounded once to float, as on the CPU: <= 2 ulp";
        c.tighter = on_cuda({{"out", Tighter::CpuF32, 1e-12, 2.5e-7, false, why},
                             {"rstd", Tighter::CpuF32, 1e-12, 2.5e-7, false, why},
                             {"dx", Tighter::CpuF32, 1e-12, 2.5e-7, false, why},
                             {"dweight", Tighter::CpuF32, 1e-12, 2.5e-7, false, why}});
        op.cases.push_back(c);
        seed += 10;
    }
    for (const Shape& shape : {Shape{1, 1}, Shape{3, 7}, Shape{2, 3, 5}}) {
        GradCase g;
        g.shape = "x " + shape_str(shape);
        g.inputs = [shape] {
            return Named{{"x", random_tensor(shape, 6, 1.0, DType::F64)},
                         {"weight", random_tensor({shape.back()}, 7, 1.0, DType::F64)},
                         {"dout", random_tensor(shape, 8, 1.0, DType::F64)}};
        };
        g.wrt = {"x", "weight"};
        auto forward = [eps](const Named& in, Tensor& rstd) {
            Tensor out = Tensor::empty(in["x"].shape(), DType::F64);
            rstd = Tensor::empty({in["x"].numel() / in["weight"].numel()}, DType::F64);
            ops::rmsnorm_forward(out, rstd, in["x"], in["weight"], eps);
            return out;
        };
        g.loss = [forward](const Named& in) {
            Tensor rstd;
            return dot(forward(in, rstd), in["dout"]);
        };
        g.gradient = [forward](const Named& in) {
            Tensor rstd;
            forward(in, rstd);
            Named grads;
            grads.add("x", Tensor::empty(in["x"].shape(), DType::F64));
            grads.add("weight", Tensor::zeros(in["weight"].shape(), DType::F64));
            ops::rmsnorm_backward(grads["x"], grads["weight"], in["dout"], in["x"], in["weight"], rstd);
            return grads;
        };
        g.fd = {1e-7, 1e-6, "central differences, h = 1e-6, of a smooth O(1) function: ~1e-9"};
        op.grad_cases.push_back(g);
    }
    return op;
}

// ---------------- rope ----------------

OpTest describe_rope() {
    OpTest op;
    op.op = "rope";
    // (N, H, hd) and (B, n, H, hd): a single pair, an odd number of pairs, hd = 64 and 128, and
    // more (token, pair) threads than one CUDA block has; Qwen3's theta and 1e4; positions up to
    // 2e5 (a float angle would be off by ~0.01 rad there) and position 0.
    // Positions that span no more than the token count take the cos/sin table path (kept between
    // calls by CPU version 2): each sequence 0..n-1 as the model runs it, and a block from 1000,
    // with both thetas in turn, so a kept table of another key is never reused.
    struct RopeShape {
        Shape x;
        double theta;
        int first = -1;  // >= 0: positions first, first + 1, ... per sequence (the last but two dims); else random
    };
    std::vector<RopeShape> shapes;
    for (const Shape& x : {Shape{1, 1, 2}, Shape{17, 3, 10}, Shape{5, 2, 64}, Shape{2, 3, 4, 8}})
        for (double theta : {1e6, 1e4}) shapes.push_back({x, theta});
    shapes.push_back({{300, 4, 128}, 1e6});
    for (double theta : {1e6, 1e4}) {
        shapes.push_back({{3, 40, 2, 18}, theta, 0});
        shapes.push_back({{3, 40, 2, 18}, theta, 1000});
    }
    uint64_t seed = 40;
    for (const RopeShape& r : shapes) {
        Case c;
        c.shape = cat("x ", shape_str(r.x), " theta ", r.theta, r.first >= 0 ? cat(", positions ", r.first, ".. per sequence") : std::string());
        c.inputs = [r, seed] {
            Named in;
            in.add("x", normal(r.x, seed));
            in.add("dout", normal(r.x, seed + 1));
            Tensor p = random_ints(Shape(r.x.begin(), r.x.end() - 2), seed + 2, 0, 200000);
            p.data<int32_t>()[0] = 0;
            if (r.first >= 0) {
                const int64_t n = r.x.size() > 3 ? r.x[1] : r.x[0];
                for (int64_t i = 0; i < p.numel(); ++i) p.data<int32_t>()[i] = static_cast<int32_t>(r.first + i % n);
            }
            in.add("positions", p);
            return in;
        };
        c.run = [r](Named& in, const Target& t) {
            Tensor out = nan_output(r.x, t), dx = nan_output(r.x, t);
            ops::rope_forward(out, in["x"], in["positions"], r.theta);
            ops::rope_backward(dx, in["dout"], in["positions"], r.theta);
            return Named{{"out", out}, {"dx", dx}};
        };
        op.cases.push_back(c);
        seed += 10;
    }
    GradCase g;
    g.shape = "x (4, 2, 6), positions 0, 1, 7, 123456";
    g.inputs = [] {
        return Named{{"x", random_tensor({4, 2, 6}, 6, 1.0, DType::F64)},
                     {"dout", random_tensor({4, 2, 6}, 7, 1.0, DType::F64)},
                     {"positions", Tensor::from_vector<int32_t>({0, 1, 7, 123456}, {4})}};
    };
    g.wrt = {"x"};
    g.loss = [](const Named& in) {
        Tensor out = Tensor::empty({4, 2, 6}, DType::F64);
        ops::rope_forward(out, in["x"], in["positions"], 1e6);
        return dot(out, in["dout"]);
    };
    g.gradient = [](const Named& in) {
        Named grads;
        grads.add("x", Tensor::empty({4, 2, 6}, DType::F64));
        ops::rope_backward(grads["x"], in["dout"], in["positions"], 1e6);
        return grads;
    };
    g.fd = {1e-8, 1e-8, "linear in x: central differences are exact up to cancellation, ~1e-10"};
    op.grad_cases.push_back(g);
    return op;
}

// ---------------- swiglu ----------------

OpTest describe_swiglu() {
    OpTest op;
    op.op = "swiglu";
    op.small_stride = 2;
    uint64_t seed = 50;
    auto add_case = [&](const std::string& name, std::function<Tensor()> make_g, const Shape& shape, bool cuda_only) {
        Case c;
        c.shape = name;
        c.cuda_only = cuda_only;
        c.inputs = [make_g, shape, seed] {
            return Named{{"g", make_g()}, {"u", normal(shape, seed + 1)}, {"dz", normal(shape, seed + 2)}};
        };
        c.run = [](Named& in, const Target& t) {
            const Shape& shape = in["g"].shape();
            Tensor z = nan_output(shape, t), dg = nan_output(shape, t), du = nan_output(shape, t);
            ops::swiglu_forward(z, in["g"], in["u"]);
            ops::swiglu_backward(dg, du, in["dz"], in["g"], in["u"]);
            return Named{{"z", z}, {"dg", dg}, {"du", du}};
        };
        op.cases.push_back(c);
        seed += 10;
    };
    // Ragged sizes, g ~ N(0, 9) so that silu's curved part and both tails are sampled.
    for (const Shape& shape : {Shape{1}, Shape{17}, Shape{17, 33}, Shape{3, 5, 7}, Shape{33, 129}}) {
        const uint64_t s = seed;
        add_case("shape " + shape_str(shape), [shape, s] { return normal(shape, s, 3.0); }, shape, false);
    }
    // More than 2^16 elements: the CPU splits them between threads in blocks (4096 in version 2),
    // the last one ragged (70001 = 17 x 4096 + 369, 369 = 23 x 16 + 1: a masked tail too).
    {
        const uint64_t s = seed;
        add_case("shape (70001): threaded blocks, a ragged last one", [s] { return normal({70001}, s, 3.0); }, {70001}, false);
    }
    // Large |g|: exp(-g) overflows float for g < -88 and double for g < -709; past -103 the
    // float sigmoid itself underflows to 0. The stable sigmoid must stay finite and right.
    const std::vector<float> large = {-1000.f, -720.f, -100.f, -89.f, -87.f, -30.f, -20.f, -1.28f, 0.f, 20.f, 30.f, 89.f, 100.f, 720.f, 1000.f};
    add_case("g at large |g| (+-1000, +-720, ..., -1.28, 0)", [large] { return Tensor::from_vector(large, {int64_t(large.size())}); },
             {int64_t(large.size())}, false);
    // 2^24 + 3 elements: more than the 65536 x 256 threads of one CUDA launch, so the
    // grid-stride loop runs a second round. (Not under small shapes.)
    if (!small_shapes()) {
        const Shape big{(int64_t(1) << 24) + 3};
        const uint64_t s = seed;
        add_case("shape (2^24 + 3): a second grid-stride round", [big, s] { return normal(big, s, 3.0); }, big, true);
    }
    // Both devices: expf within 2 ulp and a few float roundings after it.
    const char* why = "CUDA's expf is within 2 ulp of glibc's, then a few float roundings";
    for (Case& c : op.cases)
        c.tighter = on_cuda({{"z", Tighter::CpuF32, 1e-6, 1e-6, false, why},
                             {"dg", Tighter::CpuF32, 1e-6, 1e-6, false, why},
                             {"du", Tighter::CpuF32, 1e-6, 1e-6, false, why}});
    for (const Shape& shape : {Shape{1}, Shape{17, 33}, Shape{3, 5, 7}}) {
        GradCase g;
        g.shape = "shape " + shape_str(shape);
        g.inputs = [shape] {
            return Named{{"g", random_tensor(shape, 3, 3.0, DType::F64)},
                         {"u", random_tensor(shape, 4, 1.0, DType::F64)},
                         {"dz", random_tensor(shape, 5, 1.0, DType::F64)}};
        };
        g.wrt = {"g", "u"};
        g.loss = [](const Named& in) {
            Tensor z = Tensor::empty(in["g"].shape(), DType::F64);
            ops::swiglu_forward(z, in["g"], in["u"]);
            return dot(z, in["dz"]);
        };
        g.gradient = [](const Named& in) {
            Named grads;
            grads.add("g", Tensor::empty(in["g"].shape(), DType::F64));
            grads.add("u", Tensor::empty(in["g"].shape(), DType::F64));
            ops::swiglu_backward(grads["g"], grads["u"], in["dz"], in["g"], in["u"]);
            return grads;
        };
        g.fd = {1e-7, 1e-6, "central differences, h = 1e-6, of a smooth O(1) function: ~1e-9"};
        op.grad_cases.push_back(g);
    }
    return op;
}

}  // namespace ittt::test::harness
