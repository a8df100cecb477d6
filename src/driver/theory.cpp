// theory.cpp: the theory mode of the step-through driver. See theory.h for the
// setting and docs/theory.md for the theorem and what the runs found.
#include "driver/theory.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

#include "driver/text_format.h"
#include "io/json.h"
#include "runtime/error.h"

namespace ittt::theory {

using text::fmt;
using text::pad;

// ---------------------------------------------------------------- matrices

Matrix matrix_from_tensor(const Tensor& t) {
    ITTT_CHECK(t.ndim() == 2, "matrix_from_tensor: expected a 2-D tensor, found ", t.describe());
    ITTT_CHECK(t.dtype() != DType::I32, "matrix_from_tensor: expected a float tensor, found ", t.describe());
    Matrix m(static_cast<int>(t.dim(0)), static_cast<int>(t.dim(1)));
    m.values = t.to(Device::CPU).to_f64_vector();
    return m;
}

Matrix matrix_from_rows(const std::vector<std::vector<double>>& rows) {
    ITTT_CHECK(!rows.empty(), "matrix_from_rows: expected at least one row, found none");
    Matrix m(static_cast<int>(rows.size()), static_cast<int>(rows[0].size()));
    for (int r = 0; r < m.rows; ++r) {
        ITTT_CHECK(static_cast<int>(rows[static_cast<size_t>(r)].size()) == m.cols, "matrix_from_rows: row ", r, " has ",
                   rows[static_cast<size_t>(r)].size(), " values, expected ", m.cols, " (the length of row 0)");
        std::copy(rows[static_cast<size_t>(r)].begin(), rows[static_cast<size_t>(r)].end(), m.row(r));
    }
    return m;
}

double dot(const double* a, const double* b, int n) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

// ---------------------------------------------------------------- names and options

const char* embedding_kind_name(EmbeddingKind k) { return k == EmbeddingKind::Gaussian ? "gaussian" : "orthogonal"; }
const char* feature_kind_name(FeatureKind k) { return k == FeatureKind::SwiGLU ? "swiglu" : "identity"; }
const char* mlp_input_name(MlpInput k) { return k == MlpInput::Raw ? "raw" : "rmsnorm"; }
const char* target_name(Target t) { return t == Target::LmAligned ? "lm_aligned" : "reconstruction"; }
const char* target_title(Target t) { return t == Target::LmAligned ? "LM-aligned" : "Reconstruction"; }

static int target_index(Target t) { return t == Target::LmAligned ? 0 : 1; }

EmbeddingKind parse_embedding_kind(const std::string& s) {
    if (s == "gaussian") return EmbeddingKind::Gaussian;
    if (s == "orthogonal") return EmbeddingKind::Orthogonal;
    fail(cat("--embed: expected gaussian or orthogonal, found '", s, "'"));
}

FeatureKind parse_feature_kind(const std::string& s) {
    if (s == "swiglu") return FeatureKind::SwiGLU;
    if (s == "identity") return FeatureKind::Identity;
    fail(cat("--features: expected swiglu or identity, found '", s, "'"));
}

MlpInput parse_mlp_input(const std::string& s) {
    if (s == "raw") return MlpInput::Raw;
    if (s == "rmsnorm") return MlpInput::RmsNorm;
    fail(cat("--mlp-input: expected raw or rmsnorm, found '", s, "'"));
}

void validate_options(const TheoryOptions& o) {
    ITTT_CHECK(o.trials >= 1, "--trials: expected at least 1, found ", o.trials);
    ITTT_CHECK(o.d >= 1, "--d: expected at least 1, found ", o.d);
    ITTT_CHECK(o.vocab >= 3, "--vocab: expected at least 3 (k*, v* and one filler token), found ", o.vocab);
    ITTT_CHECK(o.f >= 0, "--f: expected 0 (meaning 3*d) or a positive width, found ", o.f);
    ITTT_CHECK(o.chunk >= 2, "--chunk: expected at least 2 (the pair must fit inside one chunk), found ", o.chunk);
    ITTT_CHECK(o.n_chunks >= 2, "--chunks: expected at least 2 (a chunk for the pair, a later one for the query), found ",
               o.n_chunks);
    ITTT_CHECK(o.key_chunk >= 0 && o.key_chunk < o.n_chunks - 1, "--key-chunk: expected a chunk in [0, ", o.n_chunks - 1,
               ") (before the query's chunk ", o.n_chunks - 1, "), found ", o.key_chunk);
    ITTT_CHECK(std::isfinite(o.lr) && o.lr > 0, "--lr: expected a positive finite learning rate, found ", o.lr);
    ITTT_CHECK(o.step_trial >= 0, "--step-trial: expected a trial index >= 0, found ", o.step_trial);
    ITTT_CHECK(o.embed != EmbeddingKind::Orthogonal || o.vocab <= o.d, "--embed orthogonal: needs vocab <= d, found vocab ",
               o.vocab, " and d ", o.d);
    for (int d : o.sweep) ITTT_CHECK(d >= 1, "--sweep: expected widths >= 1, found ", d);
}

// ---------------------------------------------------------------- measurements

double max_cross_dot(const Matrix& embed) {
    double eps = 0;
    for (int a = 0; a < embed.rows; ++a)
        for (int b = a + 1; b < embed.rows; ++b) eps = std::max(eps, std::fabs(dot(embed.row(a), embed.row(b), embed.cols)));
    return eps;
}

double min_squared_norm(const Matrix& embed) {
    ITTT_CHECK(embed.rows >= 1, "min_squared_norm: expected at least one embedding row, found none");
    double m = std::numeric_limits<double>::infinity();
    for (int a = 0; a < embed.rows; ++a) m = std::min(m, dot(embed.row(a), embed.row(a), embed.cols));
    return m;
}

Matrix gram(const Matrix& a) {
    Matrix g(a.rows, a.rows);
    for (int i = 0; i < a.rows; ++i)
        for (int j = i; j < a.rows; ++j) g.at(i, j) = g.at(j, i) = dot(a.row(i), a.row(j), a.cols);
    return g;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

Matrix rmsnorm_rows(const Matrix& x) {
    Matrix out = x;
    for (int r = 0; r < x.rows; ++r) {
        double inv_rms = 1.0 / std::sqrt(dot(x.row(r), x.row(r), x.cols) / x.cols + 1e-6);
        for (int c = 0; c < x.cols; ++c) out.at(r, c) *= inv_rms;
    }
    return out;
}

Matrix swiglu_features(const Matrix& inputs, const Matrix& w_gate, const Matrix& w_up) {
    ITTT_CHECK(w_gate.cols == inputs.cols && w_up.cols == inputs.cols && w_up.rows == w_gate.rows,
               "swiglu_features: expected Wg and Wu of shape (f, ", inputs.cols, "), found (", w_gate.rows, ", ", w_gate.cols,
               ") and (", w_up.rows, ", ", w_up.cols, ")");
    Matrix z(inputs.rows, w_gate.rows);
    for (int t = 0; t < inputs.rows; ++t)
        for (int j = 0; j < w_gate.rows; ++j)
            z.at(t, j) = silu(dot(w_gate.row(j), inputs.row(t), inputs.cols)) * dot(w_up.row(j), inputs.row(t), inputs.cols);
    return z;
}

int target_token(const std::vector<int>& tokens, int t, Target target, int chunk) {
    ITTT_CHECK(t >= 0 && t < static_cast<int>(tokens.size()), "target_token: position ", t, " outside [0, ", tokens.size(), ")");
    if (target == Target::Reconstruction) return tokens[static_cast<size_t>(t)];
    // The conv is zero-padded at the chunk's edge: the +1 tap of the chunk's
    // last row reads padding, not the next chunk's first token.
    bool last_in_chunk = (t + 1) % chunk == 0 || t + 1 == static_cast<int>(tokens.size());
    return last_in_chunk ? -1 : tokens[static_cast<size_t>(t + 1)];
}

Matrix target_values(const Matrix& embed, const std::vector<int>& tokens, Target target, int chunk) {
    Matrix v(static_cast<int>(tokens.size()), embed.cols);
    for (int t = 0; t < v.rows; ++t) {
        int tok = target_token(tokens, t, target, chunk);
        if (tok >= 0) std::copy(embed.row(tok), embed.row(tok) + embed.cols, v.row(t));
    }
    return v;
}

Matrix fast_weight_delta(const Matrix& values, const Matrix& features, int begin, int end, double lr) {
    ITTT_CHECK(values.rows == features.rows, "fast_weight_delta: values have ", values.rows, " rows, features ", features.rows,
               " (expected the same positions)");
    ITTT_CHECK(begin >= 0 && begin <= end && end <= values.rows, "fast_weight_delta: range [", begin, ", ", end,
               ") outside [0, ", values.rows, "]");
    Matrix dw(values.cols, features.cols);
    for (int t = begin; t < end; ++t)
        for (int i = 0; i < values.cols; ++i) {
            double v = lr * values.at(t, i);
            if (v == 0) continue;
            double* out = dw.row(i);
            const double* z = features.row(t);
            for (int j = 0; j < features.cols; ++j) out[j] += v * z[j];
        }
    return dw;
}

std::vector<double> readout_logits(const Matrix& embed, const Matrix& W, const std::vector<double>& z) {
    ITTT_CHECK(W.rows == embed.cols && W.cols == static_cast<int>(z.size()), "readout_logits: expected W of shape (",
               embed.cols, ", ", z.size(), "), found (", W.rows, ", ", W.cols, ")");
    std::vector<double> wz(static_cast<size_t>(W.rows));
    for (int i = 0; i < W.rows; ++i) wz[static_cast<size_t>(i)] = dot(W.row(i), z.data(), W.cols);
    std::vector<double> logits(static_cast<size_t>(embed.rows));
    for (int w = 0; w < embed.rows; ++w) logits[static_cast<size_t>(w)] = dot(embed.row(w), wz.data(), embed.cols);
    return logits;
}

std::vector<double> logit_change_token_form(const Matrix& embed, const Matrix& values, const Matrix& features, int end,
                                            const std::vector<double>& z, double lr) {
    ITTT_CHECK(values.cols == embed.cols && features.cols == static_cast<int>(z.size()) && values.rows == features.rows,
               "logit_change_token_form: expected values (n, ", embed.cols, ") and features (n, ", z.size(), "), found (",
               values.rows, ", ", values.cols, ") and (", features.rows, ", ", features.cols, ")");
    ITTT_CHECK(end >= 0 && end <= values.rows, "logit_change_token_form: end ", end, " outside [0, ", values.rows, "]");
    std::vector<double> dl(static_cast<size_t>(embed.rows), 0.0);
    for (int t = 0; t < end; ++t) {
        double align = lr * dot(features.row(t), z.data(), features.cols);
        for (int w = 0; w < embed.rows; ++w) dl[static_cast<size_t>(w)] += dot(embed.row(w), values.row(t), embed.cols) * align;
    }
    return dl;
}

double frobenius_norm(const Matrix& m) { return std::sqrt(dot(m.values.data(), m.values.data(), static_cast<int>(m.values.size()))); }

int rank_of(const std::vector<double>& logits, int token) {
    ITTT_CHECK(token >= 0 && token < static_cast<int>(logits.size()), "rank_of: token ", token, " outside [0, ", logits.size(), ")");
    int rank = 1;
    for (size_t w = 0; w < logits.size(); ++w)
        if (static_cast<int>(w) != token && logits[w] >= logits[static_cast<size_t>(token)]) ++rank;
    return rank;
}

std::vector<int> top_tokens(const std::vector<double>& logits, int k) {
    std::vector<int> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    k = std::min<int>(k, static_cast<int>(ids.size()));
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int a, int b) {
        double la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
        return la > lb || (la == lb && a < b);
    });
    ids.resize(static_cast<size_t>(k));
    return ids;
}

