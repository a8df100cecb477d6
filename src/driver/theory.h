// theory.h: the "theory mode" of the step-through driver (`ittt step --theory`).
//
// It builds the setting of the paper's Theorem 1 (docs/theory.md, docs/method.md
// section 5) with no attention and no trained model: one block whose fast
// weight W (d x f) is updated chunk by chunk with dW_i = lr * V_[i]^T Z_[i],
// a key-value pair (k*, v*) in an early chunk, and the key again at a query
// position q in the last chunk. The logits at q are read out through the tied
// embedding, l[w] = e_w^T W z_q, so the change caused by the updates is
//
//     dl_q[w] = e_w^T (sum of dW_j over chunks before q's chunk) z_q
//             = lr * sum_t (e_w^T V_t)(Z_t^T z_q).
//
// The engine measures the quantities the theorem is stated in (eps, c_norm,
// c_align), the logit changes over many seeded trials, and compares them with
// the two bounds for both targets (LM-aligned V_t = e_{x_t+1}, reconstruction
// V_t = e_{x_t}). It computes and reports; it never adjusts anything so that a
// bound holds.
//
//   theory::TheoryOptions o;                 // o.d = 128; theory::validate_options(o);
//   theory::TheoryResult r = theory::run_trials(o);
//   std::cout << theory::format_summary_text(r);
//   theory::StepResult s = theory::run_step(o);   // the chunk-by-chunk view of one trial
//
// Everything is double precision on the CPU: the runs are tiny, and double keeps
// rounding out of every comparison with a bound.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace ittt::theory {

// ---- a minimal dense matrix ----

// Row-major rows x cols doubles. Small on purpose: the theory mode needs dot
// products and outer products, nothing else.
struct Matrix {
    int rows = 0, cols = 0;
    std::vector<double> values;

    Matrix() = default;
    Matrix(int r, int c) : rows(r), cols(c), values(static_cast<size_t>(r) * static_cast<size_t>(c), 0.0) {}
    double& at(int r, int c) { return values[static_cast<size_t>(r) * static_cast<size_t>(cols) + static_cast<size_t>(c)]; }
    double at(int r, int c) const { return values[static_cast<size_t>(r) * static_cast<size_t>(cols) + static_cast<size_t>(c)]; }
    double* row(int r) { return values.data() + static_cast<size_t>(r) * static_cast<size_t>(cols); }
    const double* row(int r) const { return values.data() + static_cast<size_t>(r) * static_cast<size_t>(cols); }
};

// A copy of a 2-D CPU tensor of any float dtype (e.g. a checkpoint's embedding
// table, for the model-backed mode).
Matrix matrix_from_tensor(const Tensor& t);
// Builds a matrix from nested rows (all rows the same length): tests and examples.
Matrix matrix_from_rows(const std::vector<std::vector<double>>& rows);

double dot(const double* a, const double* b, int n);

// ---- settings ----

enum class EmbeddingKind {
    Gaussian,    // e_a ~ N(0, 1/d) per coordinate: nearly orthogonal, eps ~ sqrt(log V / d)
    Orthogonal,  // e_a = +-(unit vector): exactly orthogonal, eps = 0, needs vocab <= d
};
enum class FeatureKind {
    SwiGLU,    // Z_t = silu(Wg e_{x_t}) * (Wu e_{x_t}), Wg and Wu f x d with N(0, 1/d) entries
    Identity,  // Z_t = e_{x_t} (f = d): the cleanest case
};
enum class MlpInput {
    Raw,      // h_t = e_{x_t}: the theorem's setting; the gate pre-activations have variance ~1/d
    RmsNorm,  // h_t = RMSNorm(e_{x_t}) (unit weight) as in the real block: pre-activations of variance ~1
};
enum class Target {
    LmAligned,       // V_t = e_{x_t+1} inside the chunk, 0 at the chunk's last position
    Reconstruction,  // V_t = e_{x_t}
};
constexpr Target kTargets[2] = {Target::LmAligned, Target::Reconstruction};

const char* embedding_kind_name(EmbeddingKind k);  // "gaussian", "orthogonal"
const char* feature_kind_name(FeatureKind k);      // "swiglu", "identity"
const char* mlp_input_name(MlpInput k);            // "raw", "rmsnorm"
const char* target_name(Target t);                 // "lm_aligned", "reconstruction" (JSON)
const char* target_title(Target t);                // "LM-aligned", "Reconstruction" (text)
EmbeddingKind parse_embedding_kind(const std::string& s);
FeatureKind parse_feature_kind(const std::string& s);
MlpInput parse_mlp_input(const std::string& s);

