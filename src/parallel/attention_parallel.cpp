// attention_parallel.cpp: attention across ranks (model_parallel.h, docs/parallelism.md).
//
// Sliding window: halo. Rank r's queries see keys back to begin(r) - (w - 1); those
// rows are copied from their owners in front of the slice's own keys, and the ordinary
// attention op runs on [halo; slice] with the queries offset by the halo's length.
// Positions only enter through RoPE, which every owner applied before sending, and the
// mask depends only on position differences, so the shifted numbering is exact.
//
// Full attention: ring. Block j (rank j's keys/values) travels j -> j+1 -> ... -> R-1;
// rank r folds in blocks r, r-1, ..., 0 as they arrive, one step each, merging the
// partial softmax of every block through its log-sum-exp, while the next block is
// already on its way. A block never travels to an earlier rank: causal attention
// would mask it entirely, so the wrap-around half of a classic ring is left out.
#include <algorithm>

#include "ops/ops.h"
#include "parallel/model_parallel.h"
#include "parallel/sequence_rows.h"
#include "runtime/nvtx.h"

namespace ittt::parallel {

namespace {

Tensor empty_like_rows(const Tensor& x, int64_t rows) {
    Shape s = x.shape();
    s[1] = rows;
    return Tensor::empty(s, x.dtype(), x.device());
}

// x (B, n, W...) -> (B, h + n, W...): h rows of zeros, then x, in every sequence.
Tensor zero_rows_in_front(const Tensor& x, int64_t h) {
    Shape s = x.shape();
    s[1] += h;
    Tensor out = Tensor::zeros(s, x.dtype(), x.device());
    put_rows(out, h, x, false);
    return out;
}

// The diagonal block's share of dq, dk, dv (overwritten), through the ordinary op. Its
// flash version (2) rebuilds the probabilities from the lse and D_i = <dO_i, O_i> it is
// given, so with the FINAL lse and out of the merged softmax it returns exactly this
// block's share (docs/attention.md). Version 1 recomputes a softmax over these keys
// alone, which is not the merged one, so version 2 is used here whatever is selected.
void diagonal_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& out, const Tensor& lse, int window) {
    struct UseFlash {
        int saved = ops::version("attention");
        UseFlash() { ops::set_version("attention", 2); }
        ~UseFlash() { ops::set_version("attention", saved); }
    } flash;
    ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, window);
}

// ---- sliding window: halo ----

void halo_forward_start(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, const Tensor& k, const Tensor& v) {
    const int r = ctx.rank();
    auto ex = std::make_shared<Exchange>(ctx, Traffic::Halo, layer, "halo keys/values");
    for (const SlicePlan::Piece& p : plan.halo_destinations(r, window)) {
        ex->send(take_rows(k, p.begin - plan.begin(r), p.end - plan.begin(r)), p.rank);
        ex->send(take_rows(v, p.begin - plan.begin(r), p.end - plan.begin(r)), p.rank);
    }
    a.received_k.clear();
    a.received_v.clear();
    a.halo = 0;
    for (const SlicePlan::Piece& p : plan.halo_sources(r, window)) {
        a.received_k.push_back(empty_like_rows(k, p.end - p.begin));
        a.received_v.push_back(empty_like_rows(v, p.end - p.begin));
        ex->recv(a.received_k.back(), p.rank);
        ex->recv(a.received_v.back(), p.rank);
        a.halo += p.end - p.begin;
    }
    ex->start();
    a.pending = ex;
}

void halo_forward_finish(AttentionSlice& a, int window, Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v) {
    a.pending->wait();
    a.pending.reset();
    if (a.halo == 0) {
        a.k_ctx = k;
        a.v_ctx = v;
    } else {
        a.k_ctx = empty_like_rows(k, a.halo + k.dim(1));
        a.v_ctx = empty_like_rows(v, a.halo + v.dim(1));
        int64_t row = 0;
        for (size_t i = 0; i < a.received_k.size(); ++i) {
            put_rows(a.k_ctx, row, a.received_k[i], false);
            put_rows(a.v_ctx, row, a.received_v[i], false);
            row += a.received_k[i].dim(1);
        }
        put_rows(a.k_ctx, a.halo, k, false);
        put_rows(a.v_ctx, a.halo, v, false);
    }
    a.received_k.clear();
    a.received_v.clear();
    // query i of the slice is row halo + i of [halo; slice]
    ops::attention_forward(out, lse, q, a.k_ctx, a.v_ctx, static_cast<int>(a.halo), window);
}