static double rounding_slack(double a, double b) { return 1e-9 * std::max({std::fabs(a), std::fabs(b), 1e-300}); }

static double safe_ratio(double measured, double bound) {
    if (bound != 0) return measured / bound;
    return measured == 0 ? 1.0 : std::numeric_limits<double>::infinity();
}

BoundCheck check_lower_bound(double measured, double bound) {
    BoundCheck c;
    c.measured = measured;
    c.bound = bound;
    c.lower = true;
    c.margin = measured - bound;
    c.holds = c.margin >= -rounding_slack(measured, bound);
    c.ratio = safe_ratio(measured, bound);
    return c;
}

BoundCheck check_upper_bound(double measured, double bound) {
    BoundCheck c;
    c.measured = measured;
    c.bound = bound;
    c.lower = false;
    c.margin = bound - measured;
    c.holds = c.margin >= -rounding_slack(measured, bound);
    c.ratio = safe_ratio(measured, bound);
    return c;
}

// ---------------------------------------------------------------- the constructed setting

Matrix block_features(const TheoryModel& m, const Matrix& inputs) {
    if (m.features == FeatureKind::Identity) return inputs;
    return swiglu_features(m.mlp_input == MlpInput::RmsNorm ? rmsnorm_rows(inputs) : inputs, m.w_gate, m.w_up);
}

