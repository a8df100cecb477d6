#include "tools/common.h"

#include <fcntl.h>
#include <stdio_ext.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <stdexcept>

#include "io/checkpoint.h"
#include "model/finite.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "tools/context_parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ittt {

namespace {
const IntFlag kThreads{"--threads", "N", 0, 0, 1024, "OpenMP threads for the CPU kernels (0: all cores)"};
}

const std::string kRuntimeFlagsUsage = std::string("  --device cpu|cuda|auto   where to run (default cpu)\n") + help_line(kThreads) +
                                       "  --kernel OP=V,...        kernel versions, e.g. gemm=1,attention=1 (default: the best)\n";

const char* const kTaskFlagsUsage =
    "  --task NAME              induction | mqar | theorem | needle | text\n"
    "  --task-opt K=V,...       task options, e.g. pairs=8,gap=256 (see docs/tasks.md)\n";

const char* const kCheckpointFlagsUsage =
    "  --ckpt DIR               a checkpoint (config.json + model.safetensors) or a training run's --out\n"
    "                           directory (then its newest complete step-N checkpoint, named on stderr)\n"
    "  --allow-nonfinite        load weights holding NaN/Inf and print non-finite logits (forensics;\n"
    "                           by default both are refused with the tensor and index named)\n";

// A bad flag value is a usage error (exit 2, with the usage); a valid request the
// machine cannot serve (--device cuda without a GPU) stays a run-time error (exit 1).
RuntimeFlags read_runtime_flags(Args& a) {
    RuntimeFlags r;
    r.device_name = a.str("--device", "cpu");
    if (r.device_name != "cpu" && r.device_name != "cuda" && r.device_name != "auto")
        a.error("--device: expected cpu, cuda or auto, found '" + r.device_name + "'");
    r.device = resolve_device(r.device_name);
    int64_t threads = a.integer(kThreads);
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
#else
    (void)threads;
#endif
    if (a.has("--kernel")) {
        r.kernel = a.str("--kernel", "");
        try {
            std::set<std::string> ops_seen;
            for (const std::string& item : split_list(r.kernel, "--kernel")) {
                size_t eq = item.find('=');
                ITTT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "--kernel: expected op=version (e.g. gemm=1), found '",
                           item, "'");
                ITTT_CHECK(ops_seen.insert(item.substr(0, eq)).second, "--kernel: '", item.substr(0, eq), "' is given twice in '",
                           r.kernel, "'");
                parse_integer(item.substr(eq + 1), 0, 1000, cat("--kernel: the version of ", item.substr(0, eq)));
            }
            ops::set_versions_from_string(r.kernel);
        } catch (const Error& e) {
            a.error(e.what());
        } catch (const std::out_of_range&) {  // std::stoi on a version too large for an int
            a.error("--kernel: a version number is out of range in '" + r.kernel + "'");
        }
    }
    return r;
}

void discard_stdout() {
    __fpurge(stdout);
    std::clearerr(stdout);
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, STDOUT_FILENO);
        ::close(null);
    }
}

TaskConfig read_task(Args& a) {
    std::string name = a.required("--task"), options = a.str("--task-opt", "");
    try {
        if (a.has("--task-opt")) split_list(options, "--task-opt");  // refuses "a=1," and ",,"
        return parse_task_config(name, parse_option_list(options));
    } catch (const Error& e) {
        a.error(e.what());
    }
}

CheckpointFlags read_checkpoint_flags(Args& a) {
    CheckpointFlags c;
    c.dir = a.required("--ckpt");
    c.load.allow_nonfinite = a.flag("--allow-nonfinite");
    return c;
}

Model load_checkpoint_model(const CheckpointFlags& c, const char* cmd, Device device, std::string* resolved) {
    ResolvedCheckpoint r = resolve_checkpoint(c.dir);
    if (!r.note.empty()) std::fprintf(stderr, "ittt %s: %s\n", cmd, r.note.c_str());
    if (resolved) *resolved = r.dir;
    std::vector<std::string> notes;
    LoadOptions opt = c.load;
    opt.notes = &notes;
    Model m = load_model(r.dir, DType::F32, device, opt);
    for (const std::string& n : notes) std::fprintf(stderr, "ittt %s: %s\n", cmd, n.c_str());
    return m;
}

void check_logits(const CheckpointFlags& c, const Model* model, const Tensor& logits, const std::string& what) {
    if (!c.load.allow_nonfinite) return require_finite_logits(model, logits, what);
    if (int64_t i = first_nonfinite(logits); i >= 0)
        std::fprintf(stderr, "ittt %s: warning: the logits hold %s (printed anyway: --allow-nonfinite)\n", what.c_str(),
                     describe_nonfinite(logits, i).c_str());
}

const char* const kWeightsFormatUsage =
    "  --save-dtype f32|bf16    dtype of the saved weights (default f32; bf16 rounds to nearest even, as torch)\n"
    "  --shard-size BYTES       shard the weights above this size, e.g. 500M or 2G (default 0: one file),\n"
    "                           as transformers does (model-0000k-of-0000N.safetensors + index)\n";

WeightsFormat read_weights_format(Args& a) {
    WeightsFormat f;
    const std::string dtype = a.str("--save-dtype", "f32");
    if (dtype != "f32" && dtype != "bf16") a.error("--save-dtype: expected f32 or bf16, found '" + dtype + "'");
    f.bf16 = dtype == "bf16";
    std::string size = a.str("--shard-size", "0");
    int64_t unit = 1;
    if (!size.empty() && (size.back() == 'K' || size.back() == 'M' || size.back() == 'G')) {
        unit = size.back() == 'K' ? 1000 : size.back() == 'M' ? 1000000 : 1000000000;
        size.pop_back();
    }
    try {
        f.shard_size = parse_integer(size, 0, (int64_t{1} << 50) / unit, "--shard-size") * unit;
    } catch (const Error& e) {
        a.error(e.what());
    }
    return f;
}

uint64_t train_batch_seed(uint64_t seed, int64_t step, int micro) {
    return Rng(seed).fork(1).fork(static_cast<uint64_t>(step) * 4096 + static_cast<uint64_t>(micro)).seed();
}

uint64_t eval_batch_seed(uint64_t seed, int64_t batch) { return Rng(seed).fork(2).fork(static_cast<uint64_t>(batch)).seed(); }

EvalResult evaluate(Model& model, const TaskConfig& task, int batch, int seq_len, int batches, uint64_t seed,
                    const CheckpointFlags* ckpt, const std::function<void(const Batch&)>& after_forward) {
    EvalResult r;
    double loss_sum = 0;
    int64_t scored = 0;
    ForwardOptions opt;
    opt.inference = true;
    for (int i = 0; i < batches; ++i) {
        Batch b = make_batch(task, model.config().vocab_size, batch, seq_len, eval_batch_seed(seed, i));
        opt.document_starts = b.document_starts;  // text with docs=bounded: the model resets at each document
        Tensor logits = model.forward(b.tokens_tensor().to(model.device()), opt);
        if (model.context_parallel()) logits = gather_logits(model, logits);  // rank 0 scores the whole batch
        if (!logits.defined()) continue;
        if (after_forward) after_forward(b);
        // (activations are this rank's slice under context parallelism: name them only without it)
        const Model* m = model.context_parallel() ? nullptr : &model;
        if (ckpt) check_logits(*ckpt, m, logits, cat("eval, batch ", i));
        else require_finite_logits(m, logits, cat("eval, batch ", i));
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
