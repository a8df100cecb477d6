// ops.h: every op the model uses, on tensors, for any device.
//
// This is the seam between the model (src/model/) and the kernels (kernels/<op>/).
// Each function checks shapes, dtypes and devices (with errors that name the
// tensor and the expected vs found shape), then calls the CPU kernel for the
// tensor's dtype (F32 or F64) or the CUDA kernel (F32) for the tensor's device.
// One file per op family implements it: src/ops/<op>.cpp.
//
// Conventions
// - Outputs come first and are pre-allocated by the caller; "accumulated" means
//   the op adds into the output (gradients of shared weights), otherwise the op
//   overwrites it.
// - All tensors of one call live on the same device and share a float dtype;
//   token ids, targets and positions are I32.
// - Shapes: B batch, n tokens per sequence, N = B*n rows, d hidden, f MLP width,
//   V vocab, Hq query heads, Hkv KV heads, hd head dim, C chunk, T = ceil(n/C).
#pragma once
#include <string>
#include <vector>

#include "ops/op_table.h"  // kernel versions: set_version, --kernel
#include "runtime/tensor.h"

namespace ittt::ops {

// ---- elementwise helpers (src/ops/elementwise.cpp) ----
void fill(Tensor& x, double value);
void add_inplace(Tensor& y, const Tensor& x, double alpha = 1.0);  // y += alpha * x
void scale_inplace(Tensor& x, double s);                            // x *= s
double sum_squares(const Tensor& x);                                 // sum x^2, accumulated in double
bool all_finite(const Tensor& x);
// The same, added into acc[slot] (acc: F64 on x's device) without a copy to the host: on
// CUDA no wait for the GPU, so a training step reads all its numbers with one copy.
void sum_squares_into(Tensor& acc, int64_t slot, const Tensor& x);    // acc[slot] += sum x^2
void flag_nonfinite_into(Tensor& acc, int64_t slot, const Tensor& x); // acc[slot] += 1 if x holds NaN or Inf
// Ops that check integer inputs (token ids, positions, targets) read them on the host. A
// caller that has the same values on the host passes them as host_* (CPU tensors), so a CUDA
// tensor is not copied back for the check (a wait for the GPU): the model and trainer do.
// out (rest) = sum over dim 0 of in (k, rest...), accumulated into out if accumulate.
void sum_dim0(Tensor& out, const Tensor& in, bool accumulate);

// ---- gemm (src/ops/gemm.cpp, kernels/gemm/) ----
// C = alpha * op(A) @ op(B) + beta * C, op(X) = X^T when trans_x.
// 2-D: A (M,K) or (K,M), B (K,N) or (N,K), C (M,N).
// 3-D: the same with a leading batch dimension on all three (strided batched).
void matmul(Tensor& C, const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, double alpha = 1.0, double beta = 0.0);
// y (N, out) = x (N, in) @ W^T + beta*y, W (out, in) as Hugging Face stores Linear weights.
void linear(Tensor& y, const Tensor& x, const Tensor& W, double beta = 0.0);

// ---- gemv (src/ops/gemv.cpp, kernels/gemv/): the blocked GEMMs' path for M <= 4 rows ----
// matmul's contract, 2-D, CPU only, at the gemv op's selected version: op(B) read once, no
// packing. matmul needs no help: its blocked versions call their gemv for small M themselves;
// this op is for the harness and the benchmarks.
void gemv(Tensor& C, const Tensor& A, bool trans_a, const Tensor& B, bool trans_b, double alpha = 1.0, double beta = 0.0);

// ---- embedding (src/ops/embedding.cpp, kernels/embedding/) ----
// out (N, d) = table[tokens]; tokens (N) I32, every id in [0, V).
void embedding_forward(Tensor& out, const Tensor& table, const Tensor& tokens, const Tensor* host_tokens = nullptr);
// dtable (V, d) += scatter of dout (N, d) rows by tokens (accumulated).
void embedding_backward(Tensor& dtable, const Tensor& dout, const Tensor& tokens, const Tensor* host_tokens = nullptr);

// ---- rmsnorm (src/ops/rmsnorm.cpp, kernels/rmsnorm/) ----
// x (..., dim) viewed as rows of dim = weight.numel(); works per head for q/k norms.
// out = x * rstd * weight, rstd (rows) = 1/sqrt(mean(x^2) + eps) saved for backward.
void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps);
// dx overwritten; dweight (dim) accumulated.
void rmsnorm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                      const Tensor& rstd);

// ---- rope (src/ops/rope.cpp, kernels/rope/) ----
// Hugging Face rotate-half convention: for i < hd/2, frequency theta^(-2i/hd),
// angle = position * frequency, and the pair (x[i], x[i + hd/2]) is rotated.
// x (N, H, hd), positions (N) I32. out may be the same tensor as x.
void rope_forward(Tensor& out, const Tensor& x, const Tensor& positions, double theta, const Tensor* host_positions = nullptr);
// The transpose (inverse) rotation: dx = R^T dout. dx may be the same tensor as dout.
void rope_backward(Tensor& dx, const Tensor& dout, const Tensor& positions, double theta, const Tensor* host_positions = nullptr);

