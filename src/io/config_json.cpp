#include "io/config_json.h"

#include "io/atomic_file.h"
#include "io/json.h"
#include "runtime/error.h"

namespace ittt {

namespace {

// transformers' Qwen3Config default for max_window_layers, used only when a
// config asks for sliding windows without listing layer_types.
constexpr int kHfDefaultMaxWindowLayers = 28;

// The value of an optional key, or nullptr when absent or null.
const Json* optional_field(const Json& root, const char* key) {
    const Json* v = root.find(key);
    return v && !v->is_null() ? v : nullptr;
}

// Runs an enum parser from model/config.h and re-words its error to name the
// file and the exact element ("layer_types[3]"); its own prefix names only the key.
template <class Parse>
auto parse_enum(const Json& v, Parse parse) -> decltype(parse(std::string())) {
    const std::string& s = v.as_string();
    try {
        return parse(s);
    } catch (const Error& e) {
        std::string msg = e.what();
        size_t colon = msg.find(": ");
        fail(cat(v.where(), ": ", colon == std::string::npos ? msg : msg.substr(colon + 2)));
    }
}

std::vector<int> int_list(const Json& v) {
    std::vector<int> out;
    for (const Json& e : v.as_array()) out.push_back(e.as_int());
    return out;
}

Json int_array(const std::vector<int>& values) {
    Json a = Json::array();
    for (int x : values) a.push_back(x);
    return a;
}

// ModelConfig::validate() says "config: ..."; the file name is more useful.
[[noreturn]] void rethrow_with_source(const Error& e, const std::string& source) {
    std::string msg = e.what();
    const std::string prefix = "config: ";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg = msg.substr(prefix.size());
    fail(cat(source, ": ", msg));
}

void refuse_unimplemented(const Json& root) {
    if (const Json* act = optional_field(root, "hidden_act"))
        if (act->as_string() != "silu")
            fail(cat(act->where(), ": expected \"silu\" (the only MLP activation implemented), found \"", act->as_string(), "\""));
    if (const Json* bias = optional_field(root, "attention_bias"))
        if (bias->as_bool())
            fail(cat(bias->where(), ": expected false (attention projections here have no bias), found true"));
    // Plain RoPE only: a scaled variant (YaRN, linear, dynamic) would silently
    // change every position's rotation.
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
        const Json* rope = optional_field(root, key);
        if (!rope) continue;
        for (const char* type_key : {"rope_type", "type"}) {
            const Json* t = optional_field(*rope, type_key);
            if (t && t->as_string() != "default")
                fail(cat(t->where(), ": expected \"default\" (scaled RoPE is not implemented), found \"", t->as_string(), "\""));
        }
    }
}

}  // namespace

