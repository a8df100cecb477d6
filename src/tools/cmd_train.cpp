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
// The settings, their names and how --resume treats each are one table
// (train/run_settings.h): the number flags are parsed from it, the record is
// written and read back through it.
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
#include <type_traits>
#include <variant>
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

// ---------------------------------------------------------------- the flags

std::string absolute_path(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

// An integer setting's default (the value of a default RunSettings).
int64_t integer_default(const RunSetting& e) {
    const RunSettings defaults;
    return std::visit(
        [&](auto member) -> int64_t {
            using T = std::decay_t<decltype(defaults.*member)>;
            if constexpr (std::is_integral_v<T>) return static_cast<int64_t>(defaults.*member);
            else return 0;
        },
        e.field);
}

// Every number flag of the settings table (train/run_settings.h), as --help shows it.
std::string number_flags_help() {
    const RunSettings defaults;
    std::string h;
    for (const RunSetting& e : run_settings_table()) {
        if (e.meta == nullptr) continue;
        const std::string flag = cat("--", e.name);
        if (const auto* member = std::get_if<double RunSettings::*>(&e.field)) {
            std::string left = cat("  ", flag, " ", e.meta);
            left.append(left.size() < 27 ? 27 - left.size() : 2, ' ');
            h += cat(left, e.help, " (default ", defaults.**member, ", ", setting_range_text(e), ")\n");
        } else {
            h += help_line(IntFlag{flag.c_str(), e.meta, integer_default(e), e.min, e.max, e.help});
        }
    }
    return h;
}

// "a, b, c, ..." wrapped under the help text's second column.
std::string wrapped(const std::string& words) {
    std::string out, line;
    for (const std::string& w : split_list(words, "help")) {
        const std::string item = (w[0] == ' ' ? w.substr(1) : w) + ",";
        if (!line.empty() && line.size() + 1 + item.size() > 74) out += line + "\n" + std::string(27, ' '), line.clear();
        line += (line.empty() ? "" : " ") + item;
    }
    line.pop_back();  // the last comma
    return out + line;
}

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
               "  --override NAME,...      on --resume, change these recorded settings on purpose:\n"
               "                           ") +
           wrapped(overridable_settings()) + "\n" + number_flags_help() +
           "  --json                   JSON lines instead of progress lines\n" + kWeightsFormatUsage + kTaskFlagsUsage + kRuntimeFlagsUsage +
           kContextParallelUsage;
}

// Everything `ittt train` reads from its command line, parsed once.
struct TrainFlags {
    RunSettings settings;          // every recorded setting: the flags given, else their defaults
    std::set<std::string> given;   // the settings whose flags were given (their names in the table)
    TaskConfig task;               // with --task (always on a fresh run); on --resume without it, the recorded one
    RuntimeFlags runtime;
    std::string out;               // the run directory
    bool resume = false;
    std::set<std::string> overrides;  // --override: recorded settings to change on purpose
    bool json = false;
    bool context_parallel = false;
};

// A number flag of the settings table into its field: integers in their range
// and doubles finite (Args); a double's range is checked after a.finish().
void read_number_flag(Args& a, const RunSetting& e, RunSettings& s) {
    const std::string flag = cat("--", e.name);
    std::visit(
        [&](auto member) {
            using T = std::decay_t<decltype(s.*member)>;
            if constexpr (std::is_same_v<T, double>) s.*member = a.number(flag, s.*member);
            else if constexpr (!std::is_same_v<T, std::string>)
                s.*member = static_cast<T>(a.integer(flag, static_cast<int64_t>(s.*member), e.min, e.max));
        },
        e.field);
}

std::set<std::string> read_overrides(Args& a, bool resume) {
    std::set<std::string> overrides;
    if (!a.has("--override")) return overrides;
    if (!resume) a.error("--override changes recorded settings of a run: it needs --resume");
    try {
        for (const std::string& n : split_list(a.str("--override", ""), "--override")) {
            const RunSetting* e = find_run_setting(n);
            if (!e || e->on_resume != OnResume::Overridable)
                a.error(cat("--override: '", n, "' is not a setting that can be overridden (valid: ", overridable_settings(), ")"));
            overrides.insert(n);
        }
    } catch (const Error& e) {
        a.error(e.what());
    }
    return overrides;
}