// ---- attention (src/ops/attention.cpp, kernels/attention/) ----
// Causal grouped-query attention with an optional sliding window, scale 1/sqrt(hd).
// q (B, nq, Hq, hd); k, v (B, cap, Hkv, hd) with Hq % Hkv == 0; query head h uses
// KV head h / (Hq/Hkv). Query i sits at absolute position p = q_pos0 + i and sees
// keys s with max(0, p - window + 1) <= s <= p (window <= 0: no window). Keys
// 0 .. q_pos0+nq-1 must be filled; cap >= q_pos0 + nq (a KV cache may be larger).
// out (B, nq, Hq, hd); lse (B, Hq, nq) log-sum-exp of the scaled scores (for backward).
void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v, int q_pos0, int window);
// Training form only: q_pos0 = 0 and cap = nq. dq, dk, dv overwritten.
void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, int window);

// ---- swiglu (src/ops/swiglu.cpp, kernels/swiglu/) ----
// z = silu(g) * u elementwise; g, u, z same shape.
void swiglu_forward(Tensor& z, const Tensor& g, const Tensor& u);
void swiglu_backward(Tensor& dg, Tensor& du, const Tensor& dz, const Tensor& g, const Tensor& u);

// ---- depthwise conv1d inside chunks (src/ops/conv1d.cpp, kernels/conv1d/) ----
// x (B, n, d), weight (d, K), offsets (K): out[b,t,c] = sum_k weight[c,k] * x[b, t+offsets[k], c],
// where a term is zero when t+offsets[k] leaves t's chunk [floor(t/C)*C, min(.. + C, n)).
// Chunks start at token 0 of each sequence. Offsets -2..2 with K=5 is the release's
// centred cross-correlation: weight[c,k] multiplies x[t + k - 2].
void conv1d_chunked_forward(Tensor& out, const Tensor& x, const Tensor& weight, const std::vector<int>& offsets, int chunk);
// dx overwritten; dweight (d, K) accumulated.
void conv1d_chunked_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                             const std::vector<int>& offsets, int chunk);

// ---- TTT chunk delta (src/ops/ttt.cpp, kernels/ttt_delta/) ----
// delta (B, T, d, f): delta[b,i] = V_[i]^T Z_[i] over the rows of chunk i (short last chunk ok).
// v (B, n, d), z (B, n, f). Also used in the backward with dO in place of V.
void ttt_chunk_delta(Tensor& delta, const Tensor& v, const Tensor& z, int chunk);
// Inference-time clipping: if ||eta*dW_i||_F > tau, scale dW_i so that it equals tau.
void ttt_clip_deltas(Tensor& delta, double eta, double tau);
// ||eta*dW_i||_F of every (d, f) matrix of delta (..., d, f): the norm clipping compares with tau.
std::vector<double> ttt_update_norms(const Tensor& delta, double eta);
// Whether clipping with tau (0: off) shrinks a step of that norm: the rule of ttt_clip_deltas.
bool ttt_update_clipped(double norm, double tau);

// ---- prefix scan over chunks (src/ops/prefix_scan.cpp, kernels/prefix_scan/) ----
// in, out (B, T, m...): exclusive scan along dim 1.
// forward: out[b,i] = sum_{j<i} in[b,j];  reverse: out[b,i] = sum_{j>i} in[b,j].
void prefix_scan_exclusive(Tensor& out, const Tensor& in, bool reverse);

// ---- TTT apply (src/ops/ttt.cpp, kernels/ttt_apply/) ----
// o (B, n, d): o_[i] = z_[i] (wd + eta * s_i)^T with z (B, n, f), wd (d, f), s (B, T, d, f).
// Computed as one big z @ wd^T (the same gemm the plain MLP uses) plus the
// per-chunk correction eta * z_[i] s_i^T, so that s == 0 gives the plain MLP bit for bit.
void ttt_apply_forward(Tensor& o, const Tensor& z, const Tensor& wd, const Tensor& s, double eta, int chunk);
// dz_[i] = do_[i] (wd + eta s_i) + eta v_[i] g_i ;  dv_[i] = eta z_[i] g_i^T   (both overwritten)
// with g (B, T, d, f) = exclusive reverse scan of Wbar_i = do_[i]^T z_[i] (see docs/ttt.md).
void ttt_apply_backward(Tensor& dz, Tensor& dv, const Tensor& dout, const Tensor& z, const Tensor& v, const Tensor& wd,
                        const Tensor& s, const Tensor& g, double eta, int chunk);

