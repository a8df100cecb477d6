// bench_step.cpp: where a training step and a prefill of the bench model spend their time.
//   build/ittt_bench --filter step [--quick]
//
// Every op of one step of the bench model without TTT (bench_models.h: B=4, n=512, d=128,
// f=384, 4 layers of 4 query / 2 KV heads of 32, vocabulary 260), timed alone at the shape and
// as many times as the model runs it (src/model/model.cpp, src/train/trainer.cpp), on one
// thread, once with the versions version 0 picks for AVX2 and once with those for AVX-512
// (where the CPU has it), interleaved. Grouped: the GEMMs (with their GFLOP/s against the
// in-run FMA peak), attention, RMSNorm, SwiGLU, RoPE, cross-entropy, AdamW, and the step's
// finiteness checks and gradient norm. The sum is compared with a whole step (and prefill)
// timed in the same run; the difference is what no row times (embedding, residual adds,
// copies, the allocator) plus what a step loses to caches that a timed-alone op keeps warm.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/bench_models.h"
#include "model/model.h"
#include "ops/op_table.h"
#include "ops/ops.h"
#include "runtime/cpu_isa.h"
#include "runtime/rng.h"
#include "train/trainer.h"

namespace ittt::bench {

namespace {

Tensor normal_tensor(const Shape& shape, uint64_t seed, double scale = 1.0) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(scale * normal_at(seed, static_cast<uint64_t>(i)));
    return t;
}

// One op as the step runs it: `calls` times per step (per prefill: `prefill_calls`), each `run()`.
struct StepOp {
    std::string group, what;
    int calls, prefill_calls;
    double flops;  // per call, for the GEMMs (0 elsewhere)
    std::function<void()> run;
};

}  // namespace

