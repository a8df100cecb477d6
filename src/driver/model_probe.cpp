// model_probe.cpp: the model mode of the step-through driver. See model_probe.h
// for what is measured and docs/theory.md (section 7) for what it found.
#include "driver/model_probe.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include "driver/plots.h"
#include "driver/text_format.h"
#include "io/json.h"
#include "ops/ops.h"
#include "runtime/error.h"

namespace ittt::probe {

using theory::Matrix;

const char* probe_target_name(ProbeTarget t) { return t == ProbeTarget::Learned ? "learned" : "offset0"; }
const char* probe_target_title(ProbeTarget t) { return t == ProbeTarget::Learned ? "Learned" : "Offset-0"; }

void validate_probe_options(const ProbeOptions& o, const Model& model) {
    const ModelConfig& c = model.config();
    ITTT_CHECK(c.ttt_mode && !c.ttt_layers.empty(), "ittt step --ckpt: the checkpoint has no TTT layer (ttt_mode ",
               c.ttt_mode ? "true" : "false", ", ttt_layers empty): there is no fast weight to step through");
    ITTT_CHECK(o.seq_len >= 2, "--seq-len: expected at least 2 tokens, found ", o.seq_len);
    ITTT_CHECK(o.examples >= 1, "--examples: expected at least 1, found ", o.examples);
    ITTT_CHECK(o.step_example >= 0 && o.step_example < o.examples, "--step-example: expected an example in [0, ", o.examples,
               "), found ", o.step_example);
    ITTT_CHECK(o.top >= 1, "--top: expected at least 1, found ", o.top);
}

// ---------------------------------------------------------------- building blocks

Model offset0_variant(const Model& model) {
    Model m = model.converted(model.dtype(), model.device());
    const ModelConfig& c = m.config();
    const int K = c.conv_taps();
    auto it = std::find(c.ttt_conv_offsets.begin(), c.ttt_conv_offsets.end(), 0);
    const int keep = it == c.ttt_conv_offsets.end() ? -1 : static_cast<int>(it - c.ttt_conv_offsets.begin());
    for (int l : c.ttt_layers) {
        Parameter& p = m.parameter(cat("model.layers.", l, ".mlp.ttt_conv.weight"));
        std::vector<double> w = p.value.to(Device::CPU).to_f64_vector();  // (d, 1, K)
        for (size_t i = 0; i < w.size(); ++i)
            if (static_cast<int>(i % static_cast<size_t>(K)) != keep) w[i] = 0.0;
        Tensor host = Tensor::from_vector(w, p.value.shape());
        if (p.value.dtype() == DType::F32) host = host.to_dtype(DType::F32);
        p.value.copy_from(host.to(p.value.device()));
    }
    return m;
}

std::vector<double> logits_with_limit(Model& model, const Tensor& tokens, int limit) {
    ForwardOptions opt;
    opt.inference = true;
    opt.ttt_update_limit = limit;
    opt.ttt_form = TttForm::Parallel;  // snapshot_layer reads the per-chunk deltas only this form keeps
    return model.forward(tokens.to(model.device()), opt).to(Device::CPU).to_f64_vector();
}

std::vector<ProbeQuery> probe_queries(const Example& e, int chunk) {
    std::map<int, const Marker*> key_of, value_of;
    for (const Marker& m : e.markers) {
        if (m.kind == MarkerKind::Key && !key_of.count(m.index)) key_of[m.index] = &m;
        if (m.kind == MarkerKind::Value && m.part == 0 && !value_of.count(m.index)) value_of[m.index] = &m;
    }
    std::vector<ProbeQuery> out;
    for (const Marker& m : e.markers) {
        if (m.kind != MarkerKind::Query) continue;
        const int q = m.position;
        if (q < 0 || q >= static_cast<int>(e.targets.size()) || e.targets[static_cast<size_t>(q)] == IGNORE_TARGET) continue;
        ProbeQuery p;
        p.pair = m.index;
        p.position = q;
        p.correct = e.targets[static_cast<size_t>(q)];
        p.chunk = q / chunk;
        if (key_of.count(m.index)) p.key_position = key_of[m.index]->position;
        if (value_of.count(m.index)) p.value_position = value_of[m.index]->position;
        out.push_back(p);
    }
    return out;
}

LayerSnapshot snapshot_layer(const Model& model, int layer) {
    const ModelConfig& c = model.config();
    ITTT_CHECK(c.is_ttt_layer(layer), "snapshot_layer: layer ", layer, " is not a TTT layer");
    const LayerActivations& a = model.activations(layer);
    ITTT_CHECK(a.ttt_delta.defined(), "snapshot_layer: layer ", layer,
               " has no per-chunk deltas (run a forward with the parallel TTT form first)");
    LayerSnapshot s;
    s.layer = layer;
    s.B = static_cast<int>(a.ttt_delta.dim(0));
    s.T = static_cast<int>(a.ttt_delta.dim(1));
    s.d = c.hidden_size;
    s.f = c.intermediate_size;
    s.n = static_cast<int>(a.z.dim(0) / s.B);
    s.eta = c.ttt_lr;
    s.delta = a.ttt_delta.to(Device::CPU).to_f64_vector();
    s.z = a.z.to(Device::CPU).to_f64_vector();
    s.v = a.ttt_v.to(Device::CPU).to_f64_vector();
    s.clip_tau = c.ttt_clip_tau;
    s.norm_unclipped = a.ttt_update_norm;  // recorded by inference forwards; empty after a training forward
    if (s.norm_unclipped.empty())
        for (int b = 0; b < s.B; ++b)
            for (double x : update_norms(s, b)) s.norm_unclipped.push_back(x);  // no clipping in training forwards
    return s;
}

static const double* delta_at(const LayerSnapshot& s, int b, int chunk) {
    return s.delta.data() + (static_cast<size_t>(b) * static_cast<size_t>(s.T) + static_cast<size_t>(chunk)) *
                                static_cast<size_t>(s.d) * static_cast<size_t>(s.f);
}

std::vector<double> update_norms(const LayerSnapshot& s, int b) {
    ITTT_CHECK(b >= 0 && b < s.B, "update_norms: example ", b, " outside [0, ", s.B, ")");
    const double* first = delta_at(s, b, 0);
    const std::vector<double> deltas(first, first + static_cast<size_t>(s.T) * static_cast<size_t>(s.d) * static_cast<size_t>(s.f));
    return ops::ttt_update_norms(Tensor::from_vector(deltas, {s.T, s.d, s.f}), s.eta);  // the update rule's own norm
}

std::vector<double> unclipped_update_norms(const LayerSnapshot& s, int b) {
    ITTT_CHECK(b >= 0 && b < s.B, "unclipped_update_norms: example ", b, " outside [0, ", s.B, ")");
    ITTT_CHECK(s.norm_unclipped.size() == static_cast<size_t>(s.B) * static_cast<size_t>(s.T),
               "unclipped_update_norms: the snapshot has ", s.norm_unclipped.size(), " norms, expected B*T = ", s.B * s.T);
    auto first = s.norm_unclipped.begin() + static_cast<std::ptrdiff_t>(b) * s.T;
    return std::vector<double>(first, first + s.T);
}

std::vector<int> clipped_chunks(const LayerSnapshot& s, int b) {
    std::vector<int> out;
    for (double x : unclipped_update_norms(s, b)) out.push_back(ops::ttt_update_clipped(x, s.clip_tau) ? 1 : 0);
    return out;
}

std::vector<double> direct_readout(const LayerSnapshot& s, const Matrix& head, int b, int q, int chunk_begin, int chunk_end) {
    ITTT_CHECK(head.cols == s.d, "direct_readout: head rows have ", head.cols, " values, expected d = ", s.d);
    ITTT_CHECK(b >= 0 && b < s.B && q >= 0 && q < s.n, "direct_readout: example ", b, ", position ", q, " outside (", s.B, ", ",
               s.n, ")");
    ITTT_CHECK(chunk_begin >= 0 && chunk_begin <= chunk_end && chunk_end <= s.T, "direct_readout: chunks [", chunk_begin, ", ",
               chunk_end, ") outside [0, ", s.T, "]");
    const double* z = s.z.data() + (static_cast<size_t>(b) * static_cast<size_t>(s.n) + static_cast<size_t>(q)) * static_cast<size_t>(s.f);
    // u = eta * sum_j dW_j z_q (d), then r[w] = e_w . u.
    std::vector<double> u(static_cast<size_t>(s.d), 0.0);
    for (int j = chunk_begin; j < chunk_end; ++j) {
        const double* dw = delta_at(s, b, j);
        for (int i = 0; i < s.d; ++i) u[static_cast<size_t>(i)] += theory::dot(dw + static_cast<size_t>(i) * static_cast<size_t>(s.f), z, s.f);
    }
    for (double& x : u) x *= s.eta;
    std::vector<double> r(static_cast<size_t>(head.rows));
    for (int w = 0; w < head.rows; ++w) r[static_cast<size_t>(w)] = theory::dot(head.row(w), u.data(), s.d);
    return r;
}

double feature_dot(const LayerSnapshot& s, int64_t row_a, int64_t row_b) {
    const int64_t N = static_cast<int64_t>(s.B) * s.n;
    ITTT_CHECK(row_a >= 0 && row_a < N && row_b >= 0 && row_b < N, "feature_dot: rows ", row_a, ", ", row_b, " outside [0, ", N, ")");
    return theory::dot(s.z.data() + static_cast<size_t>(row_a) * static_cast<size_t>(s.f),
                       s.z.data() + static_cast<size_t>(row_b) * static_cast<size_t>(s.f), s.f);
}

std::vector<double> conv_tap_mean_abs(const Model& model, int layer) {
    const ModelConfig& c = model.config();
    ITTT_CHECK(c.is_ttt_layer(layer), "conv_tap_mean_abs: layer ", layer, " is not a TTT layer");
    const int K = c.conv_taps();
    std::vector<double> w = model.layer(layer).ttt_conv.to(Device::CPU).to_f64_vector();  // (d, 1, K)
    std::vector<double> out(static_cast<size_t>(K), 0.0);
    for (size_t i = 0; i < w.size(); ++i) out[i % static_cast<size_t>(K)] += std::fabs(w[i]);
    for (double& x : out) x /= static_cast<double>(c.hidden_size);
    return out;
}

std::vector<double> conv_tap_mean_signed(const Model& model, int layer, bool through_proj) {
    const ModelConfig& c = model.config();
    ITTT_CHECK(c.is_ttt_layer(layer), "conv_tap_mean_signed: layer ", layer, " is not a TTT layer");
    const int64_t K = c.conv_taps(), d = c.hidden_size;
    std::vector<double> w = model.layer(layer).ttt_conv.to(Device::CPU).to_f64_vector();  // (d, 1, K)
    std::vector<double> p;  // (d, d), row-major; only the diagonal is read
    if (through_proj && c.ttt_proj) p = model.layer(layer).ttt_proj.to(Device::CPU).to_f64_vector();
    std::vector<double> out(static_cast<size_t>(K), 0.0);
    for (int64_t ch = 0; ch < d; ++ch)
        for (int64_t k = 0; k < K; ++k)
            out[static_cast<size_t>(k)] += w[static_cast<size_t>(ch * K + k)] * (p.empty() ? 1.0 : p[static_cast<size_t>(ch * d + ch)]);
    for (double& x : out) x /= static_cast<double>(d);
    return out;
}

std::vector<double> conv_tap_gain(const Model& model, int layer) {
    const ModelConfig& c = model.config();
    ITTT_CHECK(c.is_ttt_layer(layer), "conv_tap_gain: layer ", layer, " is not a TTT layer");
    const int64_t K = c.conv_taps(), d = c.hidden_size;
    std::vector<double> w = model.layer(layer).ttt_conv.to(Device::CPU).to_f64_vector();  // (d, 1, K)
    std::vector<double> row_sq(static_cast<size_t>(d), 1.0);  // ||P[c, :]||^2 (1 for P = I)
    if (c.ttt_proj) {
        std::vector<double> p = model.layer(layer).ttt_proj.to(Device::CPU).to_f64_vector();  // (d, d): V = U P
        for (int64_t ch = 0; ch < d; ++ch) {
            double s = 0;
            for (int64_t j = 0; j < d; ++j) s += p[static_cast<size_t>(ch * d + j)] * p[static_cast<size_t>(ch * d + j)];
            row_sq[static_cast<size_t>(ch)] = s;
        }
    }
    std::vector<double> out(static_cast<size_t>(K), 0.0);
    for (int64_t ch = 0; ch < d; ++ch)
        for (int64_t k = 0; k < K; ++k) {
            const double x = w[static_cast<size_t>(ch * K + k)];
            out[static_cast<size_t>(k)] += x * x * row_sq[static_cast<size_t>(ch)];
        }
    for (double& x : out) x = std::sqrt(x / static_cast<double>(d));
    return out;
}

// ---------------------------------------------------------------- the run

namespace {

using theory::RunningMean;

using text::fmt;

// The max over w != correct of |dl[w]|, and the mean.
void other_stats(const std::vector<double>& dl, int correct, double& maxabs, double& meanabs) {
    maxabs = 0;
    double sum = 0;
    for (size_t w = 0; w < dl.size(); ++w) {
        if (static_cast<int>(w) == correct) continue;
        maxabs = std::max(maxabs, std::fabs(dl[w]));
        sum += std::fabs(dl[w]);
    }
    meanabs = dl.size() > 1 ? sum / static_cast<double>(dl.size() - 1) : 0.0;
}

std::string tap_list(const ModelConfig& c, const std::vector<double>& taps) {
    std::string s;
    for (size_t k = 0; k < taps.size(); ++k)
        s += cat(k ? ", " : "", c.ttt_conv_offsets[k] > 0 ? "+" : "", c.ttt_conv_offsets[k], ": ", fmt(taps[k], "%.3g"));
    return s;
}

std::string explain(const ProbeTargetSummary& s, const ProbeResult& r, const ModelConfig& c) {
    std::string out;
    if (s.target == ProbeTarget::Learned) {
        out += cat("with the learned target the correct logit changes by ", fmt(s.dlogit_correct_mean, "%+.4g"),
                   " on average (", s.correct.holds ? "at least" : "below", " the heuristic bound ", fmt(s.correct.bound),
                   "); v* is on top at ", fmt(100 * s.accuracy_before, "%.0f"), "% of the probes without the update and ",
                   fmt(100 * s.accuracy_after, "%.0f"), "% with it");
        for (size_t i = 0; i < r.ttt_layers.size() && i < r.conv_taps.size(); ++i) {
            const std::vector<double>& taps = r.conv_taps[i];
            size_t best = static_cast<size_t>(std::max_element(taps.begin(), taps.end()) - taps.begin());
            if (taps.empty() || taps[best] == 0) {
                out += cat("; layer ", r.ttt_layers[i], "'s conv taps are all 0: its target is 0, so the layer never updates ",
                           "(the drop-in initialisation, untrained)");
                continue;
            }
            // Where the target looks: ahead (+ offsets: the next tokens, LM-aligned), at the
            // token itself (0: reconstruction) or behind (-).
            double ahead = 0, here = 0, behind = 0, total = 0;
            for (size_t k = 0; k < taps.size(); ++k) {
                const int off = c.ttt_conv_offsets[k];
                (off > 0 ? ahead : off == 0 ? here : behind) += taps[k];
                total += taps[k];
            }
            out += cat("; layer ", r.ttt_layers[i], " conv taps (offset: mean |w|) ", tap_list(c, taps), ": ",
                       fmt(100 * ahead / total, "%.0f"), "% of the weight looks ahead (LM-aligned), ", fmt(100 * here / total, "%.0f"),
                       "% at the token itself, ", fmt(100 * behind / total, "%.0f"), "% behind");
        }
        out += cat("; the theorem's own quantity, the direct readout e_v*.(eta dW) z_q, is ", fmt(s.readout_correct_mean),
                   " (bound ", fmt(s.readout_correct.bound), ": ", s.readout_correct.holds ? "holds" : "fails",
                   "), and the real logit moves by ", fmt(s.dlogit_correct_mean),
                   ": later layers and the final RMSNorm (which divides by the residual's rms, itself raised by the update) ",
                   "rescale it, and the bound knows nothing of them");
        if (!s.other.holds)
            out += cat("; the other tokens move more than eta eps c_align: |E[dl(", s.dlogit_other_argmax, ")]| = ",
                       fmt(s.dlogit_other_maxabs), " > ", fmt(s.other.bound),
                       " (the real logits pass through later layers, the final norm and a learned P, which the bound ignores)");
    } else {
        out += cat("with only the offset-0 tap the target stores each token's own embedding", r.learned_proj ? " (through P)" : "",
                   ": E[dl(v*)] = ",
                   fmt(s.dlogit_correct_mean), ", accuracy ", fmt(100 * s.accuracy_before, "%.0f"), "% -> ",
                   fmt(100 * s.accuracy_after, "%.0f"), "%");
        if (!s.correct.holds)
            out += cat("; |E[dl(v*)]| exceeds eta eps c_align = ", fmt(s.correct.bound),
                       ": the theorem's reconstruction target is V_t = e_{x_t}, this one is ",
                       r.learned_proj ? "(w_0 * e_{x_t}) P with a learned P" : "w_0 * e_{x_t} with a learned per-channel w_0",
                       ", and the change reaches the logits through later layers and the final norm");
        (void)c;
    }
    return out;
}

}  // namespace

namespace {

// The sequences probed and the queries in each (a position whose target is
// the value of an earlier key).
struct ProbeData {
    Batch batch;
    Tensor tokens;                                  // (B, n)
    std::vector<std::vector<ProbeQuery>> queries;  // per sequence
};

ProbeData draw_sequences(const ProbeOptions& o, int V, int C) {
    ProbeData d{make_batch(o.task, V, o.examples, o.seq_len, o.seed), Tensor(), {}};
    d.tokens = d.batch.tokens_tensor();
    int probe_count = 0;
    for (const Example& e : d.batch.examples) {
        d.queries.push_back(probe_queries(e, C));
        probe_count += static_cast<int>(d.queries.back().size());
    }
    ITTT_CHECK(probe_count > 0, "ittt step --ckpt: task ", o.task.describe(), " gives no scored query position in ", o.examples,
               " sequences of ", o.seq_len, " tokens (the model mode needs Query markers: use --task theorem or mqar)");
    return d;
}

// What the summary states before any update is measured: the settings, the
// theorem's embedding constants from the output head's ordinary rows, the conv taps.
void describe_model(ProbeResult& r, Model& model, const ProbeOptions& o, const Matrix& head) {
    const ModelConfig& cfg = model.config();
    const int V = cfg.vocab_size;
    r.options = o;
    r.vocab = V;
    r.chunk = cfg.ttt_chunk;
    r.chunks = (o.seq_len + cfg.ttt_chunk - 1) / cfg.ttt_chunk;
    r.eta = cfg.ttt_lr;
    r.clip_tau = cfg.ttt_clip_tau;
    r.learned_proj = cfg.ttt_proj;
    r.ttt_layers = cfg.ttt_layers;
    std::sort(r.ttt_layers.begin(), r.ttt_layers.end());
    const int first = V > token::FIRST_ORDINARY + 1 ? token::FIRST_ORDINARY : 0;
    Matrix ordinary(V - first, head.cols);
    std::copy(head.row(first), head.row(first) + static_cast<size_t>(ordinary.rows) * static_cast<size_t>(head.cols),
              ordinary.values.begin());
    r.eps = theory::max_cross_dot(ordinary);
    r.c_norm_sq = theory::min_squared_norm(ordinary);
    r.conv_offsets = cfg.ttt_conv_offsets;
    for (int l : r.ttt_layers) {
        r.conv_taps.push_back(conv_tap_mean_abs(model, l));
        r.conv_taps_signed.push_back(conv_tap_mean_signed(model, l, false));
        r.conv_taps_effective.push_back(conv_tap_mean_signed(model, l, true));
        r.conv_taps_gain.push_back(conv_tap_gain(model, l));
    }
}

// The shown sequence, split into its chunks; the views are filled per target.
void describe_step(ProbeStep& st, const ProbeResult& r, const ProbeData& d) {
    const ProbeOptions& o = r.options;
    const Example& shown = d.batch.examples[static_cast<size_t>(o.step_example)];
    st.task = o.task;
    st.example = o.step_example;
    st.seq_len = o.seq_len;
    st.chunk = r.chunk;
    st.vocab = r.vocab;
    st.clip_tau = r.clip_tau;
    st.ttt_layers = r.ttt_layers;
    st.conv_offsets = r.conv_offsets;
    st.conv_taps_effective = r.conv_taps_effective;
    st.conv_taps_gain = r.conv_taps_gain;
    st.tokens = shown.tokens;
    st.markers = shown.markers;
    st.queries = d.queries[static_cast<size_t>(o.step_example)];
    st.chunks.resize(static_cast<size_t>(r.chunks));
    for (int i = 0; i < r.chunks; ++i) {
        st.chunks[static_cast<size_t>(i)].chunk = i;
        st.chunks[static_cast<size_t>(i)].begin = i * r.chunk;
        st.chunks[static_cast<size_t>(i)].end = std::min(o.seq_len, (i + 1) * r.chunk);
    }
}

// One target's model run at every update limit: logits[limit] for limit = 0 ..
// T (the forward at T, every update, last, so the snapshots are of the full model).
struct TargetLogits {
    std::vector<std::vector<double>> logits;  // [limit]: (B*n*V)
    std::vector<LayerSnapshot> snaps;         // per TTT layer
    int n = 0, V = 0;

