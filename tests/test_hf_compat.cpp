// Hugging Face compatibility, checked without Python.
//
// The fixture (tests/fixtures/make_hf_qwen3_fixture.py): Qwen3 checkpoints written by
// transformers' save_pretrained, sharded and single-file, BF16 and F16, read with ittt's
// safetensors reader and checked against what transformers and torch said about them:
// every shard parses, the index names every tensor exactly once, and each tensor widened
// to F32 has the values torch widened it to. (Loading them into a Model and comparing the
// logits is the checkpoint loader's test.)
//
// data/configs: every file carries the keys transformers needs to build the network ittt
// builds (tests/fixtures/check_hf_configs.py checks the same in transformers itself).
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "io/atomic_file.h"
#include "io/config_json.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace ittt;

namespace {

struct Variant {
    const char* name;
    bool sharded, tied, lm_head_stored;
    const char* dtype;
};
const Variant kVariants[] = {
    {"tied_bf16_sharded", true, true, false, "BF16"},
    {"untied_bf16_sharded", true, false, true, "BF16"},
    {"tied_lm_head_f16", false, true, true, "F16"},
};

std::string dir_of(const Variant& v) { return test::fixture_path(std::string("hf_qwen3/") + v.name); }

}  // namespace

TEST_CASE("HF fixture: every shard parses, the index maps each tensor to the shard that holds it", "[io][safetensors][hf]") {
    for (const Variant& v : kVariants) {
        INFO(v.name);
        const std::string dir = dir_of(v);
        std::map<std::string, std::string> where;  // tensor -> file, from the files themselves
        std::vector<std::string> files;
        if (v.sharded) {
            Json index = Json::parse(read_file(dir + "/model.safetensors.index.json"), "index");
            std::set<std::string> shards;
            for (const Json::Member& m : index.at("weight_map").as_object()) shards.insert(m.second.as_string());
            files.assign(shards.begin(), shards.end());
            CHECK(files.size() >= 2);
            int64_t total = 0;
            for (const std::string& f : files) {
                SafetensorsFile st = load_safetensors(dir + "/" + f);
                CHECK(st.metadata.at("format") == "pt");
                for (const NamedTensor& t : st.tensors) {
                    CHECK(where.emplace(t.name, f).second);  // no tensor in two shards
                    total += t.tensor.numel();
                }
            }
            for (const Json::Member& m : index.at("weight_map").as_object()) CHECK(where.at(m.first) == m.second.as_string());
            CHECK(where.size() == index.at("weight_map").size());
            CHECK(index.at("metadata").at("total_parameters").as_int64() == total);
        } else {
            files = {"model.safetensors"};
            for (const NamedTensor& t : load_safetensors(dir + "/model.safetensors").tensors) where[t.name] = "model.safetensors";
        }
        CHECK(where.count("model.embed_tokens.weight") == 1);
        CHECK(where.count("lm_head.weight") == (v.lm_head_stored ? 1u : 0u));
        CHECK(where.size() == 1 + 2 * 11 + 1 + (v.lm_head_stored ? 1 : 0));  // embed, 2 layers x 11, final norm

        Json config = Json::parse(read_file(dir + "/config.json"), "config.json");
        CHECK(config.at("tie_word_embeddings").as_bool() == v.tied);
        CHECK(config.at("model_type").as_string() == "qwen3");
        CHECK(Json::parse(read_file(dir + "/generation_config.json"), "g").at("eos_token_id").as_int() == 1202);
    }
}

TEST_CASE("HF fixture: BF16 and F16 tensors widen to the F32 values torch gave them", "[io][safetensors][hf]") {
    for (const Variant& v : kVariants) {
        INFO(v.name);
        const std::string dir = dir_of(v);
        Json ref = Json::parse(read_file(test::fixture_path(std::string("hf_qwen3/") + v.name + ".reference.json")), "reference");
        std::map<std::string, SafetensorsFile> files;
        int checked = 0;
        for (const Json::Member& m : ref.at("tensors").as_object()) {
            INFO("tensor " << m.first);
            const Json& r = m.second;
            const std::string file = r.at("file").as_string();
            if (!files.count(file)) files.emplace(file, load_safetensors(dir + "/" + file));
            const Tensor* t = files.at(file).find(m.first);
            REQUIRE(t != nullptr);
            CHECK(r.at("dtype").as_string() == v.dtype);
            CHECK(t->dtype() == DType::F32);
            Shape shape;
            for (const Json& d : r.at("shape").as_array()) shape.push_back(d.as_int64());
            CHECK(t->shape() == shape);
            std::vector<double> x = t->to_f64_vector();
            for (size_t i = 0; i < r.at("first").size(); ++i) CHECK(x[i] == r.at("first").at(i).as_number());  // exact
            double sum = 0, sum_abs = 0;
            for (double e : x) sum += e, sum_abs += std::fabs(e);
            // Exact widened values, summed in double in another order than torch's: at most
            // a few ulps of the sum of magnitudes.
            CHECK(std::fabs(sum - r.at("sum").as_number()) <= 1e-12 * sum_abs);
            CHECK(std::fabs(sum_abs - r.at("sum_abs").as_number()) <= 1e-12 * sum_abs);
            ++checked;
        }
        CHECK(checked == 1 + 2 * 11 + 1 + (v.lm_head_stored ? 1 : 0));
    }
}