// ---- TTT chunk loop with a running fast weight (src/ops/ttt_loop.cpp, kernels/ttt_loop/) ----
// o (B, n, d): o_[i] = z_[i] W_i^T with W_0 = wd, W_{i+1} = W_i + eta c_i v_[i]^T z_[i] (c_i the
// clipping factor): the layer's chunk step, "apply, then update" (docs/ttt.md). The outputs of
// ttt_chunk_delta + prefix_scan_exclusive + ttt_apply_forward without their (B, T, d, f) tensors,
// in about half the multiply-adds (kernels/ttt_loop/ttt_loop.h). CPU and CUDA, forward and backward.
struct TttLoopOptions {
    int update_limit = -1;     // chunks >= limit fold no update (-1: all do)
    double clip_tau = 0;       // > 0: clip each eta dW_i to Frobenius norm tau (inference)
    bool keep_all = false;     // keep every W_i (for ttt_loop_backward: the loop form)
    bool keep_last = false;    // keep W_{T-1} (for ttt_loop_backward: the flat form)
    bool norms = false;        // report ||eta dW_i||_F per chunk
    // Streaming, the loop started from a state: w_state (B, d, f) is each sequence's W at the
    // start (wd is not read) and ends as W after every chunk completed here (the last one too).
    // z and v then begin with the `start` rows its current chunk held before (0 <= start < chunk),
    // whose outputs exist: o is (B, n - start, d). v is read only for chunks that complete.
    Tensor w_state;
    int start = 0;
};
struct TttLoopResult {
    Tensor w_all;    // (B, T, d, f) if keep_all
    Tensor w_last;   // (B, d, f) if keep_last
    // (B*T) if norms: ||eta dW_i||_F before clipping (NaN for the last chunk's update when no
    // state is kept: nothing uses it, so it is not computed), and the norm folded into W (0: none).
    std::vector<double> norm, applied;
};
TttLoopResult ttt_loop_forward(Tensor& o, const Tensor& z, const Tensor& v, const Tensor& wd, double eta, int chunk,
                               const TttLoopOptions& opt = {});
// dz (B, n, f), dv (B, n, d) overwritten, dwd (d, f) accumulated, from dout (B, n, d). w: the
// forward's w_all (B, T, d, f), or its w_last (B, d, f), in which case every W_i is rebuilt in
// reverse (W_i = W_{i+1} - eta dW_i): memory flat in T. update_limit as in the forward.
void ttt_loop_backward(Tensor& dz, Tensor& dv, Tensor& dwd, const Tensor& dout, const Tensor& z, const Tensor& v, double eta,
                       int chunk, const Tensor& w, int update_limit = -1);

// ---- cross-entropy (src/ops/cross_entropy.cpp, kernels/cross_entropy/) ----
struct CrossEntropyResult {
    double loss_sum = 0;    // sum of -log softmax(logits)[target] over scored rows
    int64_t n_scored = 0;   // rows whose target is not ignore_index
};
// logits (N, V), targets (N) I32 with ignore_index (-1) for unscored rows.
// If dlogits is given: dlogits (N, V) = grad_scale * (softmax - onehot) on scored
// rows and 0 on ignored rows (pass grad_scale = 1/total_scored for a mean loss).
CrossEntropyResult cross_entropy(Tensor* dlogits, const Tensor& logits, const Tensor& targets, double grad_scale,
                                 int ignore_index = -1);
// The training step's form: the loss sum is added into loss_acc[slot] (F64 on logits' device)
// instead of copied to the host, and the targets are checked in host_targets (the same ids on
// the host). Returns the number of scored rows.
int64_t cross_entropy_into(Tensor& loss_acc, int64_t slot, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                           const Tensor& host_targets, double grad_scale, int ignore_index = -1);

// ---- AdamW and clipping (src/ops/adamw.cpp, kernels/adamw/) ----
struct AdamWConfig {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
};
// One decoupled-weight-decay Adam step with bias correction; step counts from 1.
// param, grad, m, v: same shape. param -= lr * (mhat/(sqrt(vhat)+eps) + wd*param).
void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWConfig& cfg, int64_t step);
// Scales all grads so their global L2 norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm);
// Its second half, for a caller that has the norm already (a training step reads it with its
// loss): scales every grad by max_norm / norm when the norm is finite and above max_norm.
void clip_grads_to(const std::vector<Tensor*>& grads, double norm, double max_norm);

}  // namespace ittt::ops

// ---- attention against one block of keys (src/ops/attention_block.cpp, kernels/attention_block/) ----
// The pieces ring attention is made of (src/parallel/attention_parallel.cpp, docs/parallelism.md):
// the keys arrive one rank's block at a time, anywhere in the sequence.
// q, out, dout, dq (B, nq, Hq, hd): query i at absolute position q_pos0 + i.
// k, v, dk, dv (B, nk, Hkv, hd): key c of the block at absolute position k_pos0 + c.
// lse (B, Hq, nq). Visibility as in attention_forward (causal, window <= 0: none).
namespace ittt::ops {

// out, lse overwritten: the softmax over this block's visible keys alone. A query that
// sees none of them gets out = 0 and lse = -inf ("nothing to add" for the merge).
void attention_block_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_pos0,
                             int64_t k_pos0, int window);
// (out, lse) <- (out, lse) merged with one block's (out_b, lse_b): the online-softmax step.
void attention_block_merge(Tensor& out, Tensor& lse, const Tensor& out_b, const Tensor& lse_b);
// out, lse: the FINAL output and log-sum-exp over all blocks. dq accumulated (+=);
// dk, dv overwritten with this block's gradients.
void attention_block_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse, int64_t q_pos0, int64_t k_pos0, int window);

}  // namespace ittt::ops
