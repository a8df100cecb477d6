// Hugging Face compatibility, checked without Python.
//
// The fixture (tests/fixtures/make_hf_qwen3_fixture.py): Qwen3 checkpoints written by
// transformers' save_pretrained, sharded and single-file, BF16 and F16, read with ittt's
// safetensors reader and checked against what transformers and torch said about them:
// every shard parses, the index names every tensor exactly once, and each tensor widened
// to F32 has the values torch widened it to. Then each loads into a Model (load_model:
// sharded or not, the config as transformers reads it) and gives transformers' logits;
// absent keys, a stored tied lm_head, TTT off and broken shards.
//
// data/configs: every file carries the keys transformers needs to build the network ittt
// builds (tests/fixtures/check_hf_configs.py checks the same in transformers itself).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <filesystem>
#include <map>
#include <set>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/config_json.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model_io.h"
#include "cli_util.h"
#include "test_process.h"
#include "test_util.h"

using namespace ittt;
using Catch::Contains;

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

// ---------------------------------------------------------------------------
// Loading transformers' checkpoints into a Model.

namespace {

namespace fs = std::filesystem;

// A copy of a fixture directory to change (the committed files stay untouched).
std::string copy_fixture(const Variant& v, const test::TempDir& tmp, const std::string& name) {
    const std::string out = tmp / name;
    fs::copy(dir_of(v), out, fs::copy_options::recursive);
    return out;
}

void edit_json(const std::string& path, const std::function<void(Json&)>& edit) {
    Json j = Json::parse(read_file(path), path);
    edit(j);
    write_file_atomic(path, j.dump(2) + "\n");
}

std::string load_error(const std::string& dir) {
    try {
        std::vector<std::string> notes;
        LoadOptions opt;
        opt.notes = &notes;
        load_model(dir, DType::F32, Device::CPU, opt);
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("HF fixture: each checkpoint loads and gives the logits transformers computed", "[hf][model]") {
    for (const Variant& v : kVariants) {
        INFO(v.name);
        std::vector<std::string> notes;
        LoadOptions opt;
        opt.notes = &notes;
        Model m = load_model(dir_of(v), DType::F32, Device::CPU, opt);
        CHECK(notes.empty());  // transformers' config.json spells out every key ittt reads
        CHECK(m.config().tie_word_embeddings == v.tied);
        CHECK_FALSE(m.config().ttt_mode);
        CHECK(m.config().rope_theta == 1e6);  // from rope_parameters (transformers 5)
        SafetensorsFile ref = load_safetensors(test::fixture_path(std::string("hf_qwen3/") + v.name + ".reference.safetensors"));
        Tensor logits = m.forward(*ref.find("input_ids"));
        Tensor expect = ref.find("logits")->view({2 * 16, 1280});
        // Both float32, same weights: the dot products of 64 and 128 terms summed in another
        // order than transformers' (measured 2026-12-01: max |err| 4.0e-6 on logits up to ~8).
        CHECK(test::check_close(logits, expect, 1e-5, 1e-5, cat(v.name, " logits vs transformers float32")));
        if (const Tensor* f64 = ref.find("logits_f64"))
            // Against the float64 run: ittt's own float32 rounding only (measured max 3.5e-6).
            CHECK(test::check_close(logits, f64->view({2 * 16, 1280}), 1e-5, 1e-5, cat(v.name, " logits vs transformers float64")));
    }
}

TEST_CASE("HF fixture: absent config keys take transformers' defaults, one note each, and change the model as transformers would",
          "[hf][model]") {
    test::TempDir tmp("ittt_hf");
    const Variant& tied = kVariants[0];
    const std::string dir = copy_fixture(tied, tmp, "no_keys");
    edit_json(dir + "/config.json", [](Json& j) {
        j.erase("rope_parameters");
        j.erase("tie_word_embeddings");
        j.erase("rms_norm_eps");
    });
    std::vector<std::string> notes;
    LoadOptions opt;
    opt.notes = &notes;
    // Untied by default: the tied checkpoint stores no lm_head.weight, which the model now needs.
    CHECK_THAT(load_error(dir), Contains("tensor 'lm_head.weight' is missing"));
    edit_json(dir + "/config.json", [](Json& j) { j.set("tie_word_embeddings", true); });
    Model m = load_model(dir, DType::F32, Device::CPU, opt);
    const std::string cfg = dir + "/config.json";
    CHECK(notes == std::vector<std::string>{cat(cfg, ": 'rope_theta' is absent: 10000 (transformers' default_theta for RoPE)"),
                                            cat(cfg, ": 'rms_norm_eps' is absent: 1e-06 (transformers' Qwen3Config default)")});
    CHECK(m.config().rope_theta == 1e4);
    // The CLI prints them on stderr, one line each, naming the subcommand.
    test::Result r = test::run_ittt(tmp, cat("forward --ckpt ", dir, " --tokens 1,2 --top 1"));
    CHECK(r.rc == 0);
    CHECK(test::lines_of(r.err) == std::vector<std::string>{"ittt forward: " + notes[0], "ittt forward: " + notes[1]});
}

TEST_CASE("HF fixture: a tied checkpoint that also stores lm_head.weight loads as transformers 5 loads it", "[hf][model]") {
    const Variant& stored = kVariants[2];  // tied_lm_head_f16: lm_head.weight == the embedding
    std::vector<std::string> notes;
    LoadOptions opt;
    opt.notes = &notes;
    Model equal = load_model(dir_of(stored), DType::F32, Device::CPU, opt);
    CHECK(equal.config().tie_word_embeddings);
    CHECK(notes.empty());

    // Different values: transformers 5 warns and does not tie; neither does ittt, with a note.
    test::TempDir tmp("ittt_hf");
    const std::string dir = copy_fixture(stored, tmp, "differs");
    SafetensorsFile f = load_safetensors(dir + "/model.safetensors");
    std::vector<NamedTensor> tensors;
    for (NamedTensor& t : f.tensors) {
        if (t.name == "lm_head.weight") {
            std::vector<float> x = t.tensor.to_f32_vector();
            x[5] += 0.5f;
            t.tensor = Tensor::from_vector(x, t.tensor.shape());
        }
        tensors.push_back(t);
    }
    save_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
    Model untied = load_model(dir, DType::F32, Device::CPU, opt);
    CHECK_FALSE(untied.config().tie_word_embeddings);
    REQUIRE(notes.size() == 1);
    CHECK_THAT(notes[0], Contains("tie_word_embeddings is true but the stored lm_head.weight differs from model.embed_tokens.weight (1 of 81920 values") &&
                             Contains("loaded untied with both, as transformers 5 does"));
    CHECK(untied.lm_head().to_f32_vector()[5] == tensors[0].tensor.to_f32_vector()[5]);
}

TEST_CASE("HF fixture: a plain checkpoint has TTT off; unsupported features and broken shards get named errors", "[hf][model]") {
    test::TempDir tmp("ittt_hf");
    const Variant& tied = kVariants[0];
    // ttt_mode absent and no ttt_* tensors: the plain model (the fixture has no ttt_* keys at all).
    CHECK_FALSE(load_model(dir_of(tied)).config().ttt_mode);
    const std::string on = copy_fixture(tied, tmp, "ttt_on");
    edit_json(on + "/config.json", [](Json& j) {
        j.set("ttt_mode", true);
        j.set("ttt_layers", Json::array({0}));
    });
    CHECK_THAT(load_error(on), Contains("ttt_mode is true but") && Contains("holds no ttt_* tensors") && Contains("ittt convert"));

    const std::string rope = copy_fixture(tied, tmp, "rope");
    edit_json(rope + "/config.json", [](Json& j) { j.set("rope_scaling", Json::parse(R"({"rope_type": "yarn", "factor": 4.0})", "r")); });
    CHECK_THAT(load_error(rope), Contains("config.json: field 'rope_scaling': expected null (RoPE scaling is not implemented"));

    // Shards: a missing one, a tensor in another shard than the index says, one not in the index.
    const std::string gone = copy_fixture(tied, tmp, "gone");
    fs::remove(gone + "/model-00002-of-00002.safetensors");
    CHECK_THAT(load_error(gone), Contains("model.safetensors.index.json: shard 'model-00002-of-00002.safetensors'") &&
                                     Contains("is not in"));
    const std::string moved = copy_fixture(tied, tmp, "moved");
    edit_json(moved + "/model.safetensors.index.json", [](Json& j) {
        Json map = j.at("weight_map");
        map.set("model.norm.weight", "model-00001-of-00002.safetensors");
        j.set("weight_map", map);
    });
    CHECK_THAT(load_error(moved), Contains("tensor 'model.norm.weight' is here, but the index") &&
                                      Contains("puts it in 'model-00001-of-00002.safetensors'"));
    const std::string unlisted = copy_fixture(tied, tmp, "unlisted");
    edit_json(unlisted + "/model.safetensors.index.json", [](Json& j) {
        Json map = j.at("weight_map");
        map.erase("model.norm.weight");
        j.set("weight_map", map);
    });
    CHECK_THAT(load_error(unlisted), Contains("tensor 'model.norm.weight' is not in the index"));
    const std::string escape = copy_fixture(tied, tmp, "escape");
    edit_json(escape + "/model.safetensors.index.json", [](Json& j) {
        Json map = j.at("weight_map");
        map.set("model.norm.weight", "../x.safetensors");
        j.set("weight_map", map);
    });
    CHECK_THAT(load_error(escape), Contains("field 'weight_map.model.norm.weight': expected a file name in the checkpoint directory"));
}

// ---------------------------------------------------------------------------
// ittt convert, continual training with --train-only, writing BF16 and shards.

namespace {

// Every tensor of a checkpoint as loaded (F32), by name.
std::map<std::string, Tensor> tensors_of(const std::string& dir) {
    std::map<std::string, Tensor> out;
    for (NamedTensor& t : read_checkpoint_tensors(dir).tensors.tensors) out[t.name] = t.tensor;
    return out;
}

Tensor fixture_logits(Model& m) {
    SafetensorsFile ref = load_safetensors(test::fixture_path("hf_qwen3/tied_bf16_sharded.reference.safetensors"));
    return m.forward(*ref.find("input_ids"));
}

}  // namespace

TEST_CASE("safetensors: F32 -> BF16 rounds to nearest even, as torch does", "[io][safetensors][hf]") {
    auto bits = [](uint32_t b) {
        float f;
        std::memcpy(&f, &b, 4);
        return f32_to_bf16(f);
    };
    CHECK(bits(0x3F800000u) == 0x3F80);  // 1.0 exactly
    CHECK(bits(0x3F808000u) == 0x3F80);  // a tie, even below: down
    CHECK(bits(0x3F818000u) == 0x3F82);  // a tie, odd below: up
    CHECK(bits(0x3F808001u) == 0x3F81);  // above the tie: up
    CHECK(bits(0xBF807FFFu) == 0xBF80);  // below the tie, negative: down in magnitude
    CHECK(bits(0x7F7FFFFFu) == 0x7F80);  // FLT_MAX rounds to +inf, as torch
    CHECK(bits(0xFF800000u) == 0xFF80);  // -inf stays
    CHECK((bits(0x7F800001u) & 0x7FC0) == 0x7FC0);  // a NaN stays a NaN (quieted)
}

TEST_CASE("ittt convert: --add-ttt keeps the logits bit for bit, --strip-ttt gives the plain model back, dtypes and shards",
          "[hf][cli]") {
    test::TempDir tmp("ittt_convert");
    const std::string plain = dir_of(kVariants[0]);  // tied_bf16_sharded, with tokenizer.json
    const std::string ttt = tmp / "ttt", back = tmp / "back", bf16 = tmp / "bf16", f32 = tmp / "f32";
    test::Result r = test::run_ittt(tmp, cat("convert ", plain, " ", ttt,
                                              " --add-ttt --ttt-layers 0,1 --ttt-chunk 8 --ttt-lr 0.3 --ttt-target hidden_states --seed 3"));
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.err.empty());  // the fixture's config spells out every key; -2..2 offsets: no warning
    Model original = load_model(plain);
    Model converted = load_model(ttt);
    const ModelConfig& c = converted.config();
    CHECK(c.ttt_mode);
    CHECK(c.ttt_layers == std::vector<int>{0, 1});
    CHECK(c.ttt_chunk == 8);
    CHECK(c.ttt_target == TttTargetSource::HiddenStates);
    CHECK(fs::exists(ttt + "/tokenizer.json"));
    CHECK(fs::exists(ttt + "/generation_config.json"));
    // Initialised as the release does: conv zero, P diagonal with std initializer_range (0.1 here).
    for (int l = 0; l < 2; ++l) {
        for (double x : converted.layer(l).ttt_conv.to_f64_vector()) CHECK(x == 0);
        std::vector<double> p = converted.layer(l).ttt_proj.to_f64_vector();
        double sum_sq = 0;
        int off_diagonal_nonzero = 0;
        for (int i = 0; i < 64; ++i)
            for (int j = 0; j < 64; ++j) {
                const double x = p[static_cast<size_t>(i * 64 + j)];
                if (i == j) sum_sq += x * x;
                else off_diagonal_nonzero += x != 0;
            }
        CHECK(off_diagonal_nonzero == 0);
        // 64 draws of N(0, 0.1^2): the sample std within 30% of 0.1 (chi-square, 64 dof: far beyond 3 sigma).
        CHECK(std::sqrt(sum_sq / 64) > 0.07);
        CHECK(std::sqrt(sum_sq / 64) < 0.13);
    }
    // Zero conv: zero target, zero update; the TTT MLPs are the plain MLPs exactly.
    CHECK(test::bitwise_equal(fixture_logits(converted), fixture_logits(original)));

    r = test::run_ittt(tmp, cat("convert ", ttt, " ", back, " --strip-ttt"));
    REQUIRE(r.rc == 0);
    std::map<std::string, Tensor> a = tensors_of(back), b = tensors_of(plain);
    REQUIRE(a.size() == b.size());
    for (const auto& [name, t] : b) {
        INFO(name);
        REQUIRE(a.count(name));
        CHECK(test::bitwise_equal(a.at(name), t));
    }
    Model stripped = load_model(back);
    CHECK_FALSE(stripped.config().ttt_mode);
    CHECK(test::bitwise_equal(fixture_logits(stripped), fixture_logits(original)));

    // BF16 in shards of at most 100 kB: the fixture's BF16 values come back exactly.
    r = test::run_ittt(tmp, cat("convert ", plain, " ", bf16, " --dtype bf16 --shard-size 100K"));
    REQUIRE(r.rc == 0);
    CHECK_FALSE(fs::exists(bf16 + "/model.safetensors"));
    Json index = Json::parse(read_file(bf16 + "/model.safetensors.index.json"), "index");
    std::set<std::string> shards;
    for (const Json::Member& m : index.at("weight_map").as_object()) shards.insert(m.second.as_string());
    CHECK(shards.size() >= 3);  // 312 kB of BF16 in 100 kB shards
    CHECK(index.at("metadata").at("total_size").as_int64() == 2 * index.at("metadata").at("total_parameters").as_int64());
    for (const std::string& s : shards) {
        const std::string bytes = read_file(bf16 + "/" + s);
        uint64_t n;
        std::memcpy(&n, bytes.data(), 8);
        Json header = Json::parse(bytes.substr(8, n), s);
        int tensors = 0;
        for (const Json::Member& m : header.as_object())
            if (m.first != "__metadata__") {
                CHECK(m.second.at("dtype").as_string() == "BF16");
                ++tensors;
            }
        // At most 100 kB of data, unless one tensor alone is larger (the 160 kB embedding), as transformers shards.
        if (tensors > 1) CHECK(bytes.size() - 8 - n <= 100000);
    }
    a = tensors_of(bf16);
    for (const auto& [name, t] : b) CHECK(test::bitwise_equal(a.at(name), t));
    Model from_bf16 = load_model(bf16);
    CHECK(test::bitwise_equal(fixture_logits(from_bf16), fixture_logits(original)));
    r = test::run_ittt(tmp, cat("convert ", bf16, " ", f32, " --save-dtype f32"));
    REQUIRE(r.rc == 0);
    CHECK(fs::exists(f32 + "/model.safetensors"));
    Model from_f32 = load_model(f32);
    CHECK(test::bitwise_equal(fixture_logits(from_f32), fixture_logits(original)));

    // Offsets the release cannot read: converted, with a warning naming the problem.
    r = test::run_ittt(tmp, cat("convert ", plain, " ", tmp / "offsets", " --add-ttt --ttt-layers 1 --ttt-conv-offsets -1,0,1"));
    CHECK(r.rc == 0);
    CHECK_THAT(r.err, Contains("warning: ttt_conv_offsets [-1,0,1] is not the release's -2..2") && Contains("misread"));
    // Refusals: exit code (1 run time, 2 usage) and message; nothing is written.
    struct Refusal {
        std::string in, out, args;
        int rc;
        const char* message;
    };
    const Refusal refusals[] = {
        {ttt, "twice", "--add-ttt --ttt-layers 0", 1, "already has TTT layers"},
        {plain, "none", "--strip-ttt", 1, "has no TTT layers to strip"},
        {plain, "deep", "--add-ttt --ttt-layers 0,7", 1, "--add-ttt: config: ttt_layers has layer 7, expected 0..1"},
        {plain, "nolayers", "--add-ttt", 2, "--add-ttt needs --ttt-layers"},
    };
    for (const Refusal& x : refusals) {
        INFO(x.args);
        r = test::run_ittt(tmp, cat("convert ", x.in, " ", tmp / x.out, " ", x.args));
        CHECK(r.rc == x.rc);
        CHECK_THAT(r.err, Contains(x.message));
        CHECK_FALSE(fs::exists(tmp / x.out));
    }
}

TEST_CASE("ittt train --train-only: frozen tensors byte-identical, optimizer state only for trained ones, recorded for --resume",
          "[hf][cli][train]") {
    test::TempDir tmp("ittt_train_only");
    const std::string ttt = tmp / "ttt", run = tmp / "run";
    REQUIRE(test::run_ittt(tmp, cat("convert ", dir_of(kVariants[1]), " ", ttt, " --add-ttt --ttt-layers 1 --ttt-chunk 8")).rc == 0);
    const std::string train = cat("train --ckpt ", ttt, " --task induction --batch 2 --seq-len 16 --warmup 0 --lr 1e-2 --log-every 0");
    const std::string only = " --train-only '*.ttt_*,model.layers.1.mlp.down_proj.weight'";
    test::Result r = test::run_ittt(tmp, train + " --out " + run + " --steps 2 --checkpoint-every 1" + only);
    INFO(r.out << r.err);
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Contains("training 12608 of 242368 parameters in 3 tensors"));  // 64x1x5 + 64x64 + 64x128
    const std::string step2 = run + "/step-00000002";
    std::map<std::string, Tensor> before = tensors_of(ttt), after = tensors_of(step2);
    REQUIRE(before.size() == after.size());
    int changed = 0, frozen = 0;
    for (const auto& [name, t] : before) {
        INFO(name);
        const bool trained = name.find(".ttt_") != std::string::npos || name == "model.layers.1.mlp.down_proj.weight";
        if (trained) changed += !test::bitwise_equal(after.at(name), t);
        else {
            CHECK(test::bitwise_equal(after.at(name), t));
            ++frozen;
        }
    }
    CHECK(changed == 3);
    CHECK(frozen == static_cast<int>(before.size()) - 3);
    SafetensorsFile opt = load_safetensors(step2 + "/optimizer.safetensors");
    std::set<std::string> moments;
    for (const NamedTensor& t : opt.tensors) moments.insert(t.name);
    CHECK(moments == std::set<std::string>{"model.layers.1.mlp.down_proj.weight.exp_avg", "model.layers.1.mlp.down_proj.weight.exp_avg_sq",
                                           "model.layers.1.mlp.ttt_conv.weight.exp_avg", "model.layers.1.mlp.ttt_conv.weight.exp_avg_sq",
                                           "model.layers.1.mlp.ttt_proj.weight.exp_avg", "model.layers.1.mlp.ttt_proj.weight.exp_avg_sq"});
    Json state = Json::parse(read_file(step2 + "/trainer_state.json"), "state");
    CHECK(state.at("settings").at("train-only").as_string() == "*.ttt_*,model.layers.1.mlp.down_proj.weight");

    // --resume keeps the recorded selection; another one is refused, naming both.
    r = test::run_ittt(tmp, cat("train --resume --out ", run, " --steps 3"));
    CHECK(r.rc == 0);
    after = tensors_of(run + "/step-00000003");
    CHECK(test::bitwise_equal(after.at("model.layers.0.mlp.down_proj.weight"), before.at("model.layers.0.mlp.down_proj.weight")));
    r = test::run_ittt(tmp, cat("train --resume --out ", run, " --steps 4 --train-only '*.ttt_*'"));
    CHECK(r.rc == 1);
    CHECK_THAT(r.err, Contains("--train-only \"*.ttt_*,model.layers.1.mlp.down_proj.weight\" vs \"*.ttt_*\""));

    // A glob that matches nothing is an error, not a silently frozen model.
    r = test::run_ittt(tmp, train + " --steps 1 --out " + tmp / "typo" + " --train-only '*.tt_*'");
    CHECK(r.rc == 1);
    CHECK_THAT(r.err, Contains("--train-only: '*.tt_*' matches no tensor of the model"));

    // --save-dtype bf16 with shards: the checkpoint reads back, and frozen BF16-exact tensors stay exact.
    r = test::run_ittt(tmp, train + " --steps 1 --out " + tmp / "bf16run" + only + " --save-dtype bf16 --shard-size 200K");
    REQUIRE(r.rc == 0);
    const std::string b1 = tmp / "bf16run/step-00000001";
    CHECK(fs::exists(b1 + "/model.safetensors.index.json"));
    Model m = load_model(b1);
    CHECK(m.config().ttt_mode);
    std::map<std::string, Tensor> bf = tensors_of(b1);
    CHECK(test::bitwise_equal(bf.at("model.embed_tokens.weight"), before.at("model.embed_tokens.weight")));  // BF16 from the start
}
