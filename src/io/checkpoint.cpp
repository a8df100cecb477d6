#include "io/checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "io/atomic_file.h"
#include "io/config_json.h"
#include "runtime/error.h"

namespace ittt {

std::string checkpoint_config_path(const std::string& dir) { return join_path(dir, "config.json"); }
std::string checkpoint_model_path(const std::string& dir) { return join_path(dir, "model.safetensors"); }
std::string checkpoint_optimizer_path(const std::string& dir) { return join_path(dir, "optimizer.safetensors"); }
std::string checkpoint_trainer_state_path(const std::string& dir) { return join_path(dir, "trainer_state.json"); }

namespace {

const char kStaging[] = ".staging.";
const char kTrash[] = ".trash.";
const char kStepPrefix[] = "step-";

std::string strip_trailing_slashes(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
}

// ".<name><kind><pid>" next to <name>: the staging and trash names of this process.
std::string temporary_name(const std::string& dir, const std::string& name, const char* kind) {
    return join_path(dir, cat(".", name, kind, ::getpid()));
}

// Splits ".<name>.staging.<pid>" / ".<name>.trash.<pid>"; false for anything else.
bool parse_temporary(const std::string& entry, std::string& name, long& pid) {
    if (entry.size() < 2 || entry[0] != '.') return false;
    for (const char* kind : {kStaging, kTrash}) {
        size_t at = entry.rfind(kind);
        if (at == std::string::npos || at < 1) continue;
        std::string digits = entry.substr(at + std::char_traits<char>::length(kind));
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
        name = entry.substr(1, at - 1);
        pid = std::strtol(digits.c_str(), nullptr, 10);
        return true;
    }
    return false;
}

bool process_running(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// The temporaries of interrupted saves in `dir` (of any process, running or not).
std::vector<std::string> temporaries_in(const std::string& dir, const std::string& only_name) {
    std::vector<std::string> out;
    if (!is_directory(dir)) return out;
    for (const std::string& entry : list_directory(dir)) {
        std::string name;
        long pid = 0;
        if (parse_temporary(entry, name, pid) && (only_name.empty() || name == only_name)) out.push_back(join_path(dir, entry));
    }
    return out;
}

void require_checkpoint_dir(const std::string& dir) {
    ITTT_CHECK(path_exists(dir), "checkpoint directory '", dir, "' does not exist");
    ITTT_CHECK(is_directory(dir), "checkpoint '", dir, "' is not a directory");
    ITTT_CHECK(is_regular_file(checkpoint_config_path(dir)), "checkpoint '", dir,
               "' has no config.json: not a checkpoint (a run directory is read through resolve_checkpoint)");
}

}  // namespace

// ---------------------------------------------------------------- staging

CheckpointStaging::CheckpointStaging(std::string final_dir) : final_(strip_trailing_slashes(std::move(final_dir))) {
    const std::string name = base_name(final_), parent = parent_directory(final_);
    ITTT_CHECK(!name.empty() && name != "." && name != ".." && name != "/", "cannot save a checkpoint as '", final_,
               "': give it a directory name");
    ITTT_CHECK(is_directory(parent), "cannot save checkpoint '", final_, "': its parent '", parent, "' is not a directory");
    remove_stale_temporaries(parent, name);
    staging_ = temporary_name(parent, name, kStaging);
    if (path_exists(staging_)) {  // an earlier failed save of this process whose cleanup failed too
        std::string why = remove_tree(staging_);
        ITTT_CHECK(why.empty(), "cannot save checkpoint '", final_, "': cannot remove the old staging directory '", staging_,
                   "': ", why);
    }
    make_directory(staging_);
}

CheckpointStaging::~CheckpointStaging() {
    if (!published_) (void)remove_tree(staging_);  // best effort; the next save removes what is left
}

std::string CheckpointStaging::file(const std::string& name) const { return join_path(staging_, name); }

void CheckpointStaging::publish() {
    ITTT_CHECK(!published_, "CheckpointStaging::publish: '", final_, "' is already published");
    sync_directory(staging_);
    const std::string parent = parent_directory(final_);
    if (!path_exists(final_)) {
        rename_path(staging_, final_);
    } else {
        ITTT_CHECK(is_directory(final_), "cannot save checkpoint '", final_, "': it exists and is not a directory");
        const bool empty = list_directory(final_).empty();
        ITTT_CHECK(empty || is_regular_file(checkpoint_config_path(final_)), "cannot save checkpoint '", final_,
                   "': the directory exists and is not a checkpoint (no config.json); not replacing it");
        if (empty) {
            rename_path(staging_, final_);  // rename(2) may replace an empty directory
        } else if (exchange_paths(staging_, final_)) {
            // staging_ now holds the old checkpoint; the new one is in place.
            published_ = true;
            if (std::string why = remove_tree(staging_); !why.empty())
                std::fprintf(stderr, "ittt: warning: the replaced checkpoint is left in '%s': %s\n", staging_.c_str(), why.c_str());
        } else {
            // No atomic swap on this file system: move the old one aside first.
            // Between the two renames '<final>' is absent; the old one is in the trash name.
            const std::string trash = temporary_name(parent, base_name(final_), kTrash);
            rename_path(final_, trash);
            rename_path(staging_, final_);
            published_ = true;
            if (std::string why = remove_tree(trash); !why.empty())
                std::fprintf(stderr, "ittt: warning: the replaced checkpoint is left in '%s': %s\n", trash.c_str(), why.c_str());
        }
    }
    published_ = true;
    sync_directory(parent);
}

void write_checkpoint_files(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                            const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state) {
    // Render everything that can fail on bad input before the first byte is written.
    std::string config_text = config_to_json(cfg);
    std::string trainer_text = trainer_state ? trainer_state->dump(2) + "\n" : "";
    save_safetensors(checkpoint_model_path(dir), weights, {{"format", "pt"}});
    if (optimizer_state) save_safetensors(checkpoint_optimizer_path(dir), *optimizer_state, {{"format", "ittt-optimizer"}});
    if (trainer_state) write_file_atomic(checkpoint_trainer_state_path(dir), trainer_text);
    write_file_atomic(checkpoint_config_path(dir), config_text);
}

void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                     const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state) {
    config_to_json(cfg);  // a bad config is refused before any directory is made
    make_directories(parent_directory(strip_trailing_slashes(dir)));
    CheckpointStaging staging(dir);
    write_checkpoint_files(staging.dir(), cfg, weights, optimizer_state, trainer_state);
    staging.publish();
}

// ---------------------------------------------------------------- run directories

std::string run_checkpoint_name(int64_t step) {
    ITTT_CHECK(step >= 0, "run_checkpoint_name: step must be >= 0, found ", step);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%08lld", kStepPrefix, static_cast<long long>(step));
    return buf;
}

std::vector<RunCheckpoint> list_run_checkpoints(const std::string& run_dir, std::vector<std::string>* skipped) {
    std::vector<RunCheckpoint> out;
    if (!is_directory(run_dir)) return out;
    const size_t prefix = std::char_traits<char>::length(kStepPrefix);
    for (const std::string& entry : list_directory(run_dir)) {
        if (entry.compare(0, prefix, kStepPrefix) != 0) continue;
        std::string digits = entry.substr(prefix);
        if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string dir = join_path(run_dir, entry);
        if (!is_directory(dir)) continue;
        if (!is_regular_file(checkpoint_config_path(dir)) || !is_regular_file(checkpoint_model_path(dir))) {
            if (skipped) skipped->push_back(dir);
            continue;
        }
        out.push_back({std::strtoll(digits.c_str(), nullptr, 10), dir});
    }
    std::sort(out.begin(), out.end(), [](const RunCheckpoint& a, const RunCheckpoint& b) { return a.step < b.step; });
    return out;
}

std::string save_run_checkpoint(const std::string& run_dir, int64_t step, const ModelConfig& cfg,
                                const std::vector<NamedTensor>& weights, const std::vector<NamedTensor>* optimizer_state,
                                const Json* trainer_state, int64_t keep) {
    ITTT_CHECK(keep >= 1, "save_run_checkpoint: keep must be >= 1, found ", keep);
    make_directories(strip_trailing_slashes(run_dir));
    const std::string dir = join_path(strip_trailing_slashes(run_dir), run_checkpoint_name(step));
    {
        CheckpointStaging staging(dir);
        write_checkpoint_files(staging.dir(), cfg, weights, optimizer_state, trainer_state);
        staging.publish();
    }
    // Older checkpoints go only after the new one is durable. Each is first
    // renamed out of the step-* namespace (atomic), so a crash while deleting
    // never leaves a half-deleted directory that looks like a checkpoint.
    std::vector<RunCheckpoint> all = list_run_checkpoints(run_dir);
    int64_t excess = static_cast<int64_t>(all.size()) - keep;
    for (int64_t i = 0; i < excess; ++i) {
        const RunCheckpoint& old = all[static_cast<size_t>(i)];
        if (old.dir == dir) continue;
        const std::string trash = temporary_name(run_dir, base_name(old.dir), kTrash);
        try {
            rename_path(old.dir, trash);
        } catch (const Error& e) {
            std::fprintf(stderr, "ittt: warning: keeping old checkpoint '%s' (--keep %lld): %s\n", old.dir.c_str(),
                         static_cast<long long>(keep), e.what());
            continue;
        }
        if (std::string why = remove_tree(trash); !why.empty())
            std::fprintf(stderr, "ittt: warning: cannot remove '%s' (the next run removes it): %s\n", trash.c_str(), why.c_str());
    }
    return dir;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir, const std::string& only_name) {
    std::vector<std::string> removed;
    for (const std::string& path : temporaries_in(dir, only_name)) {
        std::string name;
        long pid = 0;
        parse_temporary(base_name(path), name, pid);
        if (pid != ::getpid() && process_running(pid)) continue;  // a save in progress elsewhere
        std::string why = remove_tree(path);
        ITTT_CHECK(why.empty(), "cannot remove '", path, "', left by an interrupted save: ", why);
        removed.push_back(path);
    }
    return removed;
}

// ---------------------------------------------------------------- reading

ResolvedCheckpoint resolve_checkpoint(const std::string& path_in) {
    const std::string path = strip_trailing_slashes(path_in);
    auto interrupted = [&](const std::string& where, const std::string& name) {
        std::vector<std::string> t = temporaries_in(where, name);
        return t.empty() ? std::string()
                         : cat("; an interrupted save left '", t.front(), "'", t.size() > 1 ? cat(" and ", t.size() - 1, " more") : "",
                               " (removed by the next save there)");
    };
    ITTT_CHECK(path_exists(path), "checkpoint directory '", path, "' does not exist",
               interrupted(parent_directory(path), base_name(path)));
    ITTT_CHECK(is_directory(path), "checkpoint '", path, "' is not a directory");
    std::vector<std::string> skipped;
    std::vector<RunCheckpoint> runs = list_run_checkpoints(path, &skipped);
    const bool plain = is_regular_file(checkpoint_config_path(path));
    if (runs.empty()) {
        ITTT_CHECK(plain, "'", path, "' is not a checkpoint: it has no config.json and no complete ", kStepPrefix,
                   "N checkpoint directory", skipped.empty() ? "" : cat(" ('", skipped.front(), "' lacks config.json or model.safetensors)"),
                   interrupted(path, ""));
        return {path, ""};
    }
    const RunCheckpoint& newest = runs.back();
    std::string note = cat("using ", newest.dir, ", the newest complete checkpoint in ", path);
    if (runs.size() > 1) {
        note += " (also kept:";
        for (size_t i = 0; i + 1 < runs.size(); ++i) note += " " + base_name(runs[i].dir);
        note += ")";
    }
    if (plain) note += cat("; the config.json at the top of ", path, " is ignored");
    return {newest.dir, note};
}

ModelConfig load_checkpoint_config(const std::string& dir) {
    require_checkpoint_dir(dir);
    return load_config_json(checkpoint_config_path(dir));
}

void load_checkpoint_weights(const std::string& dir, const std::vector<std::pair<std::string, Tensor*>>& expected) {
    require_checkpoint_dir(dir);
    ITTT_CHECK(is_regular_file(checkpoint_model_path(dir)), "checkpoint '", dir, "' has a config.json but no model.safetensors");
    load_into(checkpoint_model_path(dir), expected, checkpoint_config_path(dir));
}

bool checkpoint_has_optimizer_state(const std::string& dir) { return is_regular_file(checkpoint_optimizer_path(dir)); }
bool checkpoint_has_trainer_state(const std::string& dir) { return is_regular_file(checkpoint_trainer_state_path(dir)); }

SafetensorsFile load_checkpoint_optimizer_state(const std::string& dir) {
    require_checkpoint_dir(dir);
    ITTT_CHECK(checkpoint_has_optimizer_state(dir), "checkpoint '", dir,
               "' has no optimizer.safetensors (it was saved without optimizer state)");
    return load_safetensors(checkpoint_optimizer_path(dir));
}

Json load_checkpoint_trainer_state(const std::string& dir) {
    require_checkpoint_dir(dir);
    ITTT_CHECK(checkpoint_has_trainer_state(dir), "checkpoint '", dir,
               "' has no trainer_state.json (it was saved without trainer state)");
    std::string path = checkpoint_trainer_state_path(dir);
    return Json::parse(read_file(path), path);
}

}  // namespace ittt
