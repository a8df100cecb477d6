// bench_model.cpp: what In-Place TTT costs a whole model, against the same model without it.
//
// One config (d=128, f=384, 4 sliding-window layers, w=64, vocab 260), built twice
// from the same seed: with TTT MLPs on layers 1 and 3, and without (the comparator).
//   1. training step (forward + backward + AdamW, via Trainer::step), tokens/s
//   2. prefill (inference forward), tokens/s
//   3. the TTT ops of one layer timed alone at the same shapes, to say where the
//      overhead goes (the parallel form's extra work over a plain down projection)
//   4. decode: ms per token and state bytes at positions 256, 1024, 4096: the TTT
//      state stays constant while the KV cache grows
// The goal: TTT overhead <= 10% of a training step with chunks >= 64.
//   build/ittt_bench --filter model [--quick]
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/bench_models.h"
#include "model/model.h"
#include "model/session.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "train/trainer.h"

using namespace ittt;
using ittt::bench::bench_config;
using ittt::bench::bench_model;

namespace {

constexpr int kVocab = bench::kBenchVocab;

Tensor random_normal(const Shape& shape, uint64_t seed, double scale = 1.0) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(scale * normal_at(seed, static_cast<uint64_t>(i)));
    return t;
}

// Random ordinary tokens; every position scored with the next token of the stream.
Tensor random_tokens(int B, int n, uint64_t seed) {
    Tensor t = Tensor::empty({B, n}, DType::I32);
    Rng rng(seed);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(rng.randint(4, kVocab));
    return t;
}

BatchFn random_batches(int B, int n) {
    return [B, n](int64_t step, int micro, Tensor& tokens, Tensor& targets) {
        Tensor stream = random_tokens(B, n + 1, static_cast<uint64_t>(step) * 16 + static_cast<uint64_t>(micro));
        tokens = Tensor::empty({B, n}, DType::I32);
        targets = Tensor::empty({static_cast<int64_t>(B) * n}, DType::I32);
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i) {
                tokens.data<int32_t>()[b * n + i] = stream.data<int32_t>()[b * (n + 1) + i];
                targets.data<int32_t>()[b * n + i] = stream.data<int32_t>()[b * (n + 1) + i + 1];
            }
    };
}

struct Variant {
    std::string name;
    bool ttt;
    int chunk;
};

double median(std::vector<double> x) {
    std::nth_element(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(x.size() / 2), x.end());
    return x[x.size() / 2];
}

std::string overhead(double t, double base) { return bench::fmt("%+.1f%%", 100.0 * (t - base) / base); }

// One TTT layer's ops at (B, n, d, f, C), timed alone. `ttt` is what the TTT layer
// runs, `plain` what a plain MLP runs instead (the rows it replaces), so that
// extra = ttt - plain summed over the rows is the layer's overhead.
struct Phase {
    std::string name;
    double ttt = 0, plain = 0;
};