TrainFlags read_train_flags(Args& a) {
    TrainFlags f;
    RunSettings& s = f.settings;
    f.runtime = read_runtime_flags(a);
    s.device = f.runtime.device_name;
    s.kernel = f.runtime.kernel;
    f.resume = a.flag("--resume");
    f.out = a.required("--out");
    // Recorded absolute, so a --resume from another working directory names the same file.
    if (a.has("--config")) s.config = absolute_path(a.str("--config", ""));
    if (a.has("--ckpt")) s.ckpt = absolute_path(a.str("--ckpt", ""));
    const bool task_given = a.has("--task") || a.has("--task-opt");
    if (task_given || !f.resume) {
        f.task = read_task(a);
        s.task = f.task.describe();
        s.task_name = a.str("--task", "");
        s.task_opt = a.str("--task-opt", "");
    }
    f.overrides = read_overrides(a, f.resume);
    for (const RunSetting& e : run_settings_table())
        if (e.meta != nullptr) read_number_flag(a, e, s);
    s.train_only = a.str("--train-only", "");
    const WeightsFormat wf = read_weights_format(a);  // how checkpoints are written: recorded like the rest
    s.save_dtype = wf.bf16 ? "bf16" : "f32";
    s.shard_size = wf.shard_size;
    f.json = a.flag("--json");
    f.context_parallel = read_context_parallel(a);
    a.finish();
    for (const RunSetting& e : run_settings_table())
        if (e.on_resume != OnResume::NotAFlag && a.has(cat("--", e.name))) f.given.insert(e.name);
    if (task_given) f.given.insert("task");
    if (!f.resume && s.config.empty() == s.ckpt.empty()) a.error("give exactly one of --config FILE or --ckpt DIR (or --resume)");
    // The Trainer checks these too, but as run-time errors; here they are usage errors.
    for (const RunSetting& e : run_settings_table())
        if (const std::string problem = setting_range_problem(e, s); !problem.empty()) a.error(problem);
    return f;
}

// ---------------------------------------------------------------- helpers

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

// --out must be a fresh run directory: no checkpoints (`when` is added to the
// message: the second check, under mpirun, says they appeared meanwhile), and
// not a checkpoint itself.
void check_fresh_out(const std::string& out, const std::string& when) {
    std::vector<RunCheckpoint> existing = list_run_checkpoints(out);
    ITTT_CHECK(existing.empty(), "--out ", out, " already holds checkpoints (newest: ", existing.empty() ? "" : existing.back().dir, ")",
               when, "; continue that run with --resume, or choose another --out");
    ITTT_CHECK(!is_regular_file(checkpoint_config_path(out)), "--out ", out,
               " is a checkpoint directory (it has config.json); a run directory holds step-N checkpoints: choose another --out");
}

// ---------------------------------------------------------------- the run directory

// Checks --out and takes it: refuses a step directory, finds the checkpoint
// --resume continues (before anything is created: a mistyped --out stays
// absent), checks that checkpoints can be written there, takes the one-writer
// lock (io/writer_lock.h; under mpirun only rank 0 writes, and which rank this
// is is known only once the job has started: take_lock_as_rank0) and removes
// what an interrupted save left. Returns the checkpoint to resume ("" on a fresh run).
std::string open_run_directory(const TrainFlags& f, std::optional<WriterLock>& lock) {
    // A step directory given as --out (run/step-00000005 for run) would nest a
    // new run inside that checkpoint, which --ckpt run never sees.
    if (const std::string run = run_of_step_directory(f.out); !run.empty())
        fail(cat("--out ", f.out, " is a checkpoint of the run directory ", run, ", not a run directory: give --out ", run,
                 f.resume ? " (--resume continues its newest checkpoint)" : " with --resume to continue that run, or choose another --out"));
    std::string resume_dir;
    if (f.resume) resume_dir = resolve_checkpoint(f.out).dir;
    check_writable(f.out);
    if (!f.context_parallel) {
        lock.emplace(run_lock_path(f.out), cat("--out ", f.out), "ittt train");
        if (f.resume) resume_dir = resolve_checkpoint(f.out).dir;  // a writer that just ended may have added one
        install_stop_handlers();  // (under mpirun SIGTERM is the job's: parallel/context.h)
    }
    for (const std::string& p : remove_stale_temporaries(f.out))
        std::fprintf(stderr, "ittt train: removed %s, left by an interrupted save\n", p.c_str());
    if (!f.resume) check_fresh_out(f.out, "");
    return resume_dir;
}

