// Lab 05: the induction-head theorem (Theorem 1, docs/method.md section 5) measured.
// The theory engine (src/driver/theory.h) builds the setting; you compute the
// theorem's constants eps and c_norm^2 from the embedding matrix and the logit change
// dl_q[w] of one trial yourself (TODOs; the reference solutions are in solution.cpp),
// compare the LM-aligned and the reconstruction target, and vary d.
//   build/labs/05-induction-theorem [--solution] [--check]
#include <algorithm>
#include <cmath>

#include "../lab_util.h"
#include "driver/theory.h"

using namespace ittt;
using theory::Matrix;
using theory::Target;

namespace {

// ---- TODO (exercise 1): the theorem's constants from the embedding matrix ----
// E is vocab x d: row a is the embedding e_a (E.row(a) points at its d numbers; theory::dot(x, y, d)).
// Compute eps and c_norm^2 as assumption (A1) of Theorem 1 defines them (docs/method.md section 5,
// the glossary in docs/README.md). Return NAN until written.
double measure_eps_student([[maybe_unused]] const Matrix& E) {
    return NAN;  // TODO
}
double measure_c_norm_sq_student([[maybe_unused]] const Matrix& E) {
    return NAN;  // TODO
}

// ---- TODO (exercise 2): the logit change of one trial, for the LM-aligned target ----
// m.embed (vocab x d) holds e_w; m.token_features (vocab x f) holds each token's features Z (in this
// one-block setting they depend on the token only). seq.tokens is the sequence, seq.query_pos the
// query q. Return dl_q[w] for every token w (vocab numbers): how much the fast-weight updates that
// the query reads change w's logit, read through the tied embedding, with step size eta and chunks
// of `chunk` positions. Which positions' updates does the query read, and what does each store?
// Return an empty vector until written.
std::vector<double> logit_change_student([[maybe_unused]] const theory::TheoryModel& m, [[maybe_unused]] const theory::ProbeSequence& seq,
                                         [[maybe_unused]] int chunk, [[maybe_unused]] double eta) {
    return {};  // TODO
}

// The engine's dl_q[w] for one trial, with the target and the positions summed as given
// (the right ones, and the typical mistakes, for the hints).
std::vector<double> engine_logit_change(const theory::TheoryModel& m, const theory::ProbeSequence& seq, Target target,
                                        int target_chunk, int end, double eta) {
    const int n = static_cast<int>(seq.tokens.size()), f = m.token_features.cols;
    Matrix features(n, f);
    for (int t = 0; t < n; ++t)
        std::copy(m.token_features.row(seq.tokens[static_cast<size_t>(t)]), m.token_features.row(seq.tokens[static_cast<size_t>(t)]) + f,
                  features.row(t));
    const double* zq = m.token_features.row(seq.tokens[static_cast<size_t>(seq.query_pos)]);
    return theory::logit_change_token_form(m.embed, theory::target_values(m.embed, seq.tokens, target, target_chunk), features, end,
                                           std::vector<double>(zq, zq + f), eta);
}


const char* verdict(const theory::BoundCheck& b) { return b.holds ? "holds" : "FAILS"; }

}  // namespace

