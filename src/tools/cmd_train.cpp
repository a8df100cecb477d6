// cmd_train.cpp: ittt train, including the strict --resume.
//
// A run directory (--out) holds step-N checkpoints (io/checkpoint.h). A fresh
// run refuses an --out that already holds checkpoints; --resume continues the
// newest one. Every setting that shapes the run is recorded in its
// trainer_state.json; on --resume a flag left out takes the recorded value, a
// flag given must agree with it, and a difference is refused, each one listed
// (recorded vs given), unless --override names it. --steps may grow: the
// schedule is then recomputed over the new length, and the note says so.
// What is saved and printed (--checkpoint-every, --keep, --log-every) is
// recorded too; given on --resume, it changes from there on, with a note.
//
// One writer per run directory (io/writer_lock.h). SIGTERM / SIGINT stop the
// run between steps with one line naming its last checkpoint (exit 128 + N); a
// stdout that goes away (a closed pipe) only stops the progress lines.
#include <fnmatch.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/config_json.h"
#include "io/writer_lock.h"
#include "model/memory_budget.h"
#include "model/model_io.h"
#include "ops/ops.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/context_parallel.h"
#include "train/trainer.h"

namespace ittt {

namespace {

constexpr int64_t kMaxSteps = 1000000000;
constexpr int64_t kMaxSeed = INT64_MAX;
const IntFlag kSteps{"--steps", "N", 200, 0, kMaxSteps, "optimizer steps in all (0: write the initial checkpoint only)"};
const IntFlag kBatch{"--batch", "B", 8, 1, 1 << 30, "sequences per micro-batch"};
const IntFlag kSeqLen{"--seq-len", "n", 128, 1, 1 << 24, "tokens per sequence"};
const IntFlag kGradAccum{"--grad-accum", "K", 1, 1, 1 << 16, "micro-batches per optimizer step"};
const IntFlag kWarmup{"--warmup", "N", 20, 0, kMaxSteps, "linear warm-up steps"};
const IntFlag kCheckpointEvery{"--checkpoint-every", "N", 0, 0, kMaxSteps, "a checkpoint every N steps (0: only at the end)"};
const IntFlag kKeep{"--keep", "K", 2, 1, 1000000, "checkpoints kept in --out, the newest"};
const IntFlag kLogEvery{"--log-every", "N", 10, 0, kMaxSteps, "a progress line every N steps"};
const IntFlag kSeed{"--seed", "S", 1, 0, kMaxSeed, "data seed"};
const IntFlag kInitSeed{"--init-seed", "S", 0, 0, kMaxSeed, "weights seed with --config"};

std::string usage() {
    return std::string(
               "usage: ittt train --task NAME (--config FILE | --ckpt DIR) --out DIR [options]\n"
               "       ittt train --resume --out DIR [flags to check against the run's recorded settings]\n"
               "  Trains on a seeded toy task. --out is a run directory: each checkpoint is a complete\n"
               "  DIR/step-N (config.json, model.safetensors, optimizer.safetensors, trainer_state.json),\n"
               "  published atomically (docs/reliability.md).\n"
               "  --config FILE            model config.json (random init with --init-seed)\n"
               "  --ckpt DIR               start from this checkpoint's weights instead\n"
               "  --out DIR                the run directory (created; must not hold checkpoints unless --resume)\n"
               "  --train-only PATTERN     train only the tensors whose names match: globs, comma-separated, e.g.\n"
               "                           '*.ttt_*' (the TTT parameters) or '*.ttt_*,model.layers.0.mlp.down_proj.weight';\n"
               "                           the rest stay frozen, byte for byte, with no optimizer state (recorded;\n"
               "                           --resume keeps it)\n"
               "  --resume                 continue the newest checkpoint in --out exactly; flags left out take the\n"
               "                           recorded values, flags given must match them (--steps may grow;\n"
               "                           --checkpoint-every, --keep and --log-every change from there on)\n"
               "  --override NAME,...      on --resume, change these recorded settings on purpose: task, batch,\n"
               "                           seq-len, grad-accum, lr, warmup, min-lr-ratio, weight-decay, grad-clip,\n"
               "                           seed, device, kernel\n") +
           help_line(kSteps) + help_line(kBatch) + help_line(kSeqLen) + help_line(kGradAccum) +
           "  --lr X                   peak learning rate (default 3e-3, > 0)\n" + help_line(kWarmup) +
           "  --min-lr-ratio X         the cosine decays to lr * X (default 0.1, in [0, 1])\n"
           "  --weight-decay X         AdamW decoupled decay of matrices (default 0.1, >= 0)\n"
           "  --grad-clip X            global gradient-norm clip (default 1.0; 0 = off; >= 0)\n"
           "  --ttt-lr-scale X         the TTT target's parameters (ttt_conv, ttt_proj) train at lr * X (default 1, > 0);\n"
           "                           they never get weight decay\n" +
           help_line(kSeed) + help_line(kInitSeed) + help_line(kCheckpointEvery) + help_line(kKeep) + help_line(kLogEvery) +
           "  --json                   JSON lines instead of progress lines\n" + kWeightsFormatUsage + kTaskFlagsUsage + kRuntimeFlagsUsage +
           kContextParallelUsage;
}

const char* const kOverridable[] = {"task", "batch", "seq-len", "grad-accum", "lr", "warmup", "min-lr-ratio",
                                    "weight-decay", "grad-clip", "ttt-lr-scale", "seed", "device", "kernel"};

bool overridable(const std::string& name) {
    for (const char* n : kOverridable)
        if (name == n) return true;
    return false;
}

// One recorded setting: its value now, and whether a flag gave it.
struct Setting {
    std::string name;  // the flag without "--", the key in trainer_state.json
    Json value;
    bool given = false;
};

// Everything that shapes a run, as flags give it (or their defaults).
struct RunFlags {
    std::vector<Setting> settings;
    Setting& operator[](const std::string& name) {
        for (Setting& s : settings)
            if (s.name == name) return s;
        settings.push_back({name, Json(), false});
        return settings.back();
    }
};

std::string json_text(const Json& v) { return v.is_null() ? "(none)" : v.dump(); }

// The signal that asked a run to stop (SIGTERM, SIGINT), or 0. The handler only
// sets it; the trainer checks it between steps (TrainConfig::stop_requested).
volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) { g_stop_signal = sig; }

// SIGTERM and SIGINT end the run after the step in progress (and any save it
// owes), with one line naming the last complete checkpoint. Once: a second
// signal of the same kind acts as if no handler were set (Ctrl-C twice kills;
// an interrupted save is still safe, io/checkpoint.h).
void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
}