// Rank 0 of a context-parallel job takes the lock once the job has started.
// What was read before it was taken is checked again: another writer may have just ended.
void take_lock_as_rank0(const TrainFlags& f, const std::string& resume_dir, std::optional<WriterLock>& lock) {
    lock.emplace(run_lock_path(f.out), cat("--out ", f.out), "ittt train");
    if (!f.resume) return check_fresh_out(f.out, ", written while this run started");
    const std::string now = resolve_checkpoint(f.out).dir;
    ITTT_CHECK(now == resume_dir, "--resume ", f.out, ": its newest checkpoint changed from ", resume_dir, " to ", now,
               " while this run started (another writer just ended); run the command again");
}

// ---------------------------------------------------------------- --resume

// What --resume found: the run's record, typed, and the notes to print.
struct ResumeRecord {
    RunSettings recorded;            // as trainer_state.json records them (the schedule before --steps changed)
    std::vector<std::string> notes;  // cadence changed, settings overridden, overrides that change nothing
};

// The "settings" of the checkpoint's trainer_state.json.
Json recorded_settings(const std::string& resume_dir) {
    ITTT_CHECK(checkpoint_has_trainer_state(resume_dir), "--resume ", resume_dir,
               ": no trainer_state.json (written by `ittt init`, not `ittt train`?)");
    Json state = load_checkpoint_trainer_state(resume_dir);
    const Json* recorded = state.find("settings");
    ITTT_CHECK(recorded && recorded->is_object(), "--resume ", resume_dir,
               ": trainer_state.json records no settings (written by an older ittt); it cannot be resumed strictly");
    return *recorded;
}

// One setting on --resume, as its table entry says: a flag left out takes the
// recorded value; a flag given must equal it, unless it is --steps, what is
// saved and printed (a note), an override (a note), or the same --config or
// --ckpt spelt another way. Returns the difference to refuse, or "".
std::string resume_setting(const RunSetting& e, TrainFlags& f, const Json& recorded, const std::string& resume_dir,
                           std::vector<std::string>& notes) {
    RunSettings& s = f.settings;
    const Json value = setting_value(e, s);
    const bool given = f.given.count(e.name) > 0;
    const std::string name = e.name;
    if (!given || e.on_resume == OnResume::Grows) {
        ITTT_CHECK(given || !recorded.is_null() || e.empty_is_absent || e.added_later, "--resume ", resume_dir,
                   ": trainer_state.json records no '", name, "' setting, which every run of ittt train records (was the file edited?); "
                   "it cannot be resumed strictly");
        if (!given) set_setting(e, s, recorded);  // null: a run recorded before the setting existed, which had its default
        return "";
    }
    if (e.on_resume == OnResume::FromHereOn) {  // what is saved and printed, not what is learned
        if (!recorded.is_null() && value != recorded)
            notes.push_back(cat("--", name, " ", setting_text(e, value), " from here on (recorded ", setting_text(e, recorded), ")"));
        return "";
    }
    if (value == recorded) return "";
    // The same model config reached by another path (another working
    // directory, a copy) is the same setting: compared by what it says.
    if ((name == "config" && !recorded.is_null() && same_config(value.as_string(), resume_dir)) ||
        (name == "ckpt" && !recorded.is_null() && same_file(value.as_string(), recorded.as_string()))) {
        set_setting(e, s, recorded);
        return "";
    }
    if (e.on_resume == OnResume::Overridable && f.overrides.count(name)) {
        notes.push_back(cat("--", name, " overridden: recorded ", setting_text(e, recorded), ", now ", setting_text(e, value)));
        return "";
    }
    return cat("--", name, " ", setting_text(e, recorded), " vs ", setting_text(e, value), name == "config" ? " (they describe different models)" : "");
}

