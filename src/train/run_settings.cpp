#include "train/run_settings.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "runtime/error.h"

namespace ittt {

WeightsFormat RunSettings::weights_format() const {
    ITTT_CHECK(save_dtype == "f32" || save_dtype == "bf16", "save-dtype: expected f32 or bf16, found '", excerpt(save_dtype), "'");
    WeightsFormat f;
    f.bf16 = save_dtype == "bf16";
    f.shard_size = shard_size;
    return f;
}

namespace {

constexpr int64_t kMaxSteps = 1000000000;
constexpr double kInf = std::numeric_limits<double>::infinity();

RunSetting integer(const char* name, SettingField field, OnResume on_resume, const char* meta, int64_t min, int64_t max,
                   const char* help) {
    RunSetting e{name, field, on_resume};
    e.meta = meta;
    e.help = help;
    e.min = min;
    e.max = max;
    return e;
}

RunSetting number(const char* name, double RunSettings::*field, OnResume on_resume, double lower, bool lower_open, double upper,
                  const char* help, const char* note = "") {
    RunSetting e{name, field, on_resume};
    e.meta = "X";
    e.help = help;
    e.lower = lower;
    e.lower_open = lower_open;
    e.upper = upper;
    e.note = note;
    return e;
}

RunSetting text(const char* name, std::string RunSettings::*field, OnResume on_resume, bool empty_is_absent = false) {
    RunSetting e{name, field, on_resume};
    e.empty_is_absent = empty_is_absent;
    return e;
}

// A setting the command line adds: recorded only for runs that name a task.
RunSetting command_line(RunSetting e) {
    e.command_line = true;
    return e;
}

// A setting trainer_state.json gained later: an older record lacks it.
RunSetting added_later(RunSetting e) {
    e.added_later = true;
    return e;
}

std::vector<RunSetting> make_table() {
    using R = RunSettings;
    const OnResume grows = OnResume::Grows, here_on = OnResume::FromHereOn, over = OnResume::Overridable, kept = OnResume::Kept,
                   start = OnResume::StartOnly, none = OnResume::NotAFlag;
    return {
        command_line(text("task", &R::task, over)),  // read by --task / --task-opt
        integer("steps", &R::steps, grows, "N", 0, kMaxSteps, "optimizer steps in all (0: write the initial checkpoint only)"),
        command_line(integer("batch", &R::batch, over, "B", 1, 1 << 30, "sequences per micro-batch")),
        command_line(integer("seq-len", &R::seq_len, over, "n", 1, 1 << 24, "tokens per sequence")),
        integer("grad-accum", &R::grad_accum, over, "K", 1, 1 << 16, "micro-batches per optimizer step"),
        number("lr", &R::lr, over, 0, true, kInf, "peak learning rate"),
        integer("warmup", &R::warmup, over, "N", 0, kMaxSteps, "linear warm-up steps"),
        number("min-lr-ratio", &R::min_lr_ratio, over, 0, false, 1, "the cosine decays to lr * X"),
        number("weight-decay", &R::weight_decay, over, 0, false, kInf, "AdamW decoupled decay of matrices"),
        number("grad-clip", &R::grad_clip, over, 0, false, kInf, "global gradient-norm clip; 0 = off", " (0 turns clipping off)"),
        added_later(number("ttt-lr-scale", &R::ttt_lr_scale, over, 0, true, kInf,
                           "the TTT target's ttt_conv and ttt_proj train at lr * X (never decayed)")),
        command_line(integer("seed", &R::seed, over, "S", 0, INT64_MAX, "data seed")),
        command_line(integer("init-seed", &R::init_seed, start, "S", 0, INT64_MAX, "weights seed with --config")),
        added_later(integer("checkpoint-every", &R::checkpoint_every, here_on, "N", 0, kMaxSteps, "a checkpoint every N steps (0: only at the end)")),
        added_later(integer("keep", &R::keep, here_on, "K", 1, 1000000, "checkpoints kept in --out, the newest")),
        added_later(integer("log-every", &R::log_every, here_on, "N", 0, kMaxSteps, "a progress line every N steps")),
        command_line(text("device", &R::device, over)),  // read by --device (the runtime flags)
        command_line(text("kernel", &R::kernel, over)),  // read by --kernel (the runtime flags)
        command_line(text("config", &R::config, start, true)),
        command_line(text("ckpt", &R::ckpt, start, true)),
        added_later(command_line(text("train-only", &R::train_only, kept, true))),
        added_later(text("save-dtype", &R::save_dtype, kept)),          // read by --save-dtype
        added_later(RunSetting{"shard-size", &R::shard_size, kept}),    // read by --shard-size (K/M/G suffixes)
        command_line(text("task-name", &R::task_name, none)),
        command_line(text("task-opt", &R::task_opt, none)),
        {"adam-beta1", &R::beta1, none},
        {"adam-beta2", &R::beta2, none},
        {"adam-eps", &R::adam_eps, none},
    };
}

std::string number_text(double x) { return cat(x); }

}  // namespace

const std::vector<RunSetting>& run_settings_table() {
    static const std::vector<RunSetting> table = make_table();
    return table;
}

const RunSetting* find_run_setting(const std::string& name) {
    for (const RunSetting& e : run_settings_table())
        if (name == e.name) return &e;
    return nullptr;
}

std::string overridable_settings() {
    std::string names;
    for (const RunSetting& e : run_settings_table())
        if (e.on_resume == OnResume::Overridable) names += (names.empty() ? "" : ", ") + std::string(e.name);
    return names;
}

Json setting_value(const RunSetting& e, const RunSettings& s) {
    return std::visit(
        [&](auto member) -> Json {
            using T = std::decay_t<decltype(s.*member)>;
            const T& v = s.*member;
            if constexpr (std::is_same_v<T, uint64_t>) return Json(std::to_string(v));  // exactly, all 64 bits
            else if constexpr (std::is_same_v<T, std::string>) return e.empty_is_absent && v.empty() ? Json() : Json(v);
            else return Json(v);
        },
        e.field);
}

void set_setting(const RunSetting& e, RunSettings& s, const Json& recorded) {
    if (recorded.is_null()) return;
    std::visit(
        [&](auto member) {
            using T = std::decay_t<decltype(s.*member)>;
            T& v = s.*member;
            if constexpr (std::is_same_v<T, uint64_t>) {
                const std::string& t = recorded.as_string();
                ITTT_CHECK(!t.empty() && t.find_first_not_of("0123456789") == std::string::npos && t.size() <= 20, recorded.where(),
                           ": expected a seed (decimal digits), found \"", excerpt(t, 40), "\"");
                errno = 0;
                const unsigned long long x = std::strtoull(t.c_str(), nullptr, 10);
                ITTT_CHECK(errno == 0, recorded.where(), ": the seed ", t, " is beyond 64 bits");
                v = x;
            } else if constexpr (std::is_same_v<T, std::string>) {
                v = recorded.as_string();
            } else if constexpr (std::is_same_v<T, double>) {
                v = recorded.as_number();
            } else if constexpr (std::is_same_v<T, int>) {
                v = recorded.as_int();
            } else {
                v = recorded.as_int64();
            }
        },
        e.field);
}

Json settings_to_json(const RunSettings& s) {
    Json j = Json::object();
    for (const RunSetting& e : run_settings_table())
        if (!e.command_line || !s.task.empty()) j.set(e.name, setting_value(e, s));
    return j;
}

std::string setting_text(const RunSetting& e, const Json& value) {
    if (value.is_null()) return "(none)";
    if (std::holds_alternative<uint64_t RunSettings::*>(e.field) && value.is_string()) return value.as_string();  // a seed: its number
    return value.dump();
}

std::string setting_range_text(const RunSetting& e) {
    if (!std::holds_alternative<double RunSettings::*>(e.field)) return cat("[", e.min, ", ", e.max, "]");
    if (std::isinf(e.upper)) return cat(e.lower_open ? "> " : ">= ", number_text(e.lower));
    return cat("in [", number_text(e.lower), ", ", number_text(e.upper), "]");
}

std::string setting_range_problem(const RunSetting& e, const RunSettings& s) {
    const auto* member = std::get_if<double RunSettings::*>(&e.field);
    if (!member || e.meta == nullptr) return "";  // integers: their flag's range is checked as it is parsed (tools/args.h)
    const double v = s.**member;
    const bool ok = std::isfinite(v) && (e.lower_open ? v > e.lower : v >= e.lower) && v <= e.upper;
    return ok ? "" : cat("--", e.name, " must be ", setting_range_text(e), e.note, ", found ", v);
}

}  // namespace ittt