struct TheoryOptions {
    uint64_t seed = 1;          // --seed: model from fork(0), trial i from fork(1 + i)
    int trials = 200;           // --trials: sequences averaged over
    int d = 64;                 // --d: embedding width
    int vocab = 64;             // --vocab: ordinary tokens (k*, v* and fillers are drawn from them)
    int f = 0;                  // --f: SwiGLU width; 0 means 3*d (Qwen3-like); ignored for identity features
    int chunk = 16;             // --chunk: positions per chunk (C)
    int n_chunks = 4;           // --chunks: sequence length = chunk * n_chunks; the query is in the last chunk
    int key_chunk = 0;          // --key-chunk: the chunk holding (k*, v*); must come before the query's chunk
    double lr = 1.0;            // --lr: eta; every dl scales linearly with it
    EmbeddingKind embed = EmbeddingKind::Gaussian;  // --embed gaussian|orthogonal
    FeatureKind features = FeatureKind::SwiGLU;     // --features swiglu|identity
    MlpInput mlp_input = MlpInput::Raw;             // --mlp-input raw|rmsnorm (SwiGLU features only)
    int step_trial = 0;         // --step-trial: which trial the chunk-by-chunk view shows
    std::vector<int> sweep = {16, 32, 64, 128, 256, 512};  // --sweep: values of d for run_sweep

    int seq_len() const { return chunk * n_chunks; }
    int query_chunk() const { return n_chunks - 1; }
    int feature_width() const { return features == FeatureKind::Identity ? d : (f > 0 ? f : 3 * d); }
};

// Throws Error naming the first bad option (expected vs found). The command
// line (`ittt step --theory`, src/tools/cmd_step.cpp) parses each flag into its
// field; this checks what no single flag can (--key-chunk below --chunks - 1).
void validate_options(const TheoryOptions& o);

// ---- measurements (the theorem's quantities) ----

// eps = max over a != b of |e_a^T e_b| (rows of embed). 0 for a single row.
double max_cross_dot(const Matrix& embed);
// c_norm^2 = min over a of ||e_a||^2.
double min_squared_norm(const Matrix& embed);
// a a^T (rows x rows).
Matrix gram(const Matrix& a);
// silu(x) = x * sigmoid(x).
double silu(double x);
// Each row scaled to root-mean-square 1 (unit weight, epsilon 1e-6 as in Qwen3).
Matrix rmsnorm_rows(const Matrix& x);
// Z (n x f) = silu(h Wg^T) * (h Wu^T) for inputs h (n x d), Wg and Wu (f x d).
Matrix swiglu_features(const Matrix& inputs, const Matrix& w_gate, const Matrix& w_up);

// The token whose embedding is V_t, or -1 when V_t = 0. LM-aligned uses the
// release's chunk-local conv with a +1 tap: the next token only if it is in the
// same chunk, so the last position of every chunk stores nothing.
int target_token(const std::vector<int>& tokens, int t, Target target, int chunk);
// V (n x d): row t = e_{target_token(t)} or zeros.
Matrix target_values(const Matrix& embed, const std::vector<int>& tokens, Target target, int chunk);

// dW (d x f) = lr * sum_{t in [begin, end)} V_t Z_t^T. values (n x d), features (n x f).
Matrix fast_weight_delta(const Matrix& values, const Matrix& features, int begin, int end, double lr);
// l[w] = e_w^T W z for every token w. embed (V x d), W (d x f), z (f).
std::vector<double> readout_logits(const Matrix& embed, const Matrix& W, const std::vector<double>& z);
// The same change in token form, without building W:
// dl[w] = lr * sum_{t < end} (e_w^T V_t)(Z_t^T z). Equal to readout_logits of the
// summed dW up to rounding (a test checks it).
std::vector<double> logit_change_token_form(const Matrix& embed, const Matrix& values, const Matrix& features, int end,
                                            const std::vector<double>& z, double lr);
