// The op harness's descriptions of the training-side ops (tests/ops_harness.h): cross_entropy,
// adamw, and the elementwise helpers (fill, add_inplace, scale_inplace, sum_squares,
// all_finite, sum_dim0, and clip_grad_norm, which is built on them).
#include <cmath>
#include <limits>

#include "ops_harness.h"

namespace ittt::test::harness {

// ---------------- cross_entropy ----------------

OpTest describe_cross_entropy() {
    OpTest op;
    op.op = "cross_entropy";
    struct LossShape {
        int64_t N, V;
        double scale;
        int ignore_first, ignore_every;  // rows ignore_first, ignore_first + every, ... have target -1
    };
    // V = 1, smaller than a CUDA block, not a multiple of 32, larger than a block, GPT-2's
    // vocabulary; rows ignored between scored ones.
    const std::vector<LossShape> shapes = {{1, 1, 2.0, 3, 5},      {6, 1, 2.0, 3, 5},     {4, 17, 2.0, 3, 5},  {33, 17, 2.0, 3, 5},
                                           {17, 260, 2.0, 3, 5},   {3, 17, 3.0, 1, 3},    {17, 1000, 3.0, 1, 3}, {5, 5000, 3.0, 1, 3},
                                           {4, 50257, 3.0, 1, 3},  {8, 260, 1e4, 1, 100}};
    auto make_case = [&op](const std::string& name, std::function<Named()> inputs, double grad_scale,
                           std::function<std::vector<Tighter>(const Target&)> tighter) {
        Case c;
        c.tighter = std::move(tighter);
        c.shape = cat(name, " grad_scale=", grad_scale);
        c.inputs = std::move(inputs);
        c.run = [grad_scale](Named& in, const Target& t) {
            Tensor dlogits = nan_output(in["logits"].shape(), t);  // stale values, ignored rows included, must be overwritten
            const ops::CrossEntropyResult with_grad = ops::cross_entropy(&dlogits, in["logits"], in["targets"], grad_scale);
            const ops::CrossEntropyResult loss_only = ops::cross_entropy(nullptr, in["logits"], in["targets"], grad_scale);
            INFO(t.describe() << ": the loss with and without dlogits");
            CHECK(loss_only.loss_sum == with_grad.loss_sum);  // the same reduction either way
            CHECK(loss_only.n_scored == with_grad.n_scored);
            return Named{{"loss_sum", scalar(with_grad.loss_sum)},
                         {"n_scored", scalar(static_cast<double>(with_grad.n_scored))},
                         {"dlogits", dlogits}};
        };
        op.cases.push_back(c);
    };
    uint64_t seed = 201;
    for (const LossShape& s : shapes) {
        int64_t scored = 0;
        for (int64_t i = 0; i < s.N; ++i) scored += (i >= s.ignore_first && (i - s.ignore_first) % s.ignore_every == 0) ? 0 : 1;
        const double grad_scale = s.scale == 3.0 ? 1.0 / static_cast<double>(scored) : 0.37;  // a mean loss, or a factor that shows
        // On CUDA, against the CPU (which works in double): per row, float exp and a float sum of
        // up to 5e4 terms in a tree, ~1e-6 relative on log(sum); p = exp(x - max - log_sum) is
        // good to ~1e-6 relative, plus grad_scale * 1e-7 where p - 1 cancels.
        auto tighter = on_cuda({{"loss_sum", Tighter::CpuF32, 1e-5, 1e-5, false, "float exp and a float tree sum per row"},
                                {"dlogits", Tighter::CpuF32, 1e-6 * grad_scale, 1e-5, false,
                                 "p to ~1e-6 relative, plus grad_scale * 1e-7 where p - 1 cancels"}});
        make_case(cat("N=", s.N, " V=", s.V, " logits ~ N(0, ", s.scale, "^2), rows ", s.ignore_first, ", +", s.ignore_every, ", ... ignored"),
                  [s, seed] {
                      Named in;
                      in.add("logits", normal({s.N, s.V}, seed, s.scale));
                      Tensor t = random_ints({s.N}, seed + 1, 0, static_cast<int>(s.V));
                      for (int64_t i = s.ignore_first; i < s.N; i += s.ignore_every) t.data<int32_t>()[i] = -1;
                      in.add("targets", t);
                      return in;
                  },
                  grad_scale, tighter);
        seed += 10;
    }
    // Rows with answers in closed form and logits of 1e4 (exp(1e4) overflows without the max shift):
    //   [1e4, 1e4 - 1, -1e4] target 1; [-1e4, -1e4, -1e4] target 2; [1e4, -1e4, 0] target 1.
    make_case("closed-form rows with logits of +-1e4",
              [] {
                  return Named{{"logits", Tensor::from_vector(std::vector<float>{1e4f, 1e4f - 1, -1e4f, -1e4f, -1e4f, -1e4f, 1e4f, -1e4f, 0.f}, {3, 3})},
                               {"targets", Tensor::from_vector<int32_t>({1, 2, 1}, {3})}};
              },
              1.0,
              [](const Target& t) {
                  std::vector<Tighter> k;
                  if (t.dtype != DType::F32) return k;
                  // (max - x[t]) is exact; the log of a float sum of 2 or 3 terms: ~1e-7 relative of ~1.
                  k.push_back({"loss_sum", Tighter::F64Reference, 1e-6, 1e-12, false, "exact differences, the log of a float sum of 2 or 3 terms"});
                  k.push_back({"dlogits", Tighter::F64Reference, 1e-7, 1e-6, false, "float exp of exponents 0, -1, -2e4: a few ulp"});
                  return k;
              });

    GradCase g;
    g.shape = "N=5 V=17 logits ~ N(0, 1.5^2), row 3 ignored, grad_scale 0.37";
    g.inputs = [] {
        Named in;
        in.add("logits", random_tensor({5, 17}, 7, 1.5, DType::F64));
        Tensor t = random_ints({5}, 8, 0, 17);
        t.data<int32_t>()[3] = -1;  // an ignored row: its gradient must be 0
        in.add("targets", t);
        return in;
    };
    g.wrt = {"logits"};
    g.loss = [](const Named& in) { return 0.37 * ops::cross_entropy(nullptr, in["logits"], in["targets"], 0.37).loss_sum; };
    g.gradient = [](const Named& in) {
        Named grads;
        grads.add("logits", Tensor::empty({5, 17}, DType::F64));
        ops::cross_entropy(&grads["logits"], in["logits"], in["targets"], 0.37);
        return grads;
    };
    g.fd = {1e-8, 1e-6, "central differences in double: h^2 truncation plus 1e-16/h cancellation, ~1e-10"};
    op.grad_cases.push_back(g);
    return op;
}

// ---------------- adamw ----------------

OpTest describe_adamw() {
    OpTest op;
    op.op = "adamw";
    op.no_backward_why = "an optimiser step: no gradient flows through it";
    struct StepShape {
        Shape shape;
        int steps;
        ops::AdamWConfig cfg;
        double param_scale, grad_scale;  // grads of step s ~ N(0, (grad_scale * s)^2) when grad_scale > 0, else N(0, 1)
    };
    ops::AdamWConfig large;  // large steps: lr 0.05, betas 0.8 / 0.9, eps 1e-6
    large.lr = 0.05;
    large.beta1 = 0.8;
    large.beta2 = 0.9;
    large.eps = 1e-6;
    large.weight_decay = 0.1;
    ops::AdamWConfig defaults;  // the defaults: lr 1e-3, betas 0.9 / 0.95, eps 1e-8
    defaults.weight_decay = 0.1;
    std::vector<StepShape> shapes;
    for (int64_t n : {1, 17, 1000, 70001}) shapes.push_back({{n}, 6, large, 1.0, 0.0});
    for (const Shape& s : {Shape{1}, Shape{17}, Shape{3, 5}, Shape{2, 3, 7}}) shapes.push_back({s, 20, defaults, 0.5, 0.01});
    uint64_t seed = 211;
    for (const StepShape& s : shapes) {
        Case c;
        c.shape = cat("param ", shape_str(s.shape), ", ", s.steps, " steps (each compared), lr ", s.cfg.lr, " betas ", s.cfg.beta1, " / ", s.cfg.beta2,
                      " eps ", s.cfg.eps, " weight decay ", s.cfg.weight_decay, ", one gradient entry exactly 0");
        c.inputs = [s, seed] {
            Named in;
            in.add("param", normal(s.shape, seed, s.param_scale));
            const int64_t n = shape_numel(s.shape);
            Tensor grads = Tensor::empty({s.steps, n});
            for (int step = 1; step <= s.steps; ++step) {
                Tensor g = normal({n}, seed + 1 + static_cast<uint64_t>(step), s.grad_scale > 0 ? s.grad_scale * step : 1.0);
                g.data<float>()[0] = 0;  // an exact zero gradient
                std::copy(g.data<float>(), g.data<float>() + n, grads.data<float>() + (step - 1) * n);
            }
            in.add("grads", grads);
            return in;
        };
        // Outputs: param, m and v after every step, as (steps, n).
        c.run = [s](Named& in, const Target& t) {
            const int64_t n = shape_numel(s.shape);
            Tensor param = in["param"], m = Tensor::zeros(s.shape, t.dtype, t.device), v = Tensor::zeros(s.shape, t.dtype, t.device);
            Named out;
            for (const char* name : {"param", "m", "v"}) out.add(name, nan_output({s.steps, n}, t));
            for (int step = 1; step <= s.steps; ++step) {
                ops::adamw_step(param, in["grads"].rows(step - 1, step).view(s.shape), m, v, s.cfg, step);
                out["param"].rows(step - 1, step).view(s.shape).copy_from(param);
                out["m"].rows(step - 1, step).view(s.shape).copy_from(m);
                out["v"].rows(step - 1, step).view(s.shape).copy_from(v);
            }
            return out;
        };
        c.tighter = [](const Target& t) {
            std::vector<Tighter> k;
            if (t.dtype != DType::F32) return k;
            // m and v are plain float recurrences (of order 0.1 and 0.01 with the small gradients):
            // F32 rounding only, where the table's atol would say nothing about v.
            k.push_back({"m", Tighter::F64Reference, 1e-7, 1e-5, false, "a float recurrence: F32 rounding only"});
            k.push_back({"v", Tighter::F64Reference, 1e-9, 1e-5, false, "a float recurrence of squares: F32 rounding only"});
            if (t.device != Device::CUDA) return k;
            for (const char* name : {"param", "m", "v"})
                k.push_back({name, Tighter::CpuF32, 1e-6, 1e-5, false, "the same float expression as the CPU; FMA contraction differs by a few ulp per step"});
            return k;
        };
        op.cases.push_back(c);
        seed += 40;
    }
    return op;
}

// ---------------- elementwise ----------------

OpTest describe_elementwise() {
    OpTest op;
    op.op = "elementwise";
    op.no_backward_why = "helpers of the optimiser and of gradient bookkeeping, with no backward of their own";
    const bool small = small_shapes();
    auto add = [&op](const std::string& name, std::function<Named()> inputs, std::function<Named(Named&, const Target&)> run,
                     std::function<std::vector<Tighter>(const Target&)> tighter) {
        Case c;
        c.shape = name;
        c.inputs = std::move(inputs);
        c.run = std::move(run);
        c.tighter = std::move(tighter);
        op.cases.push_back(c);
    };
    auto one = [](const std::string& name, Tensor x) {
        return Named{{name, std::move(x)}};
    };
    // fill, scale_inplace, add_inplace: empty, 1, ragged, and a few million (past one grid).
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(17), int64_t(1000), small ? int64_t(30001) : int64_t(3000001)}) {
        add(cat("fill 0.37, n=", n), [n, one] { return one("x", normal({n}, 221)); },
            [one](Named& in, const Target&) {
                ops::fill(in["x"], 0.37);
                return one("x", in["x"]);
            },
            on_cuda({{"x", Tighter::CpuF32, 0, 0, true, "the same float(0.37) everywhere"}}));
        add(cat("scale_inplace x *= -1.7, n=", n), [n, one] { return one("x", normal({n}, 222)); },
            [one](Named& in, const Target&) {
                ops::scale_inplace(in["x"], -1.7);
                return one("x", in["x"]);
            },
            on_cuda({{"x", Tighter::CpuF32, 0, 0, true, "one correctly rounded multiply on both sides"}}));
        add(cat("add_inplace y += 0.3 x, n=", n),
            [n] {
                return Named{{"x", normal({n}, 223)}, {"y", normal({n}, 224)}};
            },
            [one](Named& in, const Target&) {
                ops::add_inplace(in["y"], in["x"], 0.3);
                return one("y", in["y"]);
            },
            on_cuda({{"y", Tighter::CpuF32, 1e-7, 1e-6, false, "y + a x: one rounding, or two where a side does not fuse it into an FMA"}}));
    }
    // sum_squares around the 256-thread block and the fixed 64-block split, and a million.
    for (int64_t n : {0, 1, 17, 255, 256, 257, 1000, small ? 100003 : (1 << 20) + 3})
        add(cat("sum_squares, n=", n), [n, one] { return one("x", normal({n}, 231, 2.0)); },
            [one](Named& in, const Target& t) {
                const double first = ops::sum_squares(in["x"]), second = ops::sum_squares(in["x"]);
                INFO(t.describe() << ": sum_squares twice");
                CHECK(first == second);  // fixed blocks, fixed tree, fixed final order
                return one("sum", scalar(first));
            },
            on_cuda({{"sum", Tighter::CpuF32, 0, 1e-10, false, "exact double squares of floats summed in another order: n * 1e-16 at worst"}}));
    // all_finite: clean, empty, and one NaN or infinity at the first, a middle or the last element.
    const int64_t n_finite = small ? 10003 : 100003;
    auto finite_case = [&](const std::string& name, int64_t n, int64_t at, float bad) {
        add(cat("all_finite, n=", n, name), [n, at, bad, one] {
                Tensor x = normal({n}, 241);
                if (at >= 0) x.data<float>()[at] = bad;
                return one("x", x);
            },
            [one](Named& in, const Target&) { return one("finite", scalar(ops::all_finite(in["x"]) ? 1.0 : 0.0)); }, nullptr);
    };
    finite_case("", n_finite, -1, 0);
    finite_case("", 0, -1, 0);
    for (int64_t at : {int64_t(0), n_finite / 2, n_finite - 1})
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
            finite_case(cat(", x[", at, "] = ", bad), n_finite, at, bad);
    // sum_dim0, overwriting (out starts as NaN) or accumulating.
    for (const Shape& shape : {Shape{1, 5}, Shape{7, 3, 4}, Shape{33, 1000}, Shape{0, 6}})
        for (bool accumulate : {false, true}) {
            const Shape rest(shape.begin() + 1, shape.end());
            add(cat("sum_dim0 of ", shape_str(shape), accumulate ? ", accumulated" : ""),
                [shape, rest] {
                    return Named{{"in", normal(shape, 251)}, {"out0", normal(rest, 252)}};
                },
                [rest, accumulate, one](Named& in, const Target& t) {
                    Tensor out = accumulate ? in["out0"] : nan_output(rest, t);
                    ops::sum_dim0(out, in["in"], accumulate);
                    return one("out", out);
                },
                on_cuda({{"out", Tighter::CpuF32, 0, 0, true, "rows added in the same order 0 .. k-1"}}));
        }
    // clip_grad_norm over three tensors, without (max_norm 1e9) and with clipping.
    for (double max_norm : {1e9, 3.0})
        add(cat("clip_grad_norm of (17), (3, 5), (100001), max_norm ", max_norm),
            [] {
                return Named{{"g0", normal({17}, 261)}, {"g1", normal({3, 5}, 262, 2.0)}, {"g2", normal({100001}, 263, 0.1)}};
            },
            [max_norm](Named& in, const Target&) {
                Named out;
                out.add("norm", scalar(ops::clip_grad_norm({&in["g0"], &in["g1"], &in["g2"]}, max_norm)));
                for (const char* name : {"g0", "g1", "g2"}) out.add(name, in[name]);
                return out;
            },
            on_cuda({{"norm", Tighter::CpuF32, 0, 1e-12, false, "double sums of the same squares in different orders"},
                     {"g0", Tighter::CpuF32, 0, 1e-6, false, "the scale max_norm / norm may differ in its last double bits: 1 float ulp"},
                     {"g1", Tighter::CpuF32, 0, 1e-6, false, "the scale max_norm / norm may differ in its last double bits: 1 float ulp"},
                     {"g2", Tighter::CpuF32, 0, 1e-6, false, "the scale max_norm / norm may differ in its last double bits: 1 float ulp"}}));
    return op;
}

}  // namespace ittt::test::harness