// Reads the run's record into f.settings (the flags left out) and checks the
// flags given against it; refuses every difference at once, each listed.
ResumeRecord apply_record(TrainFlags& f, const std::string& resume_dir) {
    const Json recorded = recorded_settings(resume_dir);
    auto recorded_value = [&](const RunSetting& e) { return recorded.find(e.name) ? *recorded.find(e.name) : Json(); };
    ResumeRecord r;
    std::vector<std::string> differences;
    bool start_only = false;
    for (const RunSetting& e : run_settings_table()) {
        set_setting(e, r.recorded, recorded_value(e));
        if (e.on_resume == OnResume::NotAFlag) continue;
        const std::string d = resume_setting(e, f, recorded_value(e), resume_dir, r.notes);
        if (d.empty()) continue;
        differences.push_back(d);
        start_only = start_only || e.on_resume == OnResume::StartOnly;
    }
    for (const std::string& name : f.overrides) {
        const RunSetting& e = *find_run_setting(name);
        if (setting_value(e, f.settings) == recorded_value(e))
            r.notes.push_back(cat("--override ", name, ": the value given equals the recorded one; nothing is overridden"));
    }
    if (!differences.empty()) {
        std::string list;
        for (size_t i = 0; i < differences.size(); ++i) list += (i ? "; " : "") + differences[i];
        fail(cat("--resume ", resume_dir, ": the flags given differ from the run's recorded settings (recorded vs given): ", list,
                 ". Leave a flag out to use the recorded value",
                 start_only ? " (--config, --ckpt and --init-seed only shape the start of a run and cannot change)" : "",
                 ", or name it in --override to change it on purpose"));
    }
    // Recorded settings are the truth from here on: the task, the kernels, the device.
    if (!f.given.count("task")) {
        ITTT_CHECK(recorded.find("task-name") && recorded.find("task-opt"), "--resume ", resume_dir,
                   ": trainer_state.json records no task-name / task-opt");
        set_setting(*find_run_setting("task-name"), f.settings, *recorded.find("task-name"));
        set_setting(*find_run_setting("task-opt"), f.settings, *recorded.find("task-opt"));
        f.task = parse_task_config(f.settings.task_name, parse_option_list(f.settings.task_opt));
    }
    if (f.given.count("kernel") || !f.settings.kernel.empty()) ops::set_versions_from_string(f.settings.kernel);
    if (f.settings.device != "cpu") f.runtime.device = resolve_device(f.settings.device);
    return r;
}

// ---------------------------------------------------------------- the run

// The weights the run starts from: the checkpoint resumed, --ckpt, or --config
// initialised with --init-seed.
Model load_start(const RunSettings& s, const std::string& resume_dir, Device device) {
    if (!resume_dir.empty()) return load_model(resume_dir, DType::F32, device);
    if (!s.ckpt.empty()) {
        ResolvedCheckpoint r = resolve_checkpoint(s.ckpt);
        if (!r.note.empty()) std::fprintf(stderr, "ittt train: %s\n", r.note.c_str());
        return load_model(r.dir, DType::F32, device);
    }
    std::vector<std::string> defaults;
    Model m(load_config_json(s.config, &defaults), DType::F32, device);
    print_config_defaults(defaults, "ittt train");
    m.init_random(s.init_seed);
    return m;
}

// --resume, printed: where, and the schedule recomputed when --steps changed.
// Returns false when the run is already at --steps (nothing to do).
bool report_resume(const Trainer& trainer, const TrainConfig& tc, const ResumeRecord& record, const std::string& resume_dir) {
    const int64_t done = trainer.steps_done();
    if (!tc.json) std::printf("resuming %s at step %lld\n", resume_dir.c_str(), static_cast<long long>(done));
    if (record.recorded.steps != tc.steps && !tc.json)
        std::printf("--steps %lld (recorded %lld): the warm-up + cosine schedule is recomputed over %lld steps; step %lld "
                    "trains at lr %.4g (the recorded schedule: %.4g) and the decay reaches lr %.4g at step %lld\n",
                    static_cast<long long>(tc.steps), static_cast<long long>(record.recorded.steps), static_cast<long long>(tc.steps),
                    static_cast<long long>(done + 1), trainer.lr_at(done + 1), scheduled_lr(record.recorded, done + 1),
                    trainer.lr_at(tc.steps), static_cast<long long>(tc.steps));
    if (done != tc.steps) return true;
    if (!tc.json)
        std::printf("nothing to do: %s is already at step %lld of %lld\n", resume_dir.c_str(), static_cast<long long>(done),
                    static_cast<long long>(tc.steps));
    return false;
}

// Trains to tc.steps (or writes the initial checkpoint for --steps 0); returns the exit code.
int train_to_the_end(Trainer& trainer, const TrainConfig& tc) {
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
                     trainer.last_checkpoint().empty() ? "" : cat("; continue with: ittt train --resume --out ", tc.out_dir).c_str());
        return 128 + sig;
    }
    if (!tc.json) std::printf("wrote %s\n", trainer.last_checkpoint().c_str());
    // The checkpoints are the run's result: a stdout that failed at its last line is said as during training.
    if (std::fflush(stdout) != 0) tc.on_log_failure(errno, trainer.steps_done());
    return 0;
}

