// run_settings.h: every setting that shapes a training run, typed, and the one
// table that names them.
//
// trainer_state.json records each setting under "settings", keyed by the name
// of its `ittt train` flag without "--", so a run directory says how it was
// made. The table below is the only list of those names: the Trainer writes
// the record from it, `ittt train` parses its number flags from it (range and
// --help line included), and `--resume` reads the record back through it and
// compares each setting with the flag given as the entry's OnResume says.
//
//   RunSettings s;                          // the defaults of `ittt train`
//   s.lr = 1e-2;
//   Json record = settings_to_json(s);      // {"task": "", "steps": 200, ..., "lr": 0.01, ...}
//   for (const RunSetting& e : run_settings_table())
//       if (e.on_resume == OnResume::Overridable) ...;   // what --override may name
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "io/checkpoint.h"
#include "io/json.h"

namespace ittt {

struct RunSettings {
    // The schedule and the optimizer: what the Trainer uses.
    int64_t steps = 200;
    int grad_accum = 1;            // micro-batches per optimizer step
    double lr = 3e-3;              // peak learning rate
    double min_lr_ratio = 0.1;     // cosine decays to lr * min_lr_ratio
    int64_t warmup = 20;           // linear warm-up steps
    double weight_decay = 0.1;     // decoupled, matrices only
    double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
    double grad_clip = 1.0;        // global L2 norm; 0 off
    double ttt_lr_scale = 1.0;     // the TTT target's parameters (names with ".ttt_") train at lr * this
    // What is saved and printed.
    int64_t checkpoint_every = 0;  // 0: only at the end
    int64_t keep = 2;              // checkpoints kept in the run directory (the newest)
    int64_t log_every = 10;
    std::string save_dtype = "f32";  // the weights' dtype in checkpoints: f32 or bf16
    int64_t shard_size = 0;          // bytes per weights shard; 0: one file
    // The data. The Trainer draws batches through a callback; these say what it draws.
    std::string task;                 // TaskConfig::describe(): what --resume compares
    std::string task_name, task_opt;  // --task and --task-opt as given: what --resume rebuilds the task from
    int batch = 8, seq_len = 128;
    uint64_t seed = 1;  // the data seed
    // The start of the run.
    std::string config;      // --config, as an absolute path; "" when the run started from --ckpt
    std::string ckpt;        // --ckpt, as an absolute path; "" when it started from --config
    uint64_t init_seed = 0;  // the weights' seed with --config
    std::string train_only;  // --train-only globs; "": every trainable tensor trains
    // The machine.
    std::string device = "cpu";  // cpu, cuda or auto, as given
    std::string kernel;          // --kernel as given; "": the best version of every op

    // save_dtype and shard_size as io/checkpoint.h takes them; an Error for a save_dtype other than f32 or bf16.
    WeightsFormat weights_format() const;
};

// What `ittt train --resume` does with a flag given for a recorded setting.
enum class OnResume {
    Grows,        // steps: may differ; the schedule is recomputed over the new length, with a note
    FromHereOn,   // what is saved and printed (checkpoint-every, keep, log-every): changes from here on, with a note
    Overridable,  // must equal the recorded value unless --override names it
    Kept,         // must equal the recorded value: how the run trains and stores (train-only, save-dtype, shard-size)
    StartOnly,    // must equal the recorded value: it shaped the start of the run only (config, ckpt, init-seed)
    NotAFlag,     // recorded, never given (Adam's constants; the task's name and options, read back with the task)
};

// Where a setting lives in RunSettings. How it is recorded follows from the
// type: numbers as numbers, seeds (uint64_t) as decimal text, so that all 64
// bits survive a JSON reader that reads numbers as doubles, and strings as
// strings (or null when empty, for the settings that may be absent).
using SettingField = std::variant<int RunSettings::*, int64_t RunSettings::*, double RunSettings::*, uint64_t RunSettings::*,
                                  std::string RunSettings::*>;

struct RunSetting {
    const char* name;  // the flag without "--", and the key in trainer_state.json
    SettingField field;
    OnResume on_resume;
    bool empty_is_absent = false;  // a string recorded as null when "" (config, ckpt, train-only)
    bool command_line = false;     // the command line's (task, batch, seeds, the start, the device)
    // A record may lack it: it was added to trainer_state.json later, and a run
    // recorded before had its default (ttt-lr-scale 1, keep 2, f32, ...). Every
    // other setting is in every record: --resume refuses a record without it.
    bool added_later = false;
    // As a number flag of `ittt train` (meta nullptr: a flag with its own
    // reader, or not a flag). Integers and seeds lie in [min, max]; doubles
    // are finite and above lower (strictly when lower_open) and at most upper.
    const char* meta = nullptr;  // the value's word in --help: N, X, S
    const char* help = nullptr;
    int64_t min = 0, max = 0;
    double lower = 0, upper = 0;
    bool lower_open = false;
    const char* note = "";  // said after the range in a message, e.g. " (0 turns clipping off)"
};

// Every recorded setting, in the order of `ittt train --help`.
const std::vector<RunSetting>& run_settings_table();
// The entry named `name` ("lr"), or nullptr.
const RunSetting* find_run_setting(const std::string& name);
// The names of the settings --override may name: "task, batch, seq-len, ...".
std::string overridable_settings();

// The "settings" object of trainer_state.json: every entry of the table. A
// run made through the library alone (no task: its batches come from its own
// callback) records the trainer's settings only, not the command line's
// defaults, which would not be what it ran.
Json settings_to_json(const RunSettings& s);
// One setting's value as recorded, and from a recorded value (null leaves the
// field as it is: absent, or a run recorded before the setting existed).
// A recorded value of the wrong type is an Error naming the field.
Json setting_value(const RunSetting& e, const RunSettings& s);
void set_setting(const RunSetting& e, RunSettings& s, const Json& recorded);
// A value as messages show it: 0.01, "induction copy_length=0", a seed as its
// number, (none) for null.
std::string setting_text(const RunSetting& e, const Json& value);
// "" when a double setting's value is finite and in its range, else
// "--lr must be > 0, found 0". (An integer's range is checked as its flag is
// parsed: tools/args.h.)
std::string setting_range_problem(const RunSetting& e, const RunSettings& s);
// The range: "[0, 1000000000]" (integers), "> 0", ">= 0", "in [0, 1]" (doubles).
std::string setting_range_text(const RunSetting& e);

}  // namespace ittt
