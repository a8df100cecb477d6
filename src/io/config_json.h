// config_json.h: ModelConfig <-> config.json, in Hugging Face Qwen3 key names
// plus the In-Place TTT release's keys (ttt_*), so a config we write loads in
// transformers and a Qwen3 config.json from the Hub loads here.
//
// Reading rules (docs/checkpoints.md has the table of every key):
//   - required: vocab_size, hidden_size, intermediate_size, num_hidden_layers,
//     num_attention_heads; a missing one, or any key of the wrong type, is an
//     Error naming the file and the key. (transformers has defaults for these
//     too, the shape of an 8B model; no real checkpoint leaves them out, and a
//     model guessed from them would only fail later, on the first tensor.)
//   - every other standard key, when absent, takes transformers' Qwen3Config
//     default (hf_default below, checked against transformers 5.24), and each
//     ttt_* key the release's (release_default): each default taken is one line
//     in *defaults_used, which the loaders print. null means absent, except
//     num_key_value_heads: null = as many as the query heads (transformers).
//   - rope_theta: rope_parameters.rope_theta (transformers 5) first, then the
//     top-level rope_theta (transformers 4), then 1e4.
//   - sliding windows as transformers reads them: sliding_window counts only
//     with use_sliding_window true; a sliding_attention layer without it is an
//     Error (transformers would run it with full attention).
//   - ttt_mode absent: on when the weights hold ttt_* tensors (the caller says,
//     TttTensors), else off, so a plain Qwen3 checkpoint is the plain model.
//   - keys we do not know are ignored (Hub configs carry dozens), but keys that
//     would change the model in a way this code does not implement are refused:
//     model_type other than qwen3, hidden_act other than silu, attention_bias
//     true, any non-null rope_scaling, rope_parameters of a type other than
//     default or with partial_rotary_factor != 1.
//   - the result passes ModelConfig::validate().
#pragma once
#include <string>
#include <vector>

#include "io/json.h"
#include "io/model_config.h"

namespace ittt {

// transformers' Qwen3Config (models/qwen3/configuration_qwen3.py, 5.24) and
// RotaryEmbeddingConfigMixin.default_theta: what it builds when a key is absent.
namespace hf_default {
constexpr int kNumKeyValueHeads = 32;
constexpr int kHeadDim = 128;
constexpr double kRopeTheta = 10000.0;
constexpr double kRmsNormEps = 1e-6;
constexpr bool kTieWordEmbeddings = false;
constexpr double kInitializerRange = 0.02;
constexpr bool kUseSlidingWindow = false;
constexpr int kSlidingWindow = 4096;
constexpr int kMaxWindowLayers = 28;
}  // namespace hf_default

// The In-Place TTT release (ByteDance-Seed/In-Place-TTT, hf_models/hf_qwen3/
// configuration_qwen3.py): its Qwen3Config's TTT arguments.
namespace release_default {
inline std::vector<int> ttt_layers() { return {0, 6, 12, 18, 24, 30}; }
constexpr int kTttChunk = 8192;
constexpr double kTttLr = 0.3;
constexpr bool kTttProj = true;
constexpr TttTargetSource kTttTarget = TttTargetSource::HiddenStates;
}  // namespace release_default

// Whether the checkpoint's weights hold ttt_* tensors (decides an absent ttt_mode).
enum class TttTensors { Unknown, Absent, Present };

ModelConfig load_config_json(const std::string& path, std::vector<std::string>* defaults_used = nullptr,
                             TttTensors ttt_tensors = TttTensors::Unknown);
// `source` names the text in errors (usually the file's path).
ModelConfig parse_config_json(const std::string& text, const std::string& source, std::vector<std::string>* defaults_used = nullptr,
                              TttTensors ttt_tensors = TttTensors::Unknown);
// The defaults lines on stderr, each "<who>: <line>".
void print_config_defaults(const std::vector<std::string>& lines, const char* who);
// Pretty-printed (indent 2), ending in a newline. Validates first.
std::string config_to_json(const ModelConfig& cfg);
// The same, followed by every member of `kept_keys` (an object) that it does
// not write, unchanged and in their order: what `ittt convert` carries over
// from its input's config.json (bos_token_id, eos_token_id, dtype, ...).
std::string config_to_json(const ModelConfig& cfg, const Json& kept_keys);
// Written atomically (see io/atomic_file.h).
void save_config_json(const std::string& path, const ModelConfig& cfg);

}  // namespace ittt
