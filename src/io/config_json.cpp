#include "io/config_json.h"

#include <algorithm>
#include <cstdio>

#include "io/atomic_file.h"
#include "io/json.h"
#include "runtime/error.h"

namespace ittt {

namespace {

// The value of an optional key, or nullptr when absent or null.
const Json* optional_field(const Json& root, const char* key) {
    const Json* v = root.find(key);
    return v && !v->is_null() ? v : nullptr;
}

// Runs an enum parser from io/model_config.h and re-words its error to name the
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
    if (const Json* type = optional_field(root, "model_type"))
        if (type->as_string() != "qwen3")
            fail(cat(type->where(), ": expected \"qwen3\" (the only architecture implemented), found \"", type->as_string(), "\""));
    if (const Json* act = optional_field(root, "hidden_act"))
        if (act->as_string() != "silu")
            fail(cat(act->where(), ": expected \"silu\" (the only MLP activation implemented), found \"", act->as_string(), "\""));
    if (const Json* bias = optional_field(root, "attention_bias"))
        if (bias->as_bool())
            fail(cat(bias->where(), ": expected false (attention projections here have no bias), found true"));
    // Plain RoPE only: a scaled variant (YaRN, linear, dynamic) would silently
    // change every position's rotation. transformers 5 lets a non-null
    // rope_scaling replace rope_parameters whole, so any rope_scaling is refused.
    if (const Json* scaling = optional_field(root, "rope_scaling"))
        fail(cat(scaling->where(), ": expected null (RoPE scaling is not implemented; transformers 5 would use this in place of "
                                   "rope_parameters), found ", scaling->dump()));
    if (const Json* rope = optional_field(root, "rope_parameters")) {
        rope->as_object();
        for (const char* type_key : {"rope_type", "type"}) {
            const Json* t = optional_field(*rope, type_key);
            if (t && t->as_string() != "default")
                fail(cat(t->where(), ": expected \"default\" (scaled RoPE is not implemented), found \"", t->as_string(), "\""));
        }
        if (const Json* f = optional_field(*rope, "partial_rotary_factor"))
            if (f->as_number() != 1.0)
                fail(cat(f->where(), ": expected 1 (RoPE on every dimension of a head), found ", f->dump()));
        for (const Json::Member& m : rope->as_object())
            if (m.second.is_object())
                fail(cat(m.second.where(), ": RoPE parameters per layer type are not implemented (one rope_parameters for all layers)"));
    }
    if (const Json* f = optional_field(root, "partial_rotary_factor"))
        if (f->as_number() != 1.0) fail(cat(f->where(), ": expected 1 (RoPE on every dimension of a head), found ", f->dump()));
}

}  // namespace

