// ttt_reference.h: the test oracle of every TTT form (tests/test_model.cpp, tests/test_ttt_loop.cpp).
//
// The decoder written out again with ops calls, its TTT layers as the plain chunk loop the
// method defines: per sequence, W = Wd; for each chunk, O_[i] = Z_[i] W^T, then
// W += eta c_i V_[i]^T Z_[i], with clipping (inference) and the update limit restated here
// rather than taken from the library. The parallel, loop and flat forms and streaming are
// all compared with it. Only the targets V come from the library (ttt_targets: the conv and
// the projection have their own tests).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model.h"
#include "ops/ops.h"

namespace ittt::test {

// out (n, d) rows of one TTT layer for one sequence: the chunk loop over z (n, f), v (n, d).
inline void reference_chunk_loop(Tensor& out, const Tensor& z, const Tensor& v, const Tensor& wd, const ModelConfig& c,
                                 const ForwardOptions& opt) {
    const int64_t n = z.dim(0), C = c.ttt_chunk;
    Tensor W = wd.clone(), dW = Tensor::empty(wd.shape(), wd.dtype(), wd.device());
    for (int64_t i = 0; i * C < n; ++i) {
        const int64_t r0 = i * C, r1 = std::min(r0 + C, n);
        Tensor Zi = z.rows(r0, r1), Vi = v.rows(r0, r1), Oi = out.rows(r0, r1);
        ops::linear(Oi, Zi, W);  // apply ...
        if (opt.ttt_update_limit >= 0 && i >= opt.ttt_update_limit) continue;
        ops::matmul(dW, Vi, true, Zi, false);  // ... then update: dW = V_i^T Z_i
        double scale = c.ttt_lr;
        if (opt.inference && c.ttt_clip_tau > 0) {  // inference clips ||eta dW||_F to tau
            const double norm = std::fabs(c.ttt_lr) * std::sqrt(ops::sum_squares(dW));
            if (norm > c.ttt_clip_tau) scale *= c.ttt_clip_tau / norm;
        }
        ops::add_inplace(W, dW, scale);
    }
}

// tokens (B, n) I32 -> logits (B*n, V) of m, on m's device and dtype.
inline Tensor reference_forward(const Model& m, const Tensor& tokens, const ForwardOptions& opt = {}) {
    const ModelConfig& c = m.config();
    const int64_t B = tokens.dim(0), n = tokens.dim(1), N = B * n, d = c.hidden_size, f = c.intermediate_size;
    const int64_t hd = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
    const double eps = c.rms_norm_eps;
    auto empty = [&](const Shape& s) { return Tensor::empty(s, m.dtype(), m.device()); };
    std::vector<int32_t> pos(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i % n);
    const Tensor positions = Tensor::from_vector(pos, {N}).to(m.device());
    Tensor x0 = empty({N, d});
    ops::embedding_forward(x0, m.embed(), tokens.view({N}).to(m.device()));
    Tensor x = x0.clone();
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& w = m.layer(l);
        // h = x + o_proj(attention(rope(norm(q)), rope(norm(k)), v)) of norm(x)
        Tensor xn = empty({N, d}), r = empty({N});
        ops::rmsnorm_forward(xn, r, x, w.input_norm, eps);
        Tensor q = empty({N, Hq, hd}), k = empty({N, Hkv, hd}), v = empty({N, Hkv, hd});
        ops::linear(q, xn, w.q_proj);
        ops::linear(k, xn, w.k_proj);
        ops::linear(v, xn, w.v_proj);
        Tensor qn = empty({N, Hq, hd}), kn = empty({N, Hkv, hd}), rq = empty({N * Hq}), rk = empty({N * Hkv});
        ops::rmsnorm_forward(qn, rq, q, w.q_norm, eps);
        ops::rmsnorm_forward(kn, rk, k, w.k_norm, eps);
        ops::rope_forward(qn, qn, positions, c.rope_theta);
        ops::rope_forward(kn, kn, positions, c.rope_theta);
        Tensor att = empty({B, n, Hq, hd}), lse = empty({B, Hq, n});
        ops::attention_forward(att, lse, qn.view({B, n, Hq, hd}), kn.view({B, n, Hkv, hd}), v.view({B, n, Hkv, hd}), 0,
                               c.window_for_layer(l));
        Tensor h = x.clone();
        ops::linear(h, att.view({N, Hq * hd}), w.o_proj, 1.0);
        // x = h + MLP(norm(h)), the down projection a chunk loop in TTT layers
        Tensor xn2 = empty({N, d}), r2 = empty({N}), g = empty({N, f}), u = empty({N, f}), z = empty({N, f});
        ops::rmsnorm_forward(xn2, r2, h, w.post_norm, eps);
        ops::linear(g, xn2, w.gate_proj);
        ops::linear(u, xn2, w.up_proj);
        ops::swiglu_forward(z, g, u);
        Tensor out = empty({N, d});
        if (c.is_ttt_layer(l)) {
            Tensor tu = empty({N, d}), tv = empty({N, d});
            ttt_targets(tu, tv, c.ttt_target == TttTargetSource::InputEmbed ? x0 : xn2, w, c, static_cast<int>(B), static_cast<int>(n));
            for (int64_t b = 0; b < B; ++b) {
                Tensor ob = out.rows(b * n, (b + 1) * n);
                reference_chunk_loop(ob, z.rows(b * n, (b + 1) * n), tv.rows(b * n, (b + 1) * n), w.down_proj, c, opt);
            }
        } else {
            ops::linear(out, z, w.down_proj);
        }
        x = h;
        ops::add_inplace(x, out);
    }
    Tensor xf = empty({N, d}), rf = empty({N}), logits = empty({N, c.vocab_size});
    ops::rmsnorm_forward(xf, rf, x, m.final_norm(), eps);
    ops::linear(logits, xf, m.lm_head());
    return logits;
}

}  // namespace ittt::test