std::vector<Phase> ttt_layer_phases(const ModelConfig& c, int B, int n, int repeats) {
    const int64_t d = c.hidden_size, f = c.intermediate_size, N = static_cast<int64_t>(B) * n, K = c.conv_taps();
    const int C = c.ttt_chunk, T = (n + C - 1) / C;
    const double eta = c.ttt_lr;
    Tensor src = random_normal({B, n, d}, 1, 0.02), conv = random_normal({d, K}, 2, 0.02), proj = random_normal({d, d}, 3, 0.02);
    Tensor z = random_normal({B, n, f}, 4), wd = random_normal({d, f}, 5, 0.02), dout = random_normal({B, n, d}, 6, 1e-3);
    Tensor u = Tensor::empty({B, n, d}), v = Tensor::empty({N, d}), o = Tensor::empty({B, n, d});
    Tensor delta = Tensor::empty({B, T, d, f}), s = Tensor::empty({B, T, d, f});
    Tensor P = Tensor::empty({B, T, d, f}), G = Tensor::empty({B, T, d, f}), dwd = Tensor::zeros({d, f});
    Tensor dz = Tensor::empty({B, n, f}), dv = Tensor::empty({B, n, d}), du = Tensor::empty({N, d});
    Tensor dproj = Tensor::zeros({d, d}), dconv = Tensor::zeros({d, K}), dsrc = Tensor::empty({B, n, d}), dsrc_total = Tensor::zeros({N, d});
    Tensor z2 = z.view({N, f}), o2 = o.view({N, d}), dout2 = dout.view({N, d}), dz2 = dz.view({N, f}), u2 = u.view({N, d});
    Tensor v3 = v.view({B, n, d}), dv2 = dv.view({N, d});
    auto t = [&](const std::function<void()>& fn) { return bench::time_best(fn, 1, repeats); };

    std::vector<Phase> out;
    out.push_back({"fwd: conv1d U = conv(S_src)", t([&] { ops::conv1d_chunked_forward(u, src, conv, c.ttt_conv_offsets, C); })});
    out.push_back({"fwd: V = U P (gemm N x d x d)", t([&] { ops::matmul(v, u2, false, proj, false); })});
    out.push_back({"fwd: deltas dW_i = V_i^T Z_i", t([&] { ops::ttt_chunk_delta(delta, v3, z, C); })});
    out.push_back({"fwd: prefix scan S_i", t([&] { ops::prefix_scan_exclusive(s, delta, false); })});
    out.push_back({"fwd: apply O = Z Wd^T + eta Z_i S_i^T", t([&] { ops::ttt_apply_forward(o, z, wd, s, eta, C); })});
    out.push_back({"fwd: (plain) O = Z Wd^T", 0, t([&] { ops::linear(o2, z2, wd); })});
    out.push_back({"bwd: P_i = dO_i^T Z_i", t([&] { ops::ttt_chunk_delta(P, dout, z, C); })});
    out.push_back({"bwd: reverse scan G_i", t([&] { ops::prefix_scan_exclusive(G, P, true); })});
    out.push_back({"bwd: dWd = sum_i P_i", t([&] { ops::sum_dim0(dwd, P.view({static_cast<int64_t>(B) * T, d, f}), false); })});
    out.push_back({"bwd: apply_backward dZ, dV", t([&] { ops::ttt_apply_backward(dz, dv, dout, z, v3, wd, s, G, eta, C); })});
    out.push_back({"bwd: (plain) dZ = dO Wd, dWd += dO^T Z", 0, t([&] {
                       ops::matmul(dz2, dout2, false, wd, false);
                       ops::matmul(dwd, dout2, true, z2, false, 1.0, 1.0);
                   })});
    out.push_back({"bwd: dP = U^T dV, dU = dV P^T", t([&] {
                       ops::matmul(dproj, u2, true, dv2, false, 1.0, 1.0);
                       ops::matmul(du, dv2, false, proj, true);
                   })});
    out.push_back({"bwd: conv1d backward + add dS_src", t([&] {
                       ops::conv1d_chunked_backward(dsrc, dconv, du.view({B, n, d}), src, conv, c.ttt_conv_offsets, C);
                       ops::add_inplace(dsrc_total, dsrc.view({N, d}));
                   })});
    return out;
}

}  // namespace

namespace ittt::bench {

ModelConfig bench_config(bool ttt, int chunk) {
    ModelConfig c;
    c.vocab_size = kBenchVocab;
    c.hidden_size = 128;
    c.intermediate_size = 384;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.rope_theta = 1e4;
    c.sliding_window = 64;
    c.layer_types.assign(4, AttentionType::Sliding);
    c.ttt_mode = ttt;
    if (ttt) c.ttt_layers = {1, 3};
    c.ttt_chunk = chunk;
    c.validate();
    return c;
}

Model bench_model(bool ttt, int chunk) {
    Model m(bench_config(ttt, chunk));
    m.init_random(1);
    // The release's zero conv would make U, V and every delta exactly 0; give them
    // small values so the timed numbers are those of a trained model.
    uint64_t seed = 100;
    for (Parameter& p : m.parameters())
        if (p.name.find("ttt_conv") != std::string::npos) {
            float* w = p.value.data<float>();
            for (int64_t i = 0; i < p.value.numel(); ++i) w[i] = static_cast<float>(0.02 * normal_at(seed, static_cast<uint64_t>(i)));
            ++seed;
        }
    return m;
}

}  // namespace ittt::bench

