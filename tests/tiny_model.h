// tiny_model.h: the tiny model the model-level tests share (tests/test_model.cpp,
// tests/test_cuda_model.cpp): small enough for finite differences over every
// weight, with a sliding-window TTT layer and a full-attention layer.
#pragma once
#include <utility>
#include "model/model.h"
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

// Gives the TTT conv and projection sizeable random values (N(0, 0.4^2)): the
// release's init (conv = 0) would make the TTT path vanish and the tests vacuous.
inline void randomise_ttt(Model& m, uint64_t seed) {
    for (Parameter& p : m.parameters())
        if (p.name.find("ttt_") != std::string::npos) p.value.copy_from(random_tensor(p.value.shape(), seed++, 0.4, p.value.dtype()));
}

}  // namespace ittt::test