TheoryModel make_model(const TheoryOptions& o) {
    validate_options(o);
    // Separate child streams, so that switching the feature kind keeps the
    // embeddings and switching the embedding kind keeps Wg and Wu.
    Rng model_rng = Rng(o.seed).fork(0);
    Rng embed_rng = model_rng.fork(1), gate_rng = model_rng.fork(2), up_rng = model_rng.fork(3);
    TheoryModel m;
    m.features = o.features;
    m.mlp_input = o.mlp_input;
    m.embed = Matrix(o.vocab, o.d);
    if (o.embed == EmbeddingKind::Gaussian) {
        double scale = 1.0 / std::sqrt(static_cast<double>(o.d));  // E||e_a||^2 = 1
        for (double& x : m.embed.values) x = scale * embed_rng.normal();
    } else {
        // Signed unit vectors on distinct coordinates: dot products are exactly
        // 0 in floating point. A random rotation would change nothing in
        // distribution (Gaussian Wg R is again Gaussian) but would leave
        // rounding-level eps ~ 1e-16 instead of 0.
        std::vector<int> coord(static_cast<size_t>(o.d));
        std::iota(coord.begin(), coord.end(), 0);
        embed_rng.shuffle(coord);
        for (int a = 0; a < o.vocab; ++a) m.embed.at(a, coord[static_cast<size_t>(a)]) = embed_rng.uniform() < 0.5 ? -1.0 : 1.0;
    }
    if (o.features == FeatureKind::SwiGLU) {
        int f = o.feature_width();
        double scale = 1.0 / std::sqrt(static_cast<double>(o.d));
        m.w_gate = Matrix(f, o.d);
        m.w_up = Matrix(f, o.d);
        for (double& x : m.w_gate.values) x = scale * gate_rng.normal();
        for (double& x : m.w_up.values) x = scale * up_rng.normal();
    }
    m.token_features = block_features(m, m.embed);
    return m;
}

ProbeSequence make_probe_sequence(const TheoryOptions& o, uint64_t trial) {
    validate_options(o);
    // The stream depends on (seed, trial) only, not on d: a sweep over d sees
    // the same sequences at every width, so its curves differ by d alone.
    Rng rng = Rng(o.seed).fork(1 + trial);
    ProbeSequence s;
    s.key = static_cast<int>(rng.randint(0, o.vocab));
    s.value = static_cast<int>(rng.randint(0, o.vocab - 1));
    if (s.value >= s.key) ++s.value;
    // t* <= the chunk's second-to-last position: the pair never straddles a chunk edge.
    s.key_pos = o.key_chunk * o.chunk + static_cast<int>(rng.randint(0, o.chunk - 1));
    s.query_pos = o.query_chunk() * o.chunk + static_cast<int>(rng.randint(0, o.chunk));
    int lo = std::min(s.key, s.value), hi = std::max(s.key, s.value);
    s.tokens.resize(static_cast<size_t>(o.seq_len()));
    for (int t = 0; t < o.seq_len(); ++t) {
        int tok;
        if (t == s.key_pos || t == s.query_pos) tok = s.key;
        else if (t == s.key_pos + 1) tok = s.value;
        else {
            // Uniform over the vocab minus {k*, v*}: draw from V-2 ids and skip the two.
            tok = static_cast<int>(rng.randint(0, o.vocab - 2));
            if (tok >= lo) ++tok;
            if (tok >= hi) ++tok;
        }
        s.tokens[static_cast<size_t>(t)] = tok;
    }
    return s;
}

// ---------------------------------------------------------------- many trials

void RunningMean::add(double x) {
    ++n;
    double delta = x - mean_;
    mean_ += delta / static_cast<double>(n);
    m2 += delta * (x - mean_);
}

double RunningMean::se() const {
    if (n < 2) return std::numeric_limits<double>::quiet_NaN();
    double nn = static_cast<double>(n);
    return std::sqrt(m2 / (nn - 1) / nn);
}

