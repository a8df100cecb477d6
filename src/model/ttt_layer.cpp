// ttt_layer.cpp: the In-Place TTT MLP (docs/method.md sections 2-3, docs/ttt.md).
//
// Forward, parallel form:                      shapes (N = B*n rows, T chunks)
//   U     = Conv1D_chunked(S_src)              (N, d)   S_src = x0 or the MLP input
//   V     = U @ P                              (N, d)
//   dW_i  = V_[i]^T Z_[i]                      (B, T, d, f)   ttt_chunk_delta
//   S_i   = sum_{j<i} dW_j                     (B, T, d, f)   prefix_scan_exclusive
//   O_[i] = Z_[i] (Wd + eta S_i)^T             (N, d)         ttt_apply_forward
// Backward: P_i = dO_[i]^T Z_[i], G = exclusive reverse scan of P, dWd = sum_i P_i,
// then ttt_apply_backward gives dZ and dV; dV flows back through P and the conv.
//
// That is the Parallel form (TttForm): the reference, and the CUDA path. On the CPU the
// model runs the same math as a chunk loop with a running weight (ops::ttt_loop_forward /
// backward): Loop keeps every W_i for the backward, Flat keeps only the last and rebuilds
// the others in reverse, so that its memory does not grow with the number of chunks.
#include <algorithm>
#include <cmath>

#include "model/memory_budget.h"
#include "model/model.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt {

namespace {
int num_chunks(int n, int C) { return (n + C - 1) / C; }
}  // namespace

void ttt_targets(Tensor& u, Tensor& v, const Tensor& src, const LayerWeights& w, const ModelConfig& cfg, int B, int n) {
    ITTT_NVTX_RANGE("ttt_targets");
    const int64_t d = cfg.hidden_size, K = cfg.conv_taps();
    Tensor u3 = u.view({B, n, d});
    ops::conv1d_chunked_forward(u3, src.view({B, n, d}), w.ttt_conv.view({d, K}), cfg.ttt_conv_offsets, cfg.ttt_chunk);
    if (w.ttt_proj.defined()) ops::matmul(v, u, false, w.ttt_proj, false);  // V = U @ P (release: not transposed)
    else v.copy_from(u);
}

const Tensor& Model::ttt_source(const LayerActivations& a) const {
    return cfg_.ttt_target == TttTargetSource::InputEmbed ? x0_ : a.xn2;
}

void Model::ttt_compute_targets(int l, LayerActivations& a) {
    const int64_t N = static_cast<int64_t>(B_) * n_, d = cfg_.hidden_size;
    a.ttt_u = new_tensor({N, d});
    a.ttt_v = new_tensor({N, d});
    ttt_targets(a.ttt_u, a.ttt_v, ttt_source(a), layers_[static_cast<size_t>(l)], cfg_, B_, n_);
}

const char* ttt_form_name(TttForm f) {
    switch (f) {
        case TttForm::Auto: return "auto";
        case TttForm::Parallel: return "parallel";
        case TttForm::Loop: return "loop";
        case TttForm::Flat: return "flat";
    }
    return "?";
}

TttForm parse_ttt_form(const std::string& s) {
    for (TttForm f : {TttForm::Auto, TttForm::Parallel, TttForm::Loop, TttForm::Flat})
        if (s == ttt_form_name(f)) return f;
    fail(cat("TTT form: expected auto, parallel, loop or flat, found '", s, "'"));
}

