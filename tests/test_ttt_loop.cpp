// The running-weight forms of the TTT layer (ops::ttt_loop_*, TttForm::Loop and Flat)
// against the parallel form (delta, scan, apply): outputs and every gradient, the drop-in
// property, the thread count, and the flat form's rounding. F32 against F64 and the backward
// against finite differences are in the op harness (tests/test_ops_harness.cpp).
#include <cmath>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/memory_budget.h"
#include "model/model.h"
#include "ops/ops.h"
#include "test_util.h"
#include "tiny_model.h"
#include "ttt_reference.h"

using namespace ittt;
using namespace ittt::test;

namespace {

int64_t chunks_of(int64_t n, int chunk) { return (n + chunk - 1) / chunk; }

struct Grads {
    Tensor o, dz, dv, dwd;
};

// The parallel form of the core, forward and backward (what ttt_layer.cpp's Parallel runs).
Grads parallel_core(const Tensor& dout, const Tensor& v, const Tensor& z, const Tensor& wd, double eta, int chunk) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0), T = chunks_of(n, chunk);
    const DType dt = z.dtype();
    Tensor delta = Tensor::empty({B, T, d, f}, dt), s = Tensor::empty({B, T, d, f}, dt);
    ops::ttt_chunk_delta(delta, v, z, chunk);
    ops::prefix_scan_exclusive(s, delta, false);
    Grads g{Tensor::empty({B, n, d}, dt), Tensor::empty({B, n, f}, dt), Tensor::empty({B, n, d}, dt), Tensor::zeros({d, f}, dt)};
    ops::ttt_apply_forward(g.o, z, wd, s, eta, chunk);
    Tensor P = Tensor::empty({B, T, d, f}, dt), G = Tensor::empty({B, T, d, f}, dt);
    ops::ttt_chunk_delta(P, dout, z, chunk);
    ops::prefix_scan_exclusive(G, P, true);
    ops::sum_dim0(g.dwd, P.view({B * T, d, f}), true);
    ops::ttt_apply_backward(g.dz, g.dv, dout, z, v, wd, s, G, eta, chunk);
    return g;
}

// The loop form: keep every W_i (flat = false) or only the last (flat = true).
Grads loop_core(const Tensor& dout, const Tensor& v, const Tensor& z, const Tensor& wd, double eta, int chunk, bool flat) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0);
    const DType dt = z.dtype();
    Grads g{Tensor::empty({B, n, d}, dt), Tensor::empty({B, n, f}, dt), Tensor::empty({B, n, d}, dt), Tensor::zeros({d, f}, dt)};
    ops::TttLoopOptions opt;
    opt.keep_all = !flat;
    opt.keep_last = flat;
    ops::TttLoopResult r = ops::ttt_loop_forward(g.o, z, v, wd, eta, chunk, opt);
    ops::ttt_loop_backward(g.dz, g.dv, g.dwd, dout, z, v, eta, chunk, flat ? r.w_last : r.w_all);
    return g;
}

struct Ragged {
    int64_t n;
    int chunk;
};
// Short last chunks, one chunk, one-token chunks, chunk longer than the sequence.
const Ragged kShapes[] = {{1, 1}, {5, 1}, {7, 3}, {8, 4}, {9, 4}, {3, 8}, {33, 8}};

void compare_cores(DType dt, double atol, double rtol) {
    const int64_t B = 3, d = 5, f = 12;
    for (const Ragged& r : kShapes)
        for (bool flat : {false, true}) {
            INFO("n " << r.n << ", chunk " << r.chunk << (flat ? ", flat" : ", loop") << ", " << dtype_name(dt));
            Tensor v = random_tensor({B, r.n, d}, 1, 0.5, dt), z = random_tensor({B, r.n, f}, 2, 0.5, dt);
            Tensor wd = random_tensor({d, f}, 3, 0.5, dt), dout = random_tensor({B, r.n, d}, 4, 1.0, dt);
            Grads p = parallel_core(dout, v, z, wd, 0.7, r.chunk), q = loop_core(dout, v, z, wd, 0.7, r.chunk, flat);
            CHECK(check_close(q.o, p.o, atol, rtol, "O"));
            CHECK(check_close(q.dz, p.dz, atol, rtol, "dZ"));
            CHECK(check_close(q.dv, p.dv, atol, rtol, "dV"));
            CHECK(check_close(q.dwd, p.dwd, atol, rtol, "dWd"));
        }
}

}  // namespace

