// [cuda][model] tests: the whole model on --device cuda against the CPU.
//
// One F32 model is initialised on the CPU and copied twice: to the GPU (F32), and to a
// CPU model in F64 holding the same values exactly. The F64 CPU model is the oracle, so
// the differences measured are the GPU's own float rounding. Checked: forward logits
// (every gemm version, the inference options, the chunk-loop TTT form), the gradient of
// every parameter and a few Trainer steps in each TTT form (parallel, loop, flat: the CUDA
// model trains with the same Auto rule as the CPU), streaming decode with a Session, the
// drop-in property bit for bit, and, on a model whose projections tile exactly, the forward
// with the TF32 tensor-core gemm.
// Every case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it is skipped.
//
// Tolerances. On the CPU, the same tiny models in F32 differ from F64 by at most 1.3e-6 of
// the largest entry of each tensor (logits and every gradient; measured when these tests
// were written). The GPU's F32 rounding is of the same size, so per tensor
//   atol = 2e-5 * max|reference|,  rtol = 1e-4
// leaves a margin of more than 10 while catching any real error (wrong index, missing
// term), which moves entries by a sizeable fraction of the maximum.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/session.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "train/trainer.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;

namespace {

constexpr double kRelAtol = 2e-5, kRtol = 1e-4;

// Both layers TTT, targets from the hidden states (the other gradient path into dxn2).
ModelConfig tiny_config_hidden_targets() {
    ModelConfig c = tiny_config();
    c.ttt_layers = {0, 1};
    c.ttt_target = TttTargetSource::HiddenStates;
    return c;
}

// The same weights three ways: F32 on the CPU (as initialised), F64 on the CPU (the
// oracle, exact copies of the F32 values) and F32 on the GPU.
struct Models {
    Model f32, f64, cuda;
};
Models make_models(const ModelConfig& c, uint64_t seed) {
    Model m(c);
    m.init_random(seed);
    // Sizeable TTT conv and projection: the release's zero conv would make the TTT path vanish.
    randomise_ttt(m, seed + 100);
    Model f64 = m.converted(DType::F64, Device::CPU);
    Model cuda = m.converted(DType::F32, Device::CUDA);
    return {std::move(m), std::move(f64), std::move(cuda)};
}

double max_abs(const Tensor& t) {
    double m = 0;
    for (double x : t.to_f64_vector()) m = std::max(m, std::fabs(x));
    return m;
}

// The per-tensor check described at the top.
bool close_to_reference(const Tensor& actual, const Tensor& ref, const std::string& name, double rel_atol = kRelAtol,
                        double rtol = kRtol) {
    return check_close(actual.to(Device::CPU), ref, rel_atol * max_abs(ref) + 1e-30, rtol, name);
}

}  // namespace

TEST_CASE("CUDA model forward matches the CPU, with every gemm version", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const ModelConfig& c : {tiny_config(), tiny_config_hidden_targets()})
        for (int n : {1, 4, 13}) {  // one token, one whole chunk, several chunks with a short last one
            Models m = make_models(c, 7);
            Tensor tok = tokens_tensor(2, n, c.vocab_size, 3);
            Tensor ref = m.f64.forward(tok).clone();
            for (int v : test::versions_with_best("gemm", Device::CUDA)) {
                INFO("TTT layers " << c.ttt_layers.size() << ", n " << n << ", gemm version " << v);
                ScopedVersion use("gemm", v);
                CHECK(close_to_reference(m.cuda.forward(tok), ref, cat("logits n=", n, " gemm v", v)));
            }
        }
}