const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "a signal"; }

bool is_cadence(const std::string& name) { return name == "checkpoint-every" || name == "keep" || name == "log-every"; }

std::string absolute_path(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

// Both name the same file (or directory), however they are spelt.
bool same_file(const std::string& a, const std::string& b) {
    std::error_code ec;
    return a == b || (std::filesystem::equivalent(a, b, ec) && !ec);
}

// `path` describes the same model as the checkpoint in `dir` (it was the run's
// --config): compared as ittt reads both, so spelling, key order and the
// file's location do not matter.
bool same_config(const std::string& path, const std::string& dir) {
    try {
        std::vector<std::string> ignored;
        return config_to_json(load_config_json(path, &ignored)) == config_to_json(load_checkpoint_config(dir, &ignored));
    } catch (const Error&) {
        return false;  // unreadable or invalid: it differs, and the listing says from what
    }
}

// Writes and removes a probe file: an --out that cannot take a checkpoint is
// found before the first step, not after the last.
void check_writable(const std::string& out) {
    try {
        make_directories(out);
        const std::string probe = join_path(out, cat(".write-test.", ::getpid()));
        write_file_atomic(probe, "ittt checks that --out is writable\n");
        remove_file_if_exists(probe);
    } catch (const Error& e) {
        fail(cat("--out ", out, " cannot take checkpoints (checked before training): ", e.what()));
    }
}

// Leaves trainable only the parameters whose names match one of the comma-separated
// globs (fnmatch); returns their names. A glob matching no parameter is an error
// naming it (a typo would otherwise freeze everything it meant to train).
std::vector<std::string> freeze_all_but(Model& model, const std::string& patterns, int64_t* trained, int64_t* total) {
    std::vector<std::string> globs = split_list(patterns, "--train-only");
    std::vector<std::string> names;
    std::vector<bool> used(globs.size(), false);
    *trained = *total = 0;
    for (Parameter& p : model.parameters()) {
        bool match = false;
        for (size_t g = 0; g < globs.size(); ++g)
            if (::fnmatch(globs[g].c_str(), p.name.c_str(), 0) == 0) match = true, used[g] = true;
        *total += p.value.numel();
        if (match && p.trainable) names.push_back(p.name), *trained += p.value.numel();
        p.trainable = p.trainable && match;
    }
    for (size_t g = 0; g < globs.size(); ++g)
        ITTT_CHECK(used[g], "--train-only: '", globs[g], "' matches no tensor of the model (names look like ",
                   "model.layers.0.mlp.down_proj.weight, model.layers.0.mlp.ttt_conv.weight, lm_head.weight)");
    ITTT_CHECK(!names.empty(), "--train-only ", patterns, ": every tensor it matches is fixed (not trainable); nothing would train");
    return names;
}

}  // namespace

