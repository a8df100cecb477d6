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
    // What the loader has to say (each default a config key took, a tied
    // checkpoint's extra lm_head.weight): appended here, or with nullptr printed
    // on stderr as "ittt: <line>".
    std::vector<std::string>* notes = nullptr;
};

// `dir` is a plain checkpoint or a run directory (its newest complete
// checkpoint; io/checkpoint.h resolve_checkpoint), in ittt's layout or as
// transformers' save_pretrained writes it (sharded or not, F32/BF16/F16).
// Reads config.json (absent keys take transformers' or the release's defaults,
// one note each; an absent ttt_mode follows whether ttt_* tensors are stored),
// builds the model, loads and checks every tensor (names, shapes, sizes,
// finiteness) against that config; a missing, extra, mis-shaped or non-finite
// tensor is refused with its name. A tied checkpoint that also stores
// lm_head.weight loads as transformers 5 loads it: tied when the two are equal,
// else untied (with a note saying so).
Model load_model(const std::string& dir, DType dtype = DType::F32, Device device = Device::CPU, const LoadOptions& opt = {});
// config.json + model.safetensors, published as one directory (io/checkpoint.h).
void save_model(const std::string& dir, const Model& model);

// `src`'s weights under another config of the same network (ittt convert):
// every tensor both have is copied bit for bit; TTT tensors only `cfg` has are
// initialised as the release does when it adds TTT layers to a pretrained model
// (conv zero, P = diag(N(0, initializer_range^2)), seeded); tensors only `src`
// has (the TTT layers being stripped) are dropped. With conv zero the target is
// zero, so a model with TTT layers just added gives the original's logits bit
// for bit. A tensor of a different shape in the two is an error naming it.
Model with_config(const Model& src, const ModelConfig& cfg, uint64_t ttt_seed);

}  // namespace ittt
