// `ittt eval --attention-distance` (src/driver/attention_distance.h): the probabilities it
// recomputes from q, k and lse, and the distances it reports from them.
#include <catch2/catch.hpp>

#include <cmath>

#include "driver/attention_distance.h"
#include "tiny_model.h"

using namespace ittt;
using ittt::test::tiny_config;

namespace {

// Row b of a (B, n) batch of random tokens, every position scored except position 3 of each row.
Batch batch_of(const ModelConfig& c, int B, int n, std::vector<std::vector<int>> starts, uint64_t seed) {
    Batch b;
    b.B = B;
    b.n = n;
    b.tokens = test::tokens_tensor(B, n, c.vocab_size, seed).to_i32_vector();
    b.targets.assign(static_cast<size_t>(B) * n, 1);
    for (int r = 0; r < B; ++r) b.targets[static_cast<size_t>(r * n + 3)] = IGNORE_TARGET;
    b.document_starts = std::move(starts);
    return b;
}

void forward(Model& m, const Batch& b) {
    ForwardOptions opt;
    opt.inference = true;
    opt.document_starts = b.document_starts;
    m.forward(b.tokens_tensor(), opt);
}

}  // namespace

TEST_CASE("attention distance: uniform attention gives the known distances, per document and window", "[attention_distance]") {
    // q = 0 makes every score 0: each query spreads its attention evenly over the c keys it
    // sees, c = min(i + 1, window) for in-document position i, so its mean distance is
    // (c - 1) / 2 and its share at distance >= W is max(0, c - W) / c.
    ModelConfig c = tiny_config();  // layer 0: sliding window 3; layer 1: full
    Model m(c);
    m.init_random(3);
    for (Parameter& p : m.parameters())
        if (p.name.find("q_proj") != std::string::npos) p.value.zero_();
    const Batch b = batch_of(c, 2, 12, {{0, 5}, {0}}, 7);  // row 0: documents of 5 and 7 tokens
    forward(m, b);
    AttentionDistance stats({2, 4});
    stats.add(m, b);

    for (int l = 0; l < 2; ++l) {
        const int window = l == 0 ? 3 : 0;
        double queries = 0, distance = 0, beyond2 = 0, beyond4 = 0;
        for (int r = 0; r < 2; ++r)
            for (int t = 0; t < 12; ++t) {
                if (t == 3) continue;  // unscored
                const int i = r == 0 && t >= 5 ? t - 5 : t;  // position in its document
                const double keys = window > 0 ? std::min(i + 1, window) : i + 1;
                queries += 1;
                distance += (keys - 1) / 2;
                beyond2 += std::max(0.0, keys - 2) / keys;
                beyond4 += std::max(0.0, keys - 4) / keys;
            }
        INFO("layer " << l);
        REQUIRE(stats.layers()[l].window == window);
        for (const AttentionDistance::Head& h : stats.layers()[l].heads) {
            CHECK(h.queries == queries);
            CHECK(h.mean_distance() == Approx(distance / queries).epsilon(1e-5));
            CHECK(h.share_beyond(0) == Approx(beyond2 / queries).epsilon(1e-5));
            CHECK(h.share_beyond(1) == Approx(beyond4 / queries).epsilon(1e-5));
        }
    }
    CHECK(stats.layers()[0].heads[0].share_beyond(1) == 0.0);  // nothing beyond the window of 3
}

TEST_CASE("attention distance: the recomputed probabilities reproduce the kernel, and a mismatched batch is refused",
          "[attention_distance]") {
    ModelConfig c = tiny_config();
    c.num_attention_heads = 4;  // two query heads per KV head: the grouping must be h / 2
    c.num_key_value_heads = 2;
    c.initializer_range = 0.5;  // peaked attention, far from uniform
    Model m(c);
    m.init_random(5);
    const Batch b = batch_of(c, 2, 16, {{0, 6, 11}, {0}}, 9);
    forward(m, b);
    AttentionDistance stats({4});
    stats.add(m, b);
    CHECK(stats.max_sum_error() < 1e-5);
    CHECK(stats.max_output_error() < 1e-5);
    CHECK(stats.layers()[1].heads[0].share_beyond(0) > 0.0);  // the full layer reads past 4 tokens

    // The statistics of a forward that ran other documents would be garbage: refused.
    const Batch other = batch_of(c, 2, 16, {{0, 8}, {0}}, 9);
    AttentionDistance wrong({4});
    CHECK_THROWS_WITH(wrong.add(m, other), Catch::Contains("documents"));
    const Batch shorter = batch_of(c, 2, 8, {}, 9);
    CHECK_THROWS_WITH(wrong.add(m, shorter), Catch::Contains("not those of a 2 x 8 batch"));
}
