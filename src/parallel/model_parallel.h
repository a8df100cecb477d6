// model_parallel.h: the hooks Model calls when it runs context parallel
// (Model::set_context_parallel; docs/parallelism.md). Each rank holds slice r of every
// sequence (slice_plan.h); these functions supply what the slice needs from the others:
//
//   attention, sliding window   halo: the last (window - 1) keys/values before the slice,
//                               from one or more earlier ranks; the gradients of those
//                               rows go back to their owners in the backward
//   attention, full             ring: every earlier rank's key/value block passes along
//                               the ranks and is folded in by online softmax (merged by
//                               log-sum-exp); in the backward each block's dk, dv go back
//   TTT MLP                     the fast-weight prefix: S_i += sum of the deltas of all
//                               earlier ranks (exclusive scan over ranks); in the backward
//                               G_i += sum of P over all later ranks (the reverse scan)
//
// The TTT conv needs nothing: it is cut at chunk edges and every slice starts on one.
// Shapes: B sequences, n_r = plan.length(rank) rows each; q (B, n_r, Hq, hd),
// k, v (B, n_r, Hkv, hd), out (B, n_r, Hq, hd), lse (B, Hq, n_r).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/context.h"
#include "parallel/slice_plan.h"

namespace ittt::parallel {

// What one layer's attention keeps between the halves of its forward and for its backward.
struct AttentionSlice {
    bool ring = false;                  // full attention: ring; sliding window: halo
    int64_t halo = 0;                   // halo rows (keys from earlier ranks) before the slice
    Tensor k_ctx, v_ctx;                // sliding window: (B, halo + n_r, Hkv, hd), halo rows first
    std::vector<Tensor> received_k, received_v;  // halo pieces, or the ring's next block
    std::shared_ptr<Exchange> pending;  // posted by a start, completed by its finish
};

// Forward in two halves: start posts this slice's keys/values to the ranks that need
// them (and the receives), so the transfer runs while the caller computes the queries;
// finish waits, then computes out and lse for this slice's queries.
void attention_forward_start(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, const Tensor& k,
                             const Tensor& v);
void attention_forward_finish(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& out,
                              Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v);
// Backward in two halves: start computes dq and this rank's share of dk, dv, and posts
// the gradients of other ranks' keys to them; finish adds in what the later ranks
// returned for this rank's keys. dq, dk, dv overwritten (complete after finish).
void attention_backward_start(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& dq, Tensor& dk,
                              Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse);
void attention_backward_finish(Context& ctx, const SlicePlan& plan, int layer, int window, AttentionSlice& a, Tensor& dk, Tensor& dv);

// s (B, T_r, d, f): this rank's exclusive scan of its deltas (B, T_r, d, f). Adds the
// sum of every earlier rank's deltas to each s_i, which makes it the global S_i.
void ttt_add_earlier_ranks(Context& ctx, Tensor& s, const Tensor& delta, int layer);
// g (B, T_r, d, f): this rank's reverse exclusive scan of p (B, T_r, d, f). Adds the sum
// of p over every later rank, which makes it the global G_i.
void ttt_add_later_ranks(Context& ctx, Tensor& g, const Tensor& p, int layer);

// x (B, n, ...) -> this rank's slice (B, n_r, ...), a copy.
Tensor local_slice(const Tensor& x, const SlicePlan& plan, int rank);
// local (B, n_r, ...) from every rank -> (B, n, ...) on rank 0 (an undefined Tensor on
// the others). Counted as Traffic::Gather.
Tensor gather_slices(Context& ctx, const SlicePlan& plan, const Tensor& local);

// Throws unless all ranks got the same input: shape, a hash of the token ids, options.
// (The same check for the model, and the gradient sum, take a Model: model/model_ranks.h.)
void require_same_input(Context& ctx, const Tensor& tokens, const std::string& options);

// FNV-1a over `bytes` bytes, continuing from h (start: kFnv1aStart): the hashes the
// consistency checks compare between ranks. hash_hex: its 16 hex digits.
constexpr uint64_t kFnv1aStart = 1469598103934665603ull;
uint64_t fnv1a_hash(const void* data, size_t bytes, uint64_t h = kFnv1aStart);
std::string hash_hex(uint64_t h);

}  // namespace ittt::parallel