ModelConfig parse_config_json(const std::string& text, const std::string& source) {
    Json root = Json::parse(text, source);
    root.as_object();
    refuse_unimplemented(root);

    ModelConfig c;
    c.vocab_size = root.at("vocab_size").as_int();
    c.hidden_size = root.at("hidden_size").as_int();
    c.intermediate_size = root.at("intermediate_size").as_int();
    c.num_hidden_layers = root.at("num_hidden_layers").as_int();
    c.num_attention_heads = root.at("num_attention_heads").as_int();
    ITTT_CHECK(c.num_attention_heads > 0, source, ": field 'num_attention_heads': must be > 0, found ", c.num_attention_heads);

    const Json* v = nullptr;
    c.num_key_value_heads = (v = optional_field(root, "num_key_value_heads")) ? v->as_int() : c.num_attention_heads;
    if ((v = optional_field(root, "head_dim"))) {
        c.head_dim = v->as_int();
    } else {
        ITTT_CHECK(c.hidden_size % c.num_attention_heads == 0, source,
                   ": field 'head_dim' is absent and hidden_size (", c.hidden_size,
                   ") is not a multiple of num_attention_heads (", c.num_attention_heads, ") to derive it from");
        c.head_dim = c.hidden_size / c.num_attention_heads;
    }
    // transformers >= 5 moves rope_theta into rope_parameters.
    if ((v = optional_field(root, "rope_theta"))) c.rope_theta = v->as_number();
    else if (const Json* rp = optional_field(root, "rope_parameters"))
        if ((v = optional_field(*rp, "rope_theta"))) c.rope_theta = v->as_number();
    if ((v = optional_field(root, "rms_norm_eps"))) c.rms_norm_eps = v->as_number();
    if ((v = optional_field(root, "tie_word_embeddings"))) c.tie_word_embeddings = v->as_bool();
    if ((v = optional_field(root, "sliding_window"))) c.sliding_window = v->as_int();
    if ((v = optional_field(root, "initializer_range"))) c.initializer_range = v->as_number();

    if ((v = optional_field(root, "layer_types"))) {
        for (const Json& e : v->as_array()) c.layer_types.push_back(parse_enum(e, parse_attention_type));
    } else if (const Json* use = optional_field(root, "use_sliding_window"); use && use->as_bool() && c.sliding_window > 0) {
        // What transformers derives when layer_types is absent: the layers from
        // max_window_layers on use the window.
        const Json* mwl = optional_field(root, "max_window_layers");
        int first_sliding = mwl ? mwl->as_int() : kHfDefaultMaxWindowLayers;
        for (int l = 0; l < c.num_hidden_layers; ++l)
            c.layer_types.push_back(l >= first_sliding ? AttentionType::Sliding : AttentionType::Full);
    }

    if ((v = optional_field(root, "ttt_mode"))) c.ttt_mode = v->as_bool();
    if ((v = optional_field(root, "ttt_layers"))) c.ttt_layers = int_list(*v);
    if ((v = optional_field(root, "ttt_chunk"))) c.ttt_chunk = v->as_int();
    if ((v = optional_field(root, "ttt_lr"))) c.ttt_lr = v->as_number();
    if ((v = optional_field(root, "ttt_proj"))) c.ttt_proj = v->as_bool();
    if ((v = optional_field(root, "ttt_target"))) c.ttt_target = parse_enum(*v, parse_ttt_target_source);
    if ((v = optional_field(root, "ttt_clip_tau"))) c.ttt_clip_tau = v->as_number();
    if ((v = optional_field(root, "ttt_target_mode"))) c.ttt_target_mode = parse_enum(*v, parse_ttt_target_mode);
    if ((v = optional_field(root, "ttt_conv_offsets"))) c.ttt_conv_offsets = int_list(*v);

    try {
        c.validate();
    } catch (const Error& e) {
        rethrow_with_source(e, source);
    }
    return c;
}

ModelConfig load_config_json(const std::string& path) { return parse_config_json(read_file(path), path); }

std::string config_to_json(const ModelConfig& c) {
    try {
        c.validate();
    } catch (const Error& e) {
        rethrow_with_source(e, "config_to_json");
    }
    bool any_sliding = false;
    for (AttentionType t : c.layer_types) any_sliding = any_sliding || t == AttentionType::Sliding;

    Json j = Json::object();
    // What transformers needs to pick the class and build the same network.
    j.set("architectures", Json::array({"Qwen3ForCausalLM"}));
    j.set("model_type", "qwen3");
    j.set("hidden_act", "silu");
    j.set("attention_bias", false);
    j.set("vocab_size", c.vocab_size);
    j.set("hidden_size", c.hidden_size);
    j.set("intermediate_size", c.intermediate_size);
    j.set("num_hidden_layers", c.num_hidden_layers);
    j.set("num_attention_heads", c.num_attention_heads);
    j.set("num_key_value_heads", c.num_key_value_heads);
    j.set("head_dim", c.head_dim);
    j.set("rope_theta", c.rope_theta);
    j.set("rms_norm_eps", c.rms_norm_eps);
    j.set("tie_word_embeddings", c.tie_word_embeddings);
    // transformers drops sliding_window unless use_sliding_window is true.
    j.set("use_sliding_window", any_sliding);
    j.set("sliding_window", c.sliding_window > 0 ? Json(c.sliding_window) : Json());
    if (!c.layer_types.empty()) {
        Json types = Json::array();
        for (AttentionType t : c.layer_types) types.push_back(attention_type_name(t));
        j.set("layer_types", types);
    }
    j.set("initializer_range", c.initializer_range);

    j.set("ttt_mode", c.ttt_mode);
    j.set("ttt_layers", int_array(c.ttt_layers));
    j.set("ttt_chunk", c.ttt_chunk);
    j.set("ttt_lr", c.ttt_lr);
    j.set("ttt_proj", c.ttt_proj);
    j.set("ttt_target", ttt_target_source_name(c.ttt_target));
    j.set("ttt_clip_tau", c.ttt_clip_tau);
    j.set("ttt_target_mode", ttt_target_mode_name(c.ttt_target_mode));
    j.set("ttt_conv_offsets", int_array(c.ttt_conv_offsets));
    return j.dump(2) + "\n";
}

void save_config_json(const std::string& path, const ModelConfig& cfg) { write_file_atomic(path, config_to_json(cfg)); }

}  // namespace ittt
