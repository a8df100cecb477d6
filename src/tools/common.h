// common.h: what several `ittt` subcommands share: runtime flags, loading a
// model, the seeded data streams.
#pragma once
#include <cstdint>
#include <string>

#include "model/model.h"
#include "tasks/tasks.h"
#include "tools/args.h"

namespace ittt {

// --device cpu|cuda|auto, --threads N, --kernel op=v,...: read and applied.
Device apply_runtime_flags(Args& a);
extern const char* const kRuntimeFlagsUsage;

// --task NAME --task-opt k=v,...
TaskConfig read_task(Args& a);
extern const char* const kTaskFlagsUsage;

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
EvalResult evaluate(Model& model, const TaskConfig& task, int batch, int seq_len, int batches, uint64_t seed);

}  // namespace ittt