// The settings as the Trainer takes them, with how this process runs: where
// checkpoints go, the progress lines and what happens when they fail, the stop signal.
TrainConfig train_config(const TrainFlags& f) {
    TrainConfig tc;
    static_cast<RunSettings&>(tc) = f.settings;
    tc.out_dir = f.out;
    tc.json = f.json;
    tc.stop_requested = &g_stop_signal;
    const std::string out = f.out;
    tc.on_log_failure = [out](int error, int64_t step) {
        std::fprintf(stderr, "ittt train: cannot write to stdout (%s) after step %lld: progress goes nowhere from here; the "
                             "training and its checkpoints in %s are not affected\n",
                     std::strerror(error), static_cast<long long>(step), out.c_str());
        discard_stdout();
    };
    return tc;
}

// The run: its directory, its record (--resume), the job, the model, the trainer.
int train(TrainFlags& f) {
    std::optional<WriterLock> lock;
    const std::string resume_dir = open_run_directory(f, lock);
    ResumeRecord record;
    if (f.resume) {
        record = apply_record(f, resume_dir);
        for (const std::string& n : record.notes)
            if (!f.json) std::fprintf(stderr, "ittt train: %s\n", n.c_str());
    }
    const TrainConfig tc = train_config(f);
    const RunSettings& s = f.settings;
    // Every rank of a context-parallel job runs this command; rank 0 writes the checkpoints.
    parallel::Context* cp = f.context_parallel ? start_context_parallel(f.runtime.device) : nullptr;
    if (cp && cp->rank() == 0) take_lock_as_rank0(f, resume_dir, lock);
    Model model = load_start(s, resume_dir, f.runtime.device);
    model.set_context_parallel(cp);
    if (!s.train_only.empty()) {
        int64_t trained = 0, total = 0;
        std::vector<std::string> names = freeze_all_but(model, s.train_only, &trained, &total);
        if (!tc.json)
            std::printf("--train-only %s: training %lld of %lld parameters in %zu tensors; the rest are frozen\n", s.train_only.c_str(),
                        static_cast<long long>(trained), static_cast<long long>(total), names.size());
    }
    const int V = model.config().vocab_size;
    require_memory(forward_bytes(model, s.batch, s.seq_len, true) + 3 * 4 * parameter_count(model.config()),
                   cat("training on batches of ", s.batch, " x ", s.seq_len, " tokens (activations, gradients, AdamW moments)"));
    make_batch(f.task, V, 1, s.seq_len, 0);  // fail now, not at step 1, if the task cannot fit
    const TaskConfig task = f.task;
    Trainer trainer(model, tc, DocumentBatchFn([task, V, batch = s.batch, seq_len = s.seq_len, seed = s.seed](
                                   int64_t step, int micro, Tensor& tokens, Tensor& targets, std::vector<std::vector<int>>& document_starts) {
        Batch b = make_batch(task, V, batch, seq_len, train_batch_seed(seed, step, micro));
        tokens = b.tokens_tensor();
        targets = b.targets_tensor().view({static_cast<int64_t>(batch) * seq_len});
        document_starts = b.document_starts;  // text with docs=bounded: the model resets at each document
    }));
    if (f.resume) {
        trainer.resume(resume_dir);
        if (!report_resume(trainer, tc, record, resume_dir)) return 0;
    }
    if (!tc.json)
        std::printf("training %lld parameters on %s (%s), batch %d x %d tokens, %lld steps\n", static_cast<long long>(model.parameter_count()),
                    f.task.describe().c_str(), device_name(f.runtime.device), s.batch, s.seq_len, static_cast<long long>(tc.steps));
    if (cp && !tc.json) std::printf("context parallel: every sequence split over %d ranks\n", cp->size());
    return train_to_the_end(trainer, tc);
}

}  // namespace

int cmd_train(int argc, char** argv) {
    const std::string use = usage();
    Args a("train", use, argc, argv, 2);
    if (a.help()) return std::printf("%s", use.c_str()), 0;
    // A reader of stdout that goes away (`ittt train ... | head`) must not end the
    // run: writes then fail with EPIPE, and the trainer says so once and goes on.
    std::signal(SIGPIPE, SIG_IGN);
    TrainFlags f = read_train_flags(a);
    return train(f);
}

}  // namespace ittt