TEST_CASE("CUDA model forward matches the CPU with clipping, update limits and the chunk-loop form", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    ModelConfig c = tiny_config();
    c.ttt_clip_tau = 0.05;  // small enough that some chunks are clipped
    Models m = make_models(c, 8);
    Tensor tok = tokens_tensor(1, 15, c.vocab_size, 4);
    for (int limit : {-1, 0, 2})
        for (bool loop : {false, true}) {
            INFO("update limit " << limit << (loop ? ", chunk loop" : ", parallel form"));
            ForwardOptions opt;
            opt.inference = true;
            opt.ttt_update_limit = limit;
            opt.ttt_form = loop ? TttForm::Loop : TttForm::Parallel;  // the chunk loop: kernels/ttt_loop on either device
            Tensor ref = m.f64.forward(tok, opt).clone();
            CHECK(close_to_reference(m.cuda.forward(tok, opt), ref, cat("inference logits, limit ", limit, loop ? ", loop" : "")));
        }
}

TEST_CASE("CUDA model backward: every parameter gradient matches the CPU, in every TTT form", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const ModelConfig& c : {tiny_config(), tiny_config_hidden_targets()}) {
        Models m = make_models(c, 9);
        const int B = 2, n = 13;  // chunks 4, 4, 4 and a short last one of 1
        Tensor tok = tokens_tensor(B, n, c.vocab_size, 5);
        Tensor dlogits = random_tensor({B * n, c.vocab_size}, 6);
        m.f64.forward(tok);  // the CPU's Auto form (loop here); every form gives these gradients
        m.f64.zero_grad();
        m.f64.backward(dlogits.to_dtype(DType::F64));
        // Auto: the CPU's rule, T*d = 32 <= 3n = 39, so the loop form, as on the CPU.
        CHECK(m.cuda.resolve_ttt_form({}, n) == m.f64.resolve_ttt_form({}, n));
        for (TttForm form : {TttForm::Auto, TttForm::Parallel, TttForm::Loop, TttForm::Flat}) {
            m.cuda.set_ttt_form(form);
            m.cuda.forward(tok);
            m.cuda.zero_grad();
            m.cuda.backward(dlogits.to(Device::CUDA));
            CHECK(m.cuda.activations(c.ttt_layers[0]).ttt_form == (form == TttForm::Auto ? TttForm::Loop : form));
            const auto& ref = m.f64.parameters();
            const auto& got = m.cuda.parameters();
            REQUIRE(ref.size() == got.size());
            for (size_t i = 0; i < ref.size(); ++i) {
                INFO("TTT layers " << c.ttt_layers.size() << ", form " << ttt_form_name(form) << ", " << ref[i].name);
                CHECK(close_to_reference(got[i].grad, ref[i].grad, "grad " + ref[i].name));
            }
        }
    }
}

TEST_CASE("CUDA document boundaries: a packed batch's logits and gradients match the CPU's, in every TTT form", "[cuda][model][boundaries]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // The CPU oracle's packed forward equals its documents run separately (tests/test_boundaries.cpp).
    Models m = make_models(tiny_config_hidden_targets(), 12);
    const ModelConfig& c = m.f64.config();
    const int B = 2, n = 13;
    Tensor tok = tokens_tensor(B, n, c.vocab_size, 13);
    Tensor dlogits = random_tensor({B * n, c.vocab_size}, 14);
    for (TttForm form : {TttForm::Parallel, TttForm::Loop, TttForm::Flat}) {
        ForwardOptions opt;
        opt.ttt_form = form;
        opt.document_starts = {{0, 5, 7}, {0, 3}};  // lengths 5 + 2 + 6 and 3 + 10, chunk 4
        Tensor ref = m.f64.forward(tok, opt).clone();
        m.f64.zero_grad();
        m.f64.backward(dlogits.to_dtype(DType::F64));
        CHECK(close_to_reference(m.cuda.forward(tok, opt), ref, cat("packed logits, ", ttt_form_name(form))));
        m.cuda.zero_grad();
        m.cuda.backward(dlogits.to(Device::CUDA));
        const auto& want = m.f64.parameters();
        const auto& got = m.cuda.parameters();
        for (size_t i = 0; i < want.size(); ++i) {
            INFO(ttt_form_name(form) << ", " << want[i].name);
            CHECK(close_to_reference(got[i].grad, want[i].grad, "grad " + want[i].name));
        }
    }
}

