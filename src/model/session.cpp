#include "model/session.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt {

Session::Session(Model& model) : model_(model) {
    const ModelConfig& c = model_.config();
    layers_.resize(static_cast<size_t>(c.num_hidden_layers));
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        if (!c.is_ttt_layer(l)) continue;
        LayerState& s = layers_[static_cast<size_t>(l)];
        s.W = model_.layer(l).down_proj.clone();
        s.z_buf = new_tensor({c.ttt_chunk, c.intermediate_size});
        s.src_buf = new_tensor({c.ttt_chunk, c.hidden_size});
    }
    ensure_capacity(64);
}

Tensor Session::new_tensor(const Shape& s) const { return Tensor::empty(s, model_.dtype(), model_.device()); }

void Session::reset() {
    pos_ = 0;
    for (int l = 0; l < model_.config().num_hidden_layers; ++l) {
        LayerState& s = layers_[static_cast<size_t>(l)];
        if (s.W.defined()) s.W.copy_from(model_.layer(l).down_proj);
        s.buffered = 0;
        s.chunks_done = 0;
        s.last_update_norm = 0;
    }
    updates_.clear();
}

const Tensor& Session::fast_weight(int l) const {
    ITTT_CHECK(model_.config().is_ttt_layer(l), "fast_weight: layer ", l, " is not a TTT layer");
    return layers_[static_cast<size_t>(l)].W;
}
int Session::buffered_rows(int l) const { return layers_[static_cast<size_t>(l)].buffered; }
double Session::last_update_norm(int l) const { return layers_[static_cast<size_t>(l)].last_update_norm; }

size_t Session::ttt_state_bytes() const {
    size_t b = 0;
    for (const LayerState& s : layers_)
        if (s.W.defined()) b += s.W.bytes() + s.z_buf.bytes() + s.src_buf.bytes();
    return b;
}

// Grows every layer's KV cache to hold `needed` positions (doubling, so appends are amortised O(1)).
void Session::ensure_capacity(int needed) {
    if (needed <= cap_) return;
    int cap = std::max(needed, 2 * cap_);
    const ModelConfig& c = model_.config();
    for (LayerState& s : layers_) {
        Tensor k = Tensor::zeros({1, cap, c.num_key_value_heads, c.head_dim}, model_.dtype(), model_.device());
        Tensor v = Tensor::zeros({1, cap, c.num_key_value_heads, c.head_dim}, model_.dtype(), model_.device());
        if (cap_ > 0) {
            int64_t row = static_cast<int64_t>(c.num_key_value_heads) * c.head_dim;
            k.view({cap, row}).rows(0, pos_).copy_from(s.k_cache.view({cap_, row}).rows(0, pos_));
            v.view({cap, row}).rows(0, pos_).copy_from(s.v_cache.view({cap_, row}).rows(0, pos_));
        }
        s.k_cache = k;
        s.v_cache = v;
    }
    cap_ = cap;
}

Tensor Session::prefill(const std::vector<int32_t>& tokens) {
    ITTT_NVTX_RANGE("session_prefill");
    const ModelConfig& c = model_.config();
    const int64_t n = static_cast<int64_t>(tokens.size());
    ITTT_CHECK(n > 0, "prefill: no tokens");
    if (pos_ > 0) return extend(tokens);  // mid-stream: the cache and the chunk buffers carry the past
    ForwardOptions opt;
    opt.inference = true;
    opt.ttt_keep_state = true;  // the Loop / Flat forms then hand over W directly
    Tensor logits = model_.forward(Tensor::from_vector(tokens, {1, n}), opt).clone();

    ensure_capacity(static_cast<int>(n));
    const int64_t d = c.hidden_size, f = c.intermediate_size, kv_row = static_cast<int64_t>(c.num_key_value_heads) * c.head_dim;
    const int C = c.ttt_chunk;
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        LayerState& s = layers_[static_cast<size_t>(l)];
        const LayerActivations& a = model_.activations(l);
        s.k_cache.view({cap_, kv_row}).rows(0, n).copy_from(a.kr.view({n, kv_row}));
        s.v_cache.view({cap_, kv_row}).rows(0, n).copy_from(a.v.view({n, kv_row}));
        if (!c.is_ttt_layer(l)) continue;
        // W = Wd + eta * (sum of the complete chunks' deltas); the partial chunk goes to the buffer.
        int T = static_cast<int>((n + C - 1) / C);
        int complete = static_cast<int>(n / C);
        if (a.ttt_w_state.defined()) {  // Loop / Flat: the running weight the forward ended with
            s.W.copy_from(a.ttt_w_state.view({d, f}));
            for (int i = 0; i < complete; ++i)
                record_update(l, i, a.ttt_update_norm[static_cast<size_t>(i)], a.ttt_update_applied[static_cast<size_t>(i)]);
        } else {  // Parallel: W = Wd + eta * (the complete chunks' deltas)
            Tensor deltas = a.ttt_delta.view({T, d * f});
            s.W.copy_from(model_.layer(l).down_proj);
            for (int i = 0; i < complete; ++i) {
                Tensor delta = deltas.rows(i, i + 1);
                ops::add_inplace(s.W, delta.view({d, f}), c.ttt_lr);
                record_update(l, i, a.ttt_update_norm[static_cast<size_t>(i)],
                              std::fabs(c.ttt_lr) * std::sqrt(ops::sum_squares(delta)));
            }
        }
        s.buffered = static_cast<int>(n - static_cast<int64_t>(complete) * C);
        if (s.buffered > 0) {
            int64_t r0 = static_cast<int64_t>(complete) * C;
            const Tensor& src = c.ttt_target == TttTargetSource::InputEmbed ? model_.embedded() : a.xn2;
            s.z_buf.rows(0, s.buffered).copy_from(a.z.rows(r0, n));
            s.src_buf.rows(0, s.buffered).copy_from(src.rows(r0, n));
        }
    }
    pos_ = static_cast<int>(n);
    return logits;
}