ModelConfig parse_config_json(const std::string& text, const std::string& source, std::vector<std::string>* defaults_used,
                              TttTensors ttt_tensors) {
    Json root = Json::parse(text, source);
    root.as_object();
    refuse_unimplemented(root);

    // One line per default taken, naming the key, the value and whose default it is.
    std::vector<std::string> taken;  // the keys that took a default
    auto used = [&](const char* key, const std::string& value, const char* whose) {
        taken.push_back(key);
        if (defaults_used) defaults_used->push_back(cat(source, ": '", key, "' is absent: ", value, " (", whose, ")"));
    };
    const char* const kHf = "transformers' Qwen3Config default";
    const char* const kRelease = "the In-Place TTT release's default";
    auto num = [](double x) { return Json(x).dump(); };

    ModelConfig c;
    c.vocab_size = root.at("vocab_size").as_int();
    c.hidden_size = root.at("hidden_size").as_int();
    c.intermediate_size = root.at("intermediate_size").as_int();
    c.num_hidden_layers = root.at("num_hidden_layers").as_int();
    c.num_attention_heads = root.at("num_attention_heads").as_int();
    ITTT_CHECK(c.num_attention_heads > 0, source, ": field 'num_attention_heads': must be > 0, found ", c.num_attention_heads);

    const Json* v = nullptr;
    // transformers: an absent num_key_value_heads is 32, an explicit null means "as many as the query heads".
    if ((v = root.find("num_key_value_heads")) && v->is_null()) c.num_key_value_heads = c.num_attention_heads;
    else if (v) c.num_key_value_heads = v->as_int();
    else c.num_key_value_heads = hf_default::kNumKeyValueHeads, used("num_key_value_heads", num(c.num_key_value_heads), kHf);
    if ((v = optional_field(root, "head_dim"))) c.head_dim = v->as_int();
    else c.head_dim = hf_default::kHeadDim, used("head_dim", num(c.head_dim), kHf);
    // transformers >= 5 keeps rope_theta in rope_parameters and takes it from there first;
    // a top-level rope_theta (transformers 4) comes next, then RoPE's default theta.
    const Json* rp = optional_field(root, "rope_parameters");
    if (rp && (v = optional_field(*rp, "rope_theta"))) c.rope_theta = v->as_number();
    else if ((v = optional_field(root, "rope_theta"))) c.rope_theta = v->as_number();
    else c.rope_theta = hf_default::kRopeTheta, used("rope_theta", num(c.rope_theta), "transformers' default_theta for RoPE");
    if ((v = optional_field(root, "rms_norm_eps"))) c.rms_norm_eps = v->as_number();
    else c.rms_norm_eps = hf_default::kRmsNormEps, used("rms_norm_eps", num(c.rms_norm_eps), kHf);
    if ((v = optional_field(root, "tie_word_embeddings"))) c.tie_word_embeddings = v->as_bool();
    else c.tie_word_embeddings = hf_default::kTieWordEmbeddings, used("tie_word_embeddings", "false", kHf);
    if ((v = optional_field(root, "initializer_range"))) c.initializer_range = v->as_number();
    else c.initializer_range = hf_default::kInitializerRange, used("initializer_range", num(c.initializer_range), kHf);
    if (!optional_field(root, "hidden_act")) used("hidden_act", "\"silu\"", kHf);
    if (!optional_field(root, "attention_bias")) used("attention_bias", "false", kHf);

    // Sliding windows as transformers reads them: sliding_window counts only when
    // use_sliding_window is true; layer_types, when absent, slides the layers from
    // max_window_layers on.
    bool use_sliding = hf_default::kUseSlidingWindow;
    if ((v = optional_field(root, "use_sliding_window"))) use_sliding = v->as_bool();
    else used("use_sliding_window", "false", kHf);
    if (use_sliding) {
        if ((v = root.find("sliding_window")) && !v->is_null()) c.sliding_window = v->as_int();
        else if (!v) c.sliding_window = hf_default::kSlidingWindow, used("sliding_window", num(c.sliding_window), kHf);
    } else if ((v = optional_field(root, "sliding_window"))) {
        v->as_int();  // the type is still checked
    }
    if ((v = optional_field(root, "layer_types"))) {
        for (const Json& e : v->as_array()) c.layer_types.push_back(parse_enum(e, parse_attention_type));
        for (size_t i = 0; i < c.layer_types.size(); ++i)
            ITTT_CHECK(use_sliding || c.layer_types[i] != AttentionType::Sliding, v->as_array()[i].where(),
                       ": \"sliding_attention\" but use_sliding_window is ", root.find("use_sliding_window") ? "false" : "absent (false)",
                       ": transformers then drops sliding_window and runs full attention there; set use_sliding_window true, "
                       "or make the layer \"full_attention\"");
    } else if (use_sliding && c.sliding_window > 0) {
        int first_sliding = hf_default::kMaxWindowLayers;
        if ((v = optional_field(root, "max_window_layers"))) first_sliding = v->as_int();
        else used("max_window_layers", num(first_sliding), kHf);
        for (int l = 0; l < c.num_hidden_layers; ++l)
            c.layer_types.push_back(l >= first_sliding ? AttentionType::Sliding : AttentionType::Full);
    }
    // A window no layer uses changes nothing; dropped, so that what config_to_json
    // writes (null then, as transformers keeps it) reads back the same.
    if (std::find(c.layer_types.begin(), c.layer_types.end(), AttentionType::Sliding) == c.layer_types.end()) c.sliding_window = 0;

    // ttt_mode: the release's inference class defaults it off and its training class on;
    // here an absent ttt_mode follows the weights when the caller knows them (TTT on iff
    // ttt_* tensors are stored), else it is off: a plain Qwen3 checkpoint is the plain model.
    if ((v = optional_field(root, "ttt_mode"))) c.ttt_mode = v->as_bool();
    else if (ttt_tensors == TttTensors::Present) c.ttt_mode = true, used("ttt_mode", "true, as the weights hold ttt_* tensors", kRelease);
    else c.ttt_mode = false;
    // The other ttt_* keys matter only with TTT on; then each absent one takes the release's value.
    auto ttt_used = [&](const char* key, const std::string& value, const char* whose) {
        if (c.ttt_mode) used(key, value, whose);
    };
    if ((v = optional_field(root, "ttt_layers"))) c.ttt_layers = int_list(*v);
    else if (c.ttt_mode) c.ttt_layers = release_default::ttt_layers(), ttt_used("ttt_layers", int_array(c.ttt_layers).dump(), kRelease);
    if ((v = optional_field(root, "ttt_chunk"))) c.ttt_chunk = v->as_int();
    else c.ttt_chunk = release_default::kTttChunk, ttt_used("ttt_chunk", num(c.ttt_chunk), kRelease);
    if ((v = optional_field(root, "ttt_lr"))) c.ttt_lr = v->as_number();
    else c.ttt_lr = release_default::kTttLr, ttt_used("ttt_lr", num(c.ttt_lr), kRelease);
    if ((v = optional_field(root, "ttt_proj"))) c.ttt_proj = v->as_bool();
    else c.ttt_proj = release_default::kTttProj, ttt_used("ttt_proj", "true", kRelease);
    if ((v = optional_field(root, "ttt_target"))) c.ttt_target = parse_enum(*v, parse_ttt_target_source);
    else c.ttt_target = release_default::kTttTarget, ttt_used("ttt_target", "\"hidden_states\"", kRelease);
    // Keys of the release's forks and of ittt: their defaults are the release's behaviour.
    const char* const kAsRelease = "ittt's default, the release's behaviour";
    if ((v = optional_field(root, "ttt_clip_tau"))) c.ttt_clip_tau = v->as_number();
    else c.ttt_clip_tau = 0, ttt_used("ttt_clip_tau", "0 (no clipping)", kAsRelease);
    if ((v = optional_field(root, "ttt_target_mode"))) c.ttt_target_mode = parse_enum(*v, parse_ttt_target_mode);
    else c.ttt_target_mode = TttTargetMode::Learned, ttt_used("ttt_target_mode", "\"learned\"", kAsRelease);
    if ((v = optional_field(root, "ttt_conv_offsets"))) c.ttt_conv_offsets = int_list(*v);
    else c.ttt_conv_offsets = {-2, -1, 0, 1, 2}, ttt_used("ttt_conv_offsets", "[-2,-1,0,1,2]", kAsRelease);
    // Init-only keys (the forward never reads them): absent means the release's init, silently.
    if ((v = optional_field(root, "ttt_conv_init_std"))) c.ttt_conv_init_std = v->as_number();
    if ((v = optional_field(root, "ttt_proj_init"))) {
        const std::string s = v->as_string();
        ITTT_CHECK(s == "release" || s == "identity", v->where(), ": expected \"release\" or \"identity\", found \"", s, "\"");
        c.ttt_proj_init_identity = s == "identity";
    }

    try {
        c.validate();
    } catch (const Error& e) {
        // A value that fails may be a default (the release's ttt_layers reach layer 30): say which were.
        if (taken.empty()) rethrow_with_source(e, source);
        std::string keys;
        for (const std::string& k : taken) keys += (keys.empty() ? "" : ", ") + k;
        try {
            rethrow_with_source(e, source);
        } catch (const Error& named) {
            fail(cat(named.what(), " (absent keys that took a default: ", keys, ")"));
        }
    }
    return c;
}

