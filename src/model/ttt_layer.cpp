// ttt_layer.cpp: the In-Place TTT MLP (docs/method.md sections 2-3, docs/ttt.md).
//
// Forward, parallel form:                      shapes (N = B*n rows, T chunks)
//   U     = Conv1D_chunked(S_src)              (N, d)   S_src = x0 or the MLP input
//   V     = U @ P                              (N, d)
//   dW_i  = V_[i]^T Z_[i]                      (B, T, d, f)   ttt_chunk_delta
//   S_i   = sum_{j<i} dW_j                     (B, T, d, f)   prefix_scan_exclusive
//   O_[i] = Z_[i] (Wd + eta S_i)^T             (N, d)         ttt_apply_forward
// Backward: Wbar_i = dO_[i]^T Z_[i], G = exclusive reverse scan of the Wbar_i, dWd = sum_i Wbar_i,
// then ttt_apply_backward gives dZ and dV; dV flows back through P and the conv.
//
// That is the Parallel form (TttForm), which context parallelism and the step-through driver
// run. The layer's one definition is the chunk step, apply then update (ops::ttt_loop_forward /
// backward, kernels/ttt_loop, on the CPU and CUDA alike): by default the model runs it as the
// Loop form, which keeps every W_i for the backward, or the Flat form, which keeps only the last
// and rebuilds the others in reverse, so that its memory does not grow with the number of
// chunks; a stream (a forward with a state) continues it from the state.
// The norm of a step and its clipping are defined once, in kernels/ttt_delta/ttt_delta.h.
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

