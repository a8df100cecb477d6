// config_json.h: ModelConfig <-> config.json, in Hugging Face Qwen3 key names
// plus the In-Place TTT release's keys (ttt_*), so a config we write loads in
// transformers and a Qwen3 config.json from the Hub loads here.
//
// Reading rules:
//   - required: vocab_size, hidden_size, intermediate_size, num_hidden_layers,
//     num_attention_heads; a missing one, or any key of the wrong type, is an
//     Error naming the file and the key.
//   - num_key_value_heads defaults to num_attention_heads and head_dim to
//     hidden_size / num_attention_heads, as transformers does; every other key
//     missing (or null) takes the ModelConfig default; sliding_window null = 0.
//   - keys we do not know are ignored (Hub configs carry dozens), but keys that
//     would change the model in a way this code does not implement are refused:
//     hidden_act other than silu, attention_bias true, a non-default rope_scaling.
//   - the result passes ModelConfig::validate().
#pragma once
#include <string>

#include "model/config.h"

namespace ittt {

ModelConfig load_config_json(const std::string& path);
// `source` names the text in errors (usually the file's path).
ModelConfig parse_config_json(const std::string& text, const std::string& source);
// Pretty-printed (indent 2), ending in a newline. Validates first.
std::string config_to_json(const ModelConfig& cfg);
// Written atomically (see io/atomic_file.h).
void save_config_json(const std::string& path, const ModelConfig& cfg);

}  // namespace ittt
