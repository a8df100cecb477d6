// model.h: a Qwen3-style decoder whose chosen MLPs are In-Place TTT layers.
//
//   x0 = Embed[tokens]
//   for each layer: h = x + Attn(RMSNorm(x)); x = h + MLP(RMSNorm(h))
//   logits = RMSNorm(x) @ LMHead^T
//
// Forward stores what the backward needs (the model is small: clarity over
// memory). Parameters carry Hugging Face Qwen3 names, so checkpoints load
// straight into that ecosystem. Math: docs/method.md, docs/ttt.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "parallel/model_parallel.h"
#include "runtime/tensor.h"

namespace ittt {

struct Parameter {
    std::string name;      // Hugging Face name, e.g. "model.layers.0.mlp.down_proj.weight"
    Tensor value;
    Tensor grad;           // same shape; accumulated by backward()
    bool trainable = true; // false for the fixed targets of next_token / reconstruction modes
    bool weight_decay = true;  // AdamW decay: matrices yes, norms no
};

struct LayerWeights {
    Tensor input_norm, post_norm;               // (d)
    Tensor q_proj, k_proj, v_proj;              // (Hq*hd, d), (Hkv*hd, d), (Hkv*hd, d)
    Tensor o_proj;                              // (d, Hq*hd)
    Tensor q_norm, k_norm;                      // (hd)
    Tensor gate_proj, up_proj;                  // (f, d)
    Tensor down_proj;                           // (d, f): the fast weight's initial value in TTT layers
    Tensor ttt_conv;                            // (d, 1, K) TTT layers only
    Tensor ttt_proj;                            // (d, d) TTT layers with ttt_proj; V = U @ ttt_proj
};

// How a TTT layer computes its chunks (docs/ttt.md). Every form is the one chunk step, apply
// then update (kernels/ttt_loop), or the same sums reordered (Parallel):
//   Parallel  deltas, prefix scan and apply over (B, T, d, f) tensors (context parallelism)
//   Loop      the chunk loop with a running fast weight, keeping every chunk's W_i for the
//             backward: half the multiply-adds of Parallel, B*T*d*f numbers kept
//   Flat      the chunk loop keeping only the last W; the backward rebuilds each W_i in reverse
//             and recomputes the targets: memory B*d*f per layer whatever n
//   Auto      on either device, Loop while its stored W_i take no more memory than the layer's
//             own MLP activations (T*d <= 3n, i.e. about d <= 3C), Flat beyond; Parallel under
//             context parallelism; see Model::set_ttt_form.
// A forward with a state (streaming) runs the chunk loop from the state, whatever the form.
enum class TttForm { Auto, Parallel, Loop, Flat };
const char* ttt_form_name(TttForm f);   // "auto", "parallel", "loop", "flat"
TttForm parse_ttt_form(const std::string& s);

struct ForwardOptions {
    // Inference applies ttt_clip_tau (training never clips, docs/method.md section 4).
    bool inference = false;
    // Use only the updates of chunks 0 .. limit-1 (-1: all). 0 turns TTT updates off;
    // the step-through driver compares logits at limit i and i+1.
    int ttt_update_limit = -1;
    // Auto: the model's form (Model::set_ttt_form). The step-through driver asks for Parallel:
    // it reads the per-chunk deltas that only that form keeps.
    TttForm ttt_form = TttForm::Auto;
    // Document boundaries of a packed batch, like varlen attention's cu_seqlens (docs/ttt.md,
    // "Document boundaries"): document_starts[b] holds the positions in [0, n) where row b's
    // documents begin, strictly ascending, the first 0. Shape: B lists (or no list at all);
    // an empty list or {0} means the row is one document, as without boundaries.
    // Each document is computed as if it were its own sequence: attention never reads another
    // document's keys, the conv target treats positions outside the document like positions
    // outside the sequence, RoPE positions restart at 0, and the fast weight restarts from Wd
    // with the chunk grid counted from the document's first token. Not with a state (streaming:
    // Session::reset() at each boundary) nor context parallelism. Cost: where a batch has a
    // boundary, every layer runs its attention and TTT ops once per document, not once per batch.
    // The model sees no targets: the caller leaves unscored the target that crosses a boundary
    // (a document's last token predicting the next one's first: IGNORE_TARGET; the text task does).
    std::vector<std::vector<int>> document_starts;
};

// One fast-weight update: TTT layer `layer` folded chunk `chunk` (positions
// [chunk*C, (chunk+1)*C)) into its W.
struct TttUpdate {
    int layer = 0, chunk = 0;
    double norm = 0;     // ||eta dW||_F of the chunk's delta, before clipping
    double applied = 0;  // ||eta dW||_F as folded in: tau when clipped, else norm
    bool clipped = false;  // ttt_clip_tau > 0 and norm > tau
};

// What a forward continues from, one sequence at a time (streaming inference: Session, and
// llama2.c's RunState): the position, every layer's KV cache, and in TTT layers the fast weight
// W and the rows of the chunk not yet complete (its targets need the whole chunk). Memory per
// TTT layer: d*f + C*(d+f), whatever the sequence length. Model::start_state makes one.
struct ForwardState {
    struct Layer {
        Tensor k_cache, v_cache;    // (1, capacity, Hkv, hd): keys (after RoPE) and values of positions 0 .. position-1
        Tensor w;                   // (d, f) TTT layers: the fast weight
        Tensor z_chunk, src_chunk;  // (C, f), (C, d) TTT layers: z and S_src of the current chunk's rows so far
        int buffered = 0;           // rows in z_chunk / src_chunk
        int chunks_done = 0;        // chunks folded into w so far
    };
    int position = 0;  // tokens seen
    int capacity = 0;  // rows of the KV caches (they grow by doubling)
    std::vector<Layer> layers;
    std::vector<TttUpdate> updates;  // every chunk update so far, in order
};

// Everything one layer's forward keeps for the backward (rows N = B*n).
struct LayerActivations {
    Tensor x;                 // (N, d) layer input
    Tensor xn1, rstd1;        // (N, d), (N)
    Tensor q, k, v;           // (N, Hq*hd), (N, Hkv*hd), (N, Hkv*hd) projections
    Tensor qn, kn, rstd_q, rstd_k;  // normed per head, (N*Hq), (N*Hkv)
    Tensor qr, kr;            // after RoPE
    Tensor att, lse;          // (N, Hq*hd), (B, Hq, n)
    Tensor h;                 // (N, d) after the attention residual
    Tensor xn2, rstd2;        // (N, d), (N)
    Tensor g, u, z;           // (N, f)
    // TTT layers only
    Tensor ttt_u, ttt_v;      // (N, d) conv output U and target V = U P
    Tensor ttt_s;             // (B, T, d, f) exclusive prefix sum of the deltas
    Tensor ttt_delta;         // (B, T, d, f) per-chunk deltas (as used: after limit / clipping)
    // Loop / Flat forms instead of ttt_s and ttt_delta (Parallel leaves them undefined):
    TttForm ttt_form = TttForm::Parallel;  // the form this forward ran
    Tensor ttt_w;             // training: (B, T, d, f) every W_i (Loop) or (B, d, f) W_{T-1} (Flat)
    int ttt_update_limit = -1;
    bool ttt_clipped = false; // an inference forward with ttt_clip_tau > 0 (clipping has no backward)
    // Stateless inference forwards only: ||eta dW_i||_F of every (b, i), B*T values, before clipping
    // and the update limit: what ttt_clip_tau compares with tau (clipped iff norm > tau).
    // The Loop / Flat forms leave NaN for the last chunk, whose update nothing uses.
    std::vector<double> ttt_update_norm;
    // Context parallel only: the attention's exchanges with other ranks (halo or ring).
    parallel::AttentionSlice cp_attention;
    // TTT layers: S_src, a view of the token embeddings x0 or of xn2 (ttt_target), (N, d).
    Tensor ttt_src;
    // Forwards with document boundaries only, one entry per document (Model's document order):
    // views of its rows of z, S_src, U and V, its own lse (1, Hq, len) and its own TTT tensors
    // (ttt_s, ttt_delta, ttt_w, ttt_update_norm: those of a batch of one sequence of len rows).
    // The fields above of the same names are then left undefined.
    std::vector<LayerActivations> documents;
};

class Model {
public:
    Model(const ModelConfig& cfg, DType dtype = DType::F32, Device device = Device::CPU);