TEST_CASE("ttt_loop forward and backward (every W kept, or rebuilt) equal the parallel form", "[ttt_loop]") {
    // Same sums in another order: F64 rounding ~1e-15 on O(1) values; F32 ~1e-6 on sums of
    // ~100 terms of size ~1, hence 1e-5.
    compare_cores(DType::F64, 1e-12, 1e-12);
    compare_cores(DType::F32, 1e-5, 1e-5);
}

TEST_CASE("ttt_loop: V == 0 leaves every output the plain product z wd^T bit for bit", "[ttt_loop]") {
    const int64_t B = 3, n = 37, d = 16, f = 40;
    Tensor z = random_tensor({B, n, f}, 21), wd = random_tensor({d, f}, 22), v = Tensor::zeros({B, n, d});
    Tensor plain = Tensor::empty({B, n, d}), o = Tensor::empty({B, n, d});
    ops::linear(plain, z, wd);
    for (int chunk : {1, 8, 64}) {
        ops::TttLoopOptions opt;
        opt.norms = true;
        ops::TttLoopResult r = ops::ttt_loop_forward(o, z, v, wd, 0.5, chunk, opt);
        INFO("chunk " << chunk);
        CHECK(bitwise_equal(o, plain));
        const int64_t T = chunks_of(n, chunk);
        for (int64_t k = 0; k < B * T; ++k)  // the last chunk's update is not computed: NaN
            CHECK((k % T == T - 1 ? std::isnan(r.norm[static_cast<size_t>(k)]) : r.norm[static_cast<size_t>(k)] == 0.0));
    }
}

TEST_CASE("ttt_loop: the same bits on 1 and 2 threads, with fewer and more sequences than threads", "[ttt_loop]") {
#ifdef _OPENMP
    const int before = omp_get_max_threads();
    for (int64_t B : {1, 2, 5}) {
        const int64_t n = 70, d = 32, f = 96;  // GEMMs of 16 x 32 x 96 and up: some run threaded
        Tensor v = random_tensor({B, n, d}, 31, 0.3), z = random_tensor({B, n, f}, 32, 0.3), wd = random_tensor({d, f}, 33, 0.3);
        Tensor dout = random_tensor({B, n, d}, 34);
        omp_set_num_threads(1);
        Grads one = loop_core(dout, v, z, wd, 0.4, 16, true);
        omp_set_num_threads(2);
        Grads two = loop_core(dout, v, z, wd, 0.4, 16, true);
        INFO("B " << B);
        CHECK(bitwise_equal(one.o, two.o));
        CHECK(bitwise_equal(one.dz, two.dz));
        CHECK(bitwise_equal(one.dv, two.dv));
        CHECK(bitwise_equal(one.dwd, two.dwd));
    }
    omp_set_num_threads(before);
#endif
}

TEST_CASE("ttt_loop: the flat form's rebuilt weights stay close to the stored ones over 256 chunks (F32)", "[ttt_loop]") {
    // W_i = W_{i+1} - eta dW_i undoes each step with one rounding, so the error of W_0 after
    // T steps is a random walk of ~sqrt(T) roundings of |W| (~1e-7 relative each). With 256
    // chunks and updates as large as W itself, gradients of size ~10 stay within 1e-4 relative.
    const int64_t B = 2, n = 1024, d = 16, f = 48;
    const int chunk = 4;
    Tensor v = random_tensor({B, n, d}, 41, 0.2), z = random_tensor({B, n, f}, 42, 0.2), wd = random_tensor({d, f}, 43, 0.3);
    Tensor dout = random_tensor({B, n, d}, 44);
    Grads stored = loop_core(dout, v, z, wd, 0.3, chunk, false), rebuilt = loop_core(dout, v, z, wd, 0.3, chunk, true);
    CHECK(bitwise_equal(stored.o, rebuilt.o));  // the forward is the same code either way
    CHECK(check_close(rebuilt.dz, stored.dz, 1e-4, 1e-4, "dZ"));
    CHECK(check_close(rebuilt.dv, stored.dv, 1e-4, 1e-4, "dV"));
    CHECK(check_close(rebuilt.dwd, stored.dwd, 1e-4, 1e-4, "dWd"));
}

