#include "io/checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "io/atomic_file.h"
#include "io/config_json.h"
#include "runtime/error.h"

namespace ittt {

std::string checkpoint_config_path(const std::string& dir) { return join_path(dir, "config.json"); }
std::string checkpoint_model_path(const std::string& dir) { return join_path(dir, "model.safetensors"); }
std::string checkpoint_optimizer_path(const std::string& dir) { return join_path(dir, "optimizer.safetensors"); }
std::string checkpoint_trainer_state_path(const std::string& dir) { return join_path(dir, "trainer_state.json"); }
std::string checkpoint_index_path(const std::string& dir) { return join_path(dir, "model.safetensors.index.json"); }
bool checkpoint_has_weights(const std::string& dir) {
    return is_regular_file(checkpoint_model_path(dir)) || is_regular_file(checkpoint_index_path(dir));
}

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

void write_weights(const std::string& dir, const std::vector<NamedTensor>& weights, const WeightsFormat& format) {
    ITTT_CHECK(format.shard_size >= 0, "write_weights: shard_size must be >= 0, found ", format.shard_size);
    const std::map<std::string, std::string> meta = {{"format", "pt"}};
    auto stored_bytes = [&](const NamedTensor& t) {
        return t.tensor.numel() * (format.bf16 && t.tensor.dtype() != DType::I32 ? 2 : static_cast<int64_t>(dtype_size(t.tensor.dtype())));
    };
    int64_t total = 0, parameters = 0;
    for (const NamedTensor& t : weights) total += stored_bytes(t), parameters += t.tensor.numel();
    if (format.shard_size == 0 || total <= format.shard_size) {
        save_safetensors(checkpoint_model_path(dir), weights, meta, format.bf16);
        return;
    }
    // Greedy in model order: a new shard when the next tensor would overflow this one.
    std::vector<std::vector<NamedTensor>> shards(1);
    int64_t in_shard = 0;
    for (const NamedTensor& t : weights) {
        const int64_t b = stored_bytes(t);
        if (!shards.back().empty() && in_shard + b > format.shard_size) shards.emplace_back(), in_shard = 0;
        shards.back().push_back(t);
        in_shard += b;
    }
    Json map = Json::object();
    for (size_t k = 0; k < shards.size(); ++k) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
        save_safetensors(join_path(dir, name), shards[k], meta, format.bf16);
        for (const NamedTensor& t : shards[k]) map.set(t.name, name);
    }
    Json index = Json::object();
    Json m = Json::object();
    m.set("total_size", total);
    m.set("total_parameters", parameters);
    index.set("metadata", m);
    index.set("weight_map", map);
    write_file_atomic(checkpoint_index_path(dir), index.dump(2) + "\n");
}

void write_checkpoint_files(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                            const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state, const WeightsFormat& format,
                            const Json* kept_config_keys) {
    // Render everything that can fail on bad input before the first byte is written.
    std::string config_text = kept_config_keys ? config_to_json(cfg, *kept_config_keys) : config_to_json(cfg);
    std::string trainer_text = trainer_state ? trainer_state->dump(2) + "\n" : "";
    if (cfg.ttt_mode && !cfg.ttt_layers.empty() && cfg.ttt_conv_offsets != std::vector<int>{-2, -1, 0, 1, 2}) {
        std::string offsets;
        for (int o : cfg.ttt_conv_offsets) offsets += cat(offsets.empty() ? "" : ",", o);
        std::fprintf(stderr,
                     "ittt: warning: ttt_conv_offsets [%s] is not the release's -2..2: the official In-Place TTT release reads "
                     "every ttt_conv as 5 centred taps and will misread this checkpoint without an error (ittt and the "
                     "config.json key ttt_conv_offsets read it right)\n",
                     offsets.c_str());
    }
    write_weights(dir, weights, format);
    if (optimizer_state) save_safetensors(checkpoint_optimizer_path(dir), *optimizer_state, {{"format", "ittt-optimizer"}});
    if (trainer_state) write_file_atomic(checkpoint_trainer_state_path(dir), trainer_text);
    write_file_atomic(checkpoint_config_path(dir), config_text);
}

void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const std::vector<NamedTensor>& weights,
                     const std::vector<NamedTensor>* optimizer_state, const Json* trainer_state, const WeightsFormat& format,
                     const std::vector<std::pair<std::string, std::string>>& extra_files) {
    config_to_json(cfg);  // a bad config is refused before any directory is made
    make_directories(parent_directory(strip_trailing_slashes(dir)));
    CheckpointStaging staging(dir);
    write_checkpoint_files(staging.dir(), cfg, weights, optimizer_state, trainer_state, format);
    for (const auto& [name, bytes] : extra_files) write_file_atomic(staging.file(name), bytes);
    staging.publish();
}

// ---------------------------------------------------------------- run directories

std::string run_checkpoint_name(int64_t step) {
    ITTT_CHECK(step >= 0, "run_checkpoint_name: step must be >= 0, found ", step);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%08lld", kStepPrefix, static_cast<long long>(step));
    return buf;
}

std::optional<int64_t> run_checkpoint_step(const std::string& name) {
    const size_t prefix = std::char_traits<char>::length(kStepPrefix);
    if (name.compare(0, prefix, kStepPrefix) != 0) return std::nullopt;
    const std::string digits = name.substr(prefix);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::strtoll(digits.c_str(), nullptr, 10);
}

std::string run_of_step_directory(const std::string& dir_in) {
    const std::string dir = strip_trailing_slashes(dir_in);
    if (!run_checkpoint_step(base_name(dir))) return "";
    // A training checkpoint named step-N (trainer_state.json inside), or a
    // step-N name in a directory that holds step-N checkpoints: part of a run.
    const std::string parent = parent_directory(dir);
    if (is_regular_file(checkpoint_trainer_state_path(dir)) || !list_run_checkpoints(parent).empty()) return parent;
    return "";
}