// The op's backward is the training form (as many queries as keys), so the slice's
// queries get `halo` rows of zeros in front: zero queries with zero output gradient
// (and lse 0, so that their recomputed probabilities are finite) contribute exactly
// nothing to dk and dv, and their own dq is dropped.
void halo_backward_start(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& dq, Tensor& dk,
                         Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse) {
    const int r = ctx.rank();
    const int64_t h = a.halo, n = q.dim(1), B = q.dim(0), Hq = q.dim(2);
    Tensor dk_ctx = dk, dv_ctx = dv;  // (B, h + n, Hkv, hd): gradients of [halo; slice]
    if (h == 0) {
        ops::attention_backward(dq, dk, dv, dout, q, a.k_ctx, a.v_ctx, out, lse, window);
    } else {
        Tensor q_pad = zero_rows_in_front(q, h), out_pad = zero_rows_in_front(out, h), dout_pad = zero_rows_in_front(dout, h);
        // lse (B, Hq, n) seen as (B*Hq, n, 1): the same padding along its n
        Tensor lse_pad = zero_rows_in_front(lse.view({B * Hq, n, 1}), h).view({B, Hq, h + n});
        Tensor dq_pad = Tensor::empty(q_pad.shape(), q.dtype(), q.device());
        dk_ctx = Tensor::empty(a.k_ctx.shape(), q.dtype(), q.device());
        dv_ctx = Tensor::empty(a.v_ctx.shape(), q.dtype(), q.device());
        ops::attention_backward(dq_pad, dk_ctx, dv_ctx, dout_pad, q_pad, a.k_ctx, a.v_ctx, out_pad, lse_pad, window);
        dq.copy_from(take_rows(dq_pad, h, h + n));
        dk.copy_from(take_rows(dk_ctx, h, h + n));
        dv.copy_from(take_rows(dv_ctx, h, h + n));
    }
    // The halo rows' gradients go back to their owners; this rank's rows come back from later ranks.
    auto ex = std::make_shared<Exchange>(ctx, Traffic::Halo, layer, "halo key/value gradients");
    int64_t row = 0;
    for (const SlicePlan::Piece& p : plan.halo_sources(r, window)) {
        ex->send(take_rows(dk_ctx, row, row + p.end - p.begin), p.rank);
        ex->send(take_rows(dv_ctx, row, row + p.end - p.begin), p.rank);
        row += p.end - p.begin;
    }
    a.received_k.clear();
    a.received_v.clear();
    for (const SlicePlan::Piece& p : plan.halo_destinations(r, window)) {
        a.received_k.push_back(empty_like_rows(dk, p.end - p.begin));
        a.received_v.push_back(empty_like_rows(dv, p.end - p.begin));
        ex->recv(a.received_k.back(), p.rank);
        ex->recv(a.received_v.back(), p.rank);
    }
    ex->start();
    a.pending = ex;
}

void halo_backward_finish(const SlicePlan& plan, int rank, int window, AttentionSlice& a, Tensor& dk, Tensor& dv) {
    a.pending->wait();
    a.pending.reset();
    size_t i = 0;
    for (const SlicePlan::Piece& p : plan.halo_destinations(rank, window)) {
        put_rows(dk, p.begin - plan.begin(rank), a.received_k[i], true);
        put_rows(dv, p.begin - plan.begin(rank), a.received_v[i], true);
        ++i;
    }
    a.received_k.clear();
    a.received_v.clear();
    a.k_ctx = Tensor();
    a.v_ctx = Tensor();
}

// ---- full attention: ring ----

// The exchange of ring step t on rank r: block r - t (held in k, v) goes on to r + 1,
// block r - t - 1 arrives from r - 1 into a.received_k/v (if rank r still needs it).
std::shared_ptr<Exchange> ring_step(Context& ctx, const SlicePlan& plan, int layer, int t, AttentionSlice& a, const Tensor& k,
                                    const Tensor& v, const char* what) {
    const int r = ctx.rank();
    auto ex = std::make_shared<Exchange>(ctx, Traffic::Ring, layer, what);
    if (r + 1 < ctx.size()) {
        ex->send(k, r + 1);
        ex->send(v, r + 1);
    }
    a.received_k.clear();
    a.received_v.clear();
    if (t + 1 <= r) {
        const int64_t rows = plan.length(r - t - 1);
        a.received_k.push_back(empty_like_rows(k, rows));
        a.received_v.push_back(empty_like_rows(v, rows));
        ex->recv(a.received_k.back(), r - 1);
        ex->recv(a.received_v.back(), r - 1);
    }
    ex->start();
    return ex;
}