void Model::ttt_compute_targets(int l, LayerActivations& a, int B, int n) {
    const int64_t N = static_cast<int64_t>(B) * n, d = cfg_.hidden_size;
    a.ttt_u = new_tensor({N, d});
    a.ttt_v = new_tensor({N, d});
    ttt_targets(a.ttt_u, a.ttt_v, a.ttt_src, layers_[static_cast<size_t>(l)], cfg_, B, n);
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
    // The same rule on both devices: kernels/ttt_loop has a forward and a backward on each.
    TttForm f = opt.ttt_form != TttForm::Auto ? opt.ttt_form : ttt_form_;
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

void Model::ttt_forward(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, ForwardState* state) {
    ITTT_NVTX_RANGE("ttt_mlp");
    a.ttt_update_limit = opt.ttt_update_limit;
    a.ttt_clipped = opt.inference && cfg_.ttt_clip_tau > 0;
    if (state) return ttt_forward_stream(l, a, mlp_out, *state);
    if (documents_.empty()) return ttt_forward_sequences(l, a, mlp_out, opt, B_, n_);
    // Document boundaries: each document runs the layer as a batch of one sequence of its own
    // rows (the views below share storage: nothing is gathered or scattered), so the chunk grid,
    // the conv's edges and the fast weight's start are the document's. One form for the batch.
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    ForwardOptions document_opt = opt;
    document_opt.ttt_form = resolve_ttt_form(opt, n_);
    a.ttt_form = document_opt.ttt_form;
    for (size_t i = 0; i < documents_.size(); ++i) {
        const int64_t len = documents_[i].length;
        LayerActivations& da = a.documents[i];
        da.z = document_rows(a.z, i, {len, f});
        da.ttt_src = document_rows(a.ttt_src, i, {len, d});
        da.ttt_update_limit = a.ttt_update_limit;
        da.ttt_clipped = a.ttt_clipped;
        Tensor out = document_rows(mlp_out, i, {len, d});
        ttt_forward_sequences(l, da, out, document_opt, 1, static_cast<int>(len));
    }
}

// The layer on B sequences of n rows each: a's z and ttt_src hold their (B*n) rows.
void Model::ttt_forward_sequences(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, int B, int n) {
    const TttForm form = resolve_ttt_form(opt, n);
    if (form != TttForm::Parallel) return ttt_forward_loop(l, a, mlp_out, opt, form, B, n);
    a.ttt_form = TttForm::Parallel;
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    const int C = cfg_.ttt_chunk, T = num_chunks(n, C);
    ttt_compute_targets(l, a, B, n);

    a.ttt_delta = new_tensor({B, T, d, f});
    {
        ITTT_NVTX_RANGE("ttt_delta");
        ops::ttt_chunk_delta(a.ttt_delta, a.ttt_v.view({B, n, d}), a.z.view({B, n, f}), C);
    }
    if (opt.inference) a.ttt_update_norm = ops::ttt_update_norms(a.ttt_delta, cfg_.ttt_lr);  // the step-through driver's report
    if (opt.inference && cfg_.ttt_clip_tau > 0) ops::ttt_clip_deltas(a.ttt_delta, cfg_.ttt_lr, cfg_.ttt_clip_tau);
    if (opt.ttt_update_limit >= 0) {  // drop the updates of chunks >= limit: the driver's "what if only i chunks were seen"
        Tensor flat = a.ttt_delta.view({static_cast<int64_t>(B) * T, d * f});
        for (int64_t k = 0; k < static_cast<int64_t>(B) * T; ++k)
            if (k % T >= opt.ttt_update_limit) flat.rows(k, k + 1).zero_();
    }
    a.ttt_s = new_tensor({B, T, d, f});
    {
        ITTT_NVTX_RANGE("ttt_scan");
        ops::prefix_scan_exclusive(a.ttt_s, a.ttt_delta, false);
        // Context parallel: S_i also sums every earlier rank's deltas (a scan over ranks).
        if (cp_) parallel::ttt_add_earlier_ranks(*cp_, a.ttt_s, a.ttt_delta, l);
    }
    ITTT_NVTX_RANGE("ttt_apply");
    Tensor o3 = mlp_out.view({B, n, d});
    ops::ttt_apply_forward(o3, a.z.view({B, n, f}), w.down_proj, a.ttt_s, cfg_.ttt_lr, C);
}

// Loop / Flat: the chunk loop as one op (kernels/ttt_loop). Training keeps what the backward
// needs: every W_i (Loop), or only W_{T-1} and not even U and V, which the backward
// recomputes from S_src (Flat). Inference keeps nothing.
void Model::ttt_forward_loop(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, TttForm form, int B, int n) {
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    a.ttt_form = form;
    ttt_compute_targets(l, a, B, n);
    ops::TttLoopOptions lo;
    lo.update_limit = opt.ttt_update_limit;
    if (opt.inference) {
        lo.clip_tau = std::max(0.0, cfg_.ttt_clip_tau);
        lo.norms = true;  // for the clipping reports
    } else {
        lo.keep_all = form == TttForm::Loop;
        lo.keep_last = form == TttForm::Flat;
    }
    Tensor o3 = mlp_out.view({B, n, d});
    ops::TttLoopResult r;
    {
        ITTT_NVTX_RANGE("ttt_loop");
        r = ops::ttt_loop_forward(o3, a.z.view({B, n, f}), a.ttt_v.view({B, n, d}), w.down_proj, cfg_.ttt_lr, cfg_.ttt_chunk, lo);
    }
    a.ttt_w = form == TttForm::Loop ? r.w_all : r.w_last;
    a.ttt_update_norm = std::move(r.norm);
    if (form == TttForm::Flat && !opt.inference) {
        a.ttt_u = Tensor();  // recomputed by the backward: nothing of size n is kept beyond the plain MLP's
        a.ttt_v = Tensor();
    }
}

// Streaming (a forward with a state): the chunk loop continued from the state's W and the
// rows its current chunk already holds. z and S_src of the new rows go after those rows, so
// that the loop sees whole chunks: it applies W to the new rows, and folds in each chunk that
// completes here, whose targets V are computed first (the chunk-local conv needs the whole
// chunk). Decoding one token is the one-row case of the same call.
void Model::ttt_forward_stream(int l, LayerActivations& a, Tensor& mlp_out, ForwardState& state) {
    ForwardState::Layer& s = state.layers[static_cast<size_t>(l)];
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size, C = cfg_.ttt_chunk;
    const int64_t seen = s.buffered, rows = seen + n_, done = rows / C * C;  // rows from the chunk's start; in complete chunks
    // z and S_src of those rows: the new rows alone when the chunk starts here, the chunk
    // buffers while they fit, else a copy of both.
    const bool in_buffers = seen > 0 && rows <= C;
    Tensor z = a.z, src = a.ttt_src;
    if (seen > 0) {
        z = in_buffers ? s.z_chunk.rows(0, rows) : new_tensor({rows, f});
        src = in_buffers ? s.src_chunk.rows(0, rows) : new_tensor({rows, d});
        if (!in_buffers) {
            z.rows(0, seen).copy_from(s.z_chunk.rows(0, seen));
            src.rows(0, seen).copy_from(s.src_chunk.rows(0, seen));
        }
        z.rows(seen, rows).copy_from(a.z);
        src.rows(seen, rows).copy_from(a.ttt_src);
    }
    Tensor v = new_tensor({rows, d});  // the loop reads only the rows of complete chunks
    if (done > 0) {
        Tensor u = new_tensor({done, d}), v_done = v.rows(0, done);
        ttt_targets(u, v_done, src.rows(0, done), w, cfg_, 1, static_cast<int>(done));
    }
    ops::TttLoopOptions lo;
    lo.clip_tau = std::max(0.0, cfg_.ttt_clip_tau);
    lo.norms = true;
    lo.w_state = s.w.view({1, d, f});
    lo.start = static_cast<int>(seen);
    Tensor o3 = mlp_out.view({1, n_, d});
    ops::TttLoopResult r;
    {
        ITTT_NVTX_RANGE("ttt_loop");
        r = ops::ttt_loop_forward(o3, z.view({1, rows, f}), v.view({1, rows, d}), w.down_proj, cfg_.ttt_lr, cfg_.ttt_chunk, lo);
    }
    for (size_t i = 0; i < static_cast<size_t>(done / C); ++i)  // clipped: the step folded in is smaller than the chunk's own
        state.updates.push_back(TttUpdate{l, s.chunks_done++, r.norm[i], r.applied[i], r.applied[i] < r.norm[i]});
    // The unfinished chunk's rows wait for the rest of it.
    s.buffered = static_cast<int>(rows - done);
    if (s.buffered > 0 && !in_buffers) {
        s.z_chunk.rows(0, s.buffered).copy_from(z.rows(done, rows));
        s.src_chunk.rows(0, s.buffered).copy_from(src.rows(done, rows));
    }
}

void Model::ttt_backward(int l, const Tensor& dout, Tensor& dz, Tensor& dsrc) {
    ITTT_NVTX_RANGE("ttt_mlp_backward");
    LayerActivations& a = acts_[static_cast<size_t>(l)];
    if (documents_.empty()) return ttt_backward_sequences(l, a, B_, n_, dout, dz, dsrc);
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size;
    for (size_t i = 0; i < documents_.size(); ++i) {  // each document as the batch of one sequence its forward ran
        const int64_t len = documents_[i].length;
        Tensor dz_doc = document_rows(dz, i, {len, f}), dsrc_doc = document_rows(dsrc, i, {len, d});
        ttt_backward_sequences(l, a.documents[i], 1, static_cast<int>(len), document_rows(dout, i, {len, d}), dz_doc, dsrc_doc);
    }
}

void Model::ttt_backward_sequences(int l, LayerActivations& a, int B, int n, const Tensor& dout, Tensor& dz, Tensor& dsrc) {
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t N = static_cast<int64_t>(B) * n, d = cfg_.hidden_size, f = cfg_.intermediate_size;
    const int C = cfg_.ttt_chunk, T = num_chunks(n, C);
    if (a.ttt_form != TttForm::Parallel) {
        ITTT_CHECK(a.ttt_w.defined(), "backward: layer ", l, "'s last forward was an inference forward (", ttt_form_name(a.ttt_form),
                   " form), which keeps no fast weights for a backward");
        ITTT_CHECK(!a.ttt_clipped, "backward: layer ", l, "'s forward clipped its TTT updates (ttt_clip_tau); clipping has no backward");
        if (!a.ttt_v.defined()) ttt_compute_targets(l, a, B, n);  // Flat: U and V recomputed, not kept
        Tensor dv = new_tensor({N, d});
        Tensor dz3 = dz.view({B, n, f}), dv3 = dv.view({B, n, d});
        ops::ttt_loop_backward(dz3, dv3, grad_of(w.down_proj), dout.view({B, n, d}), a.z.view({B, n, f}), a.ttt_v.view({B, n, d}),
                               cfg_.ttt_lr, C, a.ttt_w, a.ttt_update_limit);
        ttt_targets_backward(l, a, B, n, dv, dsrc);
        if (a.ttt_form == TttForm::Flat) a.ttt_u = a.ttt_v = Tensor();
        return;
    }

    // Wbar_i = dO_[i]^T Z_[i]: the slow weight's gradient per chunk, and what later chunks send back.
    Tensor Wbar = new_tensor({B, T, d, f}), G = new_tensor({B, T, d, f});
    ops::ttt_chunk_delta(Wbar, dout.view({B, n, d}), a.z.view({B, n, f}), C);
    ops::prefix_scan_exclusive(G, Wbar, true);
    if (cp_) parallel::ttt_add_later_ranks(*cp_, G, Wbar, l);  // context parallel: and every later rank's Wbar_i
    ops::sum_dim0(grad_of(w.down_proj), Wbar.view({static_cast<int64_t>(B) * T, d, f}), true);

    Tensor dv = new_tensor({N, d});
    Tensor dz3 = dz.view({B, n, f}), dv3 = dv.view({B, n, d});
    ops::ttt_apply_backward(dz3, dv3, dout.view({B, n, d}), a.z.view({B, n, f}), a.ttt_v.view({B, n, d}), w.down_proj, a.ttt_s,
                            G, cfg_.ttt_lr, C);
    ttt_targets_backward(l, a, B, n, dv, dsrc);
}

void Model::ttt_targets_backward(int l, const LayerActivations& a, int B, int n, const Tensor& dv, Tensor& dsrc) {
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    const int64_t N = static_cast<int64_t>(B) * n, d = cfg_.hidden_size, K = cfg_.conv_taps();
    const int C = cfg_.ttt_chunk;
    const Tensor& src = a.ttt_src;
    // V = U @ P  =>  dP += U^T dV, dU = dV P^T
    Tensor du = new_tensor({N, d});
    if (w.ttt_proj.defined()) {
        ops::matmul(grad_of(w.ttt_proj), a.ttt_u, true, dv, false, 1.0, 1.0);
        ops::matmul(du, dv, false, w.ttt_proj, true);
    } else {
        du.copy_from(dv);
    }
    Tensor dsrc_part = new_tensor({B, n, d});
    Tensor dconv = grad_of(w.ttt_conv).view({d, K});
    ops::conv1d_chunked_backward(dsrc_part, dconv, du.view({B, n, d}), src.view({B, n, d}), w.ttt_conv.view({d, K}),
                                 cfg_.ttt_conv_offsets, C);
    ops::add_inplace(dsrc, dsrc_part.view({N, d}));
}

}  // namespace ittt
