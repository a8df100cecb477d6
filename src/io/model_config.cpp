#include "io/model_config.h"

#include <algorithm>
#include <cmath>

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

// The valid range of every integer field: wide enough for any Qwen3 on the Hub,
// narrow enough that no product of them overflows the int64 shapes and no
// config asks for memory by the terabyte before memory_budget.h can say so.
const std::vector<ConfigRange>& config_ranges() {
    static const std::vector<ConfigRange> ranges = {
        {"vocab_size", 1, 1 << 24},       {"hidden_size", 1, 1 << 16},        {"intermediate_size", 1, 1 << 18},
        {"num_hidden_layers", 1, 1024},   {"num_attention_heads", 1, 1024},  {"num_key_value_heads", 1, 1024},
        {"head_dim", 2, 1024},            {"sliding_window", 0, 1 << 30},    {"ttt_chunk", 1, 1 << 20},
    };
    return ranges;
}

void ModelConfig::validate() const {
    const std::pair<const char*, int> fields[] = {
        {"vocab_size", vocab_size},       {"hidden_size", hidden_size},   {"intermediate_size", intermediate_size},
        {"num_hidden_layers", num_hidden_layers}, {"num_attention_heads", num_attention_heads},
        {"num_key_value_heads", num_key_value_heads}, {"head_dim", head_dim}, {"sliding_window", sliding_window},
        {"ttt_chunk", ttt_chunk},
    };
    for (const auto& [field, v] : fields)
        for (const ConfigRange& r : config_ranges())
            if (r.field == std::string(field))
                ITTT_CHECK(v >= r.min && v <= r.max, "config: ", field, " must be in [", r.min, ", ", r.max, "], found ", v);
    ITTT_CHECK(head_dim % 2 == 0, "config: head_dim must be even for RoPE, found ", head_dim);
    ITTT_CHECK(num_attention_heads % num_key_value_heads == 0, "config: num_attention_heads (", num_attention_heads,
               ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")");
    auto finite = [](const char* field, double v, bool positive) {
        ITTT_CHECK(std::isfinite(v) && (!positive || v > 0), "config: ", field, " must be ", positive ? "> 0 and " : "", "finite, found ", v);
    };
    finite("rope_theta", rope_theta, true);
    finite("rms_norm_eps", rms_norm_eps, true);
    ITTT_CHECK(rms_norm_eps < 1, "config: rms_norm_eps must be below 1, found ", rms_norm_eps);
    finite("initializer_range", initializer_range, false);
    ITTT_CHECK(initializer_range >= 0, "config: initializer_range must be >= 0, found ", initializer_range);
    // eta is a gradient-descent step size (docs/method.md): 0 makes the update a
    // no-op, a negative one would ascend. tau is a norm bound, 0 meaning off.
    finite("ttt_lr", ttt_lr, false);
    ITTT_CHECK(ttt_lr >= 0, "config: ttt_lr must be >= 0 (eta, the fast weight's step size; 0: no update), found ", ttt_lr);
    finite("ttt_clip_tau", ttt_clip_tau, false);
    ITTT_CHECK(ttt_clip_tau >= 0, "config: ttt_clip_tau must be >= 0 (0: no clipping), found ", ttt_clip_tau);
    finite("ttt_conv_init_std", ttt_conv_init_std, false);
    ITTT_CHECK(ttt_conv_init_std >= 0, "config: ttt_conv_init_std must be >= 0, found ", ttt_conv_init_std);
    ITTT_CHECK(layer_types.empty() || static_cast<int>(layer_types.size()) == num_hidden_layers, "config: layer_types has ",
               layer_types.size(), " entries, expected num_hidden_layers = ", num_hidden_layers);
    bool any_sliding = std::find(layer_types.begin(), layer_types.end(), AttentionType::Sliding) != layer_types.end();
    ITTT_CHECK(!any_sliding || sliding_window > 0, "config: layer_types has sliding_attention layers but sliding_window is ",
               sliding_window, " (expected > 0)");
    for (size_t i = 0; i < ttt_layers.size(); ++i) {
        const int l = ttt_layers[i];
        ITTT_CHECK(l >= 0 && l < num_hidden_layers, "config: ttt_layers has layer ", l, ", expected 0..", num_hidden_layers - 1);
        ITTT_CHECK(std::find(ttt_layers.begin(), ttt_layers.begin() + static_cast<long>(i), l) == ttt_layers.begin() + static_cast<long>(i),
                   "config: ttt_layers lists layer ", l, " twice");
    }
    ITTT_CHECK(ttt_conv_offsets.size() <= 64, "config: ttt_conv_offsets has ", ttt_conv_offsets.size(), " taps, expected at most 64");
    for (size_t i = 0; i < ttt_conv_offsets.size(); ++i) {
        const int o = ttt_conv_offsets[i];
        ITTT_CHECK(o >= -1024 && o <= 1024, "config: ttt_conv_offsets[", i, "] = ", o, ", expected in [-1024, 1024]");
        ITTT_CHECK(std::find(ttt_conv_offsets.begin(), ttt_conv_offsets.begin() + static_cast<long>(i), o) ==
                       ttt_conv_offsets.begin() + static_cast<long>(i),
                   "config: ttt_conv_offsets lists offset ", o, " twice");
    }
    if (ttt_mode) {
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
