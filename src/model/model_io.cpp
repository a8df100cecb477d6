#include "model/model_io.h"

#include "io/checkpoint.h"
#include "model/finite.h"

namespace ittt {

std::vector<NamedTensor> model_weights(const Model& model) {
    std::vector<NamedTensor> out;
    for (const Parameter& p : model.parameters()) out.push_back({p.name, p.value});
    return out;
}

Model load_model(const std::string& path, DType dtype, Device device, const LoadOptions& opt) {
    const std::string dir = resolve_checkpoint(path).dir;  // resolved once: config and weights from the same save
    ModelConfig cfg = load_checkpoint_config(dir);
    Model cpu(cfg, dtype, Device::CPU);
    std::vector<std::pair<std::string, Tensor*>> expected;
    for (Parameter& p : cpu.parameters()) expected.push_back({p.name, &p.value});
    load_checkpoint_weights(dir, expected);
    if (!opt.allow_nonfinite)
        if (std::string bad = first_nonfinite_parameter(cpu); !bad.empty())
            fail(cat(checkpoint_model_path(dir), ": tensor ", bad,
                     "; refusing non-finite weights (--allow-nonfinite loads them anyway, for inspection)"));
    return device == Device::CPU ? cpu : cpu.converted(dtype, device);
}

void save_model(const std::string& dir, const Model& model) {
    std::vector<NamedTensor> w = model_weights(model);
    save_checkpoint(dir, model.config(), w, nullptr, nullptr);
}

}  // namespace ittt