std::vector<RunCheckpoint> list_run_checkpoints(const std::string& run_dir, std::vector<std::string>* skipped) {
    std::vector<RunCheckpoint> out;
    if (!is_directory(run_dir)) return out;
    for (const std::string& entry : list_directory(run_dir)) {
        const std::optional<int64_t> step = run_checkpoint_step(entry);
        if (!step) continue;
        std::string dir = join_path(run_dir, entry);
        if (!is_directory(dir)) continue;
        if (!is_regular_file(checkpoint_config_path(dir)) || !checkpoint_has_weights(dir)) {
            if (skipped) skipped->push_back(dir);
            continue;
        }
        out.push_back({*step, dir});
    }
    std::sort(out.begin(), out.end(), [](const RunCheckpoint& a, const RunCheckpoint& b) { return a.step < b.step; });
    return out;
}

std::string save_run_checkpoint(const std::string& run_dir, int64_t step, const ModelConfig& cfg,
                                const std::vector<NamedTensor>& weights, const std::vector<NamedTensor>* optimizer_state,
                                const Json* trainer_state, int64_t keep, const WeightsFormat& format) {
    ITTT_CHECK(keep >= 1, "save_run_checkpoint: keep must be >= 1, found ", keep);
    make_directories(strip_trailing_slashes(run_dir));
    const std::string dir = join_path(strip_trailing_slashes(run_dir), run_checkpoint_name(step));
    {
        CheckpointStaging staging(dir);
        write_checkpoint_files(staging.dir(), cfg, weights, optimizer_state, trainer_state, format);
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

ModelConfig load_checkpoint_config(const std::string& dir, std::vector<std::string>* defaults_used, TttTensors ttt_tensors) {
    require_checkpoint_dir(dir);
    return load_config_json(checkpoint_config_path(dir), defaults_used, ttt_tensors);
}

bool CheckpointTensors::has_ttt() const {
    for (const NamedTensor& t : tensors.tensors)
        if (t.name.find(".mlp.ttt_") != std::string::npos) return true;
    return false;
}

CheckpointTensors read_checkpoint_tensors(const std::string& dir) {
    require_checkpoint_dir(dir);
    CheckpointTensors out;
    const std::string single = checkpoint_model_path(dir), index_path = checkpoint_index_path(dir);
    if (is_regular_file(single)) {
        out.source = single;
        out.files = {out.source};
        out.tensors = load_safetensors(out.source);
        return out;
    }
    // Something that is there but not a file is named as what it is, not as missing.
    for (const std::string& p : {single, index_path})
        ITTT_CHECK(path_kind(p) == "nothing" || is_regular_file(p), "checkpoint '", dir, "': '", p, "' is ", path_kind(p),
                   ", not a file");
    ITTT_CHECK(is_regular_file(index_path), "checkpoint '", dir,
               "' has a config.json but no model.safetensors (nor model.safetensors.index.json for sharded weights)");
    out.source = index_path;
    Json index = Json::parse(read_file(index_path), index_path);
    const Json& map = index.at("weight_map");
    std::vector<std::string> shards;  // in first-mention order
    std::map<std::string, std::string> shard_of;
    for (const Json::Member& m : map.as_object()) {
        const std::string& shard = m.second.as_string();
        ITTT_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..", m.second.where(),
                   ": expected a file name in the checkpoint directory, found \"", shard, "\"");
        if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
        shard_of[m.first] = shard;
    }
    ITTT_CHECK(!shards.empty(), map.where(), ": the index lists no tensors");
    std::sort(shards.begin(), shards.end());
    std::map<std::string, std::string> found;  // tensor -> shard it is in
    for (const std::string& shard : shards) {
        const std::string path = join_path(dir, shard);
        if (!is_regular_file(path)) {
            const std::string kind = path_kind(path);
            const std::string tensor = [&] {
                for (const auto& [name, s] : shard_of)
                    if (s == shard) return name;
                return std::string();
            }();
            fail(kind == "nothing" ? cat(index_path, ": shard '", shard, "' (of tensor '", tensor, "') is not in ", dir)
                                   : cat(path, ": the shard of tensor '", tensor, "' (named in ", index_path, ") is ", kind,
                                         ", not a file"));
        }
        SafetensorsFile file = load_safetensors(path);
        out.files.push_back(path);
        for (NamedTensor& t : file.tensors) {
            auto listed = shard_of.find(t.name);
            ITTT_CHECK(listed != shard_of.end(), path, ": tensor '", t.name, "' is not in the index ", index_path);
            ITTT_CHECK(listed->second == shard, path, ": tensor '", t.name, "' is here, but the index ", index_path,
                       " puts it in '", listed->second, "'");
            auto [at, fresh] = found.emplace(t.name, shard);
            ITTT_CHECK(fresh, path, ": tensor '", t.name, "' is also in '", at->second, "'");
            out.tensors.origin[t.name] = path;
            out.tensors.tensors.push_back(std::move(t));
        }
        for (const auto& [k, v] : file.metadata) out.tensors.metadata[k] = v;
    }
    for (const auto& [name, shard] : shard_of)
        ITTT_CHECK(found.count(name), index_path, ": tensor '", name, "' is listed in shard '", shard, "', which does not hold it");
    return out;
}

void load_checkpoint_weights(const std::string& dir, const std::vector<std::pair<std::string, Tensor*>>& expected) {
    CheckpointTensors t = read_checkpoint_tensors(dir);
    load_into(t.tensors, t.source, expected, checkpoint_config_path(dir));
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