int cmd_train(int argc, char** argv) {
    const std::string use = usage();
    Args a("train", use, argc, argv, 2);
    if (a.help()) return std::printf("%s", use.c_str()), 0;
    // A reader of stdout that goes away (`ittt train ... | head`) must not end the
    // run: writes then fail with EPIPE, and the trainer says so once and goes on.
    std::signal(SIGPIPE, SIG_IGN);
    Device device = apply_runtime_flags(a);
    const bool resume = a.flag("--resume");
    const std::string out = a.required("--out");
    std::string config = a.str("--config", ""), ckpt = a.str("--ckpt", "");
    const bool task_given = a.has("--task") || a.has("--task-opt");
    TaskConfig task;
    std::string task_name, task_opt;
    if (task_given || !resume) {
        task = read_task(a);
        task_name = a.str("--task", "");
        task_opt = a.str("--task-opt", "");
    }
    std::set<std::string> overrides;
    if (a.has("--override")) {
        if (!resume) a.error("--override changes recorded settings of a run: it needs --resume");
        try {
            for (const std::string& n : split_list(a.str("--override", ""), "--override")) {
                if (!overridable(n)) a.error(cat("--override: '", n, "' is not a setting that can be overridden (valid: task, batch, seq-len, "
                                                   "grad-accum, lr, warmup, min-lr-ratio, weight-decay, grad-clip, ttt-lr-scale, seed, device, kernel)"));
                overrides.insert(n);
            }
        } catch (const Error& e) {
            a.error(e.what());
        }
    }

    RunFlags f;
    auto int_setting = [&](const IntFlag& fl) {
        Setting& s = f[std::string(fl.name).substr(2)];
        s.given = a.has(fl.name);
        s.value = Json(a.integer(fl));
    };
    auto num_setting = [&](const char* name, double fallback) {
        Setting& s = f[std::string(name).substr(2)];
        s.given = a.has(name);
        s.value = Json(a.number(name, fallback));
    };
    int_setting(kSteps);
    for (const IntFlag* fl : {&kCheckpointEvery, &kKeep, &kLogEvery}) int_setting(*fl);
    int_setting(kBatch);
    int_setting(kSeqLen);
    int_setting(kGradAccum);
    int_setting(kWarmup);
    num_setting("--lr", 3e-3);
    num_setting("--min-lr-ratio", 0.1);
    num_setting("--weight-decay", 0.1);
    num_setting("--grad-clip", 1.0);
    num_setting("--ttt-lr-scale", 1.0);
    for (const IntFlag* fl : {&kSeed, &kInitSeed}) {  // seeds are 64-bit: recorded as text, exactly
        Setting& s = f[std::string(fl->name).substr(2)];
        s.given = a.has(fl->name);
        s.value = Json(std::to_string(a.integer(*fl)));
    }
    f["task"] = {"task", task_given || !resume ? Json(task.describe()) : Json(), task_given};
    // Recorded absolute, so a --resume from another working directory names the same file.
    f["config"] = {"config", config.empty() ? Json() : Json(absolute_path(config)), !config.empty()};
    f["ckpt"] = {"ckpt", ckpt.empty() ? Json() : Json(absolute_path(ckpt)), !ckpt.empty()};
    f["device"] = {"device", Json(a.str("--device", "cpu")), a.has("--device")};
    f["kernel"] = {"kernel", Json(a.str("--kernel", "")), a.has("--kernel")};
    f["train-only"] = {"train-only", a.has("--train-only") ? Json(a.str("--train-only", "")) : Json(), a.has("--train-only")};
    {
        WeightsFormat wf = read_weights_format(a);  // how checkpoints are written: recorded like the rest
        f["save-dtype"] = {"save-dtype", Json(wf.bf16 ? "bf16" : "f32"), a.has("--save-dtype")};
        f["shard-size"] = {"shard-size", Json(wf.shard_size), a.has("--shard-size")};
    }

    TrainConfig tc;
    tc.json = a.flag("--json");
    tc.out_dir = out;
    const bool context_parallel = read_context_parallel(a);
    a.finish();
    if (!resume && config.empty() == ckpt.empty()) a.error("give exactly one of --config FILE or --ckpt DIR (or --resume)");
    // The Trainer checks these too, but as run-time errors; here they are usage errors.
    if (!(f["lr"].value.as_number() > 0)) a.error(cat("--lr must be > 0, found ", f["lr"].value.as_number()));
    const double mlr = f["min-lr-ratio"].value.as_number();
    if (!(mlr >= 0 && mlr <= 1)) a.error(cat("--min-lr-ratio must be in [0, 1], found ", mlr));
    if (!(f["weight-decay"].value.as_number() >= 0)) a.error(cat("--weight-decay must be >= 0, found ", f["weight-decay"].value.as_number()));
    if (!(f["ttt-lr-scale"].value.as_number() > 0)) a.error(cat("--ttt-lr-scale must be > 0, found ", f["ttt-lr-scale"].value.as_number()));
    if (!(f["grad-clip"].value.as_number() >= 0))
        a.error(cat("--grad-clip must be >= 0 (0 turns clipping off), found ", f["grad-clip"].value.as_number()));

    // A step directory given as --out (run/step-00000005 for run) would nest a
    // new run inside that checkpoint, which --ckpt run never sees.
    if (const std::string run = run_of_step_directory(out); !run.empty())
        fail(cat("--out ", out, " is a checkpoint of the run directory ", run, ", not a run directory: give --out ", run,
                 resume ? " (--resume continues its newest checkpoint)" : " with --resume to continue that run, or choose another --out"));
    std::string resume_dir;
    if (resume) resume_dir = resolve_checkpoint(out).dir;  // before anything is created: a mistyped --out stays absent
    check_writable(out);
    // One writer per run directory, held to the end (io/writer_lock.h); taken
    // before anything else is read from --out. Under mpirun only rank 0 writes,
    // and which rank this is is known only once the job has started: below.
    std::optional<WriterLock> lock;
    if (!context_parallel) {
        lock.emplace(run_lock_path(out), cat("--out ", out), "ittt train");
        if (resume) resume_dir = resolve_checkpoint(out).dir;  // a writer that just ended may have added one
        install_stop_handlers();  // (under mpirun SIGTERM is the job's: parallel/context.h)
    }
    for (const std::string& p : remove_stale_temporaries(out))
        std::fprintf(stderr, "ittt train: removed %s, left by an interrupted save\n", p.c_str());

    TrainConfig recorded_schedule;  // the schedule as the checkpoint recorded it
    int64_t recorded_steps = -1;
    if (resume) {
        ITTT_CHECK(checkpoint_has_trainer_state(resume_dir), "--resume ", resume_dir,
                   ": no trainer_state.json (written by `ittt init`, not `ittt train`?)");
        Json state = load_checkpoint_trainer_state(resume_dir);
        const Json* recorded = state.find("settings");
        ITTT_CHECK(recorded && recorded->is_object(), "--resume ", resume_dir,
                   ": trainer_state.json records no settings (written by an older ittt); it cannot be resumed strictly");
        std::vector<std::string> differences, notes;
        for (Setting& s : f.settings) {
            const Json* rec = recorded->find(s.name);
            Json recorded_value = rec ? *rec : Json();
            if (s.name == "steps") {
                recorded_steps = recorded_value.is_null() ? -1 : recorded_value.as_int64();
                if (!s.given) s.value = recorded_value;
                continue;
            }
            if (is_cadence(s.name)) {  // what is saved and printed, not what is learned: a flag given changes it
                if (!s.given && !recorded_value.is_null()) s.value = recorded_value;  // older runs recorded none: the default
                if (s.given && !recorded_value.is_null() && s.value != recorded_value)
                    notes.push_back(cat("--", s.name, " ", json_text(s.value), " from here on (recorded ", json_text(recorded_value), ")"));
                continue;
            }
            if (!s.given) {
                s.value = recorded_value;
                continue;
            }
            if (s.value == recorded_value) continue;
            // The same model config reached by another path (another working
            // directory, a copy) is the same setting: compared by what it says.
            if (s.name == "config" && !recorded_value.is_null() && same_config(s.value.as_string(), resume_dir)) {
                s.value = recorded_value;
                continue;
            }
            if (s.name == "ckpt" && !recorded_value.is_null() && same_file(s.value.as_string(), recorded_value.as_string())) {
                s.value = recorded_value;
                continue;
            }
            if (overridable(s.name) && overrides.count(s.name)) {
                notes.push_back(cat("--", s.name, " overridden: recorded ", json_text(recorded_value), ", now ", json_text(s.value)));
                continue;
            }
            differences.push_back(cat("--", s.name, " ", json_text(recorded_value), " vs ", json_text(s.value),
                                      s.name == "config" ? " (they describe different models)" : ""));
        }
        for (const std::string& name : overrides)
            if (f[name].value == (recorded->find(name) ? *recorded->find(name) : Json()))
                notes.push_back(cat("--override ", name, ": the value given equals the recorded one; nothing is overridden"));
        if (!differences.empty()) {
            std::string list;
            for (size_t i = 0; i < differences.size(); ++i) list += (i ? "; " : "") + differences[i];
            bool any_fixed = false;
            for (const std::string& d : differences)
                any_fixed = any_fixed || d.rfind("--config ", 0) == 0 || d.rfind("--ckpt ", 0) == 0 || d.rfind("--init-seed ", 0) == 0;
            fail(cat("--resume ", resume_dir, ": the flags given differ from the run's recorded settings (recorded vs given): ", list,
                     ". Leave a flag out to use the recorded value", any_fixed ? " (--config, --ckpt and --init-seed only shape the start of a run and cannot change)" : "",
                     ", or name it in --override to change it on purpose"));
        }
        auto recorded_number = [&](const char* key, double fallback) {
            const Json* v = recorded->find(key);
            return v && v->is_number() ? v->as_number() : fallback;
        };
        recorded_schedule.steps = recorded_steps;
        recorded_schedule.lr = recorded_number("lr", tc.lr);
        recorded_schedule.warmup = static_cast<int64_t>(recorded_number("warmup", 0));
        recorded_schedule.min_lr_ratio = recorded_number("min-lr-ratio", 0.1);
        for (const std::string& n : notes)
            if (!tc.json) std::fprintf(stderr, "ittt train: %s\n", n.c_str());
        // Recorded settings are the truth from here on.
        if (!task_given) {
            const Json* tn = recorded->find("task-name");
            const Json* to = recorded->find("task-opt");
            ITTT_CHECK(tn && to, "--resume ", resume_dir, ": trainer_state.json records no task-name / task-opt");
            task_name = tn->as_string();
            task_opt = to->as_string();
            task = parse_task_config(task_name, parse_option_list(task_opt));
        }
        config = f["config"].value.is_null() ? "" : f["config"].value.as_string();
        ckpt = f["ckpt"].value.is_null() ? "" : f["ckpt"].value.as_string();
        if (f["kernel"].given || !f["kernel"].value.as_string().empty()) ops::set_versions_from_string(f["kernel"].value.as_string());
        if (f["device"].value.as_string() != "cpu") device = resolve_device(f["device"].value.as_string());
    } else {
        std::vector<RunCheckpoint> existing = list_run_checkpoints(out);
        ITTT_CHECK(existing.empty(), "--out ", out, " already holds checkpoints (newest: ", existing.empty() ? "" : existing.back().dir,
                   "); continue that run with --resume, or choose another --out");
        ITTT_CHECK(!is_regular_file(checkpoint_config_path(out)), "--out ", out,
                   " is a checkpoint directory (it has config.json); a run directory holds step-N checkpoints: choose another --out");
    }

    tc.steps = f["steps"].value.as_int64();
    tc.checkpoint_every = f["checkpoint-every"].value.as_int64();
    tc.keep = f["keep"].value.as_int64();
    tc.log_every = f["log-every"].value.as_int64();
    tc.grad_accum = static_cast<int>(f["grad-accum"].value.as_int64());
    tc.lr = f["lr"].value.as_number();
    tc.warmup = f["warmup"].value.as_int64();
    tc.min_lr_ratio = f["min-lr-ratio"].value.as_number();
    tc.weight_decay = f["weight-decay"].value.as_number();
    tc.grad_clip = f["grad-clip"].value.as_number();
    tc.ttt_lr_scale = f["ttt-lr-scale"].value.is_null() ? 1.0 : f["ttt-lr-scale"].value.as_number();  // older runs: 1
    const int batch = static_cast<int>(f["batch"].value.as_int64());
    const int seq_len = static_cast<int>(f["seq-len"].value.as_int64());
    const uint64_t seed = std::stoull(f["seed"].value.as_string());
    const uint64_t init_seed = std::stoull(f["init-seed"].value.as_string());
    // Older runs recorded neither: F32, one file, everything trained.
    tc.save_format.bf16 = !f["save-dtype"].value.is_null() && f["save-dtype"].value.as_string() == "bf16";
    tc.save_format.shard_size = f["shard-size"].value.is_null() ? 0 : f["shard-size"].value.as_int64();
    const std::string train_only = f["train-only"].value.is_null() ? "" : f["train-only"].value.as_string();
    for (const Setting& s : f.settings) tc.settings.set(s.name, s.value);
    tc.settings.set("task-name", task_name);
    tc.settings.set("task-opt", task_opt);

    // Every rank of a context-parallel job runs this command; rank 0 writes the checkpoints.
    parallel::Context* cp = context_parallel ? start_context_parallel(device) : nullptr;
    // Rank 0 of a context-parallel job takes the lock now. What was read before
    // it was taken is checked again: another writer may have just ended.
    if (cp && cp->rank() == 0) {
        lock.emplace(run_lock_path(out), cat("--out ", out), "ittt train");
        if (resume) {
            const std::string now = resolve_checkpoint(out).dir;
            ITTT_CHECK(now == resume_dir, "--resume ", out, ": its newest checkpoint changed from ", resume_dir, " to ", now,
                       " while this run started (another writer just ended); run the command again");
        } else {
            std::vector<RunCheckpoint> existing = list_run_checkpoints(out);
            ITTT_CHECK(existing.empty(), "--out ", out, " already holds checkpoints (newest: ", existing.empty() ? "" : existing.back().dir,
                       "), written while this run started; continue that run with --resume, or choose another --out");
        }
    }
    tc.stop_requested = &g_stop_signal;
    tc.on_log_failure = [&](int error, int64_t step) {
        std::fprintf(stderr, "ittt train: cannot write to stdout (%s) after step %lld: progress goes nowhere from here; the "
                             "training and its checkpoints in %s are not affected\n",
                     std::strerror(error), static_cast<long long>(step), out.c_str());
        discard_stdout();
    };
    Model model = resume ? load_model(resume_dir, DType::F32, device)
                 : !ckpt.empty() ? [&] {
                       ResolvedCheckpoint r = resolve_checkpoint(ckpt);
                       if (!r.note.empty()) std::fprintf(stderr, "ittt train: %s\n", r.note.c_str());
                       return load_model(r.dir, DType::F32, device);
                   }()
                                 : [&] {
                                       std::vector<std::string> defaults;
                                       Model m(load_config_json(config, &defaults), DType::F32, device);
                                       print_config_defaults(defaults, "ittt train");
                                       m.init_random(init_seed);
                                       return m;
                                   }();
    model.set_context_parallel(cp);
    if (!train_only.empty()) {
        int64_t trained = 0, total = 0;
        std::vector<std::string> names = freeze_all_but(model, train_only, &trained, &total);
        if (!tc.json)
            std::printf("--train-only %s: training %lld of %lld parameters in %zu tensors; the rest are frozen\n", train_only.c_str(),
                        static_cast<long long>(trained), static_cast<long long>(total), names.size());
    }
    const int V = model.config().vocab_size;
    require_memory(forward_bytes(model, batch, seq_len, true) + 3 * 4 * parameter_count(model.config()),
                   cat("training on batches of ", batch, " x ", seq_len, " tokens (activations, gradients, AdamW moments)"));
    make_batch(task, V, 1, seq_len, 0);  // fail now, not at step 1, if the task cannot fit
    Trainer trainer(model, tc, [&](int64_t step, int micro, Tensor& tokens, Tensor& targets) {
        Batch b = make_batch(task, V, batch, seq_len, train_batch_seed(seed, step, micro));
        tokens = b.tokens_tensor();
        targets = b.targets_tensor().view({static_cast<int64_t>(batch) * seq_len});
    });
    if (resume) {
        trainer.resume(resume_dir);
        const int64_t done = trainer.steps_done();
        if (!tc.json) std::printf("resuming %s at step %lld\n", resume_dir.c_str(), static_cast<long long>(done));
        if (recorded_steps >= 0 && recorded_steps != tc.steps && !tc.json) {
            const TrainConfig& old = recorded_schedule;
            std::printf("--steps %lld (recorded %lld): the warm-up + cosine schedule is recomputed over %lld steps; step %lld "
                        "trains at lr %.4g (the recorded schedule: %.4g) and the decay reaches lr %.4g at step %lld\n",
                        static_cast<long long>(tc.steps), static_cast<long long>(recorded_steps), static_cast<long long>(tc.steps),
                        static_cast<long long>(done + 1), trainer.lr_at(done + 1), scheduled_lr(old, done + 1), trainer.lr_at(tc.steps),
                        static_cast<long long>(tc.steps));
        }
        if (done == tc.steps) {
            if (!tc.json) std::printf("nothing to do: %s is already at step %lld of %lld\n", resume_dir.c_str(),
                                      static_cast<long long>(done), static_cast<long long>(tc.steps));
            return 0;
        }
    }
    if (!tc.json)
        std::printf("training %lld parameters on %s (%s), batch %d x %d tokens, %lld steps\n",
                    static_cast<long long>(model.parameter_count()), task.describe().c_str(), device_name(device), batch, seq_len,
                    static_cast<long long>(tc.steps));
    if (cp && !tc.json) std::printf("context parallel: every sequence split over %d ranks\n", cp->size());
    if (tc.steps == 0) {
        std::string dir = trainer.save();
        if (!tc.json) std::printf("--steps 0: no training; wrote the initial checkpoint %s\n", dir.c_str());
        if (std::fflush(stdout) != 0) tc.on_log_failure(errno, 0);
        return 0;
    }
    trainer.run();
    if (const int sig = trainer.stopped_by()) {
        std::fprintf(stderr, "ittt train: stopped by %s after step %lld of %lld; %s%s\n", signal_name(sig),
                     static_cast<long long>(trainer.steps_done()), static_cast<long long>(tc.steps), trainer.kept_text().c_str(),
                     trainer.last_checkpoint().empty() ? "" : cat("; continue with: ittt train --resume --out ", out).c_str());
        return 128 + sig;
    }
    if (!tc.json) std::printf("wrote %s\n", trainer.last_checkpoint().c_str());
    // The checkpoints are the run's result: a stdout that failed at its last line is said as during training.
    if (std::fflush(stdout) != 0) tc.on_log_failure(errno, trainer.steps_done());
    return 0;
}

}  // namespace ittt