namespace {


struct TargetAccumulator {
    RunningMean correct, key_term, next_term, key_logit, abs_other;
    std::vector<RunningMean> per_token;
};


// Plain words: what a claim rests on when it holds, what broke it when it fails.
std::string explain(const TargetSummary& s, const TheoryResult& r) {
    const int V = r.options.vocab;
    auto percent = [&](double x) { return fmt(100.0 * x / r.c_align, "%.2g") + "% of c_align"; };
    std::string parts = cat("the key position t* gives ", fmt(s.dlogit_correct_key_term), ", v*'s own position t*+1 gives ",
                            fmt(s.dlogit_correct_next_term), ", the other positions ", fmt(s.dlogit_correct_rest));
    auto in_standard_errors = [](double gap, double se) {
        if (!(se > 0)) return std::string();
        return cat(" (the gap is ", fmt(gap / se, "%.2g"), " standard errors of the mean, se ", fmt(se), ")");
    };
    // The assumption every failure below comes back to.
    std::string cause = cat("cause: the other positions' alignment with the query is not 0 as the theorem assumes ",
                            "(measured mean Z_t.z_q = ", fmt(r.c_align_other), ", se ", fmt(r.c_align_other_se),
                            "; exact for this model: ", fmt(r.c_align_other_model), " = ", percent(r.c_align_other_model), ")");
    if (r.options.features == FeatureKind::SwiGLU && r.c_align_other_model > 0)
        cause += cat(": SwiGLU features are close to bilinear in the embedding, so Z_a.Z_b keeps a part that grows like ",
                     "(e_a.e_b)^2, positive on average (mean (e_a.e_b)^2 / ||e||^4 = ", fmt(r.embed_overlap_sq), ")");
    cause += cat(", and it is summed over ", r.prior_positions - 1, " prior positions");
    std::string out;
    bool failed = !s.holds;
    if (s.target == Target::LmAligned) {
        if (s.correct.holds) out += cat("E[dl(v*)] rests on the key position (||e_v*||^2 >= c_norm^2 there): ", parts);
        else
            out += cat("E[dl(v*)] fails: ", parts, in_standard_errors(-s.correct.margin, s.dlogit_correct_se),
                       "; the other positions' part is predicted by eta * N * mean(e_a.e_b) * mean(Z_a.Z_b) = ",
                       fmt(r.drift_predicted), " (mean e_a.e_b = ", fmt(r.embed_cross_mean),
                       ", eps-level with a sign set by the draw)");
        out += "; ";
        if (s.other.holds) {
            if (s.dlogit_other_maxabs == 0) out += "others: every token's mean change is exactly 0";
            else if (!(s.dlogit_other_noise > 0))
                out += cat("others: the largest |E[dl(w)]| is ", fmt(s.dlogit_other_maxabs), " (token ", s.dlogit_other_argmax, ")");
            else
                out += cat("others: the largest |E[dl(w)]| is ", fmt(s.dlogit_other_maxabs), " (token ", s.dlogit_other_argmax,
                           "), ", fmt(s.dlogit_other_maxabs / s.dlogit_other_noise, "%.2g"),
                           "x the sampling-noise level ", fmt(s.dlogit_other_noise), " of a max over ", V - 1, " token means");
        } else {
            out += cat("others fail: |E[dl(", s.dlogit_other_argmax, ")]| = ", fmt(s.dlogit_other_maxabs), " > bound ",
                       fmt(s.other.bound));
            if (r.eps == 0) out += " (eps = 0 makes the bound 0, so any nonzero mean fails it)";
            out += cat("; the filler positions alone are predicted to give token ", r.other_drift_token, " eta * N * mean(e_w.e_b) * ",
                       "mean(Z_a.Z_b) = ", fmt(r.other_drift_predicted), ", a bias that grows with the context while the bound does not");
            // Sampled means are never exactly their expectation: compare a max
            // over V-1 of them with the size pure noise would give it.
            if (s.dlogit_other_noise > 0) {
                double times = (s.other.measured - s.other.bound) / s.dlogit_other_noise;
                out += cat("; sampling noise alone gives a max over ", V - 1, " token means of about ", fmt(s.dlogit_other_noise),
                           ", the excess is ", fmt(times, "%.2g"), "x that: ",
                           times <= 1   ? "within sampling noise (more --trials shrink the noise as 1/sqrt(trials))"
                           : times <= 2 ? "comparable to sampling noise (try more --trials)"
                                        : "beyond sampling noise");
            }
        }
    } else {
        if (s.correct.holds)
            out += cat("|E[dl(v*)]| stays small: ", parts, "; the target stores e_k* at t*, so its mass goes to the key: ",
                       "E[dl(k*)] = ", fmt(s.dlogit_key_mean));
        else {
            out += cat("|E[dl(v*)]| fails", r.eps == 0 ? " (eps = 0 makes the bound 0, so any nonzero mean fails it)" : "", ": ",
                       parts, in_standard_errors(-s.correct.margin, s.dlogit_correct_se));
            out += "; position t*+1 stores e_v* itself with weight Z_v*.z_q, the overlap of two different tokens' features";
        }
    }
    if (failed) out += "; " + cause;
    return out;
}

}  // namespace