Tensor Session::decode(int32_t token) {
    ITTT_NVTX_RANGE("session_decode");
    return extend({token}).view({model_.config().vocab_size});
}

// The decoder stack on m new rows at positions pos_ .. pos_+m-1. Every op takes all m
// rows; attention reads the cache, which holds rows 0 .. pos_+m-1 once this layer's
// keys and values are written.
Tensor Session::extend(const std::vector<int32_t>& tokens) {
    ITTT_NVTX_RANGE("session_extend");
    const ModelConfig& c = model_.config();
    const int64_t d = c.hidden_size, f = c.intermediate_size, hd = c.head_dim;
    const int64_t Hq = c.num_attention_heads, Hkv = c.num_key_value_heads, V = c.vocab_size, kv_row = Hkv * hd;
    const int64_t m = static_cast<int64_t>(tokens.size());
    const double eps = c.rms_norm_eps;
    for (size_t i = 0; i < tokens.size(); ++i)
        ITTT_CHECK(tokens[i] >= 0 && tokens[i] < V, "decode: token id ", tokens[i], " at index ", i,
                   " is outside the vocabulary [0, ", V, ")");
    ensure_capacity(pos_ + static_cast<int>(m));

    std::vector<int32_t> positions(tokens.size());
    for (size_t i = 0; i < positions.size(); ++i) positions[i] = pos_ + static_cast<int32_t>(i);
    Tensor tok = Tensor::from_vector(tokens, {m}).to(model_.device());
    Tensor posv = Tensor::from_vector(positions, {m}).to(model_.device());
    Tensor x0 = new_tensor({m, d});
    ops::embedding_forward(x0, model_.embed(), tok);
    Tensor x = x0.clone();
    Tensor xn = new_tensor({m, d}), r1 = new_tensor({m}), rq = new_tensor({m * Hq}), rk = new_tensor({m * Hkv});
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& w = model_.layer(l);
        LayerState& s = layers_[static_cast<size_t>(l)];
        // attention over the cache
        ops::rmsnorm_forward(xn, r1, x, w.input_norm, eps);
        Tensor q = new_tensor({m, Hq, hd}), k = new_tensor({m, Hkv, hd}), v = new_tensor({m, Hkv, hd});
        ops::linear(q, xn, w.q_proj);
        ops::linear(k, xn, w.k_proj);
        ops::linear(v, xn, w.v_proj);
        Tensor qn = new_tensor({m, Hq, hd}), kn = new_tensor({m, Hkv, hd});
        ops::rmsnorm_forward(qn, rq, q, w.q_norm, eps);
        ops::rmsnorm_forward(kn, rk, k, w.k_norm, eps);
        ops::rope_forward(qn, qn, posv, c.rope_theta);  // in place is part of rope's contract
        ops::rope_forward(kn, kn, posv, c.rope_theta);
        s.k_cache.view({cap_, kv_row}).rows(pos_, pos_ + m).copy_from(kn.view({m, kv_row}));
        s.v_cache.view({cap_, kv_row}).rows(pos_, pos_ + m).copy_from(v.view({m, kv_row}));
        Tensor att = new_tensor({1, m, Hq, hd}), lse = new_tensor({1, Hq, m});
        ops::attention_forward(att, lse, qn.view({1, m, Hq, hd}), s.k_cache, s.v_cache, pos_, c.window_for_layer(l));
        Tensor h = x.clone();
        ops::linear(h, att.view({m, Hq * hd}), w.o_proj, 1.0);
        // MLP, with the fast weight in TTT layers
        Tensor xn2 = new_tensor({m, d}), r2 = new_tensor({m});
        ops::rmsnorm_forward(xn2, r2, h, w.post_norm, eps);
        Tensor g = new_tensor({m, f}), u = new_tensor({m, f}), z = new_tensor({m, f});
        ops::linear(g, xn2, w.gate_proj);
        ops::linear(u, xn2, w.up_proj);
        ops::swiglu_forward(z, g, u);
        Tensor o = new_tensor({m, d});
        if (c.is_ttt_layer(l)) ttt_mlp_rows(l, o, z, c.ttt_target == TttTargetSource::InputEmbed ? x0 : xn2);
        else ops::linear(o, z, w.down_proj);
        x = h;
        ops::add_inplace(x, o);
    }
    Tensor xf = new_tensor({m, d}), rf = new_tensor({m});
    ops::rmsnorm_forward(xf, rf, x, model_.final_norm(), eps);
    Tensor logits = new_tensor({m, V});
    ops::linear(logits, xf, model_.lm_head());
    pos_ += static_cast<int>(m);
    return logits;
}

