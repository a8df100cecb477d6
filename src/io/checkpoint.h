// checkpoint.h: a checkpoint is a directory a Hugging Face tool can also open,
// and it appears on disk whole or not at all.
//
//   <dir>/config.json              the ModelConfig (io/config_json.h)
//   <dir>/model.safetensors        the weights, metadata {"format": "pt"}; or, sharded as
//                                  transformers shards: model-0000k-of-0000N.safetensors
//                                  + model.safetensors.index.json {"weight_map": {name: shard}}
//   <dir>/optimizer.safetensors    optional: optimizer moments
//   <dir>/trainer_state.json       optional: step and the run's settings
//
// The guarantee: at every instant, including kill -9, a full disk or an I/O
// error in the middle of a save, the previous checkpoint is untouched and
// loadable, and a new one is either complete or absent. How:
//
//   1. every file is written into a private staging directory next to the
//      destination, "<parent>/.<name>.staging.<pid>", and fsynced;
//   2. the staging directory is fsynced (its entries are durable);
//   3. one rename(2) publishes it under its real name (or, replacing an older
//      checkpoint of the same name, one renameat2(RENAME_EXCHANGE) swaps them);
//   4. the parent directory is fsynced (the rename is durable).
// A save that fails removes its staging directory; one that was killed leaves
// it, and the next save or training run into the same place removes it (only
// when the process that made it is gone).
//
// A training run writes a *run directory* of such checkpoints, one per saved
// step, keeping the newest K:
//
//   run/step-00000004/   config.json model.safetensors optimizer.safetensors trainer_state.json
//   run/step-00000006/   ...
//
// resolve_checkpoint("run") picks the newest complete one; a plain checkpoint
// directory (config.json at its top, e.g. data/demo) resolves to itself.
// Loading functions below take a resolved directory.
//
//   std::string dir = save_run_checkpoint("runs/a", 1000, cfg, weights, &adam, &state, 2);
//   ResolvedCheckpoint r = resolve_checkpoint("runs/a");   // r.dir == "runs/a/step-00001000"
//   ModelConfig cfg = load_checkpoint_config(r.dir);
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/config_json.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/model_config.h"

namespace ittt {

std::string checkpoint_config_path(const std::string& dir);
std::string checkpoint_model_path(const std::string& dir);
std::string checkpoint_optimizer_path(const std::string& dir);
std::string checkpoint_trainer_state_path(const std::string& dir);
std::string checkpoint_index_path(const std::string& dir);  // model.safetensors.index.json
// model.safetensors or model.safetensors.index.json is there.
bool checkpoint_has_weights(const std::string& dir);

// ---------------------------------------------------------------- writing

// A directory being built in private and published in one atomic step. The
// one place that creates checkpoint directories: writers of other layouts
// (sharded weights, extra files) write into dir() and call publish().
//
//   CheckpointStaging s("run/step-00000004");
//   save_safetensors(s.file("model.safetensors"), weights);
//   s.publish();   // "run/step-00000004" now exists, complete
//
// The destination's parent must exist. Destroyed unpublished (an exception),
// it removes everything it wrote.
class CheckpointStaging {
public:
    explicit CheckpointStaging(std::string final_dir);
    ~CheckpointStaging();
    CheckpointStaging(const CheckpointStaging&) = delete;
    CheckpointStaging& operator=(const CheckpointStaging&) = delete;

    const std::string& dir() const { return staging_; }
    std::string file(const std::string& name) const;
    // fsync the staging directory, rename it to the destination, fsync the
    // parent. An existing destination is replaced only when it is an empty
    // directory or a checkpoint (holds config.json); anything else is refused.
    void publish();

private:
    std::string final_, staging_;
    bool published_ = false;
};

// How the weights are written: F32 (as in memory) or BF16, in one file or in
// shards of at most shard_size bytes of tensor data each (0: one file), as
// transformers shards: model-0000k-of-0000N.safetensors in model order, a tensor
// larger than shard_size alone in its shard, and model.safetensors.index.json.
// Optimizer state is always F32 in one file.
struct WeightsFormat {
    bool bf16 = false;
    int64_t shard_size = 0;
};
// The weights alone into an existing directory, in that format.
void write_weights(const std::string& dir, const std::vector<NamedTensor>& weights, const WeightsFormat& format);

// The standard files (config.json, the weights, optionally
// optimizer.safetensors and trainer_state.json) into an existing directory.
// Conv offsets other than the release's -2..2 print a warning on stderr: the
// release reads any ttt_conv as 5 centred taps, without an error.
// `kept_config_keys`: members config.json gets beside the config's own
// (io/config_json.h config_to_json), for keys ittt does not use.
void write_checkpoint_files(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                            const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state,
                            const WeightsFormat& format = {}, const Json* kept_config_keys = nullptr);

// A plain checkpoint directory at `dir`, published atomically (mkdir -p of its
// parent first). Replacing an older checkpoint at `dir` swaps it whole, so an
// optional part not given this time does not survive from the old one.
// `extra_files` (name -> bytes) are written beside (tokenizer.json, ...).
void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                     const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state, const WeightsFormat& format = {},
                     const std::vector<std::pair<std::string, std::string>>& extra_files = {});

