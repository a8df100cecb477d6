// tiny_model.h: the tiny models the model-level tests share (tests/test_model.cpp,
// tests/test_cuda_model.cpp, the driver's tests): small enough for finite differences over every
// weight, with a sliding-window TTT layer and a full-attention layer.
#pragma once
#include <utility>
#include "model/model.h"
#include "train/trainer.h"
#include "test_util.h"

namespace ittt::test {

inline ModelConfig tiny_config() {
    ModelConfig c;
    c.vocab_size = 11;
    c.hidden_size = 8;
    c.intermediate_size = 12;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 4;
    c.rope_theta = 10000;
    c.layer_types = {AttentionType::Sliding, AttentionType::Full};
    c.sliding_window = 3;
    c.ttt_mode = true;
    c.ttt_layers = {0};
    c.ttt_chunk = 4;
    c.ttt_lr = 0.5;
    return c;
}

// The driver's probe model (tests/test_driver.cpp, tests/test_html_report.cpp): 16 tokens, both
// layers sliding-window with a TTT MLP, chunks of 4; large weights, so that logit changes are of
// order 1, far above F32 rounding.
inline ModelConfig probe_config() {
    ModelConfig c = tiny_config();
    c.vocab_size = 16;
    c.layer_types = {AttentionType::Sliding, AttentionType::Sliding};
    c.ttt_layers = {0, 1};
    c.initializer_range = 0.3;
    return c;
}

// The drop-in pair: tiny_config() with TTT on both layers, and the same model without TTT
// (same parameter names and seeds for every shared weight).
inline std::pair<ModelConfig, ModelConfig> drop_in_configs() {
    ModelConfig with = tiny_config();
    with.ttt_layers = {0, 1};
    ModelConfig without = with;
    without.ttt_mode = false;
    without.ttt_layers.clear();
    return {with, without};
}

// Token ids uniform in [0, V) as a (B, n) I32 tensor.
inline Tensor tokens_tensor(int B, int n, int V, uint64_t seed) { return random_ints({B, n}, seed, 0, V); }

// Next-token training batches (B, n) of random ids, seeded by step and micro-batch; every third
// position unscored, to exercise ignore_index.
inline BatchFn random_batches(const ModelConfig& c, int B, int n) {
    return [c, B, n](int64_t step, int micro, Tensor& tokens, Tensor& targets) {
        const Tensor all = tokens_tensor(B, n + 1, c.vocab_size, static_cast<uint64_t>(step * 10 + micro));
        tokens = Tensor::empty({B, n}, DType::I32);
        targets = Tensor::empty({static_cast<int64_t>(B) * n}, DType::I32);
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i) {
                tokens.data<int32_t>()[b * n + i] = all.data<int32_t>()[b * (n + 1) + i];
                targets.data<int32_t>()[b * n + i] = i % 3 == 2 ? -1 : all.data<int32_t>()[b * (n + 1) + i + 1];
            }
    };
}

// Gives the TTT conv and projection sizeable random values (N(0, scale^2)): the
// release's init (conv = 0) would make the TTT path vanish and the tests vacuous.
inline void randomise_ttt(Model& m, uint64_t seed, double scale = 0.4) {
    for (Parameter& p : m.parameters())
        if (p.name.find("ttt_") != std::string::npos) p.value.copy_from(random_tensor(p.value.shape(), seed++, scale, p.value.dtype()));
}

}  // namespace ittt::test