TEST_CASE("ttt_loop: the loop continued from a state, fed in pieces, gives the one-call outputs and W bit for bit", "[ttt_loop]") {
    // Streaming's use of the op: each call gets the rows its current chunk already holds
    // (start), then the new ones, and advances W in place. Rows of one chunk see the same W and
    // every chunk's delta is one product over its whole rows, so the pieces change no bit.
    const int64_t n = 23, d = 5, f = 7;
    const int chunk = 4;
    for (DType dt : {DType::F64, DType::F32})
        for (double tau : {0.0, 0.3})
            for (std::vector<int64_t> pieces : std::vector<std::vector<int64_t>>{{23}, {1, 22}, {3, 1, 8, 11}, {4, 5, 14}, {2, 2, 2, 17}}) {
                INFO(dtype_name(dt) << ", tau " << tau << ", first piece " << pieces[0] << " of " << pieces.size());
                Tensor z = random_tensor({1, n, f}, 51, 0.5, dt), v = random_tensor({1, n, d}, 52, 0.5, dt);
                Tensor wd = random_tensor({d, f}, 53, 0.5, dt);
                ops::TttLoopOptions opt;
                opt.clip_tau = tau;
                opt.norms = true;
                opt.w_state = wd.view({1, d, f}).clone();
                Tensor whole = Tensor::empty({1, n, d}, dt);
                ops::TttLoopResult all = ops::ttt_loop_forward(whole, z, v, wd, 0.8, chunk, opt);
                Tensor w_all = opt.w_state;

                opt.w_state = wd.view({1, d, f}).clone();
                Tensor streamed = Tensor::empty({1, n, d}, dt);
                std::vector<double> norms;
                int64_t at = 0;
                for (int64_t m : pieces) {
                    opt.start = static_cast<int>(at % chunk);  // rows of the current chunk seen before
                    const int64_t begin = at - opt.start, rows = opt.start + m;
                    Tensor o = Tensor::empty({1, m, d}, dt);
                    Tensor zs = z.view({n, f}).rows(begin, at + m).view({1, rows, f}), vs = v.view({n, d}).rows(begin, at + m).view({1, rows, d});
                    ops::TttLoopResult r = ops::ttt_loop_forward(o, zs, vs, wd, 0.8, chunk, opt);
                    streamed.view({n, d}).rows(at, at + m).copy_from(o.view({m, d}));
                    for (int64_t i = 0; i < (opt.start + m) / chunk; ++i) norms.push_back(r.norm[static_cast<size_t>(i)]);
                    at += m;
                }
                CHECK(bitwise_equal(streamed, whole));
                CHECK(bitwise_equal(opt.w_state, w_all));
                REQUIRE(norms.size() == static_cast<size_t>(n / chunk));
                for (size_t i = 0; i < norms.size(); ++i) CHECK(norms[i] == all.norm[i]);
            }
}

TEST_CASE("ttt_loop rejects bad arguments with errors that name them", "[ttt_loop]") {
    Tensor z = Tensor::zeros({2, 8, 6}), v = Tensor::zeros({2, 8, 4}), wd = Tensor::zeros({4, 6}), o = Tensor::zeros({2, 8, 4});
    Tensor bad_wd = Tensor::zeros({6, 4});
    CHECK_THROWS_WITH(ops::ttt_loop_forward(o, z, v, bad_wd, 0.5, 4), Catch::Contains("wd") && Catch::Contains("(4, 6)"));
    CHECK_THROWS_WITH(ops::ttt_loop_forward(o, z, v, wd, 0.5, 0), Catch::Contains("chunk must be >= 1"));
    Tensor dz = Tensor::zeros({2, 8, 6}), dv = Tensor::zeros({2, 8, 4}), dwd = Tensor::zeros({4, 6}), w = Tensor::zeros({2, 3, 4, 6});
    CHECK_THROWS_WITH(ops::ttt_loop_backward(dz, dv, dwd, o, z, v, 0.5, 4, w), Catch::Contains("as ttt_loop_forward kept them"));
    ops::TttLoopOptions state;
    state.start = 2;  // rows seen before, but no state to continue
    CHECK_THROWS_WITH(ops::ttt_loop_forward(o, z, v, wd, 0.5, 4, state), Catch::Contains("start 2") && Catch::Contains("without w_state"));
    state.w_state = Tensor::zeros({2, 4, 6});
    CHECK_THROWS_WITH(ops::ttt_loop_forward(o, z, v, wd, 0.5, 4, state), Catch::Contains("o is") && Catch::Contains("(2, 6, 4)"));
}

// ---- the model with each form ----

namespace {
struct ModelRun {
    Tensor logits;
    std::vector<Tensor> grads;
};

ModelRun run_model(Model& m, const Tensor& tok, const Tensor& tgt, TttForm form) {
    m.set_ttt_form(form);
    m.zero_grad();
    ModelRun r;
    r.logits = m.forward(tok).clone();
    Tensor dlogits = Tensor::empty(r.logits.shape(), m.dtype());
    ops::cross_entropy(&dlogits, r.logits, tgt, 1.0 / static_cast<double>(tgt.numel()));
    m.backward(dlogits);
    for (const Parameter& p : m.parameters()) r.grads.push_back(p.grad.clone());
    m.set_ttt_form(TttForm::Auto);
    return r;
}
}  // namespace

