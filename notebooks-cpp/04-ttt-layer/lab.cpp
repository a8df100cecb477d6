// Lab 04: one In-Place TTT layer by hand. Build Z for a tiny d, f, C; write the target V
// (the chunk-cut conv and P), the scan and the chunk-by-chunk loop yourself (TODOs; the
// reference solutions are in solution.cpp) and check them against the ops' parallel form
// (dW_i, exclusive scan, apply); watch an inclusive scan break causality; see the drop-in
// property (zero conv => the plain MLP, bit for bit).
//   build/labs/04-ttt-layer [--solution] [--check]
#include <cmath>

#include "../lab_util.h"
#include "model/model.h"
#include "ops/ops.h"

using namespace ittt;

namespace {

constexpr int64_t n = 10, d = 4, f = 6;  // one sequence (B = 1) of 10 tokens
constexpr int C = 4, T = (n + C - 1) / C;  // chunks [0,4) [4,8) [8,10): the last one is short
constexpr double eta = 0.5;
const std::vector<int> kOffsets = {-2, -1, 0, 1, 2};  // the release's centred 5-tap conv

// ---- TODO (exercise 1): the target V, by hand ----
// Fill v (n, d) with the layer's target V = Conv1D(S_src) P for src = S_src (n, d), the depthwise
// conv's taps conv (d, K) at `offsets` (tap k of channel c reads the token offsets[k] away), the
// projection P (d, d), chunks of C tokens (docs/method.md section 2, docs/ttt.md). Which source
// rows may a target row read? Loops and lab::get / lab::set are enough. Return false until written.
bool build_targets_student([[maybe_unused]] Tensor& v, [[maybe_unused]] const Tensor& src, [[maybe_unused]] const Tensor& conv,
                           [[maybe_unused]] const Tensor& P, [[maybe_unused]] const std::vector<int>& offsets, [[maybe_unused]] int C) {
    return false;  // TODO
}

// ---- TODO (exercise 2): the layer as the chunk-by-chunk loop it abbreviates ----
// Fill o (n, d) with the layer's output for features z (n, f), targets v (n, d), the slow weight
// wd (d, f), chunks of C tokens and step size eta, one chunk after another, with ops calls of your
// choice (src/ops/ops.h; Tensor::rows(begin, end) is a row slice that shares storage). The order
// of the two things each chunk does is the whole point (docs/ttt.md). Return false until written.
bool ttt_chunk_loop_student([[maybe_unused]] Tensor& o, [[maybe_unused]] const Tensor& z, [[maybe_unused]] const Tensor& v,
                            [[maybe_unused]] const Tensor& wd, [[maybe_unused]] int C, [[maybe_unused]] double eta) {
    return false;  // TODO
}

// ---- TODO (exercise 3): the scan, exclusive and inclusive ----
// updates (1, T, d, f) holds dW_0 .. dW_{T-1}. Fill out (same shape) with the exclusive prefix sums
// S_i (inclusive = false) or the inclusive ones (inclusive = true), with loops or ops of your
// choice. Section 6 then reads the layer with your inclusive scan. Return false until written.
bool chunk_scan_student([[maybe_unused]] Tensor& out, [[maybe_unused]] const Tensor& updates, [[maybe_unused]] bool inclusive) {
    return false;  // TODO
}

}  // namespace

// The reference solutions (solution.cpp).
namespace solution {
LAB_SOLUTION bool build_targets(Tensor& v, const Tensor& src, const Tensor& conv, const Tensor& P, const std::vector<int>& offsets, int C);
LAB_SOLUTION bool ttt_chunk_loop(Tensor& o, const Tensor& z, const Tensor& v, const Tensor& wd, int C, double eta);
LAB_SOLUTION bool chunk_scan(Tensor& out, const Tensor& updates, bool inclusive);
}  // namespace solution

