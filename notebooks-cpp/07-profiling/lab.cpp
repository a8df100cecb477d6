// Lab 07: profiling, CPU stand-in. Where does one training step spend its time?
// Phase timings (forward, loss, backward, optimizer) with a steady clock, then an
// op-level breakdown of the forward: every op the forward calls, re-run on the
// model's own saved activations and timed. Your TODO: the same for the TTT backward.
// On a GPU machine, Nsight Systems shows this from the NVTX ranges (see README.md).
//   build/labs/07-profiling [--solution] [--check]
#include <omp.h>

#include <algorithm>
#include <map>

#include "../lab_util.h"
#include "profile.h"
#include "model/model.h"
#include "ops/ops.h"
#include "runtime/rng.h"

using namespace ittt;

namespace {

// ---- TODO (exercise 1): time the TTT layer's backward ops ----
// Given the upstream gradient dO (B, n, d) of TTT layer l, which ops does the layer's backward run
// to get from dO to dZ (B, n, f) and dV (B, n, d)? Derive it from the forward (dW_i, exclusive
// scan, apply; docs/ttt.md, the backward, and the glossary's Wbar_i and G_i in docs/README.md),
// find the ops in src/ops/ops.h, and time each with prof.time("ttt: <what it computes> (backward)",
// [&] { ... }) on the activations the forward saved (m.activations(l): z, ttt_v, ttt_s, (N, ...)
// rows; view them as (B, n, ...)) and the layer's weights (m.layer(l)). Write dZ and dV: the lab
// checks them against the chunk loop's backward, so timing the wrong ops does not pass.
// Return false until written.
bool profile_ttt_backward_student([[maybe_unused]] Profile& prof, [[maybe_unused]] const Model& m, [[maybe_unused]] int l,
                                  [[maybe_unused]] const Shapes& s, [[maybe_unused]] const Tensor& dO,
                                  [[maybe_unused]] Tensor& dZ, [[maybe_unused]] Tensor& dV) {
    return false;  // TODO
}

// Every op of Model::forward, in order, on the inputs the forward saved. Outputs go to scratch tensors.
void profile_forward(Profile& prof, const Model& m, const Tensor& tokens, const Shapes& s) {
    const ModelConfig& c = m.config();
    const double eps = c.rms_norm_eps;
    auto scratch = [](const Shape& shape) { return Tensor::empty(shape); };
    Tensor x0 = scratch({s.N, s.d});
    prof.time("embedding", [&] { ops::embedding_forward(x0, m.embed(), tokens.view({s.N})); });
    std::vector<int32_t> pos(static_cast<size_t>(s.N));
    for (int64_t i = 0; i < s.N; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i % s.n);
    Tensor positions = Tensor::from_vector(pos, {s.N});
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const LayerActivations& a = m.activations(l);
        const LayerWeights& w = m.layer(l);
        Tensor xn = scratch({s.N, s.d}), r = scratch({s.N}), q = scratch({s.N, s.Hq * s.hd}), kv = scratch({s.N, s.Hkv * s.hd});
        prof.time("rmsnorm", [&] { ops::rmsnorm_forward(xn, r, a.x, w.input_norm, eps); });
        prof.time("gemm: q, k, v, o projections", [&] {
            ops::linear(q, a.xn1, w.q_proj), ops::linear(kv, a.xn1, w.k_proj), ops::linear(kv, a.xn1, w.v_proj);
            ops::linear(xn, a.att, w.o_proj);
        });
        Tensor rq = scratch({s.N * s.Hq}), rk = scratch({s.N * s.Hkv});
        Tensor qh = q.view({s.N, s.Hq, s.hd}), kh = kv.view({s.N, s.Hkv, s.hd});  // per-head views
        prof.time("rmsnorm (q, k per head)", [&] {
            ops::rmsnorm_forward(qh, rq, a.q.view({s.N, s.Hq, s.hd}), w.q_norm, eps);
            ops::rmsnorm_forward(kh, rk, a.k.view({s.N, s.Hkv, s.hd}), w.k_norm, eps);
        });
        prof.time("rope", [&] {
            ops::rope_forward(qh, a.qn.view({s.N, s.Hq, s.hd}), positions, c.rope_theta);
            ops::rope_forward(kh, a.kn.view({s.N, s.Hkv, s.hd}), positions, c.rope_theta);
        });
        Tensor att = scratch({s.B, s.n, s.Hq, s.hd}), lse = scratch({s.B, s.Hq, s.n});
        prof.time("attention", [&] {
            ops::attention_forward(att, lse, a.qr.view({s.B, s.n, s.Hq, s.hd}), a.kr.view({s.B, s.n, s.Hkv, s.hd}),
                                   a.v.view({s.B, s.n, s.Hkv, s.hd}), 0, c.window_for_layer(l));
        });
        prof.time("rmsnorm", [&] { ops::rmsnorm_forward(xn, r, a.h, w.post_norm, eps); });
        Tensor g = scratch({s.N, s.f});
        prof.time("gemm: gate, up", [&] { ops::linear(g, a.xn2, w.gate_proj), ops::linear(g, a.xn2, w.up_proj); });
        prof.time("swiglu", [&] { ops::swiglu_forward(g, a.g, a.u); });
        Tensor o = scratch({s.B, s.n, s.d});
        if (!c.is_ttt_layer(l)) {
            prof.time("gemm: down", [&] { ops::linear(o, a.z, w.down_proj); });
            continue;
        }
        const int C = c.ttt_chunk;
        const int64_t T = (s.n + C - 1) / C;
        Tensor u = scratch({s.N, s.d}), v = scratch({s.N, s.d}), delta = scratch({s.B, T, s.d, s.f});
        const Tensor& src = c.ttt_target == TttTargetSource::InputEmbed ? m.embedded() : a.xn2;
        prof.time("ttt: targets (conv1d + P)", [&] { ttt_targets(u, v, src, w, c, static_cast<int>(s.B), static_cast<int>(s.n)); });
        prof.time("ttt: delta", [&] { ops::ttt_chunk_delta(delta, a.ttt_v.view({s.B, s.n, s.d}), a.z.view({s.B, s.n, s.f}), C); });
        prof.time("ttt: scan", [&] { ops::prefix_scan_exclusive(delta, a.ttt_delta, false); });
        prof.time("ttt: apply (includes gemm: down)",
                  [&] { ops::ttt_apply_forward(o, a.z.view({s.B, s.n, s.f}), w.down_proj, a.ttt_s, c.ttt_lr, C); });
    }
    Tensor xf = scratch({s.N, s.d}), rf = scratch({s.N}), logits = scratch({s.N, s.V});
    // The final norm's input (the last residual stream) is private to Model; any (N, d) input costs the same.
    prof.time("rmsnorm", [&] { ops::rmsnorm_forward(xf, rf, m.embedded(), m.final_norm(), eps); });
    prof.time("gemm: lm_head", [&] { ops::linear(logits, xf, m.lm_head()); });
}

}  // namespace