TEST_CASE("model: the Loop and Flat forms give the Parallel form's logits and every gradient", "[model][ttt][ttt_loop]") {
    for (DType dt : {DType::F64, DType::F32}) {
        for (int C : {1, 3, 4, 16}) {
            ModelConfig c = tiny_config();
            c.ttt_chunk = C;
            c.ttt_layers = {0, 1};
            c.ttt_target = C == 3 ? TttTargetSource::HiddenStates : TttTargetSource::InputEmbed;
            Model m(c, dt);
            m.init_random(5);
            randomise_ttt(m, 600);
            Tensor tok = random_ints({3, 13}, 7, 0, c.vocab_size), tgt = random_ints({39}, 8, 0, c.vocab_size);
            ModelRun par = run_model(m, tok, tgt, TttForm::Parallel);
            for (TttForm form : {TttForm::Loop, TttForm::Flat}) {
                ModelRun r = run_model(m, tok, tgt, form);
                INFO(ttt_form_name(form) << ", C " << C << ", " << dtype_name(dt));
                // F64: reordering only (1e-12). F32: logits and grads are O(1) sums of a few
                // hundred rounded terms: 1e-5 as for parallel vs loop.
                const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
                CHECK(check_close(r.logits, par.logits, tol, 0, "logits"));
                for (size_t i = 0; i < r.grads.size(); ++i) CHECK(check_close(r.grads[i], par.grads[i], tol, tol, m.parameters()[i].name));
            }
        }
    }
}

TEST_CASE("model: Loop and Flat equal the chunk-by-chunk reference loop within 1e-5, also clipped and limited", "[model][ttt][ttt_loop]") {
    ModelConfig c = tiny_config();
    c.ttt_clip_tau = 0.05;
    c.ttt_layers = {0, 1};
    Model m(c);
    m.init_random(8);
    randomise_ttt(m, 200);
    Tensor tok = random_ints({2, 15}, 4, 0, c.vocab_size);
    for (TttForm form : {TttForm::Loop, TttForm::Flat})
        for (bool inference : {false, true})
            for (int limit : {-1, 0, 2}) {
                ForwardOptions a;
                a.inference = inference;
                a.ttt_update_limit = limit;
                Tensor y = reference_forward(m, tok, a);
                a.ttt_form = form;
                Tensor x = m.forward(tok, a).clone();
                INFO(ttt_form_name(form) << ", inference " << inference << ", limit " << limit);
                CHECK(check_close(x, y, 1e-5, 0, "form vs reference loop"));  // fp32 reordering only
            }
}

TEST_CASE("model: drop-in holds bit for bit in the Loop and Flat forms, training and inference", "[model][ttt][ttt_loop]") {
    const auto [with, without] = drop_in_configs();
    Model a(with), b(without);
    a.init_random(11);  // release init: conv = 0
    b.init_random(11);
    Tensor tok = random_ints({2, 16}, 6, 0, with.vocab_size);
    Tensor plain = b.forward(tok).clone();
    for (TttForm form : {TttForm::Loop, TttForm::Flat})
        for (bool inference : {false, true}) {
            ForwardOptions opt;
            opt.ttt_form = form;
            opt.inference = inference;
            INFO(ttt_form_name(form) << ", inference " << inference);
            CHECK(bitwise_equal(a.forward(tok, opt), plain));
        }
}

TEST_CASE("model: Flat training keeps B*d*f per TTT layer and nothing of size n; Auto picks by memory", "[model][ttt][ttt_loop]") {
    ModelConfig c = tiny_config();  // d = 8, C = 4
    Model m(c);
    m.init_random(3);
    randomise_ttt(m, 9);
    Tensor tok = random_ints({2, 40}, 1, 0, c.vocab_size);
    ForwardOptions flat;
    flat.ttt_form = TttForm::Flat;
    m.forward(tok, flat);
    const LayerActivations& a = m.activations(0);
    CHECK(a.ttt_w.shape() == Shape({2, 8, 12}));
    CHECK(!a.ttt_u.defined());
    CHECK(!a.ttt_v.defined());
    CHECK(!a.ttt_s.defined());
    // T*d <= 3n: n = 40 gives T = 10, 80 <= 120: Loop; with C = 2, T = 20, 160 > 120: Flat.
    CHECK(m.resolve_ttt_form({}, 40) == TttForm::Loop);
    ModelConfig c2 = c;
    c2.ttt_chunk = 2;
    CHECK(Model(c2).resolve_ttt_form({}, 40) == TttForm::Flat);
    CHECK(parse_ttt_form("flat") == TttForm::Flat);
    CHECK_THROWS_WITH(parse_ttt_form("scan"), Catch::Contains("expected auto, parallel, loop or flat"));
}