TEST_CASE("CUDA drop-in: zero conv weights give the plain model bit for bit in every TTT form, and streaming", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const auto [with, without] = drop_in_configs();
    Model host_a(with), host_b(without);
    host_a.init_random(11);  // release init: conv = 0
    host_b.init_random(11);  // same names, same seeds: identical shared weights
    Model a = host_a.converted(DType::F32, Device::CUDA), b = host_b.converted(DType::F32, Device::CUDA);
    for (int n : {1, 7, 16}) {
        Tensor tok = tokens_tensor(2, n, with.vocab_size, 6);
        Tensor plain = b.forward(tok).to(Device::CPU);
        for (TttForm form : {TttForm::Parallel, TttForm::Loop, TttForm::Flat})
            for (bool inference : {false, true}) {
                ForwardOptions opt;
                opt.ttt_form = form;
                opt.inference = inference;
                INFO("n = " << n << ", " << ttt_form_name(form) << ", inference " << inference);
                CHECK(bitwise_equal(a.forward(tok, opt).to(Device::CPU), plain));
            }
    }
    Session sa(a), sb(b);
    const std::vector<int32_t> prompt = tokens_tensor(1, 6, with.vocab_size, 7).to_i32_vector();
    CHECK(bitwise_equal(sa.prefill(prompt).to(Device::CPU), sb.prefill(prompt).to(Device::CPU)));
    for (int32_t t = 0; t < 9; ++t)
        CHECK(bitwise_equal(sa.decode(t % with.vocab_size).to(Device::CPU), sb.decode(t % with.vocab_size).to(Device::CPU)));
    CHECK(bitwise_equal(sa.fast_weight(0).to(Device::CPU), a.layer(0).down_proj.to(Device::CPU)));
}

TEST_CASE("CUDA Session prefill, decode and a mid-stream prompt match the CPU", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    ModelConfig c = tiny_config_hidden_targets();
    c.ttt_clip_tau = 0.5;  // decode clips every chunk update; on both devices
    Models m = make_models(c, 10);
    Session cpu(m.f64), gpu(m.cuda);
    const std::vector<int32_t> prompt = {1, 5, 9, 4, 7, 2};  // one whole chunk of 4 and 2 buffered rows
    CHECK(close_to_reference(gpu.prefill(prompt), cpu.prefill(prompt), "prefill logits"));
    Rng rng(11);
    for (int step = 0; step < 11; ++step) {  // crosses three chunk boundaries
        const int32_t token = static_cast<int32_t>(rng.randint(0, c.vocab_size));
        INFO("decode step " << step << ", position " << cpu.position());
        CHECK(close_to_reference(gpu.decode(token), cpu.decode(token), cat("decode logits at step ", step)));
        for (int l : c.ttt_layers) CHECK(gpu.buffered_rows(l) == cpu.buffered_rows(l));
    }
    // A prompt arriving mid-stream: 7 rows through the layers at once, across a chunk boundary.
    const std::vector<int32_t> more = {3, 8, 0, 6, 6, 1, 9};
    CHECK(close_to_reference(gpu.prefill(more), cpu.prefill(more), "mid-stream prompt logits"));
    for (int l : c.ttt_layers) {
        INFO("layer " << l);
        CHECK(close_to_reference(gpu.fast_weight(l), cpu.fast_weight(l), cat("fast weight of layer ", l)));
        CHECK(std::fabs(gpu.last_update_norm(l) - cpu.last_update_norm(l)) <= 1e-5 * cpu.last_update_norm(l) + 1e-12);
    }
}

