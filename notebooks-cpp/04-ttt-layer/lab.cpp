// Lab 04: one In-Place TTT layer by hand. Build Z and V for a tiny d, f, C; the
// chunk deltas, the exclusive scan and the apply with ops; write the chunk-by-chunk
// loop yourself (TODO) and check it equals the parallel form; see causality and
// the drop-in property (zero conv => the plain MLP, bit for bit).
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

// ---- TODO (exercise 1): the layer as the loop it abbreviates ----
// W = wd; for each chunk i (rows [i*C, min((i+1)*C, n))):
//     O_[i] = Z_[i] W^T          ops::linear(o_rows, z_rows, W)       (apply ...)
//     W    += eta V_[i]^T Z_[i]   ops::matmul(dW, v_rows, true, z_rows, false); ops::add_inplace(W, dW, eta)
// o (n, d) is pre-allocated; z (n, f), v (n, d), wd (d, f). Tensor::rows(begin, end) gives row slices
// that share storage. Return false until written ("not implemented").
bool ttt_chunk_loop_student([[maybe_unused]] Tensor& o, [[maybe_unused]] const Tensor& z, [[maybe_unused]] const Tensor& v,
                            [[maybe_unused]] const Tensor& wd) {
    return false;  // TODO
}

bool ttt_chunk_loop_reference(Tensor& o, const Tensor& z, const Tensor& v, const Tensor& wd) {
    Tensor W = wd.clone(), dW = Tensor::empty({d, f}, wd.dtype());
    for (int64_t begin = 0; begin < n; begin += C) {
        int64_t end = std::min<int64_t>(begin + C, n);
        Tensor o_i = o.rows(begin, end);
        ops::linear(o_i, z.rows(begin, end), W);                     // apply with the weights of chunks before i ...
        ops::matmul(dW, v.rows(begin, end), true, z.rows(begin, end), false);  // ... then fold chunk i in
        ops::add_inplace(W, dW, eta);
    }
    return true;
}

// The parallel form: V from S_src, then delta / scan / apply. Returns O (n, d); fills v, s when given.
Tensor ttt_parallel(const Tensor& src, const Tensor& z, const Tensor& conv, const Tensor& P, const Tensor& wd, Tensor* v_out = nullptr,
                    Tensor* deltas_out = nullptr, Tensor* s_out = nullptr) {
    Tensor u = Tensor::empty({1, n, d}, DType::F64), v = Tensor::empty({n, d}, DType::F64);
    ops::conv1d_chunked_forward(u, src.view({1, n, d}), conv, kOffsets, C);  // U: chunk-local conv
    ops::matmul(v, u.view({n, d}), false, P, false);                          // V = U P
    Tensor deltas = Tensor::empty({1, T, d, f}, DType::F64), s = Tensor::empty({1, T, d, f}, DType::F64);
    ops::ttt_chunk_delta(deltas, v.view({1, n, d}), z.view({1, n, f}), C);  // delta_i = V_[i]^T Z_[i]
    ops::prefix_scan_exclusive(s, deltas, /*reverse=*/false);               // S_i = sum_{j<i} delta_j
    Tensor o = Tensor::empty({1, n, d}, DType::F64);
    ops::ttt_apply_forward(o, z.view({1, n, f}), wd, s, eta, C);            // O_[i] = Z_[i] (Wd + eta S_i)^T
    if (v_out) *v_out = v;
    if (deltas_out) *deltas_out = deltas;
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
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 04: the In-Place TTT layer by hand (delta, scan, apply, loop)");
    auto ttt_chunk_loop = opt.solution ? ttt_chunk_loop_reference : ttt_chunk_loop_student;
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

        lab::section(2, "The target V = Conv1D(S_src) P: the conv never crosses a chunk edge");
        Tensor V, deltas, S;
        Tensor O = ttt_parallel(src, Z, conv, P, Wd, &V, &deltas, &S);
        Tensor src2 = src.clone();
        lab::set(src2, 4 * d, lab::get(src2, 4 * d) + 1.0);  // perturb token 4, the first of chunk 1
        Tensor V2;
        ttt_parallel(src2, Z, conv, P, Wd, &V2);
        std::printf("  perturb S_src of token 4: rows of V that change: %s(taps -2..+2, cut at 4)\n", changed_rows(V, V2).c_str());
        checks.expect(changed_rows(V, V2) == "4 5 6 ", "only rows 4..6 of V move (not 2, 3: they are in chunk 0)");

        lab::section(3, "delta_i = V_[i]^T Z_[i], then the exclusive scan S_i = sum_{j<i} delta_j");
        Tensor d3 = deltas.view({T, d * f}), s3 = S.view({T, d * f});
        for (int i = 0; i < T; ++i)
            std::printf("  chunk %d: ||delta_%d||_F = %.4f   ||S_%d||_F = %.4f\n", i, i, fro(d3.rows(i, i + 1)), i, fro(s3.rows(i, i + 1)));
        Tensor sum01 = d3.rows(0, 1).clone();
        ops::add_inplace(sum01, d3.rows(1, 2));
        checks.expect(fro(s3.rows(0, 1)) == 0 && lab::max_abs_diff(s3.rows(2, 3), sum01) < 1e-14,
                      "S_0 = 0 and S_2 = delta_0 + delta_1: exclusive, so a chunk never sees its own update");
        std::printf("  delta_%d is never used: the last chunk's update only matters for what comes next (streaming).\n", T - 1);

        lab::section(4, "The apply: O_[i] = Z_[i] (Wd + eta S_i)^T");
        for (int64_t r : {0, 4, 8}) {
            std::printf("  O row %lld: ", static_cast<long long>(r));
            for (int64_t c = 0; c < d; ++c) std::printf("%+.5f ", lab::get(O, r * d + c));
            std::printf("\n");
        }

        lab::section(5, "Exercise 1: the chunk-by-chunk loop equals the parallel form");
        Tensor O_loop = Tensor::zeros({n, d}, DType::F64);
        if (checks.todo_done(ttt_chunk_loop(O_loop, Z, V, Wd), "exercise 1 (ttt_chunk_loop)", opt)) {
            double diff = lab::max_abs_diff(O_loop, O);
            std::printf("  max |loop - parallel| = %.2e (F64: only the order of the sums differs)\n", diff);
            checks.expect(diff < 1e-12, "the loop equals delta/scan/apply");
        }

        lab::section(6, "Causality: a token reaches only later chunks through W");
        for (int64_t t : {5, 9}) {
            Tensor s2 = src.clone();
            lab::set(s2, t * d + 1, lab::get(s2, t * d + 1) - 2.0);
            Tensor O2 = ttt_parallel(s2, Z, conv, P, Wd);
            std::string rows = changed_rows(O, O2);
            std::printf("  change S_src of token %lld (chunk %lld): output rows that change: %s\n", static_cast<long long>(t),
                        static_cast<long long>(t / C), rows.c_str());
            checks.expect(rows == (t == 5 ? "8 9 " : "none"), "only chunks after the token's own chunk move");
        }
        std::printf("  The conv's look-ahead (+1, +2) is safe: it lands in delta_i, which only chunks > i use.\n");

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