    const ModelConfig& config() const { return cfg_; }
    DType dtype() const { return dtype_; }
    Device device() const { return device_; }

    // Seeded init: N(0, initializer_range) matrices, ones for norms; TTT as the
    // release: conv zero (learned) and P = diag(N(0, 0.02^2)); fixed targets get
    // their fixed conv and P = I.
    void init_random(uint64_t seed);
    // Only the TTT parameters, as the release initialises them when it adds TTT
    // layers to a pretrained model (its _init_weights): conv zero (fixed targets:
    // their fixed conv) and P = diag(N(0, initializer_range^2)) (fixed: P = I).
    void init_ttt(uint64_t seed);

    // tokens (B, n) I32 -> logits (B*n, V). Keeps activations for backward().
    // Context parallel: every rank passes the same full tokens (B, n) and gets the
    // logits of its own slice, (B*n_r, V) with n_r = slice_plan().length(rank).
    // With a state (streaming inference, B = 1): the tokens sit at positions state->position ..,
    // attention reads and extends the KV caches, the TTT layers continue their chunk loop from
    // the state's W and buffered rows (docs/ttt.md), and the state advances; no backward.
    // Prefill at position 0, a prompt mid-stream and decoding one token are all this call.
    const Tensor& forward(const Tensor& tokens, const ForwardOptions& opt = {}, ForwardState* state = nullptr);
    // The state of an empty stream: no positions, fast weights equal to Wd, no buffered rows.
    ForwardState start_state() const;
    // dlogits (B*n, V) -> accumulates into every trainable parameter's grad.
    // Context parallel: dlogits of this rank's slice (B*n_r, V); the grads then hold
    // this rank's share, which parallel::allreduce_gradients sums over the ranks.
    void backward(const Tensor& dlogits);
    void zero_grad();

