// ittt in one file (notebooks-cpp/ittt_one_file/ittt.cpp) against the library: the same
// checkpoint and tokens must give the same logits, loss, and gradient of every parameter.
// The file is compiled in here (ITTT_ONE_FILE_NO_MAIN leaves out its main); its names live
// in namespace ittt_one_file, so they do not meet the library's.
#define ITTT_ONE_FILE_NO_MAIN
#include "../notebooks-cpp/ittt_one_file/ittt.cpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_io.h"
#include "ops/ops.h"
#include "test_process.h"

namespace {

// max |a - b| over a tensor, and max |b| (the library's values), for the report.
struct Difference {
    double max_abs = 0, max_ref = 0;
};

Difference compare(const float* mine, const std::vector<float>& ref) {
    Difference d;
    for (size_t i = 0; i < ref.size(); ++i) {
        d.max_abs = std::max(d.max_abs, std::abs(static_cast<double>(mine[i]) - ref[i]));
        d.max_ref = std::max(d.max_ref, std::abs(static_cast<double>(ref[i])));
    }
    return d;
}

// Both sides compute in F32 and differ only in the order of their sums (the library's GEMM
// blocks, threads and fused kernels against this file's plain loops). Each value is a chain
// of a few hundred F32 sums (a GEMM's inner dimension up to f = 192, attention over 32 keys,
// the fast weight over 4 chunks of 32 tokens, two layers): a relative error of ~1e-6 per
// operation grows to ~1e-5 of the tensor's largest magnitude; 2e-4 leaves a margin of ~10x
// and still catches any wrong term (a missing eta, a wrong tap, a chunk off by one), which
// moves values by O(1) relative to their magnitude.
constexpr double kRelative = 2e-4;

}  // namespace

TEST_CASE("ittt in one file: logits, loss and every gradient equal the library's on data/learned-mqar", "[one_file]") {
    const std::string dir = ittt::test::repo_file("data/learned-mqar");
    ittt_one_file::Model mine = ittt_one_file::load_checkpoint(dir);
    ittt::Model lib = ittt::load_model(dir);
    REQUIRE(mine.infos.size() == lib.parameters().size());

    // B = 2 sequences of n = 100 tokens: four chunks of 32 (the last one short, 4 tokens) and
    // more than the window of 32, so the fast weight moves three times and the window cuts.
    const int B = 2, n = 100, V = mine.cfg.vocab_size;
    ittt_one_file::Rng rng(5);
    std::vector<int> tokens(static_cast<size_t>(B) * n), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = rng.randint(0, V);
        targets[i] = i % 3 == 0 ? -1 : rng.randint(0, V);  // some rows unscored, as in training
    }

    ittt_one_file::Activations acts;
    const std::vector<float>& logits = ittt_one_file::forward(mine, tokens, B, n, acts);
    std::vector<float> dlogits;
    const ittt_one_file::LossResult loss = ittt_one_file::cross_entropy(&dlogits, logits, targets, V);

    const std::vector<int32_t> tokens32(tokens.begin(), tokens.end()), targets32(targets.begin(), targets.end());
    const ittt::Tensor& lib_logits = lib.forward(ittt::Tensor::from_vector(tokens32, {B, n}));
    ittt::Tensor lib_dlogits = ittt::Tensor::empty(lib_logits.shape(), lib_logits.dtype(), lib_logits.device());
    const ittt::Tensor lib_targets = ittt::Tensor::from_vector(targets32, {B * n});
    const ittt::ops::CrossEntropyResult lib_loss = ittt::ops::cross_entropy(&lib_dlogits, lib_logits, lib_targets, 1.0 / loss.scored);

    const Difference dl = compare(logits.data(), lib_logits.to_f32_vector());
    INFO("logits: max |mine - library| = " << dl.max_abs << " (max |logit| " << dl.max_ref << ")");
    CHECK(dl.max_abs <= kRelative * dl.max_ref);
    REQUIRE(lib_loss.n_scored == loss.scored);
    const double lib_mean = lib_loss.loss_sum / lib_loss.n_scored;
    INFO("loss: mine " << loss.loss << ", library " << lib_mean);
    CHECK(std::abs(loss.loss - lib_mean) <= kRelative * lib_mean);
    const Difference dd = compare(dlogits.data(), lib_dlogits.to_f32_vector());
    CHECK(dd.max_abs <= kRelative * dd.max_ref);

    // The same dlogits into both backwards (the library's own), so the gradients compare the
    // backward passes alone.
    std::fill(mine.grads.begin(), mine.grads.end(), 0.0f);
    const std::vector<float> shared_dlogits = lib_dlogits.to_f32_vector();
    ittt_one_file::backward(mine, shared_dlogits, acts);
    lib.zero_grad();
    lib.backward(lib_dlogits);

    double worst = 0;
    std::string worst_name;
    for (const ittt_one_file::ParameterInfo& info : mine.infos) {
        const std::vector<float> ref = lib.parameter(info.name).grad.to_f32_vector();
        REQUIRE(ref.size() == info.size);
        const Difference d = compare(mine.g(info.offset), ref);
        INFO("gradient of " << info.name << ": max |mine - library| = " << d.max_abs << " (max |grad| " << d.max_ref << ")");
        CHECK(d.max_ref > 0);  // every parameter gets a gradient here, the TTT target's included
        CHECK(d.max_abs <= kRelative * d.max_ref);
        if (d.max_ref > 0 && d.max_abs / d.max_ref > worst) {
            worst = d.max_abs / d.max_ref;
            worst_name = info.name;
        }
    }
    WARN("one file vs library: logits max diff " << dl.max_abs << " (of " << dl.max_ref << "), loss " << loss.loss << " vs "
                                                 << lib_mean << ", worst gradient " << worst_name << " at " << worst
                                                 << " of its largest value");
}

