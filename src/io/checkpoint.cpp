#include "io/checkpoint.h"

#include "io/atomic_file.h"
#include "io/config_json.h"
#include "runtime/error.h"

namespace ittt {

std::string checkpoint_config_path(const std::string& dir) { return join_path(dir, "config.json"); }
std::string checkpoint_model_path(const std::string& dir) { return join_path(dir, "model.safetensors"); }
std::string checkpoint_optimizer_path(const std::string& dir) { return join_path(dir, "optimizer.safetensors"); }
std::string checkpoint_trainer_state_path(const std::string& dir) { return join_path(dir, "trainer_state.json"); }

namespace {

void require_checkpoint_dir(const std::string& dir) {
    ITTT_CHECK(path_exists(dir), "checkpoint directory '", dir, "' does not exist");
    ITTT_CHECK(is_directory(dir), "checkpoint '", dir, "' is not a directory");
    ITTT_CHECK(is_regular_file(checkpoint_config_path(dir)), "checkpoint '", dir,
               "' has no config.json: not a checkpoint, or a save that did not finish (config.json is written last)");
}

}  // namespace

void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                     const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state) {
    // Render everything that can fail on bad input before touching the disk.
    std::string config_text = config_to_json(cfg);
    std::string trainer_text = trainer_state ? trainer_state->dump(2) + "\n" : "";

    make_directories(dir);
    remove_file_if_exists(checkpoint_config_path(dir));  // marks the directory incomplete until the end
    save_safetensors(checkpoint_model_path(dir), weights, {{"format", "pt"}});
    if (optimizer_state) save_safetensors(checkpoint_optimizer_path(dir), *optimizer_state, {{"format", "ittt-optimizer"}});
    else remove_file_if_exists(checkpoint_optimizer_path(dir));
    if (trainer_state) write_file_atomic(checkpoint_trainer_state_path(dir), trainer_text);
    else remove_file_if_exists(checkpoint_trainer_state_path(dir));
    write_file_atomic(checkpoint_config_path(dir), config_text);
}

ModelConfig load_checkpoint_config(const std::string& dir) {
    require_checkpoint_dir(dir);
    return load_config_json(checkpoint_config_path(dir));
}

void load_checkpoint_weights(const std::string& dir, const std::vector<std::pair<std::string, Tensor*>>& expected) {
    require_checkpoint_dir(dir);
    ITTT_CHECK(is_regular_file(checkpoint_model_path(dir)), "checkpoint '", dir, "' has a config.json but no model.safetensors");
    load_into(checkpoint_model_path(dir), expected, checkpoint_config_path(dir));
}

bool checkpoint_has_optimizer_state(const std::string& dir) { return is_regular_file(checkpoint_optimizer_path(dir)); }
bool checkpoint_has_trainer_state(const std::string& dir) { return is_regular_file(checkpoint_trainer_state_path(dir)); }

SafetensorsFile load_checkpoint_optimizer_state(const std::string& dir) {
    require_checkpoint_dir(dir);
    ITTT_CHECK(checkpoint_has_optimizer_state(dir), "checkpoint '", dir,
               "' has no optimizer.safetensors (it was saved without optimizer state)");
    return load_safetensors(checkpoint_optimizer_path(dir));
}

Json load_checkpoint_trainer_state(const std::string& dir) {
    require_checkpoint_dir(dir);
    ITTT_CHECK(checkpoint_has_trainer_state(dir), "checkpoint '", dir,
               "' has no trainer_state.json (it was saved without trainer state)");
    std::string path = checkpoint_trainer_state_path(dir);
    return Json::parse(read_file(path), path);
}

}  // namespace ittt
