#include "model/config.h"

#include <algorithm>

#include "runtime/error.h"

namespace ittt {

const char* attention_type_name(AttentionType t) { return t == AttentionType::Full ? "full_attention" : "sliding_attention"; }
const char* ttt_target_source_name(TttTargetSource s) {
    return s == TttTargetSource::InputEmbed ? "input_embed" : "hidden_states";
}
const char* ttt_target_mode_name(TttTargetMode m) {
    switch (m) {
        case TttTargetMode::Learned: return "learned";
        case TttTargetMode::NextToken: return "next_token";
        case TttTargetMode::Reconstruction: return "reconstruction";
    }
    return "?";
}

AttentionType parse_attention_type(const std::string& s) {
    if (s == "full_attention" || s == "full") return AttentionType::Full;
    if (s == "sliding_attention" || s == "sliding") return AttentionType::Sliding;
    fail(cat("layer_types: expected \"full_attention\" or \"sliding_attention\", found \"", s, "\""));
}
TttTargetSource parse_ttt_target_source(const std::string& s) {
    if (s == "input_embed" || s == "input_embeds") return TttTargetSource::InputEmbed;
    if (s == "hidden_states") return TttTargetSource::HiddenStates;
    fail(cat("ttt_target: expected \"input_embed\" or \"hidden_states\", found \"", s, "\""));
}
TttTargetMode parse_ttt_target_mode(const std::string& s) {
    if (s == "learned") return TttTargetMode::Learned;
    if (s == "next_token") return TttTargetMode::NextToken;
    if (s == "reconstruction") return TttTargetMode::Reconstruction;
    fail(cat("ttt_target_mode: expected \"learned\", \"next_token\" or \"reconstruction\", found \"", s, "\""));
}

void ModelConfig::validate() const {
    auto positive = [](const char* field, long long v) { ITTT_CHECK(v > 0, "config: ", field, " must be > 0, found ", v); };
    positive("vocab_size", vocab_size);
    positive("hidden_size", hidden_size);
    positive("intermediate_size", intermediate_size);
    positive("num_hidden_layers", num_hidden_layers);
    positive("num_attention_heads", num_attention_heads);
    positive("num_key_value_heads", num_key_value_heads);
    positive("head_dim", head_dim);
    ITTT_CHECK(head_dim % 2 == 0, "config: head_dim must be even for RoPE, found ", head_dim);
    ITTT_CHECK(num_attention_heads % num_key_value_heads == 0, "config: num_attention_heads (", num_attention_heads,
               ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")");
    ITTT_CHECK(rope_theta > 0, "config: rope_theta must be > 0, found ", rope_theta);
    ITTT_CHECK(rms_norm_eps > 0, "config: rms_norm_eps must be > 0, found ", rms_norm_eps);
    ITTT_CHECK(layer_types.empty() || static_cast<int>(layer_types.size()) == num_hidden_layers, "config: layer_types has ",
               layer_types.size(), " entries, expected num_hidden_layers = ", num_hidden_layers);
    bool any_sliding = std::find(layer_types.begin(), layer_types.end(), AttentionType::Sliding) != layer_types.end();
    ITTT_CHECK(!any_sliding || sliding_window > 0, "config: layer_types has sliding_attention layers but sliding_window is ",
               sliding_window, " (expected > 0)");
    ITTT_CHECK(sliding_window >= 0, "config: sliding_window must be >= 0, found ", sliding_window);
    for (int l : ttt_layers)
        ITTT_CHECK(l >= 0 && l < num_hidden_layers, "config: ttt_layers has layer ", l, ", expected 0..", num_hidden_layers - 1);
    if (ttt_mode) {
        positive("ttt_chunk", ttt_chunk);
        ITTT_CHECK(!ttt_conv_offsets.empty(), "config: ttt_conv_offsets must not be empty");
        // Taps that reach past a chunk only ever see zero padding; a conv with no
        // tap inside the chunk would make the target identically zero.
        ITTT_CHECK(std::any_of(ttt_conv_offsets.begin(), ttt_conv_offsets.end(), [&](int o) { return o > -ttt_chunk && o < ttt_chunk; }),
                   "config: no offset in ttt_conv_offsets fits inside a chunk of ttt_chunk = ", ttt_chunk);
        if (ttt_target_mode == TttTargetMode::NextToken)
            ITTT_CHECK(std::find(ttt_conv_offsets.begin(), ttt_conv_offsets.end(), 1) != ttt_conv_offsets.end(),
                       "config: ttt_target_mode next_token needs offset +1 in ttt_conv_offsets");
        if (ttt_target_mode == TttTargetMode::Reconstruction)
            ITTT_CHECK(std::find(ttt_conv_offsets.begin(), ttt_conv_offsets.end(), 0) != ttt_conv_offsets.end(),
                       "config: ttt_target_mode reconstruction needs offset 0 in ttt_conv_offsets");
    }
}

bool ModelConfig::is_ttt_layer(int layer) const {
    return ttt_mode && std::find(ttt_layers.begin(), ttt_layers.end(), layer) != ttt_layers.end();
}

AttentionType ModelConfig::layer_type(int layer) const {
    return layer_types.empty() ? AttentionType::Full : layer_types[static_cast<size_t>(layer)];
}

int ModelConfig::window_for_layer(int layer) const { return layer_type(layer) == AttentionType::Sliding ? sliding_window : 0; }

}  // namespace ittt