TheoryResult run_trials(const TheoryOptions& o) {
    validate_options(o);
    TheoryModel model = make_model(o);
    const int V = o.vocab;
    // V_t is always an embedding row and Z_t a token's feature row, so both dot
    // products of the token form, e_w^T V_t and Z_t^T z_q, are entries of two
    // V x V Gram matrices computed once.
    Matrix embed_gram = gram(model.embed), feature_gram = gram(model.token_features);

    TheoryResult r;
    r.options = o;
    r.f = model.token_features.cols;
    r.prior_positions = o.query_chunk() * o.chunk;
    r.eps = max_cross_dot(model.embed);
    r.c_norm_sq = min_squared_norm(model.embed);

    RunningMean align_key, align_other;
    TargetAccumulator acc[2];
    for (auto& a : acc) a.per_token.resize(static_cast<size_t>(V));
    std::vector<double> align(static_cast<size_t>(r.prior_positions)), dl(static_cast<size_t>(V));

    for (int trial = 0; trial < o.trials; ++trial) {
        ProbeSequence s = make_probe_sequence(o, static_cast<uint64_t>(trial));
        double other_sum = 0;
        for (int t = 0; t < r.prior_positions; ++t) {
            align[static_cast<size_t>(t)] = feature_gram.at(s.tokens[static_cast<size_t>(t)], s.key);  // Z_t^T z_q
            if (t != s.key_pos) other_sum += align[static_cast<size_t>(t)];
        }
        align_key.add(align[static_cast<size_t>(s.key_pos)]);
        align_other.add(other_sum / (r.prior_positions - 1));

        for (Target target : kTargets) {
            TargetAccumulator& a = acc[target_index(target)];
            std::fill(dl.begin(), dl.end(), 0.0);
            double key_term = 0, next_term = 0;
            for (int t = 0; t < r.prior_positions; ++t) {
                int tok = target_token(s.tokens, t, target, o.chunk);
                if (tok < 0) continue;
                double weight = o.lr * align[static_cast<size_t>(t)];
                const double* e_tok = embed_gram.row(tok);  // the Gram is symmetric: row tok = column tok
                for (int w = 0; w < V; ++w) dl[static_cast<size_t>(w)] += e_tok[w] * weight;
                if (t == s.key_pos) key_term = embed_gram.at(s.value, tok) * weight;
                if (t == s.key_pos + 1) next_term = embed_gram.at(s.value, tok) * weight;
            }
            a.correct.add(dl[static_cast<size_t>(s.value)]);
            a.key_term.add(key_term);
            a.next_term.add(next_term);
            a.key_logit.add(dl[static_cast<size_t>(s.key)]);
            for (int w = 0; w < V; ++w) {
                if (w == s.value) continue;
                a.per_token[static_cast<size_t>(w)].add(dl[static_cast<size_t>(w)]);
                a.abs_other.add(std::fabs(dl[static_cast<size_t>(w)]));
            }
        }
    }

    r.c_align = align_key.mean();
    r.c_align_other = align_other.mean();
    r.c_align_other_se = align_other.se();
    double off_diagonal = 0;
    for (int a = 0; a < V; ++a)
        for (int b = 0; b < V; ++b)
            if (a != b) off_diagonal += feature_gram.at(a, b);
    r.c_align_other_model = off_diagonal / (static_cast<double>(V) * (V - 1));
    double cross_sq = 0, norm4 = 0;
    for (int a = 0; a < V; ++a) {
        norm4 += embed_gram.at(a, a) * embed_gram.at(a, a);
        for (int b = 0; b < V; ++b)
            if (a != b) cross_sq += embed_gram.at(a, b) * embed_gram.at(a, b);
    }
    r.embed_overlap_sq = (cross_sq / (static_cast<double>(V) * (V - 1))) / (norm4 / V);
    double cross = 0;
    for (int a = 0; a < V; ++a)
        for (int b = 0; b < V; ++b)
            if (a != b) cross += embed_gram.at(a, b);
    r.embed_cross_mean = cross / (static_cast<double>(V) * (V - 1));
    const int storing = o.query_chunk() * (o.chunk - 1) - 1;  // LM: every row but the chunk's last, minus t*
    r.drift_predicted = o.lr * storing * r.embed_cross_mean * r.c_align_other_model;
    for (int w = 0; w < V; ++w) {
        const double* row = embed_gram.row(w);
        double to_sum = std::accumulate(row, row + V, 0.0);  // e_w . (sum of all embeddings)
        double drift = o.lr * storing * (to_sum / V) * r.c_align_other_model;
        if (std::fabs(drift) > std::fabs(r.other_drift_predicted) || r.other_drift_token < 0) {
            r.other_drift_predicted = drift;
            r.other_drift_token = w;
        }
    }
    r.bound_lower = o.lr * r.c_norm_sq * r.c_align;
    r.bound_cross = o.lr * r.eps * r.c_align;

    for (Target target : kTargets) {
        const TargetAccumulator& a = acc[target_index(target)];
        TargetSummary& s = r.targets[target_index(target)];
        s.target = target;
        s.dlogit_correct_mean = a.correct.mean();
        s.dlogit_correct_se = a.correct.se();
        s.dlogit_correct_key_term = a.key_term.mean();
        s.dlogit_correct_next_term = a.next_term.mean();
        s.dlogit_correct_rest = s.dlogit_correct_mean - s.dlogit_correct_key_term - s.dlogit_correct_next_term;
        s.dlogit_key_mean = a.key_logit.mean();
        s.dlogit_abs_mean = a.abs_other.mean();
        double se_sum = 0;
        int se_count = 0;
        for (int w = 0; w < V; ++w) {
            const RunningMean& m = a.per_token[static_cast<size_t>(w)];
            if (m.n == 0) continue;
            if (std::fabs(m.mean()) > s.dlogit_other_maxabs || s.dlogit_other_argmax < 0) {
                s.dlogit_other_maxabs = std::fabs(m.mean());
                s.dlogit_other_argmax = w;
            }
            if (m.n >= 2) {
                se_sum += m.se();
                ++se_count;
            }
        }
        s.dlogit_other_se = se_count ? se_sum / se_count : std::numeric_limits<double>::quiet_NaN();
        s.dlogit_other_noise = s.dlogit_other_se * std::sqrt(2.0 * std::log(static_cast<double>(V - 1)));
        s.other = check_upper_bound(s.dlogit_other_maxabs, r.bound_cross);
        if (target == Target::LmAligned) {
            s.correct = check_lower_bound(s.dlogit_correct_mean, r.bound_lower);
            s.other_claimed = true;
            s.holds = s.correct.holds && s.other.holds;
        } else {
            s.correct = check_upper_bound(std::fabs(s.dlogit_correct_mean), r.bound_cross);
            s.other_claimed = false;  // the theorem says nothing about w != v* here (k* rises a lot)
            s.holds = s.correct.holds;
        }
    }
    for (TargetSummary& s : r.targets) s.reason = explain(s, r);
    return r;
}

// ---------------------------------------------------------------- one trial, chunk by chunk