TEST_CASE("ittt in one file: a few training steps on MQAR lower the loss (smoke)", "[one_file]") {
    // The recipe's model from scratch on one small MQAR batch, three AdamW steps at a large
    // lr; the full recipe (1000 steps) is the lab's run, not a test.
    ittt_one_file::Model m = ittt_one_file::build_model(ittt_one_file::Config{});
    ittt_one_file::init_random(m, 1);
    ittt_one_file::TrainSettings s;
    s.steps = 3;
    s.warmup = 0;
    s.lr = 1e-2;
    const int B = 2, n = 128;
    const ittt_one_file::Batch batch = ittt_one_file::make_mqar_batch(B, n, m.cfg.vocab_size, 8, 96, 7);
    ittt_one_file::AdamState adam;
    ittt_one_file::Activations acts;
    std::vector<float> dlogits;
    std::vector<double> losses;
    for (int step = 1; step <= s.steps + 1; ++step) {
        std::fill(m.grads.begin(), m.grads.end(), 0.0f);
        const ittt_one_file::LossResult r =
            ittt_one_file::cross_entropy(&dlogits, ittt_one_file::forward(m, batch.tokens, B, n, acts), batch.targets, m.cfg.vocab_size);
        losses.push_back(r.loss);
        REQUIRE(r.scored == B * 8);  // 8 queries per sequence
        if (step > s.steps) break;
        ittt_one_file::backward(m, dlogits, acts);
        ittt_one_file::adamw_step(m, adam, s, step);
    }
    INFO("losses " << losses[0] << " -> " << losses.back());
    CHECK(std::abs(losses[0] - std::log(68.0)) < 0.2);  // at init every token is about equally likely
    CHECK(losses.back() < losses[0]);
}

TEST_CASE("ittt in one file: a bad checkpoint is refused by name", "[one_file]") {
    CHECK_THROWS_WITH(ittt_one_file::load_checkpoint("/nonexistent-ittt-dir"), Catch::Contains("cannot open /nonexistent-ittt-dir/config.json"));
}
