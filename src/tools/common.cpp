#include "tools/common.h"

#include <stdexcept>

#include "ops/ops.h"
#include "runtime/rng.h"
#include "tools/context_parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ittt {

const char* const kRuntimeFlagsUsage =
    "  --device cpu|cuda|auto   where to run (default cpu)\n"
    "  --threads N              OpenMP threads for the CPU kernels (default: all cores)\n"
    "  --kernel OP=V,...        kernel versions, e.g. gemm=1,attention=1 (default: the best)\n";

const char* const kTaskFlagsUsage =
    "  --task NAME              induction | mqar | theorem | needle | text\n"
    "  --task-opt K=V,...       task options, e.g. pairs=8,gap=256 (see docs/tasks.md)\n";

// A bad flag value is a usage error (exit 2, with the usage); a valid request the
// machine cannot serve (--device cuda without a GPU) stays a run-time error (exit 1).
Device apply_runtime_flags(Args& a) {
    std::string device = a.str("--device", "cpu");
    if (device != "cpu" && device != "cuda" && device != "auto") a.error("--device: expected cpu, cuda or auto, found '" + device + "'");
    Device d = resolve_device(device);
    int64_t threads = a.integer("--threads", 0, 0, 1024);
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
#else
    (void)threads;
#endif
    std::string kernels = a.str("--kernel", "");
    try {
        ops::set_versions_from_string(kernels);
    } catch (const Error& e) {
        a.error(e.what());
    } catch (const std::out_of_range&) {  // std::stoi on a version too large for an int
        a.error("--kernel: a version number is out of range in '" + kernels + "'");
    }
    return d;
}

TaskConfig read_task(Args& a) {
    std::string name = a.required("--task"), options = a.str("--task-opt", "");
    try {
        return parse_task_config(name, parse_option_list(options));
    } catch (const Error& e) {
        a.error(e.what());
    }
}

uint64_t train_batch_seed(uint64_t seed, int64_t step, int micro) {
    return Rng(seed).fork(1).fork(static_cast<uint64_t>(step) * 4096 + static_cast<uint64_t>(micro)).seed();
}

uint64_t eval_batch_seed(uint64_t seed, int64_t batch) { return Rng(seed).fork(2).fork(static_cast<uint64_t>(batch)).seed(); }

EvalResult evaluate(Model& model, const TaskConfig& task, int batch, int seq_len, int batches, uint64_t seed) {
    EvalResult r;
    double loss_sum = 0;
    int64_t scored = 0;
    ForwardOptions opt;
    opt.inference = true;
    for (int i = 0; i < batches; ++i) {
        Batch b = make_batch(task, model.config().vocab_size, batch, seq_len, eval_batch_seed(seed, i));
        Tensor logits = model.forward(b.tokens_tensor().to(model.device()), opt);
        if (model.context_parallel()) logits = gather_logits(model, logits);  // rank 0 scores the whole batch
        if (!logits.defined()) continue;
        ops::CrossEntropyResult ce = ops::cross_entropy(nullptr, logits, b.targets_tensor().view({b.B * static_cast<int64_t>(b.n)}).to(model.device()), 1.0);
        loss_sum += ce.loss_sum;
        scored += ce.n_scored;
        Accuracy acc = count_correct(b, logits.to(Device::CPU).view({b.B, b.n, model.config().vocab_size}));
        r.accuracy.correct += acc.correct;
        r.accuracy.scored += acc.scored;
        r.accuracy.examples_all_correct += acc.examples_all_correct;
        r.accuracy.examples += acc.examples;
    }
    r.loss = scored > 0 ? loss_sum / static_cast<double>(scored) : 0.0;
    return r;
}

}  // namespace ittt