ModelConfig load_config_json(const std::string& path, std::vector<std::string>* defaults_used, TttTensors ttt_tensors) {
    return parse_config_json(read_file(path), path, defaults_used, ttt_tensors);
}

void print_config_defaults(const std::vector<std::string>& lines, const char* who) {
    for (const std::string& l : lines) std::fprintf(stderr, "%s: %s\n", who, l.c_str());
}

namespace {
Json config_object(const ModelConfig& c);
}

std::string config_to_json(const ModelConfig& c) { return config_object(c).dump(2) + "\n"; }

std::string config_to_json(const ModelConfig& c, const Json& kept_keys) {
    Json j = config_object(c);
    ITTT_CHECK(kept_keys.is_object(), "config_to_json: the keys to keep must be a JSON object");
    for (const Json::Member& m : kept_keys.as_object())
        if (!j.contains(m.first)) j.set(m.first, m.second);
    return j.dump(2) + "\n";
}

namespace {
Json config_object(const ModelConfig& c) {
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
    j.set("sliding_window", any_sliding ? Json(c.sliding_window) : Json());
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
    // Written only when not the release's init, so existing config.json files read back unchanged.
    if (c.ttt_conv_init_std > 0) j.set("ttt_conv_init_std", c.ttt_conv_init_std);
    if (c.ttt_proj_init_identity) j.set("ttt_proj_init", "identity");
    return j;
}
}  // namespace

void save_config_json(const std::string& path, const ModelConfig& cfg) { write_file_atomic(path, config_to_json(cfg)); }

}  // namespace ittt