ITTT_BENCHMARK(step, 35) {
    const ModelConfig c = bench_config(false, 64);
    const int64_t B = 4, n = 512, N = B * n, d = c.hidden_size, f = c.intermediate_size, V = c.vocab_size;
    const int64_t Hq = c.num_attention_heads, Hkv = c.num_key_value_heads, hd = c.head_dim, L = c.num_hidden_layers;
    const int layers = static_cast<int>(L);
    const int repeats = ctx.quick ? 3 : 15;

    // Inputs of every shape the step uses, seeded.
    uint64_t seed = 1;
    auto t = [&](const Shape& s, double scale = 1.0) { return normal_tensor(s, seed++, scale); };
    std::vector<StepOp> ops_list;
    // ---- the GEMMs: y = x W^T forward; dx = dy W and dW += dy^T x backward ----
    struct Linear {
        std::string name;
        int64_t out, in;
        int count;  // per step
    };
    const std::vector<Linear> linears = {{"q_proj", Hq * hd, d, layers},     {"k_proj, v_proj", Hkv * hd, d, 2 * layers},
                                         {"o_proj", d, Hq * hd, layers},     {"gate_proj, up_proj", f, d, 2 * layers},
                                         {"down_proj", d, f, layers},        {"lm_head (tied)", V, d, 1}};
    std::vector<Tensor> keep;  // the operands live as long as the closures
    for (const Linear& l : linears) {
        Tensor x = t({N, l.in}), w = t({l.out, l.in}, 0.1), y = Tensor::empty({N, l.out}), dy = t({N, l.out}), dx = Tensor::empty({N, l.in});
        Tensor dw = Tensor::zeros({l.out, l.in});
        keep.insert(keep.end(), {x, w, y, dy, dx, dw});
        const double flops = 2.0 * static_cast<double>(N * l.out * l.in);
        ops_list.push_back({"GEMM", l.name + ": y = x W^T", l.count, l.count, flops, [x, w, y]() mutable { ops::linear(y, x, w); }});
        ops_list.push_back({"GEMM", l.name + ": dx = dy W", l.count, 0, flops, [dx, dy, w]() mutable { ops::matmul(dx, dy, false, w, false); }});
        ops_list.push_back({"GEMM", l.name + ": dW += dy^T x", l.count, 0, flops,
                            [dw, dy, x]() mutable { ops::matmul(dw, dy, true, x, false, 1.0, 1.0); }});
    }
    // ---- attention (sliding window 64) ----
    {
        Tensor q = t({B, n, Hq, hd}), k = t({B, n, Hkv, hd}), v = t({B, n, Hkv, hd}), out = Tensor::empty({B, n, Hq, hd});
        Tensor lse = Tensor::empty({B, Hq, n}), dout = t({B, n, Hq, hd});
        Tensor dq = Tensor::empty({B, n, Hq, hd}), dk = Tensor::empty({B, n, Hkv, hd}), dv = Tensor::empty({B, n, Hkv, hd});
        const int window = c.sliding_window;
        ops::attention_forward(out, lse, q, k, v, 0, window);
        ops_list.push_back({"attention", "forward", layers, layers, 0, [=]() mutable { ops::attention_forward(out, lse, q, k, v, 0, window); }});
        ops_list.push_back({"attention", "backward", layers, 0, 0,
                            [=]() mutable { ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, window); }});
    }
    // ---- RMSNorm: input and post norms (N, d), q and k norms per head, the final norm ----
    struct Norm {
        std::string name;
        Shape shape;
        int count;
    };
    for (const Norm& nm : {Norm{"rows of d (input, post, final)", {N, d}, 2 * layers + 1}, Norm{"q heads", {N, Hq, hd}, layers},
                           Norm{"k heads", {N, Hkv, hd}, layers}}) {
        Tensor x = t(nm.shape), w = t({nm.shape.back()}), out = Tensor::empty(nm.shape), dx = Tensor::empty(nm.shape), dout = t(nm.shape);
        Shape rows(nm.shape.begin(), nm.shape.end() - 1);
        Tensor rstd = Tensor::empty(rows), dw = Tensor::zeros({nm.shape.back()});
        const double eps = c.rms_norm_eps;
        ops::rmsnorm_forward(out, rstd, x, w, eps);
        ops_list.push_back({"RMSNorm", "forward, " + nm.name, nm.count, nm.count, 0, [=]() mutable { ops::rmsnorm_forward(out, rstd, x, w, eps); }});
        ops_list.push_back({"RMSNorm", "backward, " + nm.name, nm.count, 0, 0, [=]() mutable { ops::rmsnorm_backward(dx, dw, dout, x, w, rstd); }});
    }
    // ---- SwiGLU (N, f) ----
    {
        Tensor g = t({N, f}, 2.0), u = t({N, f}), z = Tensor::empty({N, f}), dz = t({N, f}), dg = Tensor::empty({N, f}), du = Tensor::empty({N, f});
        ops_list.push_back({"SwiGLU", "forward", layers, layers, 0, [=]() mutable { ops::swiglu_forward(z, g, u); }});
        ops_list.push_back({"SwiGLU", "backward", layers, 0, 0, [=]() mutable { ops::swiglu_backward(dg, du, dz, g, u); }});
    }
    // ---- RoPE on q and k heads ----
    {
        std::vector<int32_t> pos(static_cast<size_t>(N));
        for (int64_t i = 0; i < N; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i % n);
        Tensor positions = Tensor::from_vector(pos, {N});
        for (int64_t H : {Hq, Hkv}) {
            Tensor x = t({N, H, hd}), out = Tensor::empty({N, H, hd});
            const double theta = c.rope_theta;
            const std::string heads = H == Hq ? "q heads" : "k heads";
            ops_list.push_back({"RoPE", "forward, " + heads, layers, layers, 0, [=]() mutable { ops::rope_forward(out, x, positions, theta); }});
            ops_list.push_back({"RoPE", "backward, " + heads, layers, 0, 0, [=]() mutable { ops::rope_backward(out, x, positions, theta); }});
        }
    }
    // ---- cross-entropy over the logits ----
    {
        Tensor logits = t({N, V}, 2.0), dlogits = Tensor::empty({N, V}), targets = Tensor::empty({N}, DType::I32);
        for (int64_t i = 0; i < N; ++i) targets.data<int32_t>()[i] = static_cast<int32_t>(4 + i % (V - 4));
        ops_list.push_back({"cross-entropy", "loss and dlogits", 1, 0, 0,
                            [=]() mutable { ops::cross_entropy(&dlogits, logits, targets, 1.0 / static_cast<double>(N)); }});
    }
    // ---- the optimizer side, over every parameter (one flat tensor of their total size) ----
    {
        Model m = bench_model(false, 64);
        int64_t count = 0;
        for (const Parameter& p : m.parameters()) count += p.value.numel();
        Tensor params = t({count}, 0.02), grads = t({count}, 1e-3), mom = Tensor::zeros({count}), var = Tensor::zeros({count});
        ops_list.push_back({"AdamW", cat("AdamW update, ", count, " parameters"), 1, 0, 0,
                            [=]() mutable { ops::adamw_step(params, grads, mom, var, ops::AdamWConfig{}, 1); }});
        ops_list.push_back({"finiteness and norm", "all_finite of the gradients and of the parameters", 2, 0, 0,
                            [=]() mutable { (void)ops::all_finite(grads); }});
        ops_list.push_back({"finiteness and norm", "sum of squares of the gradients (clipping)", 1, 0, 0,
                            [=]() mutable { (void)ops::sum_squares(grads); }});
    }

    // ---- time everything, one thread, AVX2's version 0 and AVX-512's interleaved ----
    // The configurations: version 0 for AVX2; on an AVX-512 CPU also the AVX-512 GEMM alone (every
    // other op at its best version without AVX-512: what version 0 ran before the other AVX-512
    // versions existed), and version 0 for AVX-512.
    std::vector<CpuIsa> isas = {CpuIsa::AVX2};
    std::vector<std::string> names = {"AVX2"};
    std::vector<bool> gemm_only = {false};
    if (cpu_isa() == CpuIsa::AVX512) {
        isas.insert(isas.end(), {CpuIsa::AVX512, CpuIsa::AVX512});
        names.insert(names.end(), {"AVX-512 GEMM only", "AVX-512"});
        gemm_only.insert(gemm_only.end(), {true, false});
    }
    // The ops whose version 0 needs AVX-512 here, other than gemm, and their best version without it.
    std::vector<std::pair<std::string, int>> pinned;
    for (const ops::OpSpec& spec : ops::op_table()) {
        const ops::VersionInfo* best = spec.cpu.find(spec.cpu.best_here());
        if (spec.name == "gemm" || best == nullptr || std::string(best->needs).empty()) continue;
        int fallback = 1;
        for (const ops::VersionInfo& v : spec.cpu.versions)
            if (std::string(v.needs).empty()) fallback = std::max(fallback, v.number);
        pinned.emplace_back(spec.name, fallback);
    }
    auto use_isa = [&](size_t k) {
        set_cpu_isa(isas[k] == CpuIsa::AVX512 ? "avx512" : "avx2");
        for (const auto& [op, v] : pinned) ops::set_version(op, gemm_only[k] ? v : 0);
    };
    const int saved_threads = max_threads();
    set_threads(1);
    std::printf("\nstep: load average before: %s\n", load_average().c_str());
    std::vector<double> peak(isas.size());
    for (size_t k = 0; k < isas.size(); ++k) peak[k] = fma_peak_gflops(isas[k], 1, 300'000, ctx.quick ? 5 : 50);
    std::vector<std::vector<double>> best(ops_list.size(), std::vector<double>(isas.size(), 1e300));
    for (int r = 0; r < repeats; ++r)
        for (size_t i = 0; i < ops_list.size(); ++i)
            for (size_t k = 0; k < isas.size(); ++k) {
                use_isa(k);
                best[i][k] = std::min(best[i][k], time_best(ops_list[i].run, r == 0 ? 1 : 0, 1));
            }
    // Whole steps and prefills of the same model, for the comparison.
    std::vector<double> step_min(isas.size(), 1e300), prefill_min(isas.size(), 1e300);
    {
        std::vector<Model> models;
        std::vector<std::unique_ptr<Trainer>> trainers;
        TrainConfig tc;
        tc.steps = 1 << 30;
        tc.warmup = 0;
        tc.log = nullptr;
        Tensor tokens = Tensor::empty({B, n}, DType::I32);
        for (int64_t i = 0; i < N; ++i) tokens.data<int32_t>()[i] = static_cast<int32_t>(4 + (i * 7) % (V - 4));
        for (size_t k = 0; k < isas.size(); ++k) models.push_back(bench_model(false, 64));
        for (Model& m : models)
            trainers.push_back(std::make_unique<Trainer>(m, tc, [tokens, N](int64_t, int, Tensor& tok, Tensor& tgt) {
                tok = tokens;
                tgt = tokens.view({N});
            }));
        ForwardOptions inference;
        inference.inference = true;
        for (int r = 0; r < (ctx.quick ? 2 : 8); ++r)
            for (size_t k = 0; k < isas.size(); ++k) {
                use_isa(k);
                step_min[k] = std::min(step_min[k], time_best([&] { trainers[k]->step(); }, r == 0 ? 1 : 0, 1));
                prefill_min[k] = std::min(prefill_min[k], time_best([&] { models[k].forward(tokens, inference); }, r == 0 ? 1 : 0, 1));
            }
    }
    set_cpu_isa("");
    for (const auto& [op, v] : pinned) ops::set_version(op, 0);
    set_threads(saved_threads);

    // ---- the table: per group, then the total against the measured step ----
    std::vector<std::string> groups;
    for (const StepOp& op : ops_list)
        if (std::find(groups.begin(), groups.end(), op.group) == groups.end()) groups.push_back(op.group);
    std::vector<std::string> header = {"group", "op", "calls per step (prefill)"};
    for (const std::string& name : names) {
        header.push_back(name + " ms per step");
        header.push_back(name + " % of step");
    }
    if (isas.size() > 1) header.push_back("x AVX2");
    Table table(header);
    std::vector<double> total(isas.size(), 0), total_prefill(isas.size(), 0);
    auto add_row = [&](const std::string& group, const std::string& what, const std::string& calls, const std::vector<double>& ms,
                       const std::string& extra = "") {
        std::vector<std::string> row = {group, what, calls};
        for (size_t k = 0; k < isas.size(); ++k) {
            row.push_back(fmt("%.2f", ms[k] * 1e3));
            row.push_back(fmt("%.1f%%", 100 * ms[k] / step_min[k]));
        }
        if (isas.size() > 1) row.push_back(fmt("%.2f", ms[0] / ms.back()) + extra);
        table.row(row);
    };
    for (const std::string& group : groups) {
        // The group's sum first, then its ops.
        std::vector<double> group_ms(isas.size(), 0);
        std::vector<std::vector<double>> op_ms;
        std::vector<size_t> members;
        double flops = 0;
        for (size_t i = 0; i < ops_list.size(); ++i) {
            const StepOp& op = ops_list[i];
            if (op.group != group) continue;
            members.push_back(i);
            op_ms.emplace_back(isas.size());
            for (size_t k = 0; k < isas.size(); ++k) {
                op_ms.back()[k] = best[i][k] * op.calls;
                group_ms[k] += op_ms.back()[k];
                total[k] += op_ms.back()[k];
                total_prefill[k] += best[i][k] * op.prefill_calls;
            }
            flops += op.flops * op.calls;
        }
        std::string gflops;
        if (flops > 0)
            for (size_t k = 0; k < isas.size(); ++k)
                gflops += cat(k ? ", " : ": ", names[k], " ", fmt("%.0f GFLOP/s", flops / group_ms[k] / 1e9), " = ",
                              fmt("%.0f%% of its peak", 100 * flops / group_ms[k] / 1e9 / peak[k]));
        add_row(group, "all" + gflops, "", group_ms);
        for (size_t j = 0; j < members.size(); ++j) {
            const StepOp& op = ops_list[members[j]];
            add_row("", "  " + op.what, cat(op.calls, " (", op.prefill_calls, ")"), op_ms[j]);
        }
    }
    add_row("all of the above", "sum of the ops timed alone", "", total);
    add_row("a whole training step", "Trainer::step (min)", "1", step_min);
    std::vector<double> rest(isas.size());
    for (size_t k = 0; k < isas.size(); ++k) rest[k] = step_min[k] - total[k];
    add_row("the rest", "embedding, residual adds, copies, allocation, caches (step - sum)", "", rest);
    std::string peaks;
    for (size_t k = 0; k < isas.size(); ++k)
        if (k == 0 || isas[k] != isas[k - 1]) peaks += cat(k ? ", " : "", cpu_isa_name(isas[k]), " ", fmt("%.1f", peak[k]));
    table.print(cat("step: where a training step of the bench model without TTT spends its time (B=", B, " n=", n,
                    ", d=128 f=384, 4 SWA layers, vocab 260), on ", cpu_model_name(), ", 1 thread: each op timed alone at its shape (best of ",
                    repeats, "), times its calls per step; columns: version 0 for each ISA (AVX2: set_cpu_isa(\"avx2\")), and on AVX-512 the AVX-512 GEMM with every other op at its best version without AVX-512; FMA peak GFLOP/s ",
                    peaks));
    for (size_t k = 0; k < isas.size(); ++k)
        std::printf("step: %s prefill: the forward ops sum to %.2f ms, a whole prefill takes %.2f ms (min)\n", names[k].c_str(),
                    total_prefill[k] * 1e3, prefill_min[k] * 1e3);
    std::printf("step: load average after: %s\n", load_average().c_str());
}

}  // namespace ittt::bench
