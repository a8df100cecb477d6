// model_probe.h: the model mode of the step-through driver (`ittt step --ckpt DIR`).
//
// The theory mode (theory.h) checks Theorem 1 in a constructed one-block
// setting. This mode makes the same measurements on a trained checkpoint, at
// the model's real output logits. For a probe sequence from a task (theorem
// probe or MQAR; the task's markers say where keys, values and queries are,
// and its scored positions are the probe queries) it runs the model T+1 times
// with ForwardOptions::ttt_update_limit = 0 .. T (T = number of chunks), so
//
//     logits before chunk i's update = forward(limit = i)
//     logits after  chunk i's update = forward(limit = i + 1)
//     dl_i[w] at a query q           = after[q][w] - before[q][w]   (0 unless chunk(q) > i)
//     dl[w]   at q (all updates)     = forward(all)[q][w] - forward(limit = 0)[q][w]
//
// "Both targets" on a checkpoint means two models:
//   learned  the checkpoint as trained: V = Conv1D(S) P with its learned taps;
//   offset0  the same model with every conv tap zeroed except the offset-0 tap,
//            P unchanged: V_t = (w_0 * S_t) P, a reconstruction-style target
//            built from the same weights (with no offset-0 tap the conv is all
//            zero and every dl is 0).
// Nothing else changes, so the difference between the two is the look-ahead
// and look-behind part of the learned target.
//
// The theorem's quantities, measured on the model (per TTT layer l):
//   eps, c_norm^2  from the rows e_w of the output head (the tied embedding),
//                  over the ordinary tokens 4 .. V-1;
//   c_align        mean over probes of Z_t*^T z_q, Z = layer l's MLP intermediate,
//                  t* the key's position in the sequence, q the query's;
//   readout        e_w^T (eta sum_{j < chunk(q)} dW_j) z_q: what layer l's update
//                  adds to the residual stream at q, read straight through the
//                  output head (no final norm, no later layers).
// The bounds eta c_norm^2 c_align and eta eps c_align (summed over TTT layers)
// are compared with the real logit changes and with the direct readout. For a
// multi-layer model with norms, a learned P and learned conv taps this is a
// heuristic: the theorem's assumptions are not met, so a bound that holds or
// fails here is an observation, not a confirmation or a refutation.
//
//   Model m = load_model("data/demo");
//   probe::ProbeOptions o;  o.task = parse_task_config("theorem", {});  o.seq_len = 64;
//   probe::ProbeRun r = probe::run_probe(m, o);
//   std::cout << probe::format_summary_text(r) << probe::format_step_text(r.step);
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "driver/theory.h"
#include "model/model.h"
#include "tasks/tasks.h"

