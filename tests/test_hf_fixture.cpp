// The Hugging Face fixture (tests/fixtures/make_hf_qwen3_fixture.py): Qwen3 checkpoints
// written by transformers' save_pretrained, sharded and single-file, BF16 and F16. These
// tests read them with ittt's safetensors reader and check the files against what
// transformers and torch said about them: every shard parses, the index names every
// tensor exactly once, and each tensor widened to F32 has the values torch widened it to.
// (Loading them into a Model and comparing the logits is the checkpoint loader's test.)
#include <cmath>
#include <map>
#include <set>

#include "io/atomic_file.h"
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