StepResult run_step(const TheoryOptions& o) {
    validate_options(o);
    TheoryModel model = make_model(o);
    StepResult out;
    out.options = o;
    out.trial = o.step_trial;
    out.sequence = make_probe_sequence(o, static_cast<uint64_t>(o.step_trial));
    const ProbeSequence& s = out.sequence;
    const int n = o.seq_len(), V = o.vocab, prior = o.query_chunk() * o.chunk;

    // Run the block the way a model would: embed every position, then the MLP
    // intermediate, rather than looking tokens up in a feature table.
    Matrix inputs(n, o.d);
    for (int t = 0; t < n; ++t) {
        const double* e = model.embed.row(s.tokens[static_cast<size_t>(t)]);
        std::copy(e, e + o.d, inputs.row(t));
    }
    Matrix features = block_features(model, inputs);
    std::vector<double> z_q(features.row(s.query_pos), features.row(s.query_pos) + features.cols);

    out.chunks.resize(static_cast<size_t>(o.query_chunk()));
    for (int c = 0; c < o.query_chunk(); ++c) {
        ChunkView& cv = out.chunks[static_cast<size_t>(c)];
        cv.chunk = c;
        cv.begin = c * o.chunk;
        cv.end = (c + 1) * o.chunk;
        cv.has_pair = s.key_pos >= cv.begin && s.key_pos < cv.end;
    }
    for (Target target : kTargets) {
        const int ti = target_index(target);
        Matrix values = target_values(model.embed, s.tokens, target, o.chunk);
        Matrix W(o.d, features.cols);  // the fast weight's change from its slow value
        std::vector<double> logits;
        for (ChunkView& cv : out.chunks) {
            Matrix dW = fast_weight_delta(values, features, cv.begin, cv.end, o.lr);
            for (size_t i = 0; i < W.values.size(); ++i) W.values[i] += dW.values[i];
            logits = readout_logits(model.embed, W, z_q);
            ChunkTargetView& v = cv.view[ti];
            v.dW_fro = frobenius_norm(dW);
            v.dlogit_correct = logits[static_cast<size_t>(s.value)];
            v.dlogit_key = logits[static_cast<size_t>(s.key)];
            v.rank_correct = rank_of(logits, s.value);
            v.top5 = top_tokens(logits, 5);
            for (int w : v.top5) v.top5_logits.push_back(logits[static_cast<size_t>(w)]);
            double sum = 0;
            for (int w = 0; w < V; ++w) {
                if (w == s.value) continue;
                v.dlogit_other_maxabs = std::max(v.dlogit_other_maxabs, std::fabs(logits[static_cast<size_t>(w)]));
                sum += std::fabs(logits[static_cast<size_t>(w)]);
            }
            v.dlogit_other_meanabs = sum / (V - 1);
        }
        out.final_dlogit[ti] = logits;
        Matrix& contrib = out.contributions[ti];
        contrib = Matrix(prior, V);
        for (int t = 0; t < prior; ++t) {
            double weight = o.lr * dot(features.row(t), z_q.data(), features.cols);
            for (int w = 0; w < V; ++w) contrib.at(t, w) = dot(model.embed.row(w), values.row(t), o.d) * weight;
        }
    }
    return out;
}

// ---------------------------------------------------------------- sweep

std::vector<SweepPoint> run_sweep(const TheoryOptions& o) {
    validate_options(o);
    ITTT_CHECK(!o.sweep.empty(), "--sweep: expected at least one width, found none");
    for (int d : o.sweep)
        ITTT_CHECK(o.embed != EmbeddingKind::Orthogonal || o.vocab <= d, "--sweep with --embed orthogonal: needs vocab <= d ",
                   "for every d, found d ", d, " < vocab ", o.vocab);
    std::vector<SweepPoint> points;
    for (int d : o.sweep) {
        TheoryOptions od = o;
        od.d = d;
        points.push_back({d, run_trials(od)});
    }
    return points;
}

// ---------------------------------------------------------------- text

namespace {

std::string verdict_line(Target t, const std::string& quantity, const BoundCheck& c) {
    return cat(target_title(t), ": ", quantity, " = ", fmt(c.measured), c.lower ? " >= " : " <= ", "bound ", fmt(c.bound), ": ",
               c.holds ? "holds" : "FAILS", " (margin ", fmt(c.margin, "%+.4g"), ", ratio ", fmt(c.ratio, "%.3g"), ")");
}

}  // namespace

std::string format_options_line(const TheoryOptions& o) {
    return cat("d=", o.d, " vocab=", o.vocab, " f=", o.feature_width(), " features=", feature_kind_name(o.features),
               o.features == FeatureKind::SwiGLU ? cat(" mlp-input=", mlp_input_name(o.mlp_input)) : std::string(),
               " embed=", embedding_kind_name(o.embed), " chunk=", o.chunk, " chunks=", o.n_chunks, " (pair in chunk ",
               o.key_chunk, ", query in chunk ", o.query_chunk(), ") lr=", fmt(o.lr), " trials=", o.trials, " seed=", o.seed);
}