namespace {

// V through the ops (the library's way): the chunk-local conv, then P. chunk = n gives a conv
// that ignores the chunk edges (a typical mistake, for the hints).
Tensor targets_by_ops(const Tensor& src, const Tensor& conv, const Tensor& P, int chunk) {
    Tensor u = Tensor::empty({1, n, d}, DType::F64), v = Tensor::empty({n, d}, DType::F64);
    ops::conv1d_chunked_forward(u, src.view({1, n, d}), conv, kOffsets, chunk);
    ops::matmul(v, u.view({n, d}), false, P, false);
    return v;
}

// O (n, d) read with the given per-chunk sums s (1, T, d, f) and step size.
Tensor apply_with(const Tensor& z, const Tensor& wd, const Tensor& s, double step) {
    Tensor o = Tensor::empty({1, n, d}, DType::F64);
    ops::ttt_apply_forward(o, z.view({1, n, f}), wd, s, step, C);
    return o.view({n, d});
}

// The parallel form: V from S_src, then dW / scan / apply. Returns O (n, d); fills v, s when given.
Tensor ttt_parallel(const Tensor& src, const Tensor& z, const Tensor& conv, const Tensor& P, const Tensor& wd, Tensor* v_out = nullptr,
                    Tensor* updates_out = nullptr, Tensor* s_out = nullptr) {
    Tensor u = Tensor::empty({1, n, d}, DType::F64), v = Tensor::empty({n, d}, DType::F64);
    ops::conv1d_chunked_forward(u, src.view({1, n, d}), conv, kOffsets, C);  // U: chunk-local conv
    ops::matmul(v, u.view({n, d}), false, P, false);                          // V = U P
    Tensor updates = Tensor::empty({1, T, d, f}, DType::F64), s = Tensor::empty({1, T, d, f}, DType::F64);
    ops::ttt_chunk_delta(updates, v.view({1, n, d}), z.view({1, n, f}), C);  // dW_i = V_[i]^T Z_[i]
    ops::prefix_scan_exclusive(s, updates, /*reverse=*/false);               // S_i = sum_{j<i} dW_j
    Tensor o = Tensor::empty({1, n, d}, DType::F64);
    ops::ttt_apply_forward(o, z.view({1, n, f}), wd, s, eta, C);            // O_[i] = Z_[i] (Wd + eta S_i)^T
    if (v_out) *v_out = v;
    if (updates_out) *updates_out = updates;
    if (s_out) *s_out = s;
    return o.view({n, d});
}

double fro(const Tensor& t) { return std::sqrt(ops::sum_squares(t)); }

// The rows r of a and b (n, cols) that differ in any bit.
std::string changed_rows(const Tensor& a, const Tensor& b) {
    std::string s;
    for (int64_t r = 0; r < a.dim(0); ++r)
        if (!lab::bitwise_equal(a.rows(r, r + 1), b.rows(r, r + 1))) s += std::to_string(r) + " ";
    return s.empty() ? "none" : s;
}

}  // namespace

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 04: the In-Place TTT layer by hand (V, dW, scan, apply, loop)");
    auto build_targets = opt.solution ? solution::build_targets : build_targets_student;
    auto ttt_chunk_loop = opt.solution ? solution::ttt_chunk_loop : ttt_chunk_loop_student;
    auto chunk_scan = opt.solution ? solution::chunk_scan : chunk_scan_student;
    return lab::run([&] {
        lab::Checks checks;

        lab::section(1, "The inputs: Z from a SwiGLU MLP, the source S_src, the slow weights");
        Tensor H = lab::random_tensor({n, d}, 1, 1.0, DType::F64);  // the MLP input (after RMSNorm)
        Tensor Wg = lab::random_tensor({f, d}, 2, 0.7, DType::F64), Wu = lab::random_tensor({f, d}, 3, 0.7, DType::F64);
        Tensor g = Tensor::empty({n, f}, DType::F64), u = Tensor::empty({n, f}, DType::F64), Z = Tensor::empty({n, f}, DType::F64);
        ops::linear(g, H, Wg);
        ops::linear(u, H, Wu);
        ops::swiglu_forward(Z, g, u);  // Z = silu(H Wg^T) * (H Wu^T)
        Tensor src = lab::random_tensor({n, d}, 4, 1.0, DType::F64);   // S_src: the token embeddings X0
        Tensor Wd = lab::random_tensor({d, f}, 5, 0.3, DType::F64);    // down projection: the fast weight's start
        Tensor conv = lab::random_tensor({d, 5}, 6, 0.5, DType::F64);  // trained conv (the release inits it to 0)
        Tensor P = lab::random_tensor({d, d}, 7, 0.5, DType::F64);     // W_target
        std::printf("  n = %lld tokens, d = %lld, f = %lld, chunk C = %d -> T = %d chunks, eta = %.1f\n", static_cast<long long>(n),
                    static_cast<long long>(d), static_cast<long long>(f), C, T, eta);

        lab::section(2, "Exercise 1: the target V = Conv1D(S_src) P, by hand");
        Tensor V, updates, S;
        Tensor O = ttt_parallel(src, Z, conv, P, Wd, &V, &updates, &S);
        Tensor V_mine = Tensor::zeros({n, d}, DType::F64);
        if (checks.todo_done(build_targets(V_mine, src, conv, P, kOffsets, C), "exercise 1 (build_targets)", opt)) {
            Tensor U = Tensor::empty({n, d}, DType::F64), UPt = Tensor::empty({n, d}, DType::F64);
            Tensor U3 = U.view({1, n, d});
            ops::conv1d_chunked_forward(U3, src.view({1, n, d}), conv, kOffsets, C);
            ops::matmul(UPt, U, false, P, true);
            checks.expect_close(V_mine.to_f64_vector(), V.to_f64_vector(), 1e-12, "your V equals the ops' (conv1d_chunked_forward, then P)",
                                {{targets_by_ops(src, conv, P, static_cast<int>(n)).to_f64_vector(),
                                  "your conv reads across chunk edges: a chunk's targets may only use that chunk's tokens "
                                  "(zeros past its edges), or the update of chunk i would carry tokens of chunk i+1"},
                                 {U.to_f64_vector(), "this is U = Conv1D(S_src): the projection P is missing"},
                                 {UPt.to_f64_vector(), "this is U P^T: V = U P, rows of U times P"}},
                                static_cast<size_t>(C * d), "chunk");
        }
        Tensor src2 = src.clone();
        lab::set(src2, 4 * d, lab::get(src2, 4 * d) + 1.0);  // perturb token 4, the first of chunk 1
        Tensor V2;
        ttt_parallel(src2, Z, conv, P, Wd, &V2);
        std::printf("  perturb S_src of token 4: rows of V that change: %s(taps -2..+2, cut at 4)\n", changed_rows(V, V2).c_str());
        checks.expect(changed_rows(V, V2) == "4 5 6 ", "only rows 4..6 of V move (not 2, 3: they are in chunk 0)");

        lab::section(3, "Exercise 3a: dW_i = V_[i]^T Z_[i], then your exclusive scan S_i = sum_{j<i} dW_j");
        Tensor d3 = updates.view({T, d * f}), s3 = S.view({T, d * f});
        for (int i = 0; i < T; ++i)
            std::printf("  chunk %d: ||dW_%d||_F = %.4f   ||S_%d||_F = %.4f\n", i, i, fro(d3.rows(i, i + 1)), i, fro(s3.rows(i, i + 1)));
        Tensor sum01 = d3.rows(0, 1).clone();
        ops::add_inplace(sum01, d3.rows(1, 2));
        checks.expect(fro(s3.rows(0, 1)) == 0 && lab::max_abs_diff(s3.rows(2, 3), sum01) < 1e-14,
                      "S_0 = 0 and S_2 = dW_0 + dW_1: exclusive, so a chunk never sees its own update");
        std::printf("  dW_%d is never used: the last chunk's update only matters for what comes next (streaming).\n", T - 1);
        Tensor S_mine = Tensor::zeros({1, T, d, f}, DType::F64), S_incl = Tensor::zeros({1, T, d, f}, DType::F64);
        const bool have_scan = checks.todo_done(chunk_scan(S_mine, updates, false) && chunk_scan(S_incl, updates, true),
                                                "exercise 3 (chunk_scan)", opt);
        Tensor S_incl_ops = S.clone();  // the inclusive sums from the ops: S_i + dW_i
        ops::add_inplace(S_incl_ops, updates);
        if (have_scan) {
            checks.expect_close(S_mine.to_f64_vector(), S.to_f64_vector(), 1e-12, "your exclusive scan equals ops::prefix_scan_exclusive",
                                {{S_incl_ops.to_f64_vector(), "this is the inclusive scan: S_i sums the chunks before i only"}},
                                static_cast<size_t>(d * f), "chunk");
            checks.expect_close(S_incl.to_f64_vector(), S_incl_ops.to_f64_vector(), 1e-12, "your inclusive scan equals S_i + dW_i",
                                {{S.to_f64_vector(), "this is the exclusive scan: inclusive = true adds chunk i's own update"}},
                                static_cast<size_t>(d * f), "chunk");
        }

        lab::section(4, "The apply: O_[i] = Z_[i] (Wd + eta S_i)^T");
        for (int64_t r : {0, 4, 8}) {
            std::printf("  O row %lld: ", static_cast<long long>(r));
            for (int64_t c = 0; c < d; ++c) std::printf("%+.5f ", lab::get(O, r * d + c));
            std::printf("\n");
        }

        lab::section(5, "Exercise 2: the chunk-by-chunk loop equals the parallel form");
        Tensor O_loop = Tensor::zeros({n, d}, DType::F64);
        if (checks.todo_done(ttt_chunk_loop(O_loop, Z, V, Wd, C, eta), "exercise 2 (ttt_chunk_loop)", opt)) {
            checks.expect_close(O_loop.to_f64_vector(), O.to_f64_vector(), 1e-12,
                                "the loop equals dW / scan / apply (F64: only the order of the sums differs)",
                                {{apply_with(Z, Wd, S_incl_ops, eta).to_f64_vector(),
                                  "every chunk was read with its own update included (chunk 0 too, which should see Wd "
                                  "alone): did you update before applying? A chunk reads the updates of earlier chunks only"},
                                 {apply_with(Z, Wd, S, 1.0).to_f64_vector(), "the updates are added without the step size eta"},
                                 {apply_with(Z, Wd, S, 2 * eta).to_f64_vector(), "the updates are added with twice the step size"},
                                 {apply_with(Z, Wd, Tensor::zeros({1, T, d, f}, DType::F64), eta).to_f64_vector(),
                                  "this is the plain MLP Z Wd^T: the fast weight never changes"}},
                                static_cast<size_t>(C * d), "chunk");
        }

        lab::section(6, "Causality: a token reaches only later chunks through W; an inclusive scan breaks that");
        for (int64_t t : {5, 9}) {
            Tensor s2 = src.clone();
            lab::set(s2, t * d + 1, lab::get(s2, t * d + 1) - 2.0);
            Tensor O2 = ttt_parallel(s2, Z, conv, P, Wd);
            std::string rows = changed_rows(O, O2);
            std::printf("  change S_src of token %lld (chunk %lld): output rows that change: %s\n", static_cast<long long>(t),
                        static_cast<long long>(t / C), rows.c_str());
            checks.expect(rows == (t == 5 ? "8 9 " : "none"), "only chunks after the token's own chunk move");
        }
        std::printf("  The conv's look-ahead (+1, +2) is safe: it lands in dW_i, which only chunks > i use.\n");
        if (have_scan) {
            // The same probe read with YOUR inclusive scan: chunk i now applies its own update.
            Tensor s2 = src.clone();
            lab::set(s2, 5 * d + 1, lab::get(s2, 5 * d + 1) - 2.0);
            Tensor V5, updates5, S5_incl = Tensor::zeros({1, T, d, f}, DType::F64), S_incl_again = Tensor::zeros({1, T, d, f}, DType::F64);
            ttt_parallel(s2, Z, conv, P, Wd, &V5, &updates5);
            chunk_scan(S5_incl, updates5, true);
            chunk_scan(S_incl_again, updates, true);
            std::string rows = changed_rows(apply_with(Z, Wd, S_incl_again, eta), apply_with(Z, Wd, S5_incl, eta));
            std::printf("  with your inclusive scan, change token 5: output rows that change: %s\n", rows.c_str());
            checks.expect(rows.rfind("4 ", 0) == 0, "inclusive: row 4 moves when token 5 changes, so a position reads the future");
            std::printf("  Row 4 predicts token 5; reading an update that contains token 5 (through the conv's +1 tap)\n"
                        "  is looking at the answer. Training would learn to copy it and fail at inference.\n");
        }

        lab::section(7, "The drop-in property: zero conv gives the plain MLP, bit for bit");
        Tensor O_zero = ttt_parallel(src, Z, Tensor::zeros({d, 5}, DType::F64), P, Wd);
        Tensor O_mlp = Tensor::empty({n, d}, DType::F64);
        ops::linear(O_mlp, Z, Wd);  // the plain MLP's down projection
        checks.expect(lab::bitwise_equal(O_zero, O_mlp), "layer: conv = 0 gives exactly Z Wd^T");
        ModelConfig cfg;
        cfg.vocab_size = 11, cfg.hidden_size = 8, cfg.intermediate_size = 12, cfg.num_attention_heads = 2;
        cfg.num_key_value_heads = 1, cfg.head_dim = 4, cfg.ttt_chunk = 4;
        ModelConfig with_ttt = cfg;
        with_ttt.ttt_mode = true, with_ttt.ttt_layers = {0, 1};
        Model plain(cfg), ttt(with_ttt);
        plain.init_random(11), ttt.init_random(11);  // release init: conv = 0; same names -> same shared weights
        Tensor tokens = Tensor::from_vector(std::vector<int32_t>{1, 5, 9, 2, 7, 7, 3, 10, 4, 6, 8, 0, 5, 1}, {2, 7});
        Tensor a = plain.forward(tokens).clone(), b = ttt.forward(tokens).clone();
        checks.expect(lab::bitwise_equal(a, b), "model: a freshly initialised TTT model has the plain model's logits");
        std::printf("  So TTT can be added to a pretrained model without changing it at step 0 (the paper's continual\n"
                    "  training): the conv starts at zero and training moves it away only where that helps.\n");

        lab::section(8, "What the parallel form costs in memory");
        const double big_d = 2560, big_f = 9728, big_T = 65536 / 4096;  // Qwen3-4B, 64k tokens, C = 4096
        std::printf("  S holds T d f numbers per sequence and layer: here %d x %lld x %lld; for Qwen3-4B at 64k tokens\n"
                    "  (C = 4096, T = 16): %.2f GB in F32. The token form of docs/method.md section 3 avoids storing it.\n",
                    T, static_cast<long long>(d), static_cast<long long>(f), big_T * big_d * big_f * 4 / 1e9);
        return checks.finish();
    });
}