TttForm Model::resolve_ttt_form(const ForwardOptions& opt, int n) const {
    TttForm f = opt.ttt_form != TttForm::Auto ? opt.ttt_form : ttt_form_;
    if (device_ == Device::CUDA) {
        ITTT_CHECK(f == TttForm::Auto || f == TttForm::Parallel, "TTT form ", ttt_form_name(f),
                   ": CPU only; a CUDA model runs the parallel form");
        return TttForm::Parallel;
    }
    if (cp_) {
        // Context parallelism adds the earlier ranks' deltas to S (a scan over ranks): parallel form only.
        ITTT_CHECK(f == TttForm::Auto || f == TttForm::Parallel, "TTT form ", ttt_form_name(f),
                   ": context parallelism runs the parallel form only");
        return TttForm::Parallel;
    }
    if (f != TttForm::Auto) return f;
    // Keep every W_i (B*T*d*f numbers) while that is no more than the layer's own MLP
    // activations g, u, z (3*B*n*f numbers); beyond, the flat form's extra GEMM is worth its memory.
    const int64_t T = num_chunks(n, cfg_.ttt_chunk);
    return T * cfg_.hidden_size <= 3 * static_cast<int64_t>(n) ? TttForm::Loop : TttForm::Flat;
}

double forward_bytes(const Model& m, int64_t B, int64_t n, bool training) {
    const ModelConfig& c = m.config();
    const TttForm form = c.ttt_mode ? m.resolve_ttt_form(ForwardOptions{}, static_cast<int>(std::min<int64_t>(n, 1 << 30))) : TttForm::Parallel;
    if (form == TttForm::Parallel) return forward_bytes(c, B, n, training);  // S and the deltas
    const double df = static_cast<double>(c.hidden_size) * c.intermediate_size;
    const double chunks = std::ceil(static_cast<double>(n) / std::max(1, c.ttt_chunk));
    return forward_bytes(c, B, n, training, form == TttForm::Loop ? df * chunks : df);  // every W_i, or the last W only
}

void Model::ttt_forward(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt) {
    ITTT_NVTX_RANGE("ttt_mlp");
    a.ttt_update_limit = opt.ttt_update_limit;
    a.ttt_clipped = opt.inference && cfg_.ttt_clip_tau > 0;
    const TttForm form = resolve_ttt_form(opt, n_);
    if (form != TttForm::Parallel) return ttt_forward_loop(l, a, mlp_out, opt, form);
    a.ttt_form = TttForm::Parallel;
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    const int C = cfg_.ttt_chunk, T = num_chunks(n_, C);
    ttt_compute_targets(l, a);

    a.ttt_delta = new_tensor({B_, T, d, f});
    {
        ITTT_NVTX_RANGE("ttt_delta");
        ops::ttt_chunk_delta(a.ttt_delta, a.ttt_v.view({B_, n_, d}), a.z.view({B_, n_, f}), C);
    }
    if (opt.inference) {
        // Recorded for the clipping reports (Session::updates, the step-through driver).
        Tensor flat = a.ttt_delta.view({static_cast<int64_t>(B_) * T, d * f});
        a.ttt_update_norm.resize(static_cast<size_t>(B_) * static_cast<size_t>(T));
        for (int64_t i = 0; i < static_cast<int64_t>(B_) * T; ++i)
            a.ttt_update_norm[static_cast<size_t>(i)] = std::fabs(cfg_.ttt_lr) * std::sqrt(ops::sum_squares(flat.rows(i, i + 1)));
    }
    if (opt.inference && cfg_.ttt_clip_tau > 0) ops::ttt_clip_deltas(a.ttt_delta, cfg_.ttt_lr, cfg_.ttt_clip_tau);
    if (opt.ttt_update_limit >= 0) {
        // Drop the updates of chunks >= limit: the driver's "what if only i chunks were seen".
        Tensor flat = a.ttt_delta.view({static_cast<int64_t>(B_) * T, d * f});
        for (int b = 0; b < B_; ++b)
            for (int i = std::max(0, opt.ttt_update_limit); i < T; ++i) {
                Tensor row = flat.rows(static_cast<int64_t>(b) * T + i, static_cast<int64_t>(b) * T + i + 1);
                row.zero_();
            }
    }
    a.ttt_s = new_tensor({B_, T, d, f});
    {
        ITTT_NVTX_RANGE("ttt_scan");
        ops::prefix_scan_exclusive(a.ttt_s, a.ttt_delta, false);
        // Context parallel: S_i also sums every earlier rank's deltas (a scan over ranks).
        if (cp_) parallel::ttt_add_earlier_ranks(*cp_, a.ttt_s, a.ttt_delta, l);
    }
    ITTT_NVTX_RANGE("ttt_apply");
    Tensor o3 = mlp_out.view({B_, n_, d});
    ops::ttt_apply_forward(o3, a.z.view({B_, n_, f}), w.down_proj, a.ttt_s, cfg_.ttt_lr, C);
}

