// model_io.h: a Model to and from a checkpoint directory (config.json + model.safetensors).
#pragma once
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/model.h"

namespace ittt {

// The model's parameters under their Hugging Face names (sharing storage).
std::vector<NamedTensor> model_weights(const Model& model);

struct LoadOptions {
    // Load weights holding NaN or Inf anyway (forensics: look at a broken
    // checkpoint). By default they are refused, naming the tensor and index.
    bool allow_nonfinite = false;
};

// `dir` is a plain checkpoint or a run directory (its newest complete
// checkpoint; io/checkpoint.h resolve_checkpoint). Reads config.json, builds
// the model, loads and checks every tensor (names, shapes, sizes, finiteness)
// against that config; a missing, extra, mis-shaped or non-finite tensor is
// refused with its name.
Model load_model(const std::string& dir, DType dtype = DType::F32, Device device = Device::CPU, const LoadOptions& opt = {});
// config.json + model.safetensors, published as one directory (io/checkpoint.h).
void save_model(const std::string& dir, const Model& model);

}  // namespace ittt
