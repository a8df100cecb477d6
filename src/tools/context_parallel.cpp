#include "tools/context_parallel.h"

#include <cstdio>

namespace ittt {

const char* const kContextParallelUsage =
    "  --context-parallel       split every sequence over the ranks of `mpirun -np R` (chunk-aligned slices);\n"
    "                           rank 0 prints. Needs a build with MPI (docs/parallelism.md)\n";

bool read_context_parallel(Args& a) {
    bool on = a.flag("--context-parallel");
    if (on && !parallel::built_with_mpi())
        a.error("--context-parallel: this build has no MPI; rebuild with MPI=1 (needs the Debian packages libopenmpi-dev and openmpi-bin)");
    return on;
}

parallel::Context* start_context_parallel(Device device) {
    parallel::Context& ctx = parallel::Context::world();
    ctx.prepare_device(device);
    if (ctx.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) fail(cat(ctx.who(), ": cannot silence stdout"));
    return &ctx;
}

Tensor gather_logits(const Model& model, const Tensor& logits) {
    parallel::Context* ctx = model.context_parallel();
    const parallel::SlicePlan& plan = model.slice_plan();
    const int64_t V = logits.dim(1), B = logits.dim(0) / plan.length(ctx->rank());
    Tensor full = parallel::gather_slices(*ctx, plan, logits.view({B, plan.length(ctx->rank()), V}));
    return full.defined() ? full.view({B * plan.n, V}) : full;
}

}  // namespace ittt