// The reference solutions (solution.cpp).
namespace solution {
LAB_SOLUTION double measure_eps(const Matrix& E);
LAB_SOLUTION double measure_c_norm_sq(const Matrix& E);
LAB_SOLUTION std::vector<double> logit_change(const theory::TheoryModel& m, const theory::ProbeSequence& seq, int chunk, double eta);
}  // namespace solution

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 05: the induction-head theorem, measured");
    auto measure_eps = opt.solution ? solution::measure_eps : measure_eps_student;
    auto measure_c_norm_sq = opt.solution ? solution::measure_c_norm_sq : measure_c_norm_sq_student;
    auto logit_change = opt.solution ? solution::logit_change : logit_change_student;
    return lab::run([&] {
        lab::Checks checks;
        theory::TheoryOptions o;  // d 64, vocab 64, f 192, chunk 16, 4 chunks, eta (o.lr) 1, Gaussian embeddings, SwiGLU
        o.trials = opt.check ? 100 : 400;

        lab::section(1, "The setting");
        std::printf("  %s\n", theory::format_options_line(o).c_str());
        std::printf("  One block, no attention. A pair (k*, v*) sits in chunk 0; the query repeats k* in the last chunk.\n"
                    "  Each earlier chunk adds eta dW_i = eta V_[i]^T Z_[i] to the fast weight; the logits at the query\n"
                    "  are read through the tied embedding (exercise 2 works out what that gives for one trial).\n");

        lab::section(2, "Exercise 1: eps and c_norm^2 from the embedding matrix");
        Matrix E = theory::make_model(o).embed;
        double eps = measure_eps(E), c_norm_sq = measure_c_norm_sq(E);
        const bool have_eps = checks.todo_done(!std::isnan(eps), "exercise 1 (measure_eps)", opt);
        const bool have_c = checks.todo_done(!std::isnan(c_norm_sq), "exercise 1 (measure_c_norm_sq)", opt);
        const bool have = have_eps;  // section 6 compares your eps at every d
        {
            std::printf("  yours:  eps = %.6f, c_norm^2 = %.6f   (E is %d x %d)\n", eps, c_norm_sq, E.rows, E.cols);
            std::printf("  engine: eps = %.6f, c_norm^2 = %.6f\n", theory::max_cross_dot(E), theory::min_squared_norm(E));
            // Typical mistakes, each a different reading of (A1).
            double with_self = 0, signed_max = -INFINITY, largest_norm_sq = 0;
            for (int a = 0; a < E.rows; ++a)
                for (int b = 0; b < E.rows; ++b) {
                    const double dot = theory::dot(E.row(a), E.row(b), E.cols);
                    with_self = std::max(with_self, std::fabs(dot));
                    if (a != b) signed_max = std::max(signed_max, dot);
                    if (a == b) largest_norm_sq = std::max(largest_norm_sq, dot);
                }
            const double engine_c = theory::min_squared_norm(E);
            if (have_eps)
                checks.expect_close({eps}, {theory::max_cross_dot(E)}, 1e-12, "your eps equals the engine's",
                                    {{{with_self}, "a = b is included: ||e_a||^2 is not a cross term, and it would dwarf every dot"},
                                     {{signed_max}, "eps bounds |e_a . e_b|: a large negative dot product counts as much as a positive one"}});
            if (have_c)
                checks.expect_close({c_norm_sq}, {engine_c}, 1e-12, "your c_norm^2 equals the engine's",
                                    {{{std::sqrt(engine_c)}, "this is c_norm: the theorem's constant is its square, min ||e_a||^2"},
                                     {{largest_norm_sq}, "the largest squared norm: c_norm^2 is a lower bound, the shortest embedding"}});
            std::printf("  N(0, 1/d) entries: E||e||^2 = 1 and e_a . e_b ~ N(0, 1/d); the largest of V^2/2 such dots\n"
                        "  is about sqrt(2 ln(V^2/2) / d) = %.3f\n",
                        std::sqrt(2 * std::log(E.rows * E.rows / 2.0) / E.cols));
        }

        lab::section(3, "Exercise 2: dl_q[w] of one trial, against the engine");
        {
            theory::TheoryOptions one = o;
            one.lr = 0.5;  // an eta that is not 1, so a missing eta shows
            const theory::TheoryModel m = theory::make_model(one);
            const theory::ProbeSequence seq = theory::make_probe_sequence(one, 0);
            const int q_chunk_begin = seq.query_pos / one.chunk * one.chunk, n = static_cast<int>(seq.tokens.size());
            std::vector<double> mine = logit_change(m, seq, one.chunk, one.lr);
            if (checks.todo_done(!mine.empty(), "exercise 2 (logit_change)", opt)) {
                const std::vector<double> engine = engine_logit_change(m, seq, Target::LmAligned, one.chunk, q_chunk_begin, one.lr);
                checks.expect_close(
                    mine, engine, 1e-10, "your dl_q[w] equals the engine's (theory::logit_change_token_form) for every w",
                    {{engine_logit_change(m, seq, Target::LmAligned, one.chunk, std::min(n, q_chunk_begin + one.chunk), one.lr),
                      "you included the query's own chunk: its update is applied after the chunk is read (apply, then update)"},
                     {engine_logit_change(m, seq, Target::LmAligned, one.chunk, seq.query_pos, one.lr),
                      "you summed every position before the query: the fast weight changes once per chunk, so the positions "
                      "of the query's own chunk have not reached it yet"},
                     {engine_logit_change(m, seq, Target::Reconstruction, one.chunk, q_chunk_begin, one.lr),
                      "V_t = e_{x_t} is the reconstruction target: the LM-aligned one stores the next token"},
                     {engine_logit_change(m, seq, Target::LmAligned, n, q_chunk_begin, one.lr),
                      "the last position of each chunk stores nothing: the conv's +1 tap reads the padding past the chunk's edge"}});
                std::printf("  trial 0: k* = %d at %d, v* = %d, query at %d: your dl(v*) = %.4f, dl(k*) = %.4f, v* ranks %d of %d\n",
                            seq.key, seq.key_pos, seq.value, seq.query_pos, mine[static_cast<size_t>(seq.value)],
                            mine[static_cast<size_t>(seq.key)], theory::rank_of(mine, seq.value), static_cast<int>(mine.size()));
            }
        }

        lab::section(4, "Many trials: the theorem's expectations against its bounds");
        theory::TheoryResult r = theory::run_trials(o);
        std::printf("%s", theory::format_summary_text(r).c_str());

        lab::section(5, "LM-aligned vs reconstruction target, side by side");
        const theory::TargetSummary &lm = r.target(Target::LmAligned), &rec = r.target(Target::Reconstruction);
        std::printf("  %-16s  %12s  %12s  %14s\n", "target", "E[dl(v*)]", "E[dl(k*)]", "max|E[dl(w)]|");
        for (const theory::TargetSummary* t : {&lm, &rec})
            std::printf("  %-16s  %12.5f  %12.5f  %14.5f\n", theory::target_title(t->target), t->dlogit_correct_mean, t->dlogit_key_mean,
                        t->dlogit_other_maxabs);
        std::printf("  lower bound eta c_norm^2 c_align = %.5f, cross bound eta eps c_align = %.5f\n", r.bound_lower, r.bound_cross);
        std::printf("  LM-aligned stores e_{v*} under key k*, so the answer rises; reconstruction stores e_{k*}: the key rises.\n");
        checks.expect(lm.correct.holds && lm.other.holds, "LM-aligned: both claims hold at the defaults");
        checks.expect(rec.correct.holds && std::fabs(rec.dlogit_correct_mean) < 0.2 * lm.dlogit_correct_mean,
                      "reconstruction does not help the answer");

        lab::section(6, "Vary d: eps shrinks like 1/sqrt(d), the margins grow");
        theory::TheoryOptions s = o;
        s.sweep = opt.check ? std::vector<int>{16, 64} : std::vector<int>{16, 32, 64, 128, 256};
        s.trials = opt.check ? 50 : 200;
        std::printf("  %5s  %9s  %9s  %9s  %12s  %11s  %14s  %9s  %6s\n", "d", "eps", "your eps", "c_norm^2", "E[dl(v*)]/ca",
                    "lower/ca", "max|dl(w)|/ca", "eps bound", "LM");
        bool eps_all_equal = true;
        for (const theory::SweepPoint& p : theory::run_sweep(s)) {
            const theory::TheoryResult& q = p.result;
            const theory::TargetSummary& t = q.target(Target::LmAligned);
            theory::TheoryOptions od = s;
            od.d = p.d;
            double mine = have ? measure_eps(theory::make_model(od).embed) : NAN;
            double unit = q.options.lr * q.c_align;  // everything in units of eta c_align
            std::printf("  %5d  %9.4f  %9.4f  %9.4f  %12.3f  %11.3f  %14.3f  %9.4f  %6s\n", p.d, q.eps, mine, q.c_norm_sq,
                        t.dlogit_correct_mean / unit, q.c_norm_sq, t.dlogit_other_maxabs / unit, q.eps, t.holds ? "holds" : "FAILS");
            eps_all_equal &= std::fabs(mine - q.eps) < 1e-12;
        }
        if (have) checks.expect(eps_all_equal, "your eps equals the engine's at every d");

        lab::section(7, "Exactly orthogonal embeddings, identity features: the bounds are tight");
        theory::TheoryOptions ortho = o;
        ortho.embed = theory::EmbeddingKind::Orthogonal, ortho.features = theory::FeatureKind::Identity, ortho.trials = 50;
        theory::TheoryResult rt = theory::run_trials(ortho);
        const theory::TargetSummary& lt = rt.target(Target::LmAligned);
        std::printf("  eps = %g, c_norm^2 = %g, c_align = %g: E[dl(v*)] = %g vs lower bound %g (%s), max|E[dl(w)]| = %g vs %g (%s)\n",
                    rt.eps, rt.c_norm_sq, rt.c_align, lt.dlogit_correct_mean, rt.bound_lower, verdict(lt.correct),
                    lt.dlogit_other_maxabs, rt.bound_cross, verdict(lt.other));
        checks.expect(lt.holds && std::fabs(lt.correct.ratio - 1) < 1e-9, "equality: E[dl(v*)] = eta c_norm^2 c_align exactly");

        if (!opt.check) {
            lab::section(8, "Long context: the 'other positions contribute 0' assumption breaks");
            theory::TheoryOptions l = o;
            l.n_chunks = 64, l.trials = 1000;  // 1008 positions before the query's chunk
            theory::TheoryResult rl = theory::run_trials(l);
            const theory::TargetSummary& ll = rl.target(Target::LmAligned);
            std::printf("  %d prior positions: max|E[dl(w)]| = %.5f (token %d) vs bound %.5f: %s; predicted drift %.5f (token %d)\n",
                        rl.prior_positions, ll.dlogit_other_maxabs, ll.dlogit_other_argmax, rl.bound_cross, verdict(ll.other),
                        rl.other_drift_predicted, rl.other_drift_token);
            std::printf("  Each filler adds a small positive Z_a . Z_b (about c_align / d for SwiGLU features); the theorem\n"
                        "  treats it as 0, the sum over ~1000 positions does not. See docs/theory.md section 5.3.\n");
        }
        return checks.finish();
    });
}
