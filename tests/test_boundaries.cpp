// Document boundaries in a packed batch (ForwardOptions::document_starts, docs/ttt.md
// "Document boundaries"): a packed batch equals its documents run separately, logits and every
// parameter gradient, in each TTT form, with full and sliding-window attention; the streaming
// Session with reset() at each boundary equals the packed prefill; a batch without boundaries
// runs the old path bit for bit; bad boundary lists are refused.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/session.h"
#include "tasks/tasks.h"
#include "ops/ops.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;

namespace {

struct Run {
    Tensor logits;              // (rows, V)
    std::vector<Tensor> grads;  // one per parameter, in the model's order
    Tensor qr, kr;              // layer 0's queries and keys after RoPE: (rows, Hq, hd), (rows, Hkv, hd)
};

// Forward and backward of the summed (not averaged) cross-entropy, so that the gradients of
// separate documents add up to the packed batch's.
Run run_sum_loss(Model& m, const Tensor& tokens, const Tensor& targets, const ForwardOptions& opt) {
    m.zero_grad();
    Run r;
    r.logits = m.forward(tokens, opt).clone();
    r.qr = m.activations(0).qr.clone();
    r.kr = m.activations(0).kr.clone();
    Tensor dlogits = Tensor::empty(r.logits.shape(), r.logits.dtype());
    ops::cross_entropy(&dlogits, r.logits, targets, 1.0);
    m.backward(dlogits);
    for (const Parameter& p : m.parameters()) r.grads.push_back(p.grad.clone());
    return r;
}

// Two rows of n = 13 tokens (chunk C = 4): lengths 5 + 2 + 6 and 3 + 10, none a multiple of C,
// two shorter than a chunk.
const int kRows = 2, kLength = 13;
const std::vector<std::vector<int>> kStarts = {{0, 5, 7}, {0, 3}};

int document_end(int b, size_t i) {
    const std::vector<int>& s = kStarts[static_cast<size_t>(b)];
    return i + 1 < s.size() ? s[i + 1] : kLength;
}

// Random targets, IGNORE_TARGET where the last token of a document would predict the next
// document's first token (what the text task does at a boundary).
std::vector<int32_t> packed_targets(int V) {
    std::vector<int32_t> t = random_ints({kRows, kLength}, 41, 0, V).to_i32_vector();
    for (int b = 0; b < kRows; ++b)
        for (size_t i = 1; i < kStarts[static_cast<size_t>(b)].size(); ++i)
            t[static_cast<size_t>(b * kLength + kStarts[static_cast<size_t>(b)][i] - 1)] = IGNORE_TARGET;
    return t;
}

// Row [begin, end) of a (B*n) id list as a (1, end - begin) tensor.
Tensor slice_ids(const std::vector<int32_t>& ids, int b, int begin, int end) {
    std::vector<int32_t> part(ids.begin() + b * kLength + begin, ids.begin() + b * kLength + end);
    return Tensor::from_vector(part, {1, end - begin});
}

void check_packed_equals_separate(Model& m, TttForm form) {
    const ModelConfig& c = m.config();
    std::vector<int32_t> ids = tokens_tensor(kRows, kLength, c.vocab_size, 40).to_i32_vector();
    std::vector<int32_t> targets = packed_targets(c.vocab_size);
    ForwardOptions opt;
    opt.ttt_form = form;
    ForwardOptions packed_opt = opt;
    packed_opt.document_starts = kStarts;
    Run packed = run_sum_loss(m, Tensor::from_vector(ids, {kRows, kLength}), Tensor::from_vector(targets, {kRows * kLength}), packed_opt);

    std::vector<Tensor> summed;
    for (const Tensor& g : packed.grads) summed.push_back(Tensor::zeros(g.shape(), g.dtype()));
    for (int b = 0; b < kRows; ++b)
        for (size_t i = 0; i < kStarts[static_cast<size_t>(b)].size(); ++i) {
            const int begin = kStarts[static_cast<size_t>(b)][i], end = document_end(b, i);
            INFO("row " << b << ", document " << i << " [" << begin << ", " << end << ")");
            Run alone = run_sum_loss(m, slice_ids(ids, b, begin, end), slice_ids(targets, b, begin, end).view({end - begin}), opt);
            // F64, the same sums in another order at most (the batch's GEMMs block rows differently): 1e-12.
            CHECK(check_close(packed.logits.rows(b * kLength + begin, b * kLength + end), alone.logits, 1e-12, 0, "document logits"));
            // RoPE's positions restart at 0: scores depend only on relative positions, so the logits
            // would not show a shift beyond rounding; the rotated queries and keys do.
            CHECK(check_close(packed.qr.rows(b * kLength + begin, b * kLength + end), alone.qr, 1e-12, 0, "queries after RoPE"));
            CHECK(check_close(packed.kr.rows(b * kLength + begin, b * kLength + end), alone.kr, 1e-12, 0, "keys after RoPE"));
            for (size_t p = 0; p < summed.size(); ++p) ops::add_inplace(summed[p], alone.grads[p]);
        }
    for (size_t p = 0; p < summed.size(); ++p) CHECK(check_close(packed.grads[p], summed[p], 1e-12, 1e-12, m.parameters()[p].name));

    // Not vacuous: without the boundaries the later documents read the earlier ones.
    Run unbounded = run_sum_loss(m, Tensor::from_vector(ids, {kRows, kLength}), Tensor::from_vector(targets, {kRows * kLength}), opt);
    std::vector<double> a = unbounded.logits.to_f64_vector(), p = packed.logits.to_f64_vector();
    double largest = 0;
    for (size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::fabs(a[i] - p[i]));
    CHECK(largest > 1e-3);
}

// tiny_config() with TTT on both layers and a learned conv target (randomised: the release's
// zero init would hide the target); sliding: layer 0 has a window of 3, else both layers full.
Model boundary_model(bool sliding, TttTargetSource source) {
    ModelConfig c = tiny_config();
    c.ttt_layers = {0, 1};
    c.ttt_target = source;
    if (!sliding) c.layer_types = {AttentionType::Full, AttentionType::Full};
    Model m(c, DType::F64);
    m.init_random(31);
    randomise_ttt(m, 700);
    return m;
}

}  // namespace