double frobenius_norm(const Matrix& m);
// 1 + the number of other tokens whose logit is >= logits[token]: ties count
// against the token, so rank 1 means strictly on top.
int rank_of(const std::vector<double>& logits, int token);
// The k tokens with the largest logits, ties broken by the smaller id.
std::vector<int> top_tokens(const std::vector<double>& logits, int k);

// Mean and its standard error over trials, by Welford's update: sum-of-squares
// minus squared-sum cancels when the spread is tiny next to the mean (dl(v*) is
// the same in every orthogonal trial).
struct RunningMean {
    double mean_ = 0, m2 = 0;
    long n = 0;
    void add(double x);
    double mean() const { return mean_; }
    double se() const;  // from the unbiased sample variance; NaN below 2 samples
};

// A measured value against a bound.
struct BoundCheck {
    double measured = 0;  // the quantity the claim is about (|E dl| for upper bounds)
    double bound = 0;
    bool lower = true;    // true: measured >= bound claimed; false: measured <= bound claimed
    bool holds = false;
    double margin = 0;    // signed, positive when it holds: measured - bound (lower), bound - measured (upper)
    double ratio = 0;     // measured / bound (inf when bound is 0 and measured is not, 1 when both are 0)
};
// Rounding tolerance only: a relative 1e-9 so that an exact equality computed
// in two orders (orthogonal embeddings) is not called a failure.
BoundCheck check_lower_bound(double measured, double bound);
BoundCheck check_upper_bound(double measured, double bound);

// ---- the constructed setting ----

struct TheoryModel {
    Matrix embed;           // (V, d)
    Matrix w_gate, w_up;    // (f, d) each; empty for identity features
    Matrix token_features;  // (V, f): Z for each token (h_t = e_{x_t}, so Z depends on the token only)
    FeatureKind features = FeatureKind::SwiGLU;
    MlpInput mlp_input = MlpInput::Raw;
};
// Z for the given input rows (n x d): the MLP intermediate of the block.
Matrix block_features(const TheoryModel& m, const Matrix& inputs);
TheoryModel make_model(const TheoryOptions& o);

struct ProbeSequence {
    std::vector<int> tokens;  // seq_len ids
    int key_pos = 0;          // t*: tokens[t*] = k*, tokens[t*+1] = v*, both in key_chunk
    int query_pos = 0;        // q in the last chunk: tokens[q] = k*
    int key = 0, value = 0;   // k*, v*
};
// Fillers are uniform over the tokens other than k* and v*.
ProbeSequence make_probe_sequence(const TheoryOptions& o, uint64_t trial);

// ---- many trials: the expectations in the theorem ----

struct TargetSummary {
    Target target = Target::LmAligned;
    double dlogit_correct_mean = 0;   // mean over trials of dl[v*]
    double dlogit_correct_se = 0;     // its standard error (NaN for one trial)
    double dlogit_correct_key_term = 0;   // mean of the t* position's part of dl[v*]
    double dlogit_correct_next_term = 0;  // mean of the t*+1 position's part (v*'s own position)
    double dlogit_correct_rest = 0;       // mean of all other positions' part
    double dlogit_key_mean = 0;       // mean dl[k*]: where the reconstruction target puts its mass
    double dlogit_other_maxabs = 0;   // max over w of |mean over trials with w != v* of dl[w]|
    int dlogit_other_argmax = -1;     // the token w achieving it
    double dlogit_other_se = 0;       // mean standard error of those per-token means
    double dlogit_other_noise = 0;    // se * sqrt(2 ln(V-1)): typical max of V-1 pure-noise means
    double dlogit_abs_mean = 0;       // mean over trials and w != v* of |dl[w]| (per trial, not bounded)
    BoundCheck correct;   // LM: E dl[v*] >= lr c_norm^2 c_align; reconstruction: |E dl[v*]| <= lr eps c_align
    BoundCheck other;     // max_{w != v*} |E dl[w]| <= lr eps c_align (claimed for LM only)
    bool other_claimed = true;
    bool holds = false;   // every claim the theorem makes for this target
    std::string reason;   // plain words: why a claim fails, or what it rests on
};