    // The logits at position q of sequence b with the updates of chunks 0 .. limit-1.
    std::vector<double> row(int limit, int b, int q) const {
        const std::vector<double>& l = logits[static_cast<size_t>(limit)];
        return std::vector<double>(l.begin() + (static_cast<int64_t>(b) * n + q) * V, l.begin() + (static_cast<int64_t>(b) * n + q + 1) * V);
    }
};

TargetLogits run_target(Model& m, const Tensor& tokens, const ProbeResult& r) {
    TargetLogits t;
    t.n = r.options.seq_len;
    t.V = r.vocab;
    for (int limit = 0; limit <= r.chunks; ++limit) t.logits.push_back(logits_with_limit(m, tokens, limit));
    for (int l : r.ttt_layers) t.snaps.push_back(snapshot_layer(m, l));
    return t;
}

// The running means of one target over every probe.
struct TargetMeans {
    RunningMean correct, before, after, rank_before, rank_after, acc_before, acc_after, abs_other, readout_total;
    std::vector<RunningMean> per_token, readout_token;               // per token w != v*
    std::vector<RunningMean> readout_layer, norm_layer, align, align_other;  // per TTT layer
    TargetMeans(int V, size_t L) : per_token(static_cast<size_t>(V)), readout_token(static_cast<size_t>(V)),
                                   readout_layer(L), norm_layer(L), align(L), align_other(L) {}
};

// One probe (query q of sequence b) into the means: the real logits with every
// update vs none, the direct readout per layer, and (the learned target) c_align.
void add_probe(TargetMeans& a, const TargetLogits& t, const Matrix& head, ProbeTarget target, int b, const ProbeQuery& q, int C) {
    const int V = t.V, n = t.n, T = static_cast<int>(t.logits.size()) - 1;
    const size_t L = t.snaps.size();
    std::vector<double> l0 = t.row(0, b, q.position), lT = t.row(T, b, q.position), dl(static_cast<size_t>(V));
    for (int w = 0; w < V; ++w) dl[static_cast<size_t>(w)] = lT[static_cast<size_t>(w)] - l0[static_cast<size_t>(w)];
    const int v = q.correct;
    a.correct.add(dl[static_cast<size_t>(v)]);
    a.before.add(l0[static_cast<size_t>(v)]);
    a.after.add(lT[static_cast<size_t>(v)]);
    const int rb = theory::rank_of(l0, v), ra = theory::rank_of(lT, v);
    a.rank_before.add(rb);
    a.rank_after.add(ra);
    a.acc_before.add(rb == 1 ? 1.0 : 0.0);
    a.acc_after.add(ra == 1 ? 1.0 : 0.0);
    for (int w = 0; w < V; ++w) {
        if (w == v) continue;
        a.per_token[static_cast<size_t>(w)].add(dl[static_cast<size_t>(w)]);
        a.abs_other.add(std::fabs(dl[static_cast<size_t>(w)]));
    }
    std::vector<double> readout_sum(static_cast<size_t>(V), 0.0);
    for (size_t li = 0; li < L; ++li) {
        std::vector<double> rd = direct_readout(t.snaps[li], head, b, q.position, 0, q.chunk);
        a.readout_layer[li].add(rd[static_cast<size_t>(v)]);
        for (int w = 0; w < V; ++w) readout_sum[static_cast<size_t>(w)] += rd[static_cast<size_t>(w)];
        if (target == ProbeTarget::Learned) {
            // c_align from the model as trained: the same bounds serve both targets.
            const int64_t rq = static_cast<int64_t>(b) * n + q.position;
            if (q.key_position >= 0 && q.key_position < q.chunk * C)
                a.align[li].add(feature_dot(t.snaps[li], static_cast<int64_t>(b) * n + q.key_position, rq));
            RunningMean others;
            for (int p = 0; p < q.chunk * C; ++p)
                if (p != q.key_position) others.add(feature_dot(t.snaps[li], static_cast<int64_t>(b) * n + p, rq));
            if (others.n > 0) a.align_other[li].add(others.mean());
        }
    }
    a.readout_total.add(readout_sum[static_cast<size_t>(v)]);
    for (int w = 0; w < V; ++w)
        if (w != v) a.readout_token[static_cast<size_t>(w)].add(readout_sum[static_cast<size_t>(w)]);
}

// The staircase: at each update limit k = 0 .. T, the fraction of probes with v* on
// top and the mean dl(v*) against no update. With the pairs spread over the chunks
// (mqar spread=S) both rise chunk by chunk, as each chunk's update stores its pairs.
void staircase(ProbeTargetSummary& s, const TargetLogits& t, const ProbeData& d) {
    const int T = static_cast<int>(t.logits.size()) - 1;
    s.accuracy_by_limit.assign(static_cast<size_t>(T) + 1, 0.0);
    s.dlogit_by_limit.assign(static_cast<size_t>(T) + 1, 0.0);
    for (int k = 0; k <= T; ++k) {
        RunningMean right, dl;
        for (size_t b = 0; b < d.queries.size(); ++b)
            for (const ProbeQuery& q : d.queries[b]) {
                const std::vector<double> now = t.row(k, static_cast<int>(b), q.position);
                right.add(theory::rank_of(now, q.correct) == 1 ? 1.0 : 0.0);
                dl.add(now[static_cast<size_t>(q.correct)] - t.row(0, static_cast<int>(b), q.position)[static_cast<size_t>(q.correct)]);
            }
        s.accuracy_by_limit[static_cast<size_t>(k)] = right.mean();
        s.dlogit_by_limit[static_cast<size_t>(k)] = dl.mean();
    }
}

// The target's summary over every sequence and probe; for the learned target
// also c_align and the bounds it gives (the offset-0 target is measured against them).
void summarise_target(ProbeTargetSummary& s, ProbeResult& r, const TargetLogits& t, const ProbeData& d, const Matrix& head,
                      ProbeTarget target) {
    const size_t L = r.ttt_layers.size();
    s.target = target;
    s.readout_correct_layer.assign(L, 0.0);
    s.update_norm_layer.assign(L, 0.0);
    s.clipped_layer.assign(L, 0);
    s.updates_per_layer = r.options.examples * r.chunks;
    TargetMeans a(r.vocab, L);
    for (int b = 0; b < r.options.examples; ++b) {
        for (size_t li = 0; li < L; ++li) {
            for (double x : update_norms(t.snaps[li], b)) a.norm_layer[li].add(x);
            for (int c : clipped_chunks(t.snaps[li], b)) s.clipped_layer[li] += c;
        }
        for (const ProbeQuery& q : d.queries[static_cast<size_t>(b)]) add_probe(a, t, head, target, b, q, r.chunk);
    }
    s.probes = static_cast<int>(a.correct.n);
    s.dlogit_correct_mean = a.correct.mean();
    s.dlogit_correct_se = a.correct.se();
    s.logit_correct_before = a.before.mean();
    s.logit_correct_after = a.after.mean();
    s.rank_before = a.rank_before.mean();
    s.rank_after = a.rank_after.mean();
    s.accuracy_before = a.acc_before.mean();
    s.accuracy_after = a.acc_after.mean();
    s.dlogit_other_meanabs = a.abs_other.mean();
    for (int w = 0; w < r.vocab; ++w) {
        const RunningMean& pm = a.per_token[static_cast<size_t>(w)];
        if (pm.n > 0 && (std::fabs(pm.mean()) > s.dlogit_other_maxabs || s.dlogit_other_argmax < 0)) {
            s.dlogit_other_maxabs = std::fabs(pm.mean());
            s.dlogit_other_argmax = w;
            s.dlogit_other_argmax_mean = pm.mean();
        }
        const RunningMean& rm = a.readout_token[static_cast<size_t>(w)];
        if (rm.n > 0 && (std::fabs(rm.mean()) > s.readout_other_maxabs || s.readout_other_argmax < 0)) {
            s.readout_other_maxabs = std::fabs(rm.mean());
            s.readout_other_argmax = w;
            s.readout_other_argmax_mean = rm.mean();
        }
    }
    s.readout_correct_mean = a.readout_total.mean();
    staircase(s, t, d);
    for (size_t li = 0; li < L; ++li) {
        s.readout_correct_layer[li] = a.readout_layer[li].mean();
        s.update_norm_layer[li] = a.norm_layer[li].mean();
    }
    if (target != ProbeTarget::Learned) return;
    for (size_t li = 0; li < L; ++li) {
        r.c_align_layer.push_back(a.align[li].n > 0 ? a.align[li].mean() : std::numeric_limits<double>::quiet_NaN());
        r.c_align_other_layer.push_back(a.align_other[li].n > 0 ? a.align_other[li].mean() : std::numeric_limits<double>::quiet_NaN());
        if (a.align[li].n > 0) r.c_align += a.align[li].mean();
    }
    r.bound_lower = r.eta * r.c_norm_sq * r.c_align;
    r.bound_cross = r.eta * r.eps * r.c_align;
}

// The shown sequence's query q after chunk i's update: before vs after it, and since no update.
QueryChunkView query_view(const TargetLogits& t, const Matrix& head, int se, int chunk, const ProbeQuery& q, int top) {
    const int V = t.V;
    std::vector<double> lb = t.row(chunk, se, q.position), la = t.row(chunk + 1, se, q.position), l0 = t.row(0, se, q.position);
    std::vector<double> dl(static_cast<size_t>(V)), cum(static_cast<size_t>(V));
    for (int w = 0; w < V; ++w) {
        dl[static_cast<size_t>(w)] = la[static_cast<size_t>(w)] - lb[static_cast<size_t>(w)];
        cum[static_cast<size_t>(w)] = la[static_cast<size_t>(w)] - l0[static_cast<size_t>(w)];
    }
    QueryChunkView qv;
    qv.position = q.position;
    qv.correct = q.correct;
    qv.logit_before = lb[static_cast<size_t>(q.correct)];
    qv.logit_after = la[static_cast<size_t>(q.correct)];
    qv.rank_before = theory::rank_of(lb, q.correct);
    qv.rank_after = theory::rank_of(la, q.correct);
    qv.top = theory::top_tokens(la, top);
    for (int w : qv.top) qv.top_logits.push_back(la[static_cast<size_t>(w)]);
    qv.dl_correct = dl[static_cast<size_t>(q.correct)];
    other_stats(dl, q.correct, qv.dl_other_maxabs, qv.dl_other_meanabs);
    qv.dl = dl;
    qv.dl_cumulative = cum[static_cast<size_t>(q.correct)];
    double ignored = 0;
    other_stats(cum, q.correct, qv.dl_cumulative_other_maxabs, ignored);
    for (const LayerSnapshot& snap : t.snaps)
        qv.readout_correct.push_back(direct_readout(snap, head, se, q.position, chunk, chunk + 1)[static_cast<size_t>(q.correct)]);
    return qv;
}

// What the fast weight after chunks 0..chunk returns for each probe query's key,
// asked with the query's features (see KeyReadout), in pair order.
std::vector<KeyReadout> key_readouts(const ProbeStep& st, const TargetLogits& t, const Matrix& head, int chunk) {
    std::vector<const ProbeQuery*> by_pair;
    for (const ProbeQuery& q : st.queries) by_pair.push_back(&q);
    std::stable_sort(by_pair.begin(), by_pair.end(), [](const ProbeQuery* a, const ProbeQuery* b) { return a->pair < b->pair; });
    std::vector<KeyReadout> out;
    for (const ProbeQuery* q : by_pair) {
        KeyReadout k;
        k.pair = q->pair;
        k.value = q->correct;
        k.query_position = q->position;
        k.key = st.tokens[static_cast<size_t>(q->position)];
        k.key_position = q->key_position;
        // The conv never crosses a chunk edge: a key whose value lies in the next chunk stores nothing of it.
        if (q->key_position >= 0 && q->value_position >= 0 && q->key_position / st.chunk == q->value_position / st.chunk)
            k.stored_chunk = q->key_position / st.chunk;
        k.stored = k.stored_chunk >= 0 && k.stored_chunk <= chunk;
        std::vector<double> r(static_cast<size_t>(t.V), 0.0);
        for (const LayerSnapshot& snap : t.snaps) {
            std::vector<double> layer = direct_readout(snap, head, st.example, q->position, 0, chunk + 1);
            for (size_t w = 0; w < r.size(); ++w) r[w] += layer[w];
        }
        k.top = theory::top_tokens(r, 1).front();
        k.value_rank = theory::rank_of(r, k.value);
        k.readout_value = r[static_cast<size_t>(k.value)];
        k.readout_top = r[static_cast<size_t>(k.top)];
        out.push_back(k);
    }
    return out;
}

// V_t of every position of example b, decoded through the output head (DecodedTarget).
std::vector<DecodedTarget> decode_targets(const LayerSnapshot& s, const Matrix& head, int b, int top) {
    std::vector<DecodedTarget> out(static_cast<size_t>(s.n));
    std::vector<double> score(static_cast<size_t>(head.rows));
    for (int t = 0; t < s.n; ++t) {
        const double* v = s.v.data() + (static_cast<size_t>(b) * static_cast<size_t>(s.n) + static_cast<size_t>(t)) * static_cast<size_t>(s.d);
        for (int w = 0; w < head.rows; ++w) score[static_cast<size_t>(w)] = theory::dot(head.row(w), v, s.d);
        DecodedTarget& dt = out[static_cast<size_t>(t)];
        dt.top = theory::top_tokens(score, top);
        for (int w : dt.top) dt.score.push_back(score[static_cast<size_t>(w)]);
        for (int w = 0; w < head.rows; ++w)
            if (dt.moved < 0 || std::fabs(score[static_cast<size_t>(w)]) > std::fabs(dt.moved_score)) {
                dt.moved = w;
                dt.moved_score = score[static_cast<size_t>(w)];
            }
        dt.norm = std::sqrt(theory::dot(v, v, s.d));
    }
    return out;
}

// The step view of the shown sequence for one target: each chunk's update
// norms and clipping per layer, each later query's logits around it, and the
// change of every logit at every position (all updates vs none).
void fill_step_view(ProbeStep& st, const TargetLogits& t, const Matrix& head, int ti, int top) {
    const int se = st.example, n = t.n, V = t.V, T = static_cast<int>(t.logits.size()) - 1;
    std::vector<std::vector<double>> norms, unclipped;
    std::vector<std::vector<int>> clipped;
    for (const LayerSnapshot& snap : t.snaps) {
        norms.push_back(update_norms(snap, se));
        unclipped.push_back(unclipped_update_norms(snap, se));
        clipped.push_back(clipped_chunks(snap, se));
    }
    for (ChunkView& cv : st.chunks) {
        ChunkTargetView& view = cv.view[ti];
        const size_t i = static_cast<size_t>(cv.chunk);
        for (size_t li = 0; li < t.snaps.size(); ++li) {
            view.update_norm.push_back(norms[li][i]);
            view.update_norm_unclipped.push_back(unclipped[li][i]);
            view.clipped.push_back(clipped[li][i]);
        }
        for (const ProbeQuery& q : st.queries)
            if (q.chunk > cv.chunk) view.queries.push_back(query_view(t, head, se, cv.chunk, q, top));  // chunk i reaches later chunks only
        view.keys = key_readouts(st, t, head, cv.chunk);
    }
    st.decoded[ti].clear();
    for (const LayerSnapshot& snap : t.snaps) st.decoded[ti].push_back(decode_targets(snap, head, se, std::min(3, V)));
    std::vector<double>& pos = st.position_dlogit[ti];
    pos.assign(static_cast<size_t>(n) * static_cast<size_t>(V), 0.0);
    for (int p = 0; p < n; ++p) {
        std::vector<double> a = t.row(T, se, p), z = t.row(0, se, p);
        for (int w = 0; w < V; ++w) pos[static_cast<size_t>(p) * static_cast<size_t>(V) + static_cast<size_t>(w)] = a[static_cast<size_t>(w)] - z[static_cast<size_t>(w)];
    }
    if (!st.queries.empty()) {
        const int q = st.queries.front().position;
        st.final_dlogit[ti].assign(pos.begin() + static_cast<int64_t>(q) * V, pos.begin() + static_cast<int64_t>(q + 1) * V);
    }
}

// The verdicts: the learned target against the theorem's LM-aligned claims,
// the offset-0 target against its reconstruction bound.
void check_bounds(ProbeResult& r, const ModelConfig& cfg) {
    for (ProbeTarget target : kProbeTargets) {
        ProbeTargetSummary& s = r.targets[probe_target_index(target)];
        s.other = theory::check_upper_bound(s.dlogit_other_maxabs, r.bound_cross);
        s.readout_other = theory::check_upper_bound(s.readout_other_maxabs, r.bound_cross);
        if (target == ProbeTarget::Learned) {
            s.correct = theory::check_lower_bound(s.dlogit_correct_mean, r.bound_lower);
            s.readout_correct = theory::check_lower_bound(s.readout_correct_mean, r.bound_lower);
            s.other_claimed = true;
            s.holds = s.correct.holds && s.other.holds;
        } else {
            s.correct = theory::check_upper_bound(std::fabs(s.dlogit_correct_mean), r.bound_cross);
            s.readout_correct = theory::check_upper_bound(std::fabs(s.readout_correct_mean), r.bound_cross);
            s.other_claimed = false;
            s.holds = s.correct.holds;
        }
        s.reason = explain(s, r, cfg);
    }
}

}  // namespace

const ProbeQuery* ProbeStep::query_of_pair(int pair) const {
    for (const ProbeQuery& q : queries)
        if (q.pair == pair) return &q;
    return nullptr;
}

ProbeRun run_probe(Model& model, const ProbeOptions& o) {
    validate_probe_options(o, model);
    const ProbeData data = draw_sequences(o, model.config().vocab_size, model.config().ttt_chunk);
    const Matrix head = theory::matrix_from_tensor(model.lm_head());
    ProbeRun run;
    describe_model(run.summary, model, o, head);
    describe_step(run.step, run.summary, data);
    Model variant = offset0_variant(model);
    for (ProbeTarget target : kProbeTargets) {  // the learned target first: the bounds come from it
        const int ti = probe_target_index(target);
        const TargetLogits t = run_target(target == ProbeTarget::Learned ? model : variant, data.tokens, run.summary);
        summarise_target(run.summary.targets[ti], run.summary, t, data, head, target);
        fill_step_view(run.step, t, head, ti, std::min(o.top, run.summary.vocab));
    }
    check_bounds(run.summary, model.config());
    return run;
}

// ---------------------------------------------------------------- markers

std::map<int, std::string> marker_labels(const ProbeStep& s) {
    std::map<int, std::string> mark;
    for (const Marker& m : s.markers) {
        const char* tag = m.kind == MarkerKind::Key      ? "k"
                          : m.kind == MarkerKind::Value  ? "v"
                          : m.kind == MarkerKind::Query  ? "?"
                          : m.kind == MarkerKind::Answer ? "a"
                                                         : nullptr;
        if (tag && !mark.count(m.position)) mark[m.position] = cat(tag, m.index);
    }
    return mark;
}

// ---------------------------------------------------------------- JSON
// Written by io/json.h's JsonWriter, one compact object per line: NaN (a
// c_align with no key position before the query) and infinities come out as null.

namespace {

void add_check(JsonWriter& j, const std::string& name, const theory::BoundCheck& c) {
    j.field("margin_" + name, c.margin).field("ratio_" + name, c.ratio).field("holds_" + name, c.holds);
}

// key: [[row 0], [row 1], ...], one row per TTT layer
void per_layer(JsonWriter& j, const std::string& key, const std::vector<std::vector<double>>& rows) {
    j.key(key).begin_array();
    for (const std::vector<double>& row : rows) j.array_of(row.begin(), row.end());
    j.end_array();
}

void add_query(JsonWriter& j, const QueryChunkView& q) {
    j.begin_object().field("position", q.position).field("correct", q.correct);
    j.field("logit_before", q.logit_before).field("logit_after", q.logit_after);
    j.field("rank_before", q.rank_before).field("rank_after", q.rank_after);
    j.array("top", q.top).array("top_logits", q.top_logits);
    j.field("dlogit_correct", q.dl_correct).field("dlogit_other_maxabs", q.dl_other_maxabs);
    j.field("dlogit_other_meanabs", q.dl_other_meanabs).field("dlogit_correct_cumulative", q.dl_cumulative);
    j.array("readout_correct", q.readout_correct).field("right", q.right());
    j.end_object();
}

void add_key(JsonWriter& j, const KeyReadout& k) {
    j.begin_object().field("pair", k.pair).field("key", k.key).field("value", k.value);
    j.field("key_position", k.key_position).field("query_position", k.query_position);
    j.field("stored_chunk", k.stored_chunk).field("stored", k.stored).field("top", k.top).field("value_rank", k.value_rank);
    j.field("readout_value", k.readout_value).field("readout_top", k.readout_top).field("right", k.right());
    j.end_object();
}

}  // namespace

std::string format_step_json(const ProbeStep& s) {
    std::string out;
    for (const ChunkView& cv : s.chunks) {
        JsonWriter j(JsonLayout::Compact);
        j.begin_object().field("type", "model_chunk").field("task", s.task.describe()).field("example", s.example);
        j.field("chunk", cv.chunk).field("begin", cv.begin).field("end", cv.end);
        j.key("tokens").array_of(s.tokens.begin() + cv.begin, s.tokens.begin() + cv.end);
        j.key("markers").begin_array();
        for (const Marker& m : s.markers)
            if (m.position >= cv.begin && m.position < cv.end)
                j.begin_object().field("position", m.position).field("kind", marker_kind_name(m.kind)).field("index", m.index).end_object();
        j.end_array();
        j.array("ttt_layers", s.ttt_layers);
        for (ProbeTarget t : kProbeTargets) {
            const ChunkTargetView& v = cv.view[probe_target_index(t)];
            j.key(probe_target_name(t)).begin_object();
            j.array("update_norm", v.update_norm).array("update_norm_unclipped", v.update_norm_unclipped);
            j.key("clipped").begin_array();
            for (int c : v.clipped) j.value(c != 0);
            j.end_array();
            j.key("queries").begin_array();
            for (const QueryChunkView& q : v.queries) add_query(j, q);
            j.end_array();
            j.key("keys").begin_array();
            for (const KeyReadout& k : v.keys) add_key(j, k);
            j.end_array();
            // Per TTT layer and position: the token V_t raises most, and the token it
            // moves most with the sign of the move (DecodedTarget).
            j.key("v_decoded").begin_array();
            for (const std::vector<DecodedTarget>& layer : s.decoded[probe_target_index(t)]) {
                j.begin_array();
                for (int p = cv.begin; p < cv.end; ++p) {
                    const DecodedTarget& d = layer[static_cast<size_t>(p)];
                    j.begin_object().field("top", d.top.empty() ? -1 : d.top.front()).field("moved", d.moved);
                    j.field("moved_score", d.moved_score).end_object();
                }
                j.end_array();
            }
            j.end_array().end_object();
        }
        out += j.end_object().text() + "\n";
    }
    return out;
}

std::string format_summary_json(const ProbeResult& r) {
    std::string out;
    for (const ProbeTargetSummary& s : r.targets) {
        JsonWriter j(JsonLayout::Compact);
        j.begin_object().field("type", "model_summary").field("target", probe_target_name(s.target));
        j.field("checkpoint", r.checkpoint).field("task", r.options.task.describe());
        j.field("seq_len", r.options.seq_len).field("examples", r.options.examples).field("seed", r.options.seed);
        j.field("probes", s.probes).field("chunk", r.chunk).field("eta", r.eta).array("ttt_layers", r.ttt_layers);
        j.field("eps", r.eps).field("c_norm", std::sqrt(r.c_norm_sq)).field("c_norm_sq", r.c_norm_sq).field("c_align", r.c_align);
        j.array("c_align_layers", r.c_align_layer).array("c_align_other_layers", r.c_align_other_layer);
        j.array("conv_offsets", r.conv_offsets);
        per_layer(j, "conv_taps_mean_abs", r.conv_taps);
        per_layer(j, "conv_taps_signed", r.conv_taps_signed);
        per_layer(j, "conv_taps_effective", r.conv_taps_effective);
        per_layer(j, "conv_taps_gain", r.conv_taps_gain);
        j.field("dlogit_correct_mean", s.dlogit_correct_mean).field("dlogit_correct_se", s.dlogit_correct_se);
        j.field("bound_correct", s.correct.bound).field("bound_correct_kind", s.correct.lower ? "lower" : "upper_abs");
        add_check(j, "correct", s.correct);
        j.field("dlogit_other_maxabs", s.dlogit_other_maxabs).field("dlogit_other_argmax", s.dlogit_other_argmax);
        j.field("dlogit_other_meanabs", s.dlogit_other_meanabs);
        j.field("bound_other", s.other.bound).field("other_claimed", s.other_claimed);
        add_check(j, "other", s.other);
        j.field("readout_correct_mean", s.readout_correct_mean).array("readout_correct_layers", s.readout_correct_layer);
        j.field("readout_other_maxabs", s.readout_other_maxabs);
        add_check(j, "readout_correct", s.readout_correct);
        add_check(j, "readout_other", s.readout_other);
        j.field("logit_correct_before", s.logit_correct_before).field("logit_correct_after", s.logit_correct_after);
        j.field("rank_before", s.rank_before).field("rank_after", s.rank_after);
        j.field("accuracy_before", s.accuracy_before).field("accuracy_after", s.accuracy_after);
        j.array("accuracy_by_limit", s.accuracy_by_limit).array("dlogit_by_limit", s.dlogit_by_limit);
        j.field("readout_other_argmax", s.readout_other_argmax);
        j.array("update_norm_layers", s.update_norm_layer).field("ttt_clip_tau", r.clip_tau);
        j.array("clipped_updates_layers", s.clipped_layer).field("updates_per_layer", s.updates_per_layer);
        j.field("holds", s.holds).field("heuristic", true).field("reason", s.reason);
        out += j.end_object().text() + "\n";
    }
    return out;
}

// ---------------------------------------------------------------- figures

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
    if (dir.empty()) return name;
    return dir.back() == '/' ? dir + name : dir + "/" + name;
}