TEST_CASE("CUDA training steps (forward, backward, clipping, AdamW) stay close to the CPU, in every TTT form", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    ModelConfig c = tiny_config();
    // Auto (the loop form here, T*d = 24 <= 3n = 27, as on the CPU), the flat form that rebuilds
    // each W_i in reverse, and the parallel form; the CPU reference trains in the same form.
    for (TttForm form : {TttForm::Auto, TttForm::Flat, TttForm::Parallel}) {
        INFO("TTT form " << ttt_form_name(form));
        Models m = make_models(c, 12);
        m.f64.set_ttt_form(form);
        m.cuda.set_ttt_form(form);
        TrainConfig tc;
        // Small shapes (ThreadSanitizer): one step; each runs ~60 grid-wide reductions, slow there.
        tc.steps = small_shapes() ? 1 : 3;
        tc.warmup = 0;
        tc.lr = 1e-2;
        // eps = 1 keeps the AdamW update a smooth function of the gradient. With the usual
        // 1e-8, the first update is lr * g / |g|: a gradient entry that is +1e-9 on one device
        // and -1e-9 on the other (float rounding around zero) moves its weight by +-lr, and the
        // parameters could not be compared. With eps = 1 the update moves by at most
        // lr * (gradient difference), which the tolerance below absorbs.
        tc.adam_eps = 1.0;
        const int B = 2, n = 9;
        BatchFn batches = random_batches(c, B, n);
        Trainer cpu(m.f64, tc, batches), gpu(m.cuda, tc, batches);
        for (int step = 1; step <= tc.steps; ++step) {
            StepStats a = cpu.step(), b = gpu.step();
            INFO("step " << step);
            CHECK(b.scored == a.scored);
            // Loss and gradient norm: sums of many terms rounded in F32 on the GPU, ~1e-6 relative.
            CHECK(std::fabs(b.loss - a.loss) <= 1e-5 * std::fabs(a.loss));
            CHECK(std::fabs(b.grad_norm - a.grad_norm) <= 1e-4 * a.grad_norm);
            CHECK(b.lr == a.lr);
        }
        // After 3 steps each weight moved by at most ~3 lr; the devices differ by the F32
        // rounding of the weights (6e-8 relative per step) and lr times the gradient
        // differences (~1e-6 of the largest gradient): rtol 1e-5 and atol 1e-6 hold both.
        const auto& ref = m.f64.parameters();
        const auto& got = m.cuda.parameters();
        for (size_t i = 0; i < ref.size(); ++i) {
            INFO(ref[i].name);
            CHECK(check_close(got[i].value.to(Device::CPU), ref[i].value, 1e-6, 1e-5, "trained " + ref[i].name));
        }
    }
}

TEST_CASE("CUDA model forward with tensor-core (TF32) projections stays within TF32 rounding of the CPU", "[cuda][model]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // d = 128, f = 256, Hq * hd = 128, and B * n = 128 rows: the q, o, gate, up, down and
    // TTT projections are multiples of the 128 x 128 x 32 tile, so "best" (0) runs them on
    // the tensor cores (k and v, N = 64, and the lm head, N = 260, run version 4).
    ModelConfig c;
    c.vocab_size = 260;
    c.hidden_size = 128;
    c.intermediate_size = 256;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.rope_theta = 1e4;
    c.sliding_window = 64;
    c.layer_types = {AttentionType::Sliding, AttentionType::Full};
    c.ttt_mode = true;
    c.ttt_layers = {1};
    c.ttt_chunk = 32;
    c.validate();
    Models m = make_models(c, 13);
    Tensor tok = tokens_tensor(2, 64, c.vocab_size, 14);
    Tensor ref = m.f64.forward(tok).clone();
    {
        // Version 4 (F32 everywhere): the F32 tolerance.
        ScopedVersion use("gemm", 4);
        CHECK(close_to_reference(m.cuda.forward(tok), ref, "logits, gemm v4 (F32)"));
    }
    // TF32: ~5e-4 relative error per projection (10-bit mantissa, errors of the K products
    // adding in quadrature like the result itself), a dozen projections in a row, adding in
    // quadrature: ~2e-3 of the largest logit; 2e-2 leaves a margin of ~10.
    ScopedVersion tf32("gemm", 5);
    CHECK(close_to_reference(m.cuda.forward(tok), ref, "logits, gemm v5 (TF32 projections)", 2e-2, 0));
}
