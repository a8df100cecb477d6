// checkpoint.h: a checkpoint is a directory a Hugging Face tool can also open.
//
//   <dir>/config.json              the ModelConfig (io/config_json.h)
//   <dir>/model.safetensors        the weights, metadata {"format": "pt"}
//   <dir>/optimizer.safetensors    optional: optimizer moments, step counts
//   <dir>/trainer_state.json       optional: whatever the trainer passes (step,
//                                  seed, data position, losses so far)
//
// Each file is written atomically; the set of files is not, so the order
// carries the guarantee. config.json is the completion marker: a save first
// removes any old config.json, then writes weights, optimizer state and trainer
// state, and writes config.json last. load_checkpoint_config() reads it first,
// so a save that dies midway (into a fresh directory or over an old
// checkpoint) reads as "not a checkpoint" rather than as new weights beside an
// old config. Overwriting in place does give up the old checkpoint for the
// length of the save: save to a new directory to keep it.
// An optional part not given is deleted if an earlier save left one, so a
// resume can never pair new weights with stale optimizer moments.
//
//   save_checkpoint("runs/a/step_1000", cfg, weights, &adam_state, &state);
//   ModelConfig cfg = load_checkpoint_config("runs/a/step_1000");
//   load_checkpoint_weights("runs/a/step_1000", {{"model.norm.weight", &norm}, ...});
#pragma once
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace ittt {

std::string checkpoint_config_path(const std::string& dir);
std::string checkpoint_model_path(const std::string& dir);
std::string checkpoint_optimizer_path(const std::string& dir);
std::string checkpoint_trainer_state_path(const std::string& dir);

// Creates `dir` (mkdir -p) if needed. optimizer_state and trainer_state may
// be null: the files are then not written (and an old copy is removed).
void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                     const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state);

// Errors say whether the directory or its config.json is missing.
ModelConfig load_checkpoint_config(const std::string& dir);
// load_into(checkpoint_model_path(dir), expected, checkpoint_config_path(dir)),
// after checking the directory is a checkpoint.
void load_checkpoint_weights(const std::string& dir, const std::vector<std::pair<std::string, Tensor*>>& expected);

bool checkpoint_has_optimizer_state(const std::string& dir);
bool checkpoint_has_trainer_state(const std::string& dir);
// Errors, when the file is absent, say so and that the checkpoint was saved
// without it; check checkpoint_has_*() first to treat absence as "start fresh".
SafetensorsFile load_checkpoint_optimizer_state(const std::string& dir);
Json load_checkpoint_trainer_state(const std::string& dir);

}  // namespace ittt
