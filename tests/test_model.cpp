// Model-level tests: the TTT layer's parallel form vs its chunk loop, causality,
// the drop-in property, streaming vs prefill, and a finite-difference check of
// every parameter tensor of a tiny model in double.
#include <cmath>

#include "model/model.h"
#include "model/session.h"
#include "ops/ops.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;

namespace {

Tensor tokens_tensor(int B, int n, int V, uint64_t seed) { return random_ints({B, n}, seed, 0, V); }

double mean_loss(Model& m, const Tensor& tokens, const Tensor& targets) {
    const Tensor& logits = m.forward(tokens);
    ops::CrossEntropyResult r = ops::cross_entropy(nullptr, logits, targets, 1.0);
    return r.loss_sum / static_cast<double>(r.n_scored);
}

}  // namespace

TEST_CASE("TTT parallel form equals the chunk-by-chunk loop", "[model][ttt]") {
    for (int n : {1, 5, 8, 13}) {
        for (int C : {1, 3, 4, 16}) {
            ModelConfig c = tiny_config();
            c.ttt_chunk = C;
            c.ttt_layers = {0, 1};
            Model m(c);
            m.init_random(7);
            randomise_ttt(m, 100);
            Tensor tok = tokens_tensor(2, n, c.vocab_size, 3);
            Tensor par = m.forward(tok).clone();
            ForwardOptions ref;
            ref.ttt_reference_loop = true;
            Tensor loop = m.forward(tok, ref).clone();
            INFO("n = " << n << ", C = " << C);
            // Same sums in a different order in fp32: 1e-5 absolute, as the issue asks.
            CHECK(check_close(par, loop, 1e-5, 0, "parallel vs loop logits"));
        }
    }
}

TEST_CASE("TTT parallel form equals the loop with clipping and update limits", "[model][ttt]") {
    ModelConfig c = tiny_config();
    c.ttt_clip_tau = 0.05;
    Model m(c);
    m.init_random(8);
    randomise_ttt(m, 200);
    Tensor tok = tokens_tensor(1, 15, c.vocab_size, 4);
    for (int limit : {-1, 0, 1, 2}) {
        ForwardOptions a, b;
        a.inference = b.inference = true;
        a.ttt_update_limit = b.ttt_update_limit = limit;
        b.ttt_reference_loop = true;
        Tensor par = m.forward(tok, a).clone();
        Tensor loop = m.forward(tok, b).clone();
        INFO("limit = " << limit);
        CHECK(check_close(par, loop, 1e-5, 0, "clipped parallel vs loop"));  // fp32 reordering only
    }
}

TEST_CASE("strict causality: a token changes no logit before it", "[model][ttt]") {
    ModelConfig c = tiny_config();
    c.ttt_layers = {0, 1};
    c.ttt_target = TttTargetSource::HiddenStates;
    Model m(c);
    m.init_random(9);
    randomise_ttt(m, 300);
    const int n = 13;
    Tensor tok = tokens_tensor(1, n, c.vocab_size, 5);
    Tensor base = m.forward(tok).clone();
    for (int p : {0, 3, 4, 7, 12}) {
        Tensor t2 = tok.clone();
        t2.data<int32_t>()[p] = (t2.data<int32_t>()[p] + 1) % c.vocab_size;
        Tensor changed = m.forward(t2).clone();
        std::vector<double> a = base.to_f64_vector(), b = changed.to_f64_vector();
        const int64_t V = c.vocab_size;
        for (int64_t i = 0; i < p * V; ++i) REQUIRE(a[static_cast<size_t>(i)] == b[static_cast<size_t>(i)]);
        bool later_changed = false;
        for (int64_t i = p * V; i < n * V; ++i) later_changed |= a[static_cast<size_t>(i)] != b[static_cast<size_t>(i)];
        CHECK(later_changed);  // the test would be vacuous if nothing moved
    }
}

TEST_CASE("drop-in: zero conv weights give the plain model bit for bit", "[model][ttt]") {
    ModelConfig with = tiny_config();
    with.ttt_layers = {0, 1};
    ModelConfig without = with;
    without.ttt_mode = false;
    without.ttt_layers.clear();
    Model a(with), b(without);
    a.init_random(11);  // release init: conv = 0, P = diag(N(0, 0.02^2))
    b.init_random(11);  // same names, same seeds: identical shared weights
    for (int n : {1, 7, 16}) {
        Tensor tok = tokens_tensor(2, n, with.vocab_size, 6);
        Tensor la = a.forward(tok).clone();
        Tensor lb = b.forward(tok).clone();
        INFO("n = " << n);
        CHECK(bitwise_equal(la, lb));
    }
}