namespace ittt::probe {

enum class ProbeTarget {
    Learned,  // the checkpoint as trained
    Offset0,  // conv restricted to its offset-0 tap: reconstruction-style, same P
};
constexpr ProbeTarget kProbeTargets[2] = {ProbeTarget::Learned, ProbeTarget::Offset0};
const char* probe_target_name(ProbeTarget t);   // "learned", "offset0" (JSON)
const char* probe_target_title(ProbeTarget t);  // "Learned", "Offset-0" (text)
inline int probe_target_index(ProbeTarget t) { return t == ProbeTarget::Learned ? 0 : 1; }

struct ProbeOptions {
    TaskConfig task;       // theorem or mqar (any task with Key/Value/Query markers works)
    int seq_len = 64;      // n tokens per sequence
    uint64_t seed = 1;     // example b = make_example(task, V, n, seed, b)
    int examples = 16;     // sequences the summary averages over
    int step_example = 0;  // the sequence shown chunk by chunk
    int top = 5;           // top-k tokens shown per query
};
void validate_probe_options(const ProbeOptions& o, const Model& model);

// ---- building blocks (tested on their own) ----

// The model with every ttt_conv tap zeroed except the one at offset 0 (a deep copy).
Model offset0_variant(const Model& model);
// Logits (B*n, V) as doubles for tokens (B, n) with the updates of chunks 0 .. limit-1
// (limit -1: all), inference mode.
std::vector<double> logits_with_limit(Model& model, const Tensor& tokens, int limit);
// Where a query's pair is: for each Query marker, the Key and Value markers of the
// same index (position -1 when the example has none).
struct ProbeQuery {
    int pair = 0;           // the marker index: the query of pair j is marked ?j, its key kj, its value vj
    int position = 0;       // q
    int correct = 0;        // v*: the scored target at q
    int key_position = -1;  // t*
    int value_position = -1;
    int chunk = 0;          // q / C
};
std::vector<ProbeQuery> probe_queries(const Example& e, int chunk);
// What one TTT layer kept in the last forward, as doubles on the CPU.
struct LayerSnapshot {
    int layer = 0, B = 0, n = 0, T = 0, d = 0, f = 0;
    double eta = 0;
    std::vector<double> delta;  // (B, T, d, f): dW_i without eta, after clipping and the update limit
    std::vector<double> z;      // (B*n, f): the MLP intermediate Z
    std::vector<double> v;      // (B*n, d): the target V
    double clip_tau = 0;        // ttt_clip_tau (<= 0: no clipping)
    std::vector<double> norm_unclipped;  // (B*T): ||eta dW_i||_F before clipping and the update limit
};
LayerSnapshot snapshot_layer(const Model& model, int layer);
// ||eta dW_i||_F for every chunk i of example b.
std::vector<double> update_norms(const LayerSnapshot& s, int b);
// The same before clipping, and whether ttt_clip_tau clipped each chunk (norm > tau).
std::vector<double> unclipped_update_norms(const LayerSnapshot& s, int b);
std::vector<int> clipped_chunks(const LayerSnapshot& s, int b);
// e_w^T (eta sum_{begin <= j < end} dW_j) z_q for every token w (rows of head,
// V x d), example b, position q: the layer's fast-weight change read straight
// through the output head.
std::vector<double> direct_readout(const LayerSnapshot& s, const theory::Matrix& head, int b, int q, int chunk_begin,
                                   int chunk_end);
// Z_a^T Z_b for two global rows (b*n + t).
double feature_dot(const LayerSnapshot& s, int64_t row_a, int64_t row_b);
// Mean absolute weight of each conv tap of layer l, in the order of ttt_conv_offsets.
std::vector<double> conv_tap_mean_abs(const Model& model, int layer);
// Mean signed weight of each conv tap of layer l: (1/d) sum_c w[c, k]. With
// `through_proj` and a learned P, each channel's weight is multiplied by P[c, c]
// first, the part of V = Conv(S) P that keeps the channel: a tap whose channels
// have random signs but agree with P's diagonal still reads as positive. The
// fixed next-token target gives 1 at offset +1 and 0 elsewhere.
std::vector<double> conv_tap_mean_signed(const Model& model, int layer, bool through_proj);
// The gain of each tap's map: ||diag(w_k) P||_F / sqrt(d), tap k's part of the target
// V = Conv(S) P as a d x d matrix (P = I without a learned P: the rms of w_k). Sign-free
// and blind to how P mixes the channels, so a look-ahead routed through an
// off-diagonal P shows here and not in the signed mean.
std::vector<double> conv_tap_gain(const Model& model, int layer);

// ---- the chunk-by-chunk view of one sequence ----

struct QueryChunkView {
    int position = 0, correct = 0;
    double logit_before = 0, logit_after = 0;  // of the correct token, before / after chunk i's update
    int rank_before = 0, rank_after = 0;       // 1 = strictly on top (ties count against it)
    std::vector<int> top;                      // top-k tokens after the update
    std::vector<double> top_logits;
    double dl_correct = 0;                     // after - before
    double dl_other_maxabs = 0, dl_other_meanabs = 0;  // over w != correct
    double dl_cumulative = 0;                  // dl[correct] after chunks 0..i vs no update at all
    double dl_cumulative_other_maxabs = 0;     // max over w != correct of the same
    std::vector<double> readout_correct;       // per TTT layer: e_v*^T (eta dW_i) z_q
    std::vector<double> dl;                    // dl_i(w) for every token w: this chunk's update alone
    bool right() const { return rank_after == 1; }  // v* strictly on top after the update
};
// What the fast weight returns for one stored key after chunks 0..i: the readout
// sum over TTT layers of e_w^T (eta sum_{j <= i} dW_j) z_q at the key's query q,
// i.e. what the memory answers when the query's features ask it.
struct KeyReadout {
    int pair = 0;                  // kj / vj / ?j
    int key = 0, value = 0;        // tokens
    int key_position = -1, query_position = 0;
    int stored_chunk = -1;         // the chunk whose update holds the pair; -1 when a chunk edge splits it
    bool stored = false;           // stored_chunk in 0..i
    int top = -1;                  // the token the readout ranks first
    int value_rank = 0;            // rank of the value in the readout (1: on top)
    double readout_value = 0, readout_top = 0;
    bool right() const { return stored && top == value; }
};
// What a target vector V_t stands for, read through the output head: e_w.V_t is how
// much the stored value moves token w's logit when a key retrieves it (the factor
// e_w^T V_t of the theorem's dl). A learned look-ahead target raises x_{t+1}; the
// offset-0 target of data/learned-mqar lowers x_t instead (its tap and P are negative
// there), so the pages show the token moved most, with its sign.
struct DecodedTarget {
    std::vector<int> top;        // the largest e_w.V_t first
    std::vector<double> score;   // e_w.V_t of each
    int moved = -1;              // the token with the largest |e_w.V_t|
    double moved_score = 0;      // its e_w.V_t, with the sign
    double norm = 0;             // ||V_t||
};
struct ChunkTargetView {
    std::vector<double> update_norm;           // ||eta dW_i||_F per TTT layer, as applied (after clipping)
    std::vector<double> update_norm_unclipped; // the same before ttt_clip_tau
    std::vector<int> clipped;                  // 1 where ttt_clip_tau scaled the update down to tau
    std::vector<QueryChunkView> queries;       // the queries after this chunk (chunk(q) > i)
    std::vector<KeyReadout> keys;              // every probe query's key, in pair order
};
struct ChunkView {
    int chunk = 0, begin = 0, end = 0;         // positions [begin, end)
    ChunkTargetView view[2];                   // indexed like kProbeTargets
};
struct ProbeStep {
    TaskConfig task;
    int example = 0, seq_len = 0, chunk = 0, vocab = 0;
    double clip_tau = 0;                       // ttt_clip_tau (<= 0: off)
    std::vector<int> ttt_layers;
    std::vector<int32_t> tokens;
    std::vector<Marker> markers;
    std::vector<ProbeQuery> queries;
    std::vector<ChunkView> chunks;             // every chunk of the sequence
    // dl over the vocabulary at the first query, all updates vs none, per target.
    std::vector<double> final_dlogit[2];
    // dl (n x V, row-major) at every position, all updates vs none, per target.
    std::vector<double> position_dlogit[2];
    // V_t decoded, per target, per TTT layer, per position.
    std::vector<std::vector<DecodedTarget>> decoded[2];
    // The conv taps of each TTT layer (the learned model): offsets, and per layer the
    // mean signed weight times P[c, c] and the gain ||diag(w_k) P||_F / sqrt(d).
    std::vector<int> conv_offsets;
    std::vector<std::vector<double>> conv_taps_effective, conv_taps_gain;
    // The query of pair j (nullptr when the sequence has none).
    const ProbeQuery* query_of_pair(int pair) const;
};

// ---- the summary over many sequences ----

struct ProbeTargetSummary {
    ProbeTarget target = ProbeTarget::Learned;
    int probes = 0;
    double dlogit_correct_mean = 0, dlogit_correct_se = 0;  // real logits, all updates vs none
    double dlogit_other_maxabs = 0;    // max over w of |mean over probes with w != v* of dl[w]|
    int dlogit_other_argmax = -1;
    double dlogit_other_argmax_mean = 0;   // that token's mean dl, with its sign
    double dlogit_other_meanabs = 0;   // mean over probes and w != v* of |dl[w]| (per probe, not bounded)
    double logit_correct_before = 0, logit_correct_after = 0;  // means
    double rank_before = 0, rank_after = 0;                    // mean rank of v*
    double accuracy_before = 0, accuracy_after = 0;            // fraction of probes with v* on top
    // The staircase: per update limit k = 0 .. T (chunks 0..k-1 applied), over every probe:
    std::vector<double> accuracy_by_limit;      // fraction with v* on top
    std::vector<double> dlogit_by_limit;        // mean dl(v*) against limit 0
    double readout_correct_mean = 0;   // direct readout summed over TTT layers
    double readout_other_maxabs = 0;
    int readout_other_argmax = -1;
    double readout_other_argmax_mean = 0;
    std::vector<double> readout_correct_layer;  // per TTT layer
    std::vector<double> update_norm_layer;      // mean ||eta dW_i||_F per TTT layer (chunks before the last)
    std::vector<int> clipped_layer;             // chunk updates clipped by ttt_clip_tau, per TTT layer
    int updates_per_layer = 0;                  // chunk updates per TTT layer over all sequences
    theory::BoundCheck correct, other;          // on the real logits
    theory::BoundCheck readout_correct, readout_other;  // on the direct readout
    bool other_claimed = true;  // the theorem bounds the other tokens only for the LM-aligned target
    bool holds = false;         // the claims on the real logits
    std::string reason;
};

struct ProbeResult {
    ProbeOptions options;
    std::string checkpoint;  // set by the caller (for the text), may be empty
    int vocab = 0, chunk = 0, chunks = 0;
    double eta = 0;
    double clip_tau = 0;        // ttt_clip_tau of the model (<= 0: off)
    bool learned_proj = false;  // the TTT layers have a learned P (ttt_proj), else P = I
    std::vector<int> ttt_layers;
    double eps = 0, c_norm_sq = 0;        // from the output head's ordinary rows
    std::vector<double> c_align_layer;    // mean Z_t*.z_q per TTT layer (as trained)
    std::vector<double> c_align_other_layer;  // mean Z_t.z_q over the other prior positions
    std::vector<int> conv_offsets;               // the taps' offsets (ttt_conv_offsets)
    std::vector<std::vector<double>> conv_taps;  // per TTT layer: mean |w| per tap (learned model)
    std::vector<std::vector<double>> conv_taps_signed;     // per TTT layer: mean signed w per tap
    std::vector<std::vector<double>> conv_taps_effective;  // the same with each channel times P[c, c]
    std::vector<std::vector<double>> conv_taps_gain;       // per TTT layer: ||diag(w_k) P||_F / sqrt(d)
    double c_align = 0;                   // summed over TTT layers
    double bound_lower = 0, bound_cross = 0;  // eta c_norm^2 c_align, eta eps c_align
    ProbeTargetSummary targets[2];
    const ProbeTargetSummary& target(ProbeTarget t) const { return targets[probe_target_index(t)]; }
};

struct ProbeRun {
    ProbeResult summary;
    ProbeStep step;
};
// Runs both targets on o.examples sequences; the step view is of o.step_example.
ProbeRun run_probe(Model& model, const ProbeOptions& o);

// ---- formatting (probe_text.cpp) ----

// Position -> "k0", "v0", "?0", "a0": the key, value, query and answer of pair 0.
// Every page, heatmap and table names positions and tokens this way (v0:38 is
// token 38, the value of pair 0).
std::map<int, std::string> marker_labels(const ProbeStep& s);

// The summary: settings, the staircase, the measured constants and taps, the
// verdict tables and the verdicts, every line within 79 columns.
std::string format_summary_text(const ProbeResult& r);
// The verdict lines alone, each claim that fails followed by a short "why:" that
// names the section of docs/theory.md explaining it (what `make demo` prints last).
std::string format_verdicts_text(const ProbeResult& r);

// What a chunk page shows:
//   Full     the chunk's tokens with V_t decoded and the update norms (header), then
//            what each key retrieves, every query's mark, and every query in detail
//   Compact  the same header, keys and query marks in two columns, no detail: one
//            80x24 screen per chunk for 8 pairs and 32-token chunks
//   Query    the same header, then query ?j alone (its key, its block)
enum class PageView { Full, Compact, Query };
struct PageOptions {
    PageView view = PageView::Full;
    int pair = -1;  // PageView::Query: the pair whose query is shown
};
// Throws an Error naming the sequence's pairs when o asks for a query it does not have.
void validate_page_options(const ProbeStep& s, const PageOptions& o);
// One chunk's page: the header (what the pager pins to the top) and the body.
std::string format_chunk_header(const ProbeStep& s, int chunk, const PageOptions& o = {});
std::string format_chunk_body(const ProbeStep& s, int chunk, const PageOptions& o = {});
std::string format_chunk_text(const ProbeStep& s, int chunk, const PageOptions& o = {});  // header + body
// All chunks, one after the other.
std::string format_step_text(const ProbeStep& s, const PageOptions& o = {});
// The chunk's tokens in rows of aligned cells: markers, x_t, and V_t decoded for
// both targets (the token each target vector raises most), so V_t = x_{t+1} shows
// as the x row shifted left by one.
std::string format_token_grid(const ProbeStep& s, int begin, int end);
// The TTT layer (index into ttt_layers) whose targets the pages decode: the one
// with the largest learned updates on the shown sequence.
int decoded_layer(const ProbeStep& s);

// JSON lines: one "model_chunk" object per chunk, one "model_summary" object per target.
std::string format_step_json(const ProbeStep& s);
std::string format_summary_json(const ProbeResult& r);

// ---- figures (files named model_* inside dir; see plots.h) ----

// model_chunks: dl(v*) as chunk updates are applied, mean over the shown sequence's
// queries, both targets; model_histogram: dl over the vocabulary at the first query;
// model_heatmap_*: dl (positions x answers and top tokens); model_taps: the conv taps.
std::vector<std::string> plot_probe_step(const ProbeStep& s, const std::string& dir);
// model_staircase: accuracy and mean dl(v*) over every probe as chunk updates are
// applied (x = 0: none), both targets.
std::vector<std::string> plot_probe_summary(const ProbeResult& r, const std::string& dir);

}  // namespace ittt::probe