struct TheoryResult {
    TheoryOptions options;
    int f = 0;                // the feature width used
    int prior_positions = 0;  // positions whose update reaches the query (chunks before it)
    double eps = 0;           // max_{a != b} |e_a^T e_b|
    double c_norm_sq = 0;     // min_a ||e_a||^2
    double c_align = 0;       // mean over trials of Z_{t*}^T z_q
    double c_align_other = 0; // mean over trials and t != t* (prior chunks) of Z_t^T z_q; assumed 0
    double c_align_other_se = 0;
    // The same expectation computed exactly for this model, without sampling:
    // the mean of Z_a^T Z_b over ordered pairs of distinct tokens. Its distance
    // from 0 is what the "other positions contribute 0" assumption ignores.
    double c_align_other_model = 0;
    // mean over a != b of (e_a^T e_b)^2, over the mean of ||e_a||^4 (~1/d for
    // Gaussian embeddings). SwiGLU features are close to bilinear in the
    // embedding, so c_align_other_model / c_align follows this ratio: nearly
    // orthogonal tokens still have features that overlap a little, on average
    // positively.
    double embed_overlap_sq = 0;
    // mean over a != b of e_a^T e_b: eps-level, its sign set by the draw.
    double embed_cross_mean = 0;
    // What the filler positions add to E[dl(v*)] for the LM-aligned target, if
    // each contributes (mean e_v*.e_b) * (mean Z_a.Z_b): lr * N * embed_cross_mean
    // * c_align_other_model, N = the prior positions that store a value, minus t*.
    // Grows with the context; the theorem treats it as 0.
    double drift_predicted = 0;
    // The same estimate for the other tokens: filler positions add to E[dl(w)]
    // about lr * N * (e_w^T sum_b e_b / V) * c_align_other_model (the fillers
    // include w itself, hence its ||e_w||^2 share). The largest |.| over w, and
    // the token; compare with TargetSummary::dlogit_other_maxabs.
    double other_drift_predicted = 0;
    int other_drift_token = -1;
    double bound_lower = 0;   // lr * c_norm^2 * c_align
    double bound_cross = 0;   // lr * eps * c_align
    TargetSummary targets[2]; // indexed like kTargets
    const TargetSummary& target(Target t) const { return targets[t == Target::LmAligned ? 0 : 1]; }
};
TheoryResult run_trials(const TheoryOptions& o);

// ---- one trial, chunk by chunk (the step display) ----

struct ChunkTargetView {
    double dW_fro = 0;              // ||dW_i||_F of this chunk's update (lr included)
    double dlogit_correct = 0;      // dl[v*] at the query after chunks 0..i
    double dlogit_key = 0;          // dl[k*]
    int rank_correct = 0;           // rank of v* among the query logits e_w^T W z_q
    std::vector<int> top5;          // tokens with the largest logits
    std::vector<double> top5_logits;
    double dlogit_other_maxabs = 0; // max over w != v* of |dl[w]|
    double dlogit_other_meanabs = 0;
};
struct ChunkView {
    int chunk = 0, begin = 0, end = 0;  // positions [begin, end)
    bool has_pair = false;              // the chunk holds (k*, v*)
    ChunkTargetView view[2];            // indexed like kTargets
};
struct StepResult {
    TheoryOptions options;
    int trial = 0;
    ProbeSequence sequence;
    std::vector<ChunkView> chunks;          // the chunks before the query's chunk
    std::vector<double> final_dlogit[2];    // dl over the vocabulary at the query, per target
    Matrix contributions[2];                // (prior positions, V): lr (e_w^T V_t)(Z_t^T z_q)
};
StepResult run_step(const TheoryOptions& o);

// ---- the sweep over d ----

struct SweepPoint {
    int d = 0;
    TheoryResult result;
};
// Runs run_trials for each d in o.sweep (the sequences are the same at every d:
// they depend only on the seed and the trial).
std::vector<SweepPoint> run_sweep(const TheoryOptions& o);

// ---- formatting ----

std::string format_options_line(const TheoryOptions& o);
// Measured constants, an aligned table, then one plain-words verdict per claim.
std::string format_summary_text(const TheoryResult& r);
std::string format_step_text(const StepResult& s);
std::string format_sweep_text(const std::vector<SweepPoint>& sweep);
// JSON lines. Summary: one object per target (type "theory_summary"). Step: one
// object per chunk (type "theory_chunk") with both targets inside. Sweep: one
// object per d and target (type "theory_sweep", the summary's fields plus d).
std::string format_summary_json(const TheoryResult& r);
std::string format_step_json(const StepResult& s);
std::string format_sweep_json(const std::vector<SweepPoint>& sweep);

}  // namespace ittt::theory