// The reference solutions (solution.cpp).
namespace solution {
LAB_SOLUTION bool profile_ttt_backward(Profile& prof, const Model& m, int l, const Shapes& s, const Tensor& dO, Tensor& dZ,
                                       Tensor& dV);
}  // namespace solution

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 07: profiling one training step (CPU stand-in for Nsight)");
    auto profile_ttt_backward = opt.solution ? solution::profile_ttt_backward : profile_ttt_backward_student;
    return lab::run([&] {
        lab::Checks checks;
        omp_set_num_threads(1);  // one thread: per-core numbers, no barrier waits for a core another job holds

        ModelConfig c;
        c.vocab_size = 260, c.hidden_size = 64, c.intermediate_size = 192, c.num_hidden_layers = 2;
        c.num_attention_heads = 4, c.num_key_value_heads = 2, c.head_dim = 16;
        c.sliding_window = 64, c.layer_types = {AttentionType::Sliding, AttentionType::Full};
        c.ttt_mode = true, c.ttt_layers = {1}, c.ttt_chunk = 64;
        c.ttt_conv_init_std = 0.1;  // a nonzero target V, so every term of the TTT backward is exercised
        Shapes s{opt.check ? 2 : 8, 256, 0, c.hidden_size, c.intermediate_size, c.vocab_size, 4, 2, 16};
        s.N = s.B * s.n;
        Model m(c);
        m.init_random(1);
        std::vector<int32_t> ids(static_cast<size_t>(s.N)), targets(static_cast<size_t>(s.N));
        Rng rng(3);
        for (auto& t : ids) t = static_cast<int32_t>(rng.randint(4, c.vocab_size));
        for (int64_t i = 0; i < s.N; ++i) targets[static_cast<size_t>(i)] = (i + 1) % s.n ? ids[static_cast<size_t>(i + 1)] : -1;
        Tensor tokens = Tensor::from_vector(ids, {s.B, s.n}), tgt = Tensor::from_vector(targets, {s.N});

        lab::section(1, "One training step, phase by phase (steady clock, best of 3)");
        std::printf("  d %lld, f %lld, 2 layers (sliding 64, full), TTT on layer 1 (C = 64), B %lld x n %lld tokens, 1 thread\n",
                    static_cast<long long>(s.d), static_cast<long long>(s.f), static_cast<long long>(s.B), static_cast<long long>(s.n));
        Tensor dlogits = Tensor::empty({s.N, s.V});
        std::vector<Tensor> mom1, mom2;
        for (const Parameter& p : m.parameters()) {
            mom1.push_back(Tensor::zeros(p.value.shape()));
            mom2.push_back(Tensor::zeros(p.value.shape()));
        }
        double t_fwd = lab::time_best([&] { m.forward(tokens); });
        const Tensor& logits = m.forward(tokens);
        double t_loss = lab::time_best([&] { ops::cross_entropy(&dlogits, logits, tgt, 1.0 / static_cast<double>(s.N)); });
        double t_bwd = lab::time_best([&] { m.zero_grad(), m.backward(dlogits); });
        double t_opt = lab::time_best([&] {
            for (size_t i = 0; i < m.parameters().size(); ++i) {
                Parameter& p = m.parameters()[i];
                if (p.trainable) ops::adamw_step(p.value, p.grad, mom1[i], mom2[i], ops::AdamWConfig{1e-9, 0.9, 0.95, 1e-8, 0.0}, 1);
            }
        });
        const double step = t_fwd + t_loss + t_bwd + t_opt;
        for (auto [name, t] : {std::pair<const char*, double>{"forward", t_fwd}, {"cross-entropy (+ dlogits)", t_loss},
                               {"backward (incl. zero_grad)", t_bwd}, {"AdamW", t_opt}})
            std::printf("  %-34s %9.3f ms  %5.1f%%\n", name, t * 1e3, 100 * t / step);
        std::printf("  %-34s %9.3f ms  -> %.0f tokens/s\n", "step", step * 1e3, static_cast<double>(s.N) / step);
        checks.expect(t_fwd > 0 && t_bwd > 0, "every phase was timed");

        lab::section(2, "The forward, op by op: each op re-run on the activations the forward saved");
        // Fresh activations to replay. The ops below are the parallel TTT form's (deltas, scan,
        // apply), so that is the form this forward runs (the CPU default is the chunk loop, docs/ttt.md).
        ForwardOptions parallel;
        parallel.ttt_form = TttForm::Parallel;
        m.forward(tokens, parallel);
        Profile fwd;
        profile_forward(fwd, m, tokens, s);
        fwd.print(t_fwd, "forward", "(the rest: allocation, copies, residual adds, noise)");
        // Reported, not asserted: a timing on a shared machine is not a pass/fail fact.
        std::printf("  the ops add up to %.0f%% of the measured forward (expect roughly 60-100%% on a quiet machine)\n",
                    100.0 * fwd.total() / t_fwd);
        checks.expect(fwd.total() > 0, "every forward op was timed");

        lab::section(3, "Exercise 1: the TTT layer's backward ops");
        Profile bwd;
        Tensor dO = lab::random_tensor({s.B, s.n, s.d}, 9, 0.01);
        // NaN until written: a row the exercise never writes shows up as NaN in the check
        Tensor dZ = Tensor::from_vector(std::vector<float>(static_cast<size_t>(s.N * s.f), NAN), {s.B, s.n, s.f});
        Tensor dV = Tensor::from_vector(std::vector<float>(static_cast<size_t>(s.N * s.d), NAN), {s.B, s.n, s.d});
        if (checks.todo_done(profile_ttt_backward(bwd, m, 1, s, dO, dZ, dV), "exercise 1 (profile_ttt_backward)", opt)) {
            bwd.print(t_bwd, "backward", "(the rest: attention, gemm and norm backwards, ...)");
            checks.expect(bwd.seconds.size() >= 3, "at least three TTT backward ops timed");
            // The same gradients from another form of the layer: the chunk loop, its W_i kept.
            const ModelConfig& c = m.config();
            const LayerActivations& a = m.activations(1);
            Tensor z = a.z.view({s.B, s.n, s.f}), v = a.ttt_v.view({s.B, s.n, s.d});
            Tensor o = Tensor::empty({s.B, s.n, s.d}), dz_want = Tensor::empty(dZ.shape()), dv_want = Tensor::empty(dV.shape());
            Tensor dwd = Tensor::zeros(m.layer(1).down_proj.shape());
            ops::TttLoopOptions keep;
            keep.keep_all = true;
            ops::TttLoopResult w = ops::ttt_loop_forward(o, z, v, m.layer(1).down_proj, c.ttt_lr, c.ttt_chunk, keep);
            ops::ttt_loop_backward(dz_want, dv_want, dwd, dO, z, v, c.ttt_lr, c.ttt_chunk, w.w_all);
            // F32, sums in another order: relative to the largest entry, far below any wrong term
            auto tolerance = [](const std::vector<double>& want) {
                double largest = 0;
                for (double x : want) largest = std::fmax(largest, std::fabs(x));
                return 1e-4 * largest;
            };
            const size_t rows_per_chunk = static_cast<size_t>(c.ttt_chunk);
            std::vector<double> dz_ref = dz_want.to_f64_vector(), dv_ref = dv_want.to_f64_vector();
            checks.expect_close(dZ.to_f64_vector(), dz_ref, tolerance(dz_ref), "your dZ equals the chunk loop's", {},
                                rows_per_chunk * static_cast<size_t>(s.f));
            checks.expect_close(dV.to_f64_vector(), dv_ref, tolerance(dv_ref), "your dV equals the chunk loop's",
                                {{std::vector<double>(static_cast<size_t>(dv_want.numel()), 0.0),
                                  "dV is all zero: dV_[i] = eta Z_[i] G_i^T needs G_i, the reverse exclusive scan of the Wbar_j"}},
                                rows_per_chunk * static_cast<size_t>(s.d));
        }
        std::printf("\n  On a GPU, `nsys profile` records the same split from the NVTX ranges model_forward, layer<l>,\n"
                    "  attention_block, mlp_block, ttt_delta / ttt_scan / ttt_apply and one range per op. README.md.\n");
        return checks.finish();
    });
}