    // Context parallelism (docs/parallelism.md): from now on forward/backward split
    // every sequence over the ranks of ctx, which must all hold this same model (checked).
    // nullptr returns to the single-process path. The Session (decode) is single-rank.
    void set_context_parallel(parallel::Context* ctx);
    parallel::Context* context_parallel() const { return cp_; }
    // The slices of the last context-parallel forward.
    const parallel::SlicePlan& slice_plan() const { return plan_; }

    std::vector<Parameter>& parameters() { return params_; }
    const std::vector<Parameter>& parameters() const { return params_; }
    Parameter& parameter(const std::string& name);
    const LayerWeights& layer(int l) const { return layers_[static_cast<size_t>(l)]; }
    const Tensor& embed() const { return embed_; }
    const Tensor& final_norm() const { return final_norm_; }
    const Tensor& lm_head() const { return cfg_.tie_word_embeddings ? embed_ : lm_head_; }
    // Activations of the last forward (for the step-through driver and tests).
    const LayerActivations& activations(int l) const { return acts_[static_cast<size_t>(l)]; }
    const Tensor& embedded() const { return x0_; }  // (N, d) token embeddings of the last forward
    int64_t parameter_count() const;

    // The TTT form a forward uses when its options say Auto (default Auto: the rule in TttForm).
    void set_ttt_form(TttForm form) { ttt_form_ = form; }
    TttForm ttt_form() const { return ttt_form_; }
    // The form a forward with these options runs for a batch of B sequences of n tokens.
    TttForm resolve_ttt_form(const ForwardOptions& opt, int n) const;

    // Copy of the model with its parameters in another dtype (CPU) or on another device.
    Model converted(DType dtype, Device device) const;