// ---------------------------------------------------------------- run directories

std::string run_checkpoint_name(int64_t step);  // "step-00000004"
// The step a name of that form stands for ("step-00000004" -> 4); nullopt for any other name.
std::optional<int64_t> run_checkpoint_step(const std::string& name);
// A step-N checkpoint directory inside a run directory (a run's checkpoint, not
// a run): its parent, the run directory; "" for anything else.
std::string run_of_step_directory(const std::string& dir);

struct RunCheckpoint {
    int64_t step = 0;
    std::string dir;  // run_dir/step-...
};
// The complete checkpoints of a run directory, oldest first. A step-* entry
// without config.json and model.safetensors is skipped (and named in
// *skipped when given): it was not written by a save of this code.
std::vector<RunCheckpoint> list_run_checkpoints(const std::string& run_dir, std::vector<std::string>* skipped = nullptr);

// Writes run_dir/step-N (run_dir is created if needed) through a staging directory, then removes all but the
// newest `keep` checkpoints (keep >= 1; removal failures are reported on
// stderr, never fatal: the new checkpoint is already published). Returns the
// published directory.
std::string save_run_checkpoint(const std::string& run_dir, int64_t step, const ModelConfig& cfg,
                                const std::vector<NamedTensor>& weights, const std::vector<NamedTensor>* optimizer_state,
                                const Json* trainer_state, int64_t keep, const WeightsFormat& format = {});

// Removes what interrupted saves left in `dir` (".<name>.staging.<pid>" and
// ".<name>.trash.<pid>" of processes no longer running; with `only_name`, only
// those for that name). Returns the paths removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir, const std::string& only_name = "");

// ---------------------------------------------------------------- reading

struct ResolvedCheckpoint {
    std::string dir;   // the directory to load from
    std::string note;  // for a run directory: which checkpoint was taken and why; else ""
};
// `path` is a plain checkpoint (config.json inside) or a run directory (the
// newest complete step-N). Errors say what is missing, and mention an
// interrupted save when one left its staging directory behind.
ResolvedCheckpoint resolve_checkpoint(const std::string& path);

// Errors say whether the directory or its config.json is missing. The rest as
// load_config_json (io/config_json.h): defaults taken, and what the weights hold.
ModelConfig load_checkpoint_config(const std::string& dir, std::vector<std::string>* defaults_used = nullptr,
                                   TttTensors ttt_tensors = TttTensors::Unknown);
// Every tensor of a checkpoint: model.safetensors when present (as transformers
// prefers it), else the shards model.safetensors.index.json names. The index is
// checked against the shards: every shard named exists and parses, every tensor
// sits in the shard the index names, none is in two shards or outside the index;
// shard names are plain file names in `dir` (no '/', no "..").
struct CheckpointTensors {
    SafetensorsFile tensors;  // every shard's tensors, in shard order
    std::string source;       // model.safetensors or the index: what errors name
    std::vector<std::string> files;  // the files read
    bool has_ttt() const;     // any "...mlp.ttt_*" tensor
};
CheckpointTensors read_checkpoint_tensors(const std::string& dir);
// load_into(read_checkpoint_tensors(dir), expected, checkpoint_config_path(dir)),
// after checking the directory is a checkpoint.
void load_checkpoint_weights(const std::string& dir, const std::vector<std::pair<std::string, Tensor*>>& expected);

bool checkpoint_has_optimizer_state(const std::string& dir);
bool checkpoint_has_trainer_state(const std::string& dir);
// Errors, when the file is absent, say so and that the checkpoint was saved
// without it; check checkpoint_has_*() first to treat absence as "start fresh".
SafetensorsFile load_checkpoint_optimizer_state(const std::string& dir);
Json load_checkpoint_trainer_state(const std::string& dir);

}  // namespace ittt