void append(std::vector<std::string>& to, const std::vector<std::string>& from) { to.insert(to.end(), from.begin(), from.end()); }

std::string caption(const ProbeStep& s) { return cat(s.task.describe(), ", sequence ", s.example); }

const char* kTapColors[4] = {"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"};

// The x axis every chunk plot shares, the model's and the theory mode's.
const char* kUpdatesAxis = "chunk updates applied: 0 = none, k = the updates of chunks 0..k-1";

}  // namespace

std::vector<std::string> plot_probe_step(const ProbeStep& s, const std::string& dir) {
    std::vector<std::string> paths;
    if (s.queries.empty()) return paths;
    const int T = static_cast<int>(s.chunks.size()), V = s.vocab, n = s.seq_len;
    const char* colors[2] = {"#1f77b4", "#d62728"};

    // (a) dl(v*) with the updates of chunks 0..k-1 applied (k = ttt_update_limit,
    // 0 = none), the mean over the sequence's queries. Past a query's own chunk no
    // update reaches it, so its value stays at its total.
    {
        plots::LinePlot p;
        p.title = cat("dl(v*), mean over the ", s.queries.size(), " queries of ", caption(s));
        p.xlabel = kUpdatesAxis;
        p.ylabel = "logit change dl(v*) against no update";
        std::vector<double> x;
        for (int k = 0; k <= T; ++k) x.push_back(k);
        p.xtics = x;
        for (int ti = 0; ti < 2; ++ti) {
            std::vector<double> last(s.queries.size(), 0.0), last_other(s.queries.size(), 0.0);
            std::vector<double> correct = {0.0}, other = {0.0};
            for (int i = 0; i < T; ++i) {
                for (const QueryChunkView& q : s.chunks[static_cast<size_t>(i)].view[ti].queries)
                    for (size_t k = 0; k < s.queries.size(); ++k)
                        if (s.queries[k].position == q.position) {
                            last[k] = q.dl_cumulative;
                            last_other[k] = q.dl_cumulative_other_maxabs;
                        }
                double a = 0, b = 0;
                for (size_t k = 0; k < last.size(); ++k) a += last[k], b += last_other[k];
                correct.push_back(a / static_cast<double>(last.size()));
                other.push_back(b / static_cast<double>(last.size()));
            }
            std::string name = probe_target_title(kProbeTargets[ti]);
            p.series.push_back({name + ": dl(v*)", x, correct, "linespoints", false, colors[ti]});
            p.series.push_back({name + ": max |dl(w)|, w != v*", x, other, "linespoints", true, colors[ti]});
        }
        p.hlines.push_back({"0", 0.0});
        append(paths, plots::line_plot(p, join_path(dir, "model_chunks")));
    }
    // (b) dl over the vocabulary at the first query.
    const int v = s.queries.front().correct;
    {
        plots::HistogramPlot p;
        const ProbeQuery& first = s.queries.front();
        p.title = cat("dl over the vocabulary at ?", first.pair, " (q=", first.position, ", answer v", first.pair, ":", first.correct,
                      "), every update vs none (", caption(s), ")");
        p.xlabel = "logit change dl(w)";
        p.ylabel = "tokens";
        for (int ti = 0; ti < 2; ++ti) p.samples.push_back({probe_target_title(kProbeTargets[ti]), s.final_dlogit[ti]});
        p.markers.push_back({cat("Learned dl(v", first.pair, ":", v, ")"), s.final_dlogit[0][static_cast<size_t>(v)]});
        p.markers.push_back({cat("Offset-0 dl(v", first.pair, ":", v, ")"), s.final_dlogit[1][static_cast<size_t>(v)]});
        append(paths, plots::histogram_plot(p, join_path(dir, "model_histogram")));
    }
    // (c) dl at every position from chunk 1 on (chunk 0 sees no update), columns
    // v* and the tokens that moved most anywhere under either target.
    {
        const int first = std::min(s.chunk, n - 1);
        // Columns: every query's answer, then the tokens that moved most.
        std::vector<int> columns, rest;
        for (const ProbeQuery& q : s.queries)
            if (std::find(columns.begin(), columns.end(), q.correct) == columns.end()) columns.push_back(q.correct);
        auto moved = [&](int w) {
            double m = 0;
            for (int ti = 0; ti < 2; ++ti)
                for (int t = first; t < n; ++t)
                    m = std::max(m, std::fabs(s.position_dlogit[ti][static_cast<size_t>(t) * static_cast<size_t>(V) + static_cast<size_t>(w)]));
            return m;
        };
        for (int w = 0; w < V; ++w)
            if (std::find(columns.begin(), columns.end(), w) == columns.end()) rest.push_back(w);
        std::vector<double> moved_by(static_cast<size_t>(V));
        for (int w = 0; w < V; ++w) moved_by[static_cast<size_t>(w)] = moved(w);
        std::stable_sort(rest.begin(), rest.end(), [&](int a, int b) { return moved_by[static_cast<size_t>(a)] > moved_by[static_cast<size_t>(b)]; });
        for (int w : rest)
            if (static_cast<int>(columns.size()) < std::min(std::max(12, static_cast<int>(columns.size())), V)) columns.push_back(w);
        std::map<int, std::string> mark = marker_labels(s);
        const int rows = n - first;
        const bool every_row = rows <= 64;
        std::vector<std::string> row_labels;
        for (int t = first; t < n; ++t) {
            std::string label;
            if (mark.count(t)) label = cat(t, " [", mark[t], "]");
            else if (t % s.chunk == 0) label = cat(t, " [chunk ", t / s.chunk, "]");
            else if (every_row && t % 4 == 0) label = std::to_string(t);
            row_labels.push_back(label);
        }
        std::vector<std::string> col_labels;
        for (int w : columns) {
            std::string label = std::to_string(w);
            for (const ProbeQuery& q : s.queries)  // v0:38, as the chunk pages write pair 0's value 38
                if (q.correct == w) {
                    label = cat("v", q.pair, ":", w);
                    break;
                }
            col_labels.push_back(label);
        }
        for (int ti = 0; ti < 2; ++ti) {
            plots::HeatmapPlot p;
            ProbeTarget target = kProbeTargets[ti];
            p.title = cat(probe_target_title(target), ": logit change at every position, every update vs none (", caption(s), ")");
            p.xlabel = "token w (vj:id = the value of pair j; the row of ?j is its query)";
            p.ylabel = "position t";
            p.cblabel = "dl(w) at t";
            p.rows = rows;
            p.cols = static_cast<int>(columns.size());
            p.row_labels = row_labels;
            p.col_labels = col_labels;
            for (int t = first; t < n; ++t)
                for (int w : columns) p.values.push_back(s.position_dlogit[ti][static_cast<size_t>(t) * static_cast<size_t>(V) + static_cast<size_t>(w)]);
            append(paths, plots::heatmap_plot(p, join_path(dir, cat("model_heatmap_", probe_target_name(target)))));
        }
    }
    // (d) the conv taps of each TTT layer: the signed weight each offset gives the
    // target (through P's diagonal) and its gain. The fixed next-token target is 1 at
    // +1 and 0 elsewhere; the reconstruction target 1 at 0.
    if (!s.conv_offsets.empty() && !s.conv_taps_effective.empty()) {
        plots::LinePlot p;
        p.title = cat("conv taps of the target V = Conv1D(S) P, per TTT layer (", caption(s), ")");
        p.xlabel = "tap offset: -1 = the token before, 0 = the token itself, +1 = the next token";
        p.ylabel = "weight";
        std::vector<double> x(s.conv_offsets.begin(), s.conv_offsets.end());
        p.xtics = x;
        for (size_t li = 0; li < s.conv_taps_effective.size(); ++li) {
            const std::string layer = cat("layer ", s.ttt_layers[li]);
            p.series.push_back({layer + ": mean signed w x P[c,c]", x, s.conv_taps_effective[li], "linespoints", false, kTapColors[li % 4]});
            p.series.push_back({layer + ": gain ||diag(w_k) P||_F / sqrt(d)", x, s.conv_taps_gain[li], "linespoints", true, kTapColors[li % 4]});
        }
        p.hlines.push_back({"0", 0.0});
        append(paths, plots::line_plot(p, join_path(dir, "model_taps")));
    }
    return paths;
}