    // The fixed conv filter of a fixed-target mode: weight[c, k] = 1 at the tap
    // whose offset is +1 (next_token) or 0 (reconstruction).
    int fixed_target_tap() const;

private:
    // One document of a forward with boundaries: rows [row0, row0 + length) of the (N, ...) tensors.
    struct Document {
        int64_t row0 = 0, length = 0;
    };
    // Checks opt.document_starts against (B_, n_) and fills documents_ (left empty when every
    // row is one document, so that such a batch runs the code path without boundaries).
    void plan_documents(const ForwardOptions& opt);
    // Document i's rows of t (N rows of any width) in the given shape, e.g. (1, len, H, hd).
    Tensor document_rows(const Tensor& t, size_t i, const Shape& shape) const;
    void build_parameters();
    // Initialises p when it is a TTT parameter (P's diagonal with std p_std); false otherwise.
    bool init_ttt_parameter(Parameter& p, uint64_t seed, double p_std);
    void layer_forward(int l, Tensor& x, const ForwardOptions& opt, ForwardState* state);
    // Grows the KV caches of a state to hold `positions` positions.
    void reserve_cache(ForwardState& state, int positions) const;
    // The TTT layer's functions below take the batch they run on as (B, n) and its activations a:
    // the whole batch (B_, n_, acts_[l]), or one document (1, length, acts_[l].documents[i]).
    // Fills a.ttt_u and a.ttt_v from S_src (a.ttt_src).
    void ttt_compute_targets(int l, LayerActivations& a, int B, int n);
    void ttt_forward(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, ForwardState* state);
    void ttt_forward_sequences(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, int B, int n);
    void ttt_forward_loop(int l, LayerActivations& a, Tensor& mlp_out, const ForwardOptions& opt, TttForm form, int B, int n);
    void ttt_forward_stream(int l, LayerActivations& a, Tensor& mlp_out, ForwardState& state);
    // dV (N, d) of a TTT layer -> dP, dconv accumulated; dS_src added into dsrc.
    void ttt_targets_backward(int l, const LayerActivations& a, int B, int n, const Tensor& dv, Tensor& dsrc);
    void layer_backward(int l, Tensor& dx);
    // dO (N, d) of a TTT MLP -> dz (N, f), accumulating weight grads; adds dS_src into dsrc.
    void ttt_backward(int l, const Tensor& dout, Tensor& dz, Tensor& dsrc);
    void ttt_backward_sequences(int l, LayerActivations& a, int B, int n, const Tensor& dout, Tensor& dz, Tensor& dsrc);
    Tensor new_tensor(const Shape& s) const;
    Tensor& grad_of(const Tensor& value);

    ModelConfig cfg_;
    TttForm ttt_form_ = TttForm::Auto;
    DType dtype_;
    Device device_;
    Tensor embed_, final_norm_, lm_head_;
    std::vector<LayerWeights> layers_;
    std::vector<Parameter> params_;

    // last forward
    int B_ = 0, n_ = 0;
    std::vector<Document> documents_;        // with document boundaries; empty without
    bool streamed_ = false;                   // it continued a state: nothing for a backward
    Tensor tokens_, positions_;            // (N) I32 on the model's device
    Tensor host_tokens_, host_positions_;  // the same on the host: the ops check them there
    Tensor x0_;                               // (N, d)
    std::vector<LayerActivations> acts_;
    Tensor x_final_, xf_, rstd_f_, logits_;   // (N, d), (N, d), (N), (N, V)
    Tensor dx0_ttt_;                          // (N, d) gradient into x0 from TTT targets

    // context parallel (nullptr: single process)
    parallel::Context* cp_ = nullptr;
    parallel::SlicePlan plan_;                // of the last forward; n_ is this rank's slice
};

// Computes a TTT layer's target V (B*n, d) from its source S_src (B*n, d):
// U = chunk-local depthwise conv, V = U @ P (or U when there is no P).
void ttt_targets(Tensor& u, Tensor& v, const Tensor& src, const LayerWeights& w, const ModelConfig& cfg, int B, int n);

}  // namespace ittt