TEST_CASE("streaming: prefill(n) equals prefill(k) then n-k decodes", "[model][session]") {
    for (DType dt : {DType::F64, DType::F32}) {
        ModelConfig c = tiny_config();
        c.ttt_layers = {0, 1};
        c.ttt_clip_tau = 0.2;
        Model m(c, dt);
        m.init_random(12);
        randomise_ttt(m, 400);
        const int n = 14;
        Tensor tok = tokens_tensor(1, n, c.vocab_size, 7);
        std::vector<int32_t> ids = tok.to_i32_vector();
        Session full(m);
        Tensor ref = full.prefill(ids);
        for (int k : {1, 3, 4, 8, 13}) {
            Session s(m);
            std::vector<int32_t> head(ids.begin(), ids.begin() + k);
            Tensor got = Tensor::empty({n, c.vocab_size}, dt);
            got.rows(0, k).copy_from(s.prefill(head));
            for (int t = k; t < n; ++t) got.rows(t, t + 1).copy_from(s.decode(ids[static_cast<size_t>(t)]).view({1, c.vocab_size}));
            INFO("k = " << k << (dt == DType::F64 ? " (F64)" : " (F32)"));
            // F64: only summation order differs (1e-10); F32: rounding of the same sums (2e-5).
            double tol = dt == DType::F64 ? 1e-10 : 2e-5;
            CHECK(check_close(got, ref, tol, tol, "streamed vs prefill logits"));
            CHECK(s.position() == n);
        }
        // reset() is a document boundary: the same tokens give the same logits again.
        full.reset();
        Tensor again = full.prefill(ids);
        CHECK(bitwise_equal(again, ref));
    }
}

TEST_CASE("streaming TTT state does not grow with the sequence", "[model][session]") {
    ModelConfig c = tiny_config();
    Model m(c);
    m.init_random(13);
    Session s(m);
    size_t bytes = s.ttt_state_bytes();
    CHECK(bytes == static_cast<size_t>((8 * 12 + 4 * 12 + 4 * 8) * 4));  // W (d x f) + Z and S_src buffers (C rows)
    s.prefill({1, 2, 3});
    for (int i = 0; i < 40; ++i) s.decode(i % c.vocab_size);
    CHECK(s.ttt_state_bytes() == bytes);
    CHECK(s.buffered_rows(0) == 43 % 4);
}

TEST_CASE("finite-difference check of every parameter of a tiny model (F64)", "[model][grad]") {
    struct Variant {
        const char* name;
        TttTargetSource source;
        TttTargetMode mode;
        bool proj;
        bool tied;
    };
    for (Variant var : {Variant{"embed target, learned, proj, tied", TttTargetSource::InputEmbed, TttTargetMode::Learned, true, true},
                        Variant{"hidden target, learned, no proj, untied", TttTargetSource::HiddenStates, TttTargetMode::Learned,
                                false, false},
                        Variant{"embed target, next-token fixed", TttTargetSource::InputEmbed, TttTargetMode::NextToken, true,
                                true}}) {
        ModelConfig c = tiny_config();
        c.ttt_target = var.source;
        c.ttt_target_mode = var.mode;
        c.ttt_proj = var.proj;
        c.tie_word_embeddings = var.tied;
        Model m(c, DType::F64);
        m.init_random(21);
        if (var.mode == TttTargetMode::Learned) randomise_ttt(m, 500);
        // Larger weights than the 0.02 init so every path carries a gradient well above FD noise.
        for (Parameter& p : m.parameters())
            if (p.name.find("norm") == std::string::npos && p.name.find("ttt_") == std::string::npos)
                ops::scale_inplace(p.value, 15.0);
        Tensor tok = tokens_tensor(2, 9, c.vocab_size, 8);
        Tensor tgt = tokens_tensor(2, 9, c.vocab_size, 9).view({18});
        tgt.data<int32_t>()[4] = -1;  // one ignored position

        m.zero_grad();
        const Tensor& logits = m.forward(tok);
        Tensor dlogits = Tensor::empty(logits.shape(), DType::F64);
        ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, tgt, 1.0);
        dlogits = dlogits.clone();
        ops::scale_inplace(dlogits, 1.0 / static_cast<double>(r.n_scored));
        m.backward(dlogits);

        for (Parameter& p : m.parameters()) {
            std::vector<double> fd = finite_difference(p.value, [&] { return mean_loss(m, tok, tgt); });
            INFO(var.name << ": " << p.name);
            // Central differences in double with h = 1e-6: error ~1e-9 on O(1) losses.
            CHECK(check_close(p.grad.to_f64_vector(), fd, 1e-7, 1e-5, p.name));
        }
    }
}