// Loop / Flat: the chunk loop as one op (kernels/ttt_loop). Training keeps what the backward
// needs: every W_i (Loop), or only W_{T-1} and not even U and V, which the backward
// recomputes from S_src (Flat). Inference keeps nothing but the optional streaming state.
void Model::ttt_forward_loop(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, TttForm form) {
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    a.ttt_form = form;
    ttt_compute_targets(l, a);
    ops::TttLoopOptions lo;
    lo.update_limit = opt.ttt_update_limit;
    if (opt.inference) {
        lo.clip_tau = std::max(0.0, cfg_.ttt_clip_tau);
        lo.norms = true;  // for the clipping reports (Session::updates, the step-through driver)
        lo.keep_state = opt.ttt_keep_state;
    } else {
        lo.keep_all = form == TttForm::Loop;
        lo.keep_last = form == TttForm::Flat;
    }
    Tensor o3 = mlp_out.view({B_, n_, d});
    ops::TttLoopResult r;
    {
        ITTT_NVTX_RANGE("ttt_loop");
        r = ops::ttt_loop_forward(o3, a.z.view({B_, n_, f}), a.ttt_v.view({B_, n_, d}), w.down_proj, cfg_.ttt_lr, cfg_.ttt_chunk, lo);
    }
    a.ttt_w = form == TttForm::Loop ? r.w_all : r.w_last;
    a.ttt_w_state = r.w_state;
    a.ttt_update_norm = std::move(r.norm);
    a.ttt_update_applied = std::move(r.applied);
    if (form == TttForm::Flat && !opt.inference) {
        a.ttt_u = Tensor();  // recomputed by the backward: nothing of size n is kept beyond the plain MLP's
        a.ttt_v = Tensor();
    }
}

// The same layer written as the plain loop it abbreviates: apply W to a chunk,
// then fold that chunk into W. Kept as the oracle for the parallel form.
void Model::ttt_forward_reference_loop(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt) {
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    const int C = cfg_.ttt_chunk, T = num_chunks(n_, C);
    ttt_compute_targets(l, a);
    a.ttt_s = Tensor();  // no backward through the loop form
    a.ttt_delta = Tensor();

    Tensor W = new_tensor({d, f}), dW = new_tensor({d, f});
    for (int b = 0; b < B_; ++b) {
        W.copy_from(w.down_proj);  // every sequence starts from the slow weight
        for (int i = 0; i < T; ++i) {
            int64_t r0 = static_cast<int64_t>(b) * n_ + static_cast<int64_t>(i) * C;
            int64_t r1 = static_cast<int64_t>(b) * n_ + std::min<int64_t>(static_cast<int64_t>(i + 1) * C, n_);
            Tensor Zi = a.z.rows(r0, r1), Vi = a.ttt_v.rows(r0, r1), Oi = mlp_out.rows(r0, r1);
            ops::linear(Oi, Zi, W);  // apply ...
            if (opt.ttt_update_limit >= 0 && i >= opt.ttt_update_limit) continue;
            ops::matmul(dW, Vi, true, Zi, false);  // ... then update: dW = V_i^T Z_i
            double scale = cfg_.ttt_lr;
            if (opt.inference && cfg_.ttt_clip_tau > 0) {
                double norm = cfg_.ttt_lr * std::sqrt(ops::sum_squares(dW));
                if (norm > cfg_.ttt_clip_tau) scale *= cfg_.ttt_clip_tau / norm;
            }
            ops::add_inplace(W, dW, scale);
        }
    }
}

