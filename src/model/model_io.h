// model_io.h: a Model to and from a checkpoint directory (config.json + model.safetensors).
#pragma once
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/model.h"

namespace ittt {

// The model's parameters under their Hugging Face names (sharing storage).
std::vector<NamedTensor> model_weights(const Model& model);
// Reads config.json, builds the model, loads and checks every tensor (names,
// shapes, sizes) against that config; a missing, extra or mis-shaped tensor is
// refused with its name.
Model load_model(const std::string& dir, DType dtype = DType::F32, Device device = Device::CPU);
// config.json + model.safetensors, each written atomically.
void save_model(const std::string& dir, const Model& model);

}  // namespace ittt