TEST_CASE("model: a backward after an inference forward of the Loop form says why it cannot run", "[model][ttt][ttt_loop]") {
    ModelConfig c = tiny_config();
    Model m(c);
    m.init_random(3);
    Tensor tok = random_ints({1, 9}, 1, 0, c.vocab_size);
    ForwardOptions inf;
    inf.inference = true;
    inf.ttt_form = TttForm::Loop;
    const Tensor& logits = m.forward(tok, inf);
    Tensor dl = Tensor::zeros(logits.shape());
    CHECK_THROWS_WITH(m.backward(dl), Catch::Contains("inference forward") && Catch::Contains("keeps no fast weights"));
}

TEST_CASE("model: the Flat form's training heap above a plain model's does not grow with n; Loop's and Parallel's do", "[model][ttt][ttt_loop]") {
    // What `make bench` measures at the bench shape, here on the tiny model: the tensor heap
    // a forward keeps for the backward, and the most held during forward + backward.
    struct Heap {
        int64_t kept, peak;
    };
    auto step = [](bool ttt, TttForm form, int n) {
        ModelConfig c = tiny_config();  // d = 8, f = 12, C = 4
        c.ttt_mode = ttt;
        if (!ttt) c.ttt_layers.clear();
        Model m(c);
        m.init_random(3);
        if (ttt) randomise_ttt(m, 9);
        m.set_ttt_form(form);
        Tensor tok = random_ints({1, n}, 1, 0, c.vocab_size);
        Tensor dlogits = random_tensor({n, c.vocab_size}, 2, 1e-3);
        const int64_t before = static_cast<int64_t>(Tensor::host_bytes_in_use());
        Tensor::reset_host_peak();
        m.forward(tok);
        const int64_t kept = static_cast<int64_t>(Tensor::host_bytes_in_use()) - before;
        m.backward(dlogits);
        return Heap{kept, static_cast<int64_t>(Tensor::host_bytes_peak()) - before};
    };
    auto extra = [&](TttForm form, int n) {
        Heap t = step(true, form, n), p = step(false, form, n);
        return Heap{t.kept - p.kept, t.peak - p.peak};
    };
    const int64_t w = 8 * 12 * 4;  // one fast weight d x f, F32
    for (int n : {40, 160}) {
        INFO("n = " << n);
        Heap flat = extra(TttForm::Flat, n);
        CHECK(flat.kept == w);  // W_{T-1}, and nothing of size n
        // The backward's scratch (recomputed U, V, dV; G, rebuilt W, delta) stays under the plain
        // model's own peak (its MLP backward's (n, f) buffers are larger): no more than W at any time.
        CHECK(flat.peak == w);
    }
    CHECK(extra(TttForm::Loop, 160).kept > 3 * extra(TttForm::Loop, 40).kept);          // every W_i: T d f
    CHECK(extra(TttForm::Parallel, 160).kept > 3 * extra(TttForm::Parallel, 40).kept);  // S and the deltas: 2 T d f
}

TEST_CASE("model: the training memory estimate counts what the TTT form at n keeps", "[model][ttt][ttt_loop]") {
    // ittt train refuses a run that cannot fit (memory_budget.h); the flat form must not be
    // refused for the parallel form's B*T*d*f buffers it never allocates.
    ModelConfig c = tiny_config();  // d = 8, f = 12, C = 4, one TTT layer
    Model m(c);
    const int64_t B = 2, n = 4000;  // T = 1000 chunks
    const double df = 8 * 12;
    m.set_ttt_form(TttForm::Parallel);
    CHECK(forward_bytes(m, B, n, true) == forward_bytes(c, B, n, true));
    m.set_ttt_form(TttForm::Loop);
    CHECK(forward_bytes(c, B, n, true) - forward_bytes(m, B, n, true) == Approx(2 * 4 * B * df * 1000));  // T d f instead of 2 T d f
    m.set_ttt_form(TttForm::Flat);
    CHECK(forward_bytes(c, B, n, true) - forward_bytes(m, B, n, true) == Approx(2 * 4 * B * df * (2 * 1000 - 1)));  // d f
}