void Model::ttt_backward(int l, const Tensor& dout, Tensor& dz, Tensor& dsrc) {
    ITTT_NVTX_RANGE("ttt_mlp_backward");
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    LayerActivations& a = acts_[static_cast<size_t>(l)];
    const int64_t N = static_cast<int64_t>(B_) * n_, d = cfg_.hidden_size, f = cfg_.intermediate_size;
    const int C = cfg_.ttt_chunk, T = num_chunks(n_, C);
    if (a.ttt_form != TttForm::Parallel) {
        ITTT_CHECK(a.ttt_w.defined(), "backward: layer ", l, "'s last forward was an inference forward (", ttt_form_name(a.ttt_form),
                   " form), which keeps no fast weights for a backward");
        ITTT_CHECK(!a.ttt_clipped, "backward: layer ", l, "'s forward clipped its TTT updates (ttt_clip_tau); clipping has no backward");
        if (!a.ttt_v.defined()) ttt_compute_targets(l, a);  // Flat: U and V recomputed, not kept
        Tensor dv = new_tensor({N, d});
        Tensor dz3 = dz.view({B_, n_, f}), dv3 = dv.view({B_, n_, d});
        ops::ttt_loop_backward(dz3, dv3, grad_of(w.down_proj), dout.view({B_, n_, d}), a.z.view({B_, n_, f}), a.ttt_v.view({B_, n_, d}),
                               cfg_.ttt_lr, C, a.ttt_w, a.ttt_update_limit);
        ttt_targets_backward(l, dv, dsrc);
        if (a.ttt_form == TttForm::Flat) a.ttt_u = a.ttt_v = Tensor();
        return;
    }
    ITTT_CHECK(a.ttt_s.defined(), "backward: layer ", l, " ran the reference-loop TTT forward, which has no backward");

    // P_i = dO_[i]^T Z_[i]: the slow weight's gradient per chunk, and what later chunks send back.
    Tensor P = new_tensor({B_, T, d, f}), G = new_tensor({B_, T, d, f});
    ops::ttt_chunk_delta(P, dout.view({B_, n_, d}), a.z.view({B_, n_, f}), C);
    ops::prefix_scan_exclusive(G, P, true);
    if (cp_) parallel::ttt_add_later_ranks(*cp_, G, P, l);  // context parallel: and every later rank's P
    ops::sum_dim0(grad_of(w.down_proj), P.view({static_cast<int64_t>(B_) * T, d, f}), true);

    Tensor dv = new_tensor({N, d});
    Tensor dz3 = dz.view({B_, n_, f}), dv3 = dv.view({B_, n_, d});
    ops::ttt_apply_backward(dz3, dv3, dout.view({B_, n_, d}), a.z.view({B_, n_, f}), a.ttt_v.view({B_, n_, d}), w.down_proj, a.ttt_s,
                            G, cfg_.ttt_lr, C);
    ttt_targets_backward(l, dv, dsrc);
}

void Model::ttt_targets_backward(int l, const Tensor& dv, Tensor& dsrc) {
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const LayerActivations& a = acts_[static_cast<size_t>(l)];
    const int64_t N = static_cast<int64_t>(B_) * n_, d = cfg_.hidden_size, K = cfg_.conv_taps();
    const int C = cfg_.ttt_chunk;
    const Tensor& src = ttt_source(a);
    // V = U @ P  =>  dP += U^T dV, dU = dV P^T
    Tensor du = new_tensor({N, d});
    if (w.ttt_proj.defined()) {
        ops::matmul(grad_of(w.ttt_proj), a.ttt_u, true, dv, false, 1.0, 1.0);
        ops::matmul(du, dv, false, w.ttt_proj, true);
    } else {
        du.copy_from(dv);
    }
    Tensor dsrc_part = new_tensor({B_, n_, d});
    Tensor dconv = grad_of(w.ttt_conv).view({d, K});
    ops::conv1d_chunked_backward(dsrc_part, dconv, du.view({B_, n_, d}), src.view({B_, n_, d}), w.ttt_conv.view({d, K}),
                                 cfg_.ttt_conv_offsets, C);
    ops::add_inplace(dsrc, dsrc_part.view({N, d}));
}

}  // namespace ittt
