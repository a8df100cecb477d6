#include "model/model_io.h"

#include "io/checkpoint.h"

namespace ittt {

std::vector<NamedTensor> model_weights(const Model& model) {
    std::vector<NamedTensor> out;
    for (const Parameter& p : model.parameters()) out.push_back({p.name, p.value});
    return out;
}

Model load_model(const std::string& dir, DType dtype, Device device) {
    ModelConfig cfg = load_checkpoint_config(dir);
    Model cpu(cfg, dtype, Device::CPU);
    std::vector<std::pair<std::string, Tensor*>> expected;
    for (Parameter& p : cpu.parameters()) expected.push_back({p.name, &p.value});
    load_checkpoint_weights(dir, expected);
    return device == Device::CPU ? cpu : cpu.converted(dtype, device);
}

void save_model(const std::string& dir, const Model& model) {
    std::vector<NamedTensor> w = model_weights(model);
    save_checkpoint(dir, model.config(), w, nullptr, nullptr);
}

}  // namespace ittt
