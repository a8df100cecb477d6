// bench_models.cpp: the model shape the benchmarks measure (bench_models.h), shared by
// build/ittt_bench (bench_model.cpp, bench_serve.cpp) and build/ittt_cp_bench.
#include "bench/bench_models.h"

#include <string>

#include "runtime/rng.h"

namespace ittt::bench {

ModelConfig bench_config(bool ttt, int chunk) {
    ModelConfig c;
    c.vocab_size = kBenchVocab;
    c.hidden_size = 128;
    c.intermediate_size = 384;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.rope_theta = 1e4;
    c.sliding_window = 64;
    c.layer_types.assign(4, AttentionType::Sliding);
    c.ttt_mode = ttt;
    if (ttt) c.ttt_layers = {1, 3};
    c.ttt_chunk = chunk;
    c.validate();
    return c;
}

void init_bench_weights(Model& m) {
    m.init_random(1);
    // The release's zero conv would make U, V and every delta exactly 0; give them
    // small values so the timed numbers are those of a trained model.
    uint64_t seed = 100;
    for (Parameter& p : m.parameters())
        if (p.name.find("ttt_conv") != std::string::npos) {
            float* w = p.value.data<float>();
            for (int64_t i = 0; i < p.value.numel(); ++i) w[i] = static_cast<float>(0.02 * normal_at(seed, static_cast<uint64_t>(i)));
            ++seed;
        }
}

Model bench_model(bool ttt, int chunk) {
    Model m(bench_config(ttt, chunk));
    init_bench_weights(m);
    return m;
}

}  // namespace ittt::bench
