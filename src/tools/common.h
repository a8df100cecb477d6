// common.h: what several `ittt` subcommands share: runtime flags, loading a
// model, the seeded data streams.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "io/checkpoint.h"
#include "model/model.h"
#include "model/model_io.h"
#include "tasks/tasks.h"
#include "tools/args.h"

namespace ittt {

// --device cpu|cuda|auto, --threads N, --kernel op=v,...: read, checked and
// applied at once (the thread count and the kernel versions are settings of
// the whole process; a bad value is a usage error, a device this machine
// lacks a run-time one).
struct RuntimeFlags {
    Device device = Device::CPU;      // resolved
    std::string device_name = "cpu";  // as given: cpu, cuda or auto
    std::string kernel;               // as given; "": the best version of every op
};
RuntimeFlags read_runtime_flags(Args& a);
extern const std::string kRuntimeFlagsUsage;

// After a write to stdout failed and a line on stderr said so: drops what
// stdout still holds and points it at /dev/null, so the rest of the output goes
// nowhere quietly (and the exit check in main() does not report it again).
void discard_stdout();

// --task NAME --task-opt k=v,...
TaskConfig read_task(Args& a);
extern const char* const kTaskFlagsUsage;

// --ckpt DIR [--allow-nonfinite]: the checkpoint to read (a plain checkpoint
// or a run directory: its newest complete step, named on stderr).
struct CheckpointFlags {
    std::string dir;  // as given
    LoadOptions load;
};
CheckpointFlags read_checkpoint_flags(Args& a);
extern const char* const kCheckpointFlagsUsage;
// Resolves the flags' directory (printing which step of a run directory is
// used) and loads it; `cmd` names the subcommand in that note. *resolved, when
// given, receives the directory read.
Model load_checkpoint_model(const CheckpointFlags& c, const char* cmd, Device device, std::string* resolved = nullptr);
// The logits of a forward are finite, or an Error naming where they are not;
// with --allow-nonfinite a warning on stderr instead.
void check_logits(const CheckpointFlags& c, const Model* model, const Tensor& logits, const std::string& what);

// --save-dtype f32|bf16 --shard-size BYTES: how checkpoints store their weights
// (io/checkpoint.h WeightsFormat). BYTES takes a K/M/G suffix (powers of 1000, as
// transformers' max_shard_size); 0 = one file.
WeightsFormat read_weights_format(Args& a);
extern const char* const kWeightsFormatUsage;

// Seeds of the two data streams. Training batches and evaluation batches come
// from different forks of the user's seed, so an eval seed never replays a
// training batch.
uint64_t train_batch_seed(uint64_t seed, int64_t step, int micro);
uint64_t eval_batch_seed(uint64_t seed, int64_t batch);

// Mean loss and accuracy of `model` over `batches` batches of a task.
struct EvalResult {
    double loss = 0;
    Accuracy accuracy;
};
// after_forward, when given, sees each batch right after its forward (the model's activations are
// that batch's): `ittt eval --attention-distance` measures the attention there.
EvalResult evaluate(Model& model, const TaskConfig& task, int batch, int seq_len, int batches, uint64_t seed,
                    const CheckpointFlags* ckpt = nullptr, const std::function<void(const Batch&)>& after_forward = {});

}  // namespace ittt