std::string format_summary_text(const TheoryResult& r) {
    using text::wrap;
    // Every line fits 79 columns (an 80x24 terminal): descriptions wrap under their own column.
    std::ostringstream s;
    s << wrap("theory probe: " + format_options_line(r.options)) << "\n";
    s << "measured constants\n";
    auto constant = [&](const std::string& name, const std::string& value, const std::string& meaning) {
        s << wrap(meaning, 79, "  " + pad(name, 12) + pad(value, 10) + "  ", std::string(26, ' '));
    };
    constant("eps", fmt(r.eps), "max |e_a.e_b|, a != b");
    constant("c_norm^2", fmt(r.c_norm_sq), "min ||e_a||^2");
    constant("c_align", fmt(r.c_align), "mean Z_t*.z_q (the key's position against the query)");
    constant("other align", fmt(r.c_align_other), cat("mean Z_t.z_q over the other ", r.prior_positions - 1,
                                                     " prior positions (assumed 0; se ", fmt(r.c_align_other_se), ")"));
    constant("model align", fmt(r.c_align_other_model),
             "mean Z_a.Z_b over distinct tokens a != b: the same expectation, exact for this model");
    constant("overlap^2", fmt(r.embed_overlap_sq), cat("mean (e_a.e_b)^2 / mean ||e_a||^4 (~1/d; model align / c_align = ",
                                                      fmt(r.c_align_other_model / r.c_align), ")"));
    constant("drift", fmt(r.drift_predicted), cat("eta * N * mean(e_a.e_b) * mean(Z_a.Z_b): the fillers' predicted part of "
                                                  "E[dl(v*)] (LM; mean e_a.e_b = ", fmt(r.embed_cross_mean), ")"));
    constant("drift o", fmt(r.other_drift_predicted),
             cat("the same for the other tokens, largest |.| (token ", r.other_drift_token, ")"));
    s << wrap(cat("eta*c_norm^2*c_align = ", fmt(r.bound_lower), ", eta*eps*c_align = ", fmt(r.bound_cross)), 79,
              "  bounds      ", std::string(14, ' '))
      << "\n";

    // 15 + 24 + 3 x 10 + 10 = 79 columns; the margins are in the verdict lines below.
    const size_t w_target = 15, w_claim = 24, w_num = 10;
    s << pad("target", w_target) << pad("claim", w_claim) << pad("measured", w_num, true) << pad("bound", w_num, true)
      << pad("ratio", w_num, true) << "  verdict\n";
    auto row = [&](Target t, const std::string& claim, const BoundCheck& c, bool claimed) {
        s << pad(target_title(t), w_target) << pad(claim, w_claim) << pad(fmt(c.measured), w_num, true)
          << pad(fmt(c.bound), w_num, true) << pad(fmt(c.ratio, "%.3g"), w_num, true) << "  "
          << (claimed ? (c.holds ? "holds" : "FAILS") : "no claim") << "\n";
    };
    const TargetSummary& lm = r.target(Target::LmAligned);
    const TargetSummary& rc = r.target(Target::Reconstruction);
    row(Target::LmAligned, "E[dl(v*)] >=", lm.correct, true);
    row(Target::LmAligned, "max|E[dl(w)]|, w!=v* <=", lm.other, true);
    row(Target::Reconstruction, "|E[dl(v*)]| <=", rc.correct, true);
    row(Target::Reconstruction, "max|E[dl(w)]|, w!=v* <=", rc.other, false);
    s << "\ncontext (not bounded by the theorem)\n";
    auto context = [&](const std::string& name, const std::string& values) {
        s << wrap(values, 79, "  " + pad(name, 22) + "  ", std::string(26, ' '));
    };
    context("E[dl(k*)]", cat("LM-aligned ", fmt(lm.dlogit_key_mean), ", reconstruction ", fmt(rc.dlogit_key_mean)));
    context("mean |dl(w)|, w != v*", cat("LM-aligned ", fmt(lm.dlogit_abs_mean), ", reconstruction ", fmt(rc.dlogit_abs_mean),
                                         " (one trial at a time: the theorem bounds only the mean)"));
    context("se of E[dl(v*)]", cat("LM-aligned ", fmt(lm.dlogit_correct_se), ", reconstruction ", fmt(rc.dlogit_correct_se)));
    s << "\n";
    // 77 columns: make demo quotes these lines indented by two
    s << wrap(verdict_line(Target::LmAligned, "E[dl(v*)]", lm.correct), 77, "", "    ");
    s << wrap(verdict_line(Target::LmAligned, "max_{w!=v*} |E[dl(w)]|", lm.other), 77, "", "    ");
    s << wrap(lm.reason, 79, "  why: ", "       ");
    s << wrap(verdict_line(Target::Reconstruction, "|E[dl(v*)]|", rc.correct), 77, "", "    ");
    s << wrap(rc.reason, 79, "  why: ", "       ");
    return s.str();
}

std::string format_step_text(const StepResult& st) {
    const TheoryOptions& o = st.options;
    const ProbeSequence& q = st.sequence;
    std::ostringstream s;
    s << "theory step, trial " << st.trial << ": " << format_options_line(o) << "\n";
    s << "pair (k*, v*) = (" << q.key << ", " << q.value << ") at positions (" << q.key_pos << ", " << q.key_pos + 1
      << "), query k* at position " << q.query_pos << " (chunk " << o.query_chunk() << ")\n";
    s << "after chunk i, the query's logits are e_w^T W z_q with W = sum of dW_0..dW_i (rank 1 = v* strictly on top)\n\n";
    auto token_name = [&](int w) {
        if (w == q.value) return std::string("v*");
        if (w == q.key) return std::string("k*");
        return std::to_string(w);
    };
    for (Target t : kTargets) {
        const int ti = target_index(t);
        s << target_title(t) << " target\n";
        s << pad("chunk", 6) << pad("positions", 10) << pad("||dW||_F", 11, true) << pad("dl(v*)", 11, true)
          << pad("rank", 6, true) << pad("max|dl o|", 11, true) << pad("mean|dl o|", 11, true) << "  top-5\n";
        for (const ChunkView& cv : st.chunks) {
            const ChunkTargetView& v = cv.view[ti];
            std::string top;
            for (size_t i = 0; i < v.top5.size(); ++i) top += (i ? " " : "") + token_name(v.top5[i]);
            s << pad(std::to_string(cv.chunk) + (cv.has_pair ? "*" : ""), 6)
              << pad(cat(cv.begin, "-", cv.end - 1), 10) << pad(fmt(v.dW_fro), 11, true) << pad(fmt(v.dlogit_correct), 11, true)
              << pad(std::to_string(v.rank_correct), 6, true) << pad(fmt(v.dlogit_other_maxabs), 11, true)
              << pad(fmt(v.dlogit_other_meanabs), 11, true) << "  " << top << "\n";
        }
        s << "\n";
    }
    s << "(* marks the chunk holding the pair; 'o' = the other tokens w != v*)\n";
    return s.str();
}