ITTT_BENCHMARK(model, 30) {
    const int B = ctx.quick ? 2 : 4, n = ctx.quick ? 256 : 512;
    const int repeats = ctx.quick ? 1 : 3;
    const std::vector<int> chunks = ctx.quick ? std::vector<int>{64, 128} : std::vector<int>{64, 256};
    std::vector<Variant> variants = {{"no TTT (comparator)", false, chunks[0]}};
    for (int C : chunks) variants.push_back({"TTT on layers 1, 3", true, C});
    const double tokens = static_cast<double>(B) * n;

    // ---- 1 + 2: training step and prefill ----
    // Round-robin over the variants, best of `repeats` rounds: on a shared machine a
    // burst of load then hits every variant alike instead of one.
    std::vector<Model> models;
    std::vector<std::unique_ptr<Trainer>> trainers;
    TrainConfig tc;
    tc.steps = 1 << 30;  // the schedule is irrelevant here; only the step's cost is timed
    tc.warmup = 0;
    for (const Variant& v : variants) models.push_back(bench_model(v.ttt, v.chunk));
    for (Model& m : models) trainers.push_back(std::make_unique<Trainer>(m, tc, random_batches(B, n)));
    Tensor tok = random_tokens(B, n, 99);
    ForwardOptions inference;
    inference.inference = true;
    std::vector<double> step_s(variants.size(), 1e300), prefill_s(variants.size(), 1e300);
    for (int round = 0; round <= repeats; ++round)  // round 0 is the warm-up
        for (size_t i = 0; i < variants.size(); ++i) {
            double st = bench::time_best([&] { trainers[i]->step(); }, 0, 1);
            double pf = bench::time_best([&] { models[i].forward(tok, inference); }, 0, 2);
            if (round > 0) step_s[i] = std::min(step_s[i], st), prefill_s[i] = std::min(prefill_s[i], pf);
        }
    trainers.clear();
    models.clear();
    bench::Table train({"model", "chunk C", "step ms", "tokens/s", "TTT overhead", "prefill ms", "prefill tokens/s", "TTT overhead"});
    for (size_t i = 0; i < variants.size(); ++i) {
        const Variant& v = variants[i];
        train.row({v.name, v.ttt ? std::to_string(v.chunk) : "-", bench::fmt("%.0f", step_s[i] * 1e3), bench::fmt("%.0f", tokens / step_s[i]),
                   i == 0 ? "(comparator)" : overhead(step_s[i], step_s[0]), bench::fmt("%.1f", prefill_s[i] * 1e3),
                   bench::fmt("%.0f", tokens / prefill_s[i]), i == 0 ? "(comparator)" : overhead(prefill_s[i], prefill_s[0])});
    }
    train.print(cat("training step (forward + backward + AdamW) and prefill (inference forward), CPU F32, B=", B, " n=", n,
                    ", d=128 f=384, 4 SWA layers (w=64), vocab 260; goal: TTT overhead <= 10% of a step for C >= 64"));

    // ---- 3: where the TTT overhead goes ----
    for (size_t i = 1; i < variants.size(); ++i) {
        ModelConfig c = bench_config(true, variants[i].chunk);
        std::vector<Phase> phases = ttt_layer_phases(c, B, n, repeats + 2);
        const double layers = static_cast<double>(c.ttt_layers.size());
        bench::Table t({"op (one TTT layer)", "TTT ms", "plain MLP ms", "extra ms x " + std::to_string(c.ttt_layers.size()) + " layers",
                        "% of comparator step"});
        double extra = 0;
        for (const Phase& p : phases) {
            double e = (p.ttt - p.plain) * layers;
            extra += e;
            t.row({p.name, p.ttt > 0 ? bench::fmt("%.2f", p.ttt * 1e3) : "-", p.plain > 0 ? bench::fmt("%.2f", p.plain * 1e3) : "-",
                   bench::fmt("%+.2f", e * 1e3), bench::fmt("%+.1f%%", 100.0 * e / step_s[0])});
        }
        t.row({"sum: TTT extra predicted from the ops", "", "", bench::fmt("%+.2f", extra * 1e3), bench::fmt("%+.1f%%", 100.0 * extra / step_s[0])});
        t.row({"measured: TTT step - comparator step", "", "", bench::fmt("%+.2f", (step_s[i] - step_s[0]) * 1e3),
               overhead(step_s[i], step_s[0])});
        t.print(cat("where the TTT overhead goes: the ops of one TTT layer timed alone at the model's shapes (B=", B, " n=", n,
                    " d=128 f=384 C=", c.ttt_chunk, ", T=", (n + c.ttt_chunk - 1) / c.ttt_chunk,
                    " chunks); (plain) rows are what a plain MLP runs instead"));
    }

    // ---- 4: decode ----
    const std::vector<int> positions = ctx.quick ? std::vector<int>{256, 1024} : std::vector<int>{256, 1024, 4096};
    bench::Table dec({"model", "chunk C", "position", "ms/token", "chunk-update token ms", "amortised ms/token", "TTT overhead",
                      "TTT state bytes", "KV cache bytes (filled)"});
    const int count = std::max(64, chunks.back());  // one whole chunk: the mean includes one update per TTT layer
    for (int pos : positions) {
        std::vector<Model> dm;
        std::vector<std::unique_ptr<Session>> sessions;
        for (const Variant& v : variants) dm.push_back(bench_model(v.ttt, v.chunk));
        std::vector<int32_t> prompt = random_tokens(1, pos, 7).to_i32_vector();
        for (Model& m : dm) {
            sessions.push_back(std::make_unique<Session>(m));
            sessions.back()->prefill(prompt);
        }
        // Interleaved token by token, for the same reason as the rounds above.
        std::vector<std::vector<double>> times(variants.size());
        int32_t token = prompt.back();
        for (int k = 0; k < count; ++k) {
            for (size_t i = 0; i < variants.size(); ++i) {
                auto t0 = std::chrono::steady_clock::now();
                sessions[i]->decode(token);
                times[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            token = static_cast<int32_t>(4 + (token + 7) % (kVocab - 4));
        }
        // Medians, robust to the scheduler's spikes: a token without a chunk update, and
        // the tokens that complete a chunk (every TTT layer folds its delta into W);
        // amortised = plain + (update - plain) / C.
        double base = 0;
        for (size_t i = 0; i < variants.size(); ++i) {
            const Variant& v = variants[i];
            std::vector<double> plain, update;
            for (int k = 0; k < count; ++k) {
                bool completes_chunk = v.ttt && (pos + k + 1) % v.chunk == 0;
                (completes_chunk ? update : plain).push_back(times[i][static_cast<size_t>(k)]);
            }
            double per_token = median(plain);
            double amortised = update.empty() ? per_token : per_token + (median(update) - per_token) / v.chunk;
            if (i == 0) base = amortised;
            const Session& s = *sessions[i];
            const ModelConfig& c = dm[i].config();
            size_t kv = static_cast<size_t>(s.position()) * c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * sizeof(float);
            dec.row({v.name, v.ttt ? std::to_string(v.chunk) : "-", std::to_string(pos), bench::fmt("%.3f", per_token * 1e3),
                     update.empty() ? "-" : bench::fmt("%.3f", median(update) * 1e3), bench::fmt("%.3f", amortised * 1e3),
                     i == 0 ? "(comparator)" : overhead(amortised, base), std::to_string(s.ttt_state_bytes()), std::to_string(kv)});
        }
    }
    dec.print(cat("decode after a prefill of `position` tokens, B=1, ", count,
                  " tokens timed each (medians); TTT state = fast weights + chunk buffers (constant), KV cache = every position kept"));
}
