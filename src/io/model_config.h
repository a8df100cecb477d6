// model_config.h: the model's configuration, named as Hugging Face Qwen3 and the
// In-Place TTT release name things in config.json (read and written by config_json.h).
// It lives in io, below model and parallel, because it is what the files on disk
// describe: checkpoints and config.json need it without needing a Model.
#pragma once
#include <string>
#include <vector>

namespace ittt {

enum class AttentionType { Full, Sliding };          // "full_attention" | "sliding_attention"
enum class TttTargetSource { InputEmbed, HiddenStates };  // "input_embed" | "hidden_states"
// learned: V = Conv1D(S) P with trained conv and P (the paper).
// next_token: conv tap +1 = 1, others 0, P = I, both frozen (theory / ablation).
// reconstruction: conv tap 0 = 1, others 0, P = I, both frozen (theory / ablation).
enum class TttTargetMode { Learned, NextToken, Reconstruction };

struct ModelConfig {
    // ---- Qwen3 ----
    int vocab_size = 260;
    int hidden_size = 64;          // d
    int intermediate_size = 192;   // f
    int num_hidden_layers = 2;
    int num_attention_heads = 4;   // Hq
    int num_key_value_heads = 2;   // Hkv
    int head_dim = 16;             // hd
    double rope_theta = 1e6;
    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = true;
    int sliding_window = 0;                      // w for sliding layers (0 = none)
    std::vector<AttentionType> layer_types;      // one per layer; empty = all full
    double initializer_range = 0.02;

    // ---- In-Place TTT (release keys) ----
    bool ttt_mode = false;                       // TTT on at all
    std::vector<int> ttt_layers;                 // layer indices with a TTT MLP
    int ttt_chunk = 64;                          // C
    double ttt_lr = 0.3;                         // eta
    bool ttt_proj = true;                        // learn P (else P = I)
    TttTargetSource ttt_target = TttTargetSource::InputEmbed;
    double ttt_clip_tau = 0;                     // inference-only clipping, 0 off (negative refused)
    // ---- project keys ----
    TttTargetMode ttt_target_mode = TttTargetMode::Learned;
    std::vector<int> ttt_conv_offsets = {-2, -1, 0, 1, 2};  // K = size; release: centred 5 taps
    // How a random init (--config, `ittt convert --add-ttt`) sets a learned target's
    // parameters; the forward never reads these. Release: conv = 0 (the drop-in: the
    // TTT MLP starts as the plain MLP) and P = diag(N(0, std^2)).
    double ttt_conv_init_std = 0;                // > 0: every tap N(0, std^2) (no longer a drop-in at init)
    bool ttt_proj_init_identity = false;         // P = I instead of the release's small random diagonal

    // Throws an Error naming the field when a value is out of range or inconsistent.
    void validate() const;
    bool is_ttt_layer(int layer) const;
    AttentionType layer_type(int layer) const;
    // The window the attention kernel gets for this layer (0 = full).
    int window_for_layer(int layer) const;
    int conv_taps() const { return static_cast<int>(ttt_conv_offsets.size()); }
};

// The valid range of an integer field, enforced by validate() for every path
// into a Model (config.json, the CLI, code) alike.
struct ConfigRange {
    const char* field;
    long long min, max;
};
const std::vector<ConfigRange>& config_ranges();

const char* attention_type_name(AttentionType t);
const char* ttt_target_source_name(TttTargetSource s);
const char* ttt_target_mode_name(TttTargetMode m);
AttentionType parse_attention_type(const std::string& s);
TttTargetSource parse_ttt_target_source(const std::string& s);
TttTargetMode parse_ttt_target_mode(const std::string& s);

}  // namespace ittt