std::string format_sweep_text(const std::vector<SweepPoint>& sweep) {
    std::ostringstream s;
    if (sweep.empty()) return "theory sweep: no widths\n";
    TheoryOptions o = sweep.front().result.options;
    s << "theory sweep over d: vocab=" << o.vocab << " features=" << feature_kind_name(o.features)
      << (o.features == FeatureKind::SwiGLU ? cat(" mlp-input=", mlp_input_name(o.mlp_input)) : std::string())
      << " embed=" << embedding_kind_name(o.embed) << " f=" << (o.features == FeatureKind::Identity ? "d" : (o.f > 0 ? std::to_string(o.f) : "3d"))
      << " chunk=" << o.chunk << " chunks=" << o.n_chunks << " lr=" << fmt(o.lr) << " trials=" << o.trials << " seed=" << o.seed
      << "\n";
    s << "LM = LM-aligned target, RC = reconstruction; 'ok' / 'FAIL' per claim\n\n";
    const size_t w = 10;
    s << pad("d", 6) << pad("eps", w, true) << pad("c_norm^2", w, true) << pad("c_align", w, true)
      << pad("LM E[dl v*]", 12, true) << pad(">= bound", w, true) << pad("LM max|o|", w, true) << pad("<= bound", w, true)
      << pad("RC |E dl v*|", 13, true) << pad("<= bound", w, true) << "  LM v*  LM o  RC v*\n";
    for (const SweepPoint& p : sweep) {
        const TheoryResult& r = p.result;
        const TargetSummary& lm = r.target(Target::LmAligned);
        const TargetSummary& rc = r.target(Target::Reconstruction);
        s << pad(std::to_string(p.d), 6) << pad(fmt(r.eps), w, true) << pad(fmt(r.c_norm_sq), w, true)
          << pad(fmt(r.c_align), w, true) << pad(fmt(lm.correct.measured), 12, true) << pad(fmt(lm.correct.bound), w, true)
          << pad(fmt(lm.other.measured), w, true) << pad(fmt(lm.other.bound), w, true) << pad(fmt(rc.correct.measured), 13, true)
          << pad(fmt(rc.correct.bound), w, true) << "  " << pad(lm.correct.holds ? "ok" : "FAIL", 6)
          << pad(lm.other.holds ? "ok" : "FAIL", 6) << (rc.correct.holds ? "ok" : "FAIL") << "\n";
    }
    for (const SweepPoint& p : sweep)
        for (const TargetSummary& t : p.result.targets)
            if (!t.holds) s << "d=" << p.d << " " << target_title(t.target) << ": " << t.reason << "\n";
    return s.str();
}

// ---------------------------------------------------------------- JSON lines
// Written by io/json.h's JsonWriter, one compact object per line: NaN (the
// standard error of one trial) and infinities come out as null.

namespace {

void add_options(JsonWriter& j, const TheoryOptions& o) {
    j.field("d", o.d).field("vocab", o.vocab).field("f", o.feature_width()).field("chunk", o.chunk).field("chunks", o.n_chunks);
    j.field("lr", o.lr).field("trials", o.trials).field("seed", o.seed);
    j.field("embed", embedding_kind_name(o.embed)).field("features", feature_kind_name(o.features));
    j.field("mlp_input", mlp_input_name(o.mlp_input));
}

void add_check(JsonWriter& j, const std::string& name, const BoundCheck& c) {
    j.field("margin_" + name, c.margin).field("ratio_" + name, c.ratio).field("holds_" + name, c.holds);
}

std::string summary_line(const TheoryResult& r, const TargetSummary& s, const char* type) {
    JsonWriter j(JsonLayout::Compact);
    j.begin_object().field("type", type).field("target", target_name(s.target));
    add_options(j, r.options);
    j.field("eps", r.eps).field("c_norm", std::sqrt(r.c_norm_sq)).field("c_norm_sq", r.c_norm_sq).field("c_align", r.c_align);
    j.field("c_align_other", r.c_align_other).field("c_align_other_se", r.c_align_other_se);
    j.field("c_align_other_model", r.c_align_other_model).field("embed_overlap_sq", r.embed_overlap_sq);
    j.field("embed_cross_mean", r.embed_cross_mean).field("drift_predicted", r.drift_predicted);
    j.field("other_drift_predicted", r.other_drift_predicted).field("other_drift_token", r.other_drift_token);
    j.field("dlogit_correct_mean", s.dlogit_correct_mean).field("dlogit_correct_se", s.dlogit_correct_se);
    j.field("bound_correct", s.correct.bound).field("bound_correct_kind", s.correct.lower ? "lower" : "upper_abs");
    add_check(j, "correct", s.correct);
    j.field("dlogit_correct_key_term", s.dlogit_correct_key_term).field("dlogit_correct_next_term", s.dlogit_correct_next_term);
    j.field("dlogit_correct_rest", s.dlogit_correct_rest);
    j.field("dlogit_other_maxabs", s.dlogit_other_maxabs).field("dlogit_other_argmax", s.dlogit_other_argmax);
    j.field("bound_other", s.other.bound).field("other_claimed", s.other_claimed);
    add_check(j, "other", s.other);
    j.field("dlogit_other_se", s.dlogit_other_se).field("dlogit_other_noise", s.dlogit_other_noise);
    j.field("dlogit_key_mean", s.dlogit_key_mean).field("dlogit_abs_mean", s.dlogit_abs_mean);
    j.field("holds", s.holds).field("reason", s.reason);
    j.end_object();
    return j.text() + "\n";
}

}  // namespace

std::string format_summary_json(const TheoryResult& r) {
    std::string out;
    for (const TargetSummary& s : r.targets) out += summary_line(r, s, "theory_summary");
    return out;
}

std::string format_step_json(const StepResult& st) {
    std::string out;
    for (const ChunkView& cv : st.chunks) {
        JsonWriter j(JsonLayout::Compact);
        j.begin_object();
        j.field("type", "theory_chunk").field("trial", st.trial).field("chunk", cv.chunk).field("begin", cv.begin).field("end", cv.end);
        j.field("has_pair", cv.has_pair).field("key", st.sequence.key).field("value", st.sequence.value);
        j.field("key_pos", st.sequence.key_pos).field("query_pos", st.sequence.query_pos);
        for (Target t : kTargets) {
            const ChunkTargetView& v = cv.view[target_index(t)];
            j.key(target_name(t)).begin_object();
            j.field("dW_fro", v.dW_fro).field("dlogit_correct", v.dlogit_correct).field("dlogit_key", v.dlogit_key);
            j.field("rank_correct", v.rank_correct).array("top5", v.top5).array("top5_logits", v.top5_logits);
            j.field("dlogit_other_maxabs", v.dlogit_other_maxabs).field("dlogit_other_meanabs", v.dlogit_other_meanabs);
            j.end_object();
        }
        j.end_object();
        out += j.text() + "\n";
    }
    return out;
}

std::string format_sweep_json(const std::vector<SweepPoint>& sweep) {
    std::string out;
    for (const SweepPoint& p : sweep)
        for (const TargetSummary& s : p.result.targets) out += summary_line(p.result, s, "theory_sweep");
    return out;
}

}  // namespace ittt::theory
