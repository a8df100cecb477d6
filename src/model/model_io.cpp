#include "model/model_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/checkpoint.h"
#include "model/finite.h"

namespace ittt {

std::vector<NamedTensor> model_weights(const Model& model) {
    std::vector<NamedTensor> out;
    for (const Parameter& p : model.parameters()) out.push_back({p.name, p.value});
    return out;
}

namespace {

// A tied checkpoint that also stores lm_head.weight: transformers 5 ties the two
// when they are equal and, when they differ, warns and keeps both (untied).
void resolve_stored_lm_head(CheckpointTensors& w, ModelConfig& cfg, std::vector<std::string>& notes) {
    const Tensor* head = w.tensors.find("lm_head.weight");
    const Tensor* embed = w.tensors.find("model.embed_tokens.weight");
    if (!cfg.tie_word_embeddings || !head || !embed || head->shape() != embed->shape()) return;
    const std::vector<double> h = head->to_f64_vector(), e = embed->to_f64_vector();
    double max_diff = 0;
    int64_t differ = 0;
    for (size_t i = 0; i < h.size(); ++i)
        if (h[i] != e[i] || std::signbit(h[i]) != std::signbit(e[i])) ++differ, max_diff = std::max(max_diff, std::fabs(h[i] - e[i]));
    if (differ == 0) {
        std::vector<NamedTensor>& all = w.tensors.tensors;
        all.erase(std::remove_if(all.begin(), all.end(), [](const NamedTensor& t) { return t.name == "lm_head.weight"; }), all.end());
        return;  // what tying means anyway: nothing to say
    }
    cfg.tie_word_embeddings = false;
    notes.push_back(cat(w.source, ": tie_word_embeddings is true but the stored lm_head.weight differs from model.embed_tokens.weight (",
                        differ, " of ", h.size(), " values, max |difference| ", max_diff,
                        "); loaded untied with both, as transformers 5 does (saving writes tie_word_embeddings false)"));
}

}  // namespace

Model load_model(const std::string& path, DType dtype, Device device, const LoadOptions& opt) {
    const std::string dir = resolve_checkpoint(path).dir;  // resolved once: config and weights from the same save
    CheckpointTensors w = read_checkpoint_tensors(dir);
    std::vector<std::string> notes;
    ModelConfig cfg = load_checkpoint_config(dir, &notes, w.has_ttt() ? TttTensors::Present : TttTensors::Absent);
    ITTT_CHECK(!cfg.ttt_mode || w.has_ttt() || cfg.ttt_layers.empty(), checkpoint_config_path(dir),
               ": ttt_mode is true but ", w.source,
               " holds no ttt_* tensors (a plain Qwen3 checkpoint): add TTT layers with `ittt convert IN OUT --add-ttt`, "
               "or set ttt_mode false");
    resolve_stored_lm_head(w, cfg, notes);
    if (opt.notes) opt.notes->insert(opt.notes->end(), notes.begin(), notes.end());
    else
        for (const std::string& n : notes) std::fprintf(stderr, "ittt: %s\n", n.c_str());
    Model cpu(cfg, dtype, Device::CPU);
    std::vector<std::pair<std::string, Tensor*>> expected;
    for (Parameter& p : cpu.parameters()) expected.push_back({p.name, &p.value});
    load_into(w.tensors, w.source, expected, checkpoint_config_path(dir));
    if (!opt.allow_nonfinite)  // named by the file it is in: a shard, not the index
        for (const Parameter& p : cpu.parameters())
            if (int64_t i = first_nonfinite(p.value); i >= 0)
                fail(cat(w.tensors.file_of(p.name, w.source), ": tensor '", p.name, "' holds ", describe_nonfinite(p.value, i),
                         "; refusing non-finite weights (--allow-nonfinite loads them anyway, for inspection)"));
    return device == Device::CPU ? cpu : cpu.converted(dtype, device);
}

void save_model(const std::string& dir, const Model& model) {
    std::vector<NamedTensor> w = model_weights(model);
    save_checkpoint(dir, model.config(), w, nullptr, nullptr);
}

Model with_config(const Model& src, const ModelConfig& cfg, uint64_t ttt_seed) {
    ITTT_CHECK(src.device() == Device::CPU && src.dtype() == DType::F32, "with_config: expected an F32 model on the CPU");
    Model out(cfg, DType::F32, Device::CPU);
    out.init_ttt(ttt_seed);  // the TTT tensors src lacks keep this
    std::vector<std::string> missing;
    for (Parameter& p : out.parameters()) {
        const Parameter* from = nullptr;
        for (const Parameter& q : src.parameters())
            if (q.name == p.name) from = &q;
        if (!from) {
            if (p.name.find(".mlp.ttt_") == std::string::npos) missing.push_back(p.name);
            continue;
        }
        ITTT_CHECK(from->value.shape() == p.value.shape(), "tensor '", p.name, "' has shape ", shape_str(from->value.shape()),
                   " in the source but ", shape_str(p.value.shape()), " in the new config");
        p.value.copy_from(from->value);
    }
    // Only TTT tensors may appear: anything else (an lm_head after untying) has no value to take.
    ITTT_CHECK(missing.empty(), "the new config needs tensor '", missing.empty() ? "" : missing.front(),
               "', which the source model does not have (only TTT layers can be added)");
    return out;
}

}  // namespace ittt
