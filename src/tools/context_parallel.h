// context_parallel.h: --context-parallel for `ittt forward`, `eval` and `train`
// (docs/parallelism.md). Run under `mpirun -np R`: every rank runs the same command,
// holds 1/R of every sequence, and rank 0 prints the results.
#pragma once
#include "model/model.h"
#include "tools/args.h"

namespace ittt {

extern const char* const kContextParallelUsage;

// Reads the flag (call before a.finish()); a usage error in a build without MPI.
bool read_context_parallel(Args& a);
// Joins the MPI job and readies `device` for it (call before loading the model, which
// picks this rank's GPU). Ranks other than 0 send their stdout to /dev/null.
parallel::Context* start_context_parallel(Device device);
// logits (B*n_r, V) of this rank's slice -> (B*n, V) on rank 0; undefined on the others.
Tensor gather_logits(const Model& model, const Tensor& logits);

}  // namespace ittt