void ring_forward_finish(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& out, Tensor& lse,
                         const Tensor& q, const Tensor& k, const Tensor& v) {
    const int r = ctx.rank();
    const int64_t q0 = plan.begin(r);
    // The diagonal block, this rank's own keys, is causal attention within the slice:
    // the ordinary op computes it as it would in one process (positions are relative).
    ops::attention_forward(out, lse, q, k, v, 0, window);
    Tensor out_b = Tensor::empty(out.shape(), out.dtype(), out.device()), lse_b = Tensor::empty(lse.shape(), lse.dtype(), lse.device());
    for (int t = 1; t <= r; ++t) {
        a.pending->wait();
        Tensor kb = a.received_k[0], vb = a.received_v[0];  // block r - t
        a.pending = ring_step(ctx, plan, layer, t, a, kb, vb, "ring keys/values");
        ops::attention_block_forward(out_b, lse_b, q, kb, vb, q0, plan.begin(r - t), window);
        ops::attention_block_merge(out, lse, out_b, lse_b);
    }
    a.pending->wait();
    a.pending.reset();
    a.received_k.clear();
    a.received_v.clear();
}

// The forward's schedule again for the keys/values; at step t >= 1 this rank computes
// block r - t's share of dk, dv and sends it straight back to its owner during step
// t + 1. Rank r collects the shares of its own block from r + 1, r + 2, ... in turn.
void ring_backward(Context& ctx, const SlicePlan& plan, int layer, int window, Tensor& dq, Tensor& dk, Tensor& dv,
                   const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse) {
    const int r = ctx.rank(), R = ctx.size();
    const int64_t q0 = plan.begin(r);
    Tensor cur_k = k, cur_v = v, share_k, share_v;  // share: dk, dv of block r - (t-1), on its way back
    const int last = std::max(r + 1, R - r);
    for (int t = 0; t <= last; ++t) {
        auto ex = std::make_shared<Exchange>(ctx, Traffic::Ring, layer, "ring keys/values and their gradients");
        std::vector<Tensor> next_kv;
        if (t <= r && r + 1 < R) {
            ex->send(cur_k, r + 1);
            ex->send(cur_v, r + 1);
        }
        if (t + 1 <= r) {
            next_kv = {empty_like_rows(k, plan.length(r - t - 1)), empty_like_rows(v, plan.length(r - t - 1))};
            ex->recv(next_kv[0], r - 1);
            ex->recv(next_kv[1], r - 1);
        }
        if (t - 1 >= 1 && t - 1 <= r) {
            ex->send(share_k, r - (t - 1));
            ex->send(share_v, r - (t - 1));
        }
        Tensor back_k, back_v;  // this rank's block's share from rank r + t - 1
        if (t - 1 >= 1 && r + t - 1 < R) {
            back_k = empty_like_rows(k, k.dim(1));
            back_v = empty_like_rows(v, v.dim(1));
            ex->recv(back_k, r + t - 1);
            ex->recv(back_v, r + t - 1);
        }
        ex->start();
        if (t == 0) {
            diagonal_backward(dq, dk, dv, dout, q, k, v, out, lse, window);  // dq, dk, dv start here
        } else if (t <= r) {
            Tensor sk = empty_like_rows(k, cur_k.dim(1)), sv = empty_like_rows(v, cur_v.dim(1));
            ops::attention_block_backward(dq, sk, sv, dout, q, cur_k, cur_v, out, lse, q0, plan.begin(r - t), window);
            share_k = sk, share_v = sv;  // sent at step t + 1 (the exchange holds the old ones until then)
        }
        ex->wait();
        if (back_k.defined()) {
            ops::add_inplace(dk, back_k);
            ops::add_inplace(dv, back_v);
        }
        if (!next_kv.empty()) cur_k = next_kv[0], cur_v = next_kv[1];
    }
}

}  // namespace

void attention_forward_start(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, const Tensor& k,
                             const Tensor& v) {
    ITTT_NVTX_RANGE("cp_attention_start");
    a.ring = window <= 0;
    if (a.ring) a.pending = ring_step(ctx, plan, layer, 0, a, k, v, "ring keys/values");
    else halo_forward_start(ctx, plan, layer, window, a, k, v);
}

void attention_forward_finish(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& out, Tensor& lse,
                              const Tensor& q, const Tensor& k, const Tensor& v) {
    ITTT_NVTX_RANGE("cp_attention_finish");
    if (a.ring) ring_forward_finish(ctx, plan, layer, window, a, out, lse, q, k, v);
    else halo_forward_finish(a, window, out, lse, q, k, v);
}

void attention_backward_start(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& dq, Tensor& dk,
                              Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse) {
    ITTT_NVTX_RANGE("cp_attention_backward");
    if (a.ring) ring_backward(ctx, plan, layer, window, dq, dk, dv, dout, q, k, v, out, lse);
    else halo_backward_start(ctx, plan, layer, window, a, dq, dk, dv, dout, q, out, lse);
}

void attention_backward_finish(Context& ctx, const SlicePlan& plan, int /*layer*/, int window, AttentionSlice& a, Tensor& dk, Tensor& dv) {
    if (!a.ring) halo_backward_finish(plan, ctx.rank(), window, a, dk, dv);
}

}  // namespace ittt::parallel