std::vector<std::string> plot_probe_summary(const ProbeResult& r, const std::string& dir) {
    const ProbeTargetSummary& lm = r.target(ProbeTarget::Learned);
    if (lm.accuracy_by_limit.empty()) return {};
    const char* colors[2] = {"#1f77b4", "#d62728"};
    plots::LinePlot p;
    p.title = cat("the staircase: ", lm.probes, " queries of ", r.options.examples, " sequences, ", r.options.task.describe());
    p.xlabel = kUpdatesAxis;
    p.ylabel = "mean dl(v*) against no update (solid)";
    p.y2label = "accuracy, v* on top (dashed, %)";
    p.y2min = -2;
    p.y2max = 102;
    std::vector<double> x;
    for (size_t k = 0; k < lm.accuracy_by_limit.size(); ++k) x.push_back(static_cast<double>(k));
    p.xtics = x;
    for (int ti = 0; ti < 2; ++ti) {
        const ProbeTargetSummary& t = r.targets[ti];
        std::vector<double> percent;
        for (double a : t.accuracy_by_limit) percent.push_back(100 * a);
        const std::string name = probe_target_title(kProbeTargets[ti]);
        p.series.push_back({name + ": dl(v*)", x, t.dlogit_by_limit, "linespoints", false, colors[ti]});
        p.series.push_back({name + ": accuracy", x, percent, "linespoints", true, colors[ti], true});
    }
    p.hlines.push_back({"0", 0.0});
    return plots::line_plot(p, join_path(dir, "model_staircase"));
}

}  // namespace ittt::probe