TEST_CASE("boundaries: a packed batch equals its documents run separately, logits and every gradient",
          "[model][ttt][boundaries]") {
    for (bool sliding : {false, true})
        for (TttTargetSource source : {TttTargetSource::InputEmbed, TttTargetSource::HiddenStates}) {
            Model m = boundary_model(sliding, source);
            REQUIRE(m.config().ttt_target_mode == TttTargetMode::Learned);
            for (TttForm form : {TttForm::Parallel, TttForm::Loop, TttForm::Flat}) {
                INFO((sliding ? "sliding window" : "full attention") << ", "
                     << (source == TttTargetSource::InputEmbed ? "input_embed" : "hidden_states") << ", " << ttt_form_name(form));
                check_packed_equals_separate(m, form);
            }
        }
}

TEST_CASE("boundaries: one document per row runs the path without boundaries bit for bit", "[model][ttt][boundaries]") {
    Model m = boundary_model(true, TttTargetSource::InputEmbed);
    Tensor tok = tokens_tensor(kRows, kLength, m.config().vocab_size, 42);
    for (TttForm form : {TttForm::Parallel, TttForm::Loop, TttForm::Flat}) {
        ForwardOptions opt;
        opt.ttt_form = form;
        Tensor plain = m.forward(tok, opt).clone();
        for (std::vector<std::vector<int>> starts : std::vector<std::vector<std::vector<int>>>{{{0}, {0}}, {{}, {0}}, {{}, {}}}) {
            opt.document_starts = starts;
            CHECK(bitwise_equal(m.forward(tok, opt), plain));
        }
        opt.document_starts.clear();
    }
}

TEST_CASE("boundaries: Session::reset() at each boundary gives the packed prefill's logits", "[model][session][boundaries]") {
    Model m = boundary_model(true, TttTargetSource::HiddenStates);
    const ModelConfig& c = m.config();
    std::vector<int32_t> ids = tokens_tensor(kRows, kLength, c.vocab_size, 43).to_i32_vector();
    for (TttForm form : {TttForm::Parallel, TttForm::Loop, TttForm::Flat}) {
        ForwardOptions opt;
        opt.inference = true;
        opt.ttt_form = form;
        opt.document_starts = kStarts;
        Tensor packed = m.forward(Tensor::from_vector(ids, {kRows, kLength}), opt).clone();
        Session s(m);
        for (int b = 0; b < kRows; ++b)
            for (size_t i = 0; i < kStarts[static_cast<size_t>(b)].size(); ++i) {
                const int begin = kStarts[static_cast<size_t>(b)][i], end = document_end(b, i);
                s.reset();
                std::vector<int32_t> doc(ids.begin() + b * kLength + begin, ids.begin() + b * kLength + end);
                INFO(ttt_form_name(form) << ", row " << b << ", document " << i);
                // F64: the stream's running W against the forms' sums, as the streaming tests (1e-10).
                CHECK(check_close(s.prefill(doc), packed.rows(b * kLength + begin, b * kLength + end), 1e-10, 1e-10, "stream vs packed"));
            }
    }
}

TEST_CASE("boundaries: bad document_starts are refused with errors that say what was expected", "[model][boundaries]") {
    Model m = boundary_model(false, TttTargetSource::InputEmbed);
    Tensor tok = tokens_tensor(kRows, kLength, m.config().vocab_size, 44);
    auto refused = [&](std::vector<std::vector<int>> starts, const std::string& what) {
        ForwardOptions opt;
        opt.document_starts = starts;
        CHECK_THROWS_WITH(m.forward(tok, opt), Catch::Contains(what));
    };
    refused({{0, 5}}, "one per row");
    refused({{1, 5}, {0}}, "must begin with 0");
    refused({{0, 5, 5}, {0}}, "strictly ascending");
    refused({{0, 13}, {0}}, "strictly ascending");
    Session s(m);
    ForwardOptions stream;
    stream.inference = true;
    stream.ttt_form = TttForm::Loop;
    stream.document_starts = {{0, 2}};
    ForwardState state = m.start_state();
    CHECK_THROWS_WITH(m.forward(tokens_tensor(1, 4, m.config().vocab_size, 45), stream, &state), Catch::Contains("Session::reset()"));
}