TEST_CASE("HF fixture: the reference logits file holds the token ids and the logits transformers computed", "[io][safetensors][hf]") {
    for (const Variant& v : kVariants) {
        INFO(v.name);
        SafetensorsFile ref = load_safetensors(test::fixture_path(std::string("hf_qwen3/") + v.name + ".reference.safetensors"));
        const Tensor* ids = ref.find("input_ids");
        const Tensor* logits = ref.find("logits");
        REQUIRE(ids != nullptr);
        REQUIRE(logits != nullptr);
        CHECK(ids->dtype() == DType::I32);
        CHECK(ids->shape() == Shape{2, 16});
        CHECK(logits->shape() == Shape{2, 16, 1280});
        CHECK(ref.metadata.count("transformers") == 1);
        std::vector<int32_t> tok = ids->to_i32_vector();
        CHECK(tok[0] == 1201);  // <|im_start|>
        CHECK(tok[31] == 1279);  // a padded vocabulary row
        double peak = 0;
        for (double x : logits->to_f64_vector()) peak = std::max(peak, std::fabs(x));
        CHECK(peak > 1.0);  // logits of order 1, not the near-zero of a 0.02 init
        if (std::string(v.name) == "tied_bf16_sharded") {
            const Tensor* f64 = ref.find("logits_f64");
            REQUIRE(f64 != nullptr);
            // transformers' float32 run against its float64 run of the same weights: float32 rounding.
            CHECK(test::check_close(*logits, *f64, 1e-5, 1e-5, "float32 vs float64 reference"));
        }
    }
}

// Keys a Qwen3 config.json must spell out for transformers to build what ittt builds: each
// either has a transformers default that differs from ittt's (head_dim 128, rope_theta 1e4,
// tie_word_embeddings false) or is how transformers decides the architecture and windows.
TEST_CASE("data/configs: every file has the keys transformers' Qwen3Config needs, consistent with ittt's reading", "[io][config][hf]") {
    namespace fs = std::filesystem;
    std::string dir = "data/configs";
    if (!fs::exists(dir)) dir = (fs::path(test::fixture_path("")) / ".." / ".." / "data" / "configs").lexically_normal().string();
    const char* const required[] = {"model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size",
                                    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                                    "rms_norm_eps", "tie_word_embeddings", "hidden_act", "attention_bias",
                                    "use_sliding_window", "layer_types"};
    int files = 0;
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".json") continue;
        const std::string path = e.path().string();
        INFO(path);
        ++files;
        Json j = Json::parse(read_file(path), path);
        for (const char* key : required) {
            INFO("key " << key);
            CHECK(j.find(key) != nullptr);
        }
        if (!j.find("use_sliding_window") || !j.find("layer_types")) continue;
        // rope_theta: transformers 4 reads "rope_theta", transformers 5 "rope_parameters".
        CHECK((j.find("rope_theta") || (j.find("rope_parameters") && j.at("rope_parameters").find("rope_theta"))));
        CHECK(j.at("model_type").as_string() == "qwen3");
        CHECK(j.at("architectures").at(0).as_string() == "Qwen3ForCausalLM");
        CHECK(j.at("hidden_act").as_string() == "silu");
        CHECK(j.at("attention_bias").as_bool() == false);  // ittt has no biases

        // transformers keeps sliding_window only when use_sliding_window is true; a file that
        // marks layers sliding without it gets full attention there, silently.
        const int n = j.at("num_hidden_layers").as_int();
        std::vector<bool> sliding;
        for (const Json& t : j.at("layer_types").as_array()) {
            CHECK((t.as_string() == "sliding_attention" || t.as_string() == "full_attention"));
            sliding.push_back(t.as_string() == "sliding_attention");
        }
        CHECK(static_cast<int>(sliding.size()) == n);
        const bool any = std::find(sliding.begin(), sliding.end(), true) != sliding.end();
        CHECK(j.at("use_sliding_window").as_bool() == any);
        const Json* window = j.find("sliding_window");
        if (any) CHECK((window && window->is_number() && window->as_int() > 0));
        else CHECK((!window || window->is_null()));
        // max_window_layers (where layer_types is absent, transformers slides layers >= it):
        // when present, it must describe the same layers.
        if (const Json* mwl = j.find("max_window_layers"))
            for (int l = 0; l < n; ++l) CHECK(sliding[static_cast<size_t>(l)] == (any && l >= mwl->as_int()));

        // And ittt reads the same network from it.
        ModelConfig c = load_config_json(path);
        CHECK(c.num_hidden_layers == n);
        for (int l = 0; l < n; ++l) CHECK((c.layer_type(l) == AttentionType::Sliding) == sliding[static_cast<size_t>(l)]);
        if (any) CHECK(c.sliding_window == window->as_int());
        CHECK(c.head_dim == j.at("head_dim").as_int());
        CHECK(c.tie_word_embeddings == j.at("tie_word_embeddings").as_bool());
    }
    CHECK(files >= 9);
}