// A TTT layer's MLP output for rows that continue the stream. The rows up to the end of
// the current chunk use the current W in one product; then the chunk (the buffered rows
// plus these) is folded in, and the next chunk's rows use the new W, and so on. Within
// a chunk every row sees the same W, so this is decode's math, segment by segment.
void Session::ttt_mlp_rows(int l, Tensor& out, const Tensor& z, const Tensor& src) {
    const int C = model_.config().ttt_chunk;
    LayerState& s = layers_[static_cast<size_t>(l)];
    const int64_t m = z.dim(0);
    for (int64_t r = 0; r < m;) {
        const int64_t take = std::min<int64_t>(m - r, C - s.buffered);
        Tensor o_seg = out.rows(r, r + take);
        ops::linear(o_seg, z.rows(r, r + take), s.W);
        s.z_buf.rows(s.buffered, s.buffered + take).copy_from(z.rows(r, r + take));
        s.src_buf.rows(s.buffered, s.buffered + take).copy_from(src.rows(r, r + take));
        s.buffered += static_cast<int>(take);
        r += take;
        if (s.buffered == C) flush_chunk(l);
    }
}

void Session::record_update(int l, int chunk, double norm, double applied) {
    const double tau = model_.config().ttt_clip_tau;
    TttUpdate u;
    u.layer = l;
    u.chunk = chunk;
    u.norm = norm;
    u.applied = applied;
    u.clipped = tau > 0 && norm > tau;  // the rule of ttt_clip_deltas
    updates_.push_back(u);
    LayerState& s = layers_[static_cast<size_t>(l)];
    s.last_update_norm = applied;
    s.chunks_done = chunk + 1;
}

// The buffer holds one whole chunk: compute its delta exactly as the parallel
// form does (chunk-local conv, V = U P, dW = V^T Z), fold eta*dW into W.
void Session::flush_chunk(int l) {
    ITTT_NVTX_RANGE("session_ttt_update");
    const ModelConfig& c = model_.config();
    LayerState& s = layers_[static_cast<size_t>(l)];
    const int C = c.ttt_chunk;
    const int64_t d = c.hidden_size, f = c.intermediate_size;
    Tensor u = new_tensor({C, d}), v = new_tensor({C, d});
    ttt_targets(u, v, s.src_buf, model_.layer(l), c, 1, C);
    Tensor delta = new_tensor({1, 1, d, f});
    ops::ttt_chunk_delta(delta, v.view({1, C, d}), s.z_buf.view({1, C, f}), C);
    const double norm = std::fabs(c.ttt_lr) * std::sqrt(ops::sum_squares(delta));
    double applied = norm;
    if (c.ttt_clip_tau > 0) {
        ops::ttt_clip_deltas(delta, c.ttt_lr, c.ttt_clip_tau);
        applied = std::fabs(c.ttt_lr) * std::sqrt(ops::sum_squares(delta));
    }
    ops::add_inplace(s.W, delta.view({d, f}), c.ttt_lr);
    s.buffered = 0;
    record_update(l, s.chunks_done, norm, applied);
}

}  // namespace ittt
