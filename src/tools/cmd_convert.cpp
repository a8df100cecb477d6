// cmd_convert.cpp: ittt convert IN OUT: add or strip TTT layers, change the
// weights' dtype or sharding. The drop-in step of the paper: a pretrained Qwen3
// gets TTT MLPs whose zero conv makes them, at first, exactly the plain MLPs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/config_json.h"
#include "io/json.h"
#include "io/writer_lock.h"
#include "model/model_io.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace ittt {

namespace {

const IntFlag kConvertSeed{"--seed", "S", 0, 0, INT64_MAX, "seed of P's diagonal in new TTT layers"};
const IntFlag kTttChunk{"--ttt-chunk", "C", 0, 1, 1 << 20, "TTT chunk size (default: the config's ttt_chunk, else the release's 8192)"};

// Files of a Hugging Face checkpoint directory that travel with the weights.
const char* const kCompanionFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                                       "merges.txt", "generation_config.json", "chat_template.jinja"};

std::string usage() {
    return std::string(
               "usage: ittt convert IN OUT [--add-ttt --ttt-layers L,... [TTT options] | --strip-ttt] [--dtype f32|bf16]\n"
               "                           [--shard-size BYTES]\n"
               "  Reads the checkpoint IN (ittt's, or transformers' save_pretrained: sharded or not, F32/BF16/F16)\n"
               "  and writes OUT, a checkpoint transformers and the In-Place TTT release read (docs/checkpoints.md).\n"
               "  Tokenizer and generation files in IN are copied. OUT is published whole.\n"
               "  --add-ttt                turn the MLPs of --ttt-layers into TTT layers, initialised as the release\n"
               "                           does: conv zero, P = diag(N(0, initializer_range^2)); the logits stay\n"
               "                           those of IN bit for bit until training moves the conv\n"
               "  --ttt-layers L,...       layer indices (required with --add-ttt)\n") +
           help_line(kTttChunk) +
           "  --ttt-lr X               TTT learning rate eta (default: the config's ttt_lr, else 0.3)\n"
           "  --ttt-target T           hidden_states | input_embed (default: the config's, else hidden_states)\n"
           "  --ttt-no-proj            no learned P (V = U)\n"
           "  --ttt-conv-offsets O,... conv taps (default -2,-1,0,1,2; others are ittt-only: the release misreads them)\n" +
           help_line(kConvertSeed) +
           "  --strip-ttt              remove every TTT layer: the plain Qwen3 model (its MLPs keep down_proj)\n"
           "  --dtype f32|bf16         dtype of OUT's weights (default f32; also spelt --save-dtype)\n"
           "  --shard-size BYTES       shard OUT's weights above this size, e.g. 500M (default 0: one file)\n"
           "  --overwrite              replace a different checkpoint already at OUT (without it that is refused)\n"
           "  Never destroys its input: OUT may not be IN, lie inside IN (or IN inside OUT), or be a step-N\n"
           "  checkpoint of a training run. Config keys ittt does not use (bos_token_id, eos_token_id,\n"
           "  max_position_embeddings, ...) are carried into OUT's config.json unchanged; dtype / torch_dtype\n"
           "  are set to the dtype OUT's weights are written in.\n";
}

std::string canonical(const std::string& path) {
    std::error_code ec;
    std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
    return ec ? std::filesystem::absolute(path).lexically_normal().string() : p.string();
}

bool inside(const std::string& path, const std::string& dir) {
    return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && (dir == "/" || path[dir.size()] == '/');
}

// Refuses an OUT whose writing would destroy something convert was not asked
// to touch: IN itself (rounding F32 weights to BF16 for good), what holds IN or
// lies in it, a training run's step-N checkpoint (replaced by one without its
// optimizer state, so --resume fails), a run directory, a directory that is
// not a checkpoint. A different checkpoint at OUT is left to the comparison
// after writing (--overwrite).
void check_destination(const std::string& in, const std::string& in_dir, const std::string& out) {
    const std::string o = canonical(out);
    const std::string ins[] = {canonical(in), canonical(in_dir)};  // IN as given, and the checkpoint it resolves to
    for (const std::string& i : ins)
        ITTT_CHECK(o != i, "OUT ", out, " is IN (", i, i == ins[0] ? "" : cat(", the checkpoint ", in, " resolves to").c_str(),
                   "): convert never rewrites its input in place; choose another OUT");
    if (const std::string run = run_of_step_directory(out); !run.empty())
        fail(cat("OUT ", out, " names a step-N checkpoint of the training run ", run,
                 ": convert writes a checkpoint without optimizer state or trainer_state.json, and --resume of that run would "
                 "then fail; choose an OUT outside the run directory"));
    ITTT_CHECK(list_run_checkpoints(out).empty(), "OUT ", out, " is a training run directory (it holds step-N checkpoints); not replacing it");
    for (const std::string& i : ins) {
        ITTT_CHECK(!inside(o, i), "OUT ", out, " lies inside IN (", i, "); choose an OUT outside it");
        ITTT_CHECK(!inside(i, o), "IN (", i, ") lies inside OUT ", out, ": replacing OUT would delete IN; choose another OUT");
    }
    if (!path_exists(out)) return;
    ITTT_CHECK(is_directory(out), "OUT ", out, " exists and is ", path_kind(out), ", not a checkpoint directory; not replacing it");
    ITTT_CHECK(list_directory(out).empty() || is_regular_file(checkpoint_config_path(out)), "OUT ", out,
               " exists and is not a checkpoint (no config.json); not replacing it");
}

// Whether the two files hold the same bytes, read in pieces (checkpoints may be large).
bool same_bytes(const std::string& a, const std::string& b) {
    std::error_code ea, eb;
    if (std::filesystem::file_size(a, ea) != std::filesystem::file_size(b, eb) || ea || eb) return false;
    std::ifstream x(a, std::ios::binary), y(b, std::ios::binary);
    std::vector<char> p(1 << 20), q(1 << 20);
    while (x && y) {
        x.read(p.data(), static_cast<std::streamsize>(p.size()));
        y.read(q.data(), static_cast<std::streamsize>(q.size()));
        if (x.gcount() != y.gcount() || std::memcmp(p.data(), q.data(), static_cast<size_t>(x.gcount())) != 0) return false;
    }
    return true;
}

// How the checkpoint in `existing` differs from the one just written in
// `fresh`, file by file; "" when they are the same, byte for byte.
std::string difference(const std::string& fresh, const std::string& existing) {
    const std::vector<std::string> a = list_directory(fresh), b = list_directory(existing);
    for (const std::string& name : b)
        if (std::find(a.begin(), a.end(), name) == a.end()) return cat("it holds ", name, ", which this convert does not write");
    for (const std::string& name : a) {
        if (std::find(b.begin(), b.end(), name) == b.end()) return cat("it has no ", name);
        if (!same_bytes(join_path(fresh, name), join_path(existing, name))) return cat("its ", name, " differs");
    }
    return "";
}

// Everything `ittt convert` reads from its command line, parsed once.
struct ConvertFlags {
    std::string in, out;
    bool add = false, strip = false, overwrite = false;
    // With --add-ttt: the TTT layers and what they change of IN's config (unset: the config's, else the release's).
    std::vector<int32_t> layers;
    std::optional<int64_t> chunk;
    std::optional<double> lr;
    std::optional<TttTargetSource> target;
    bool no_proj = false;
    std::vector<int32_t> offsets;
    uint64_t seed = 0;
    WeightsFormat format;  // --dtype / --save-dtype, --shard-size
};

ConvertFlags read_convert_flags(int argc, char** argv, const std::string& use) {
    // IN and OUT are the two words after the subcommand; flags follow.
    if (argc < 4 || argv[2][0] == '-' || argv[3][0] == '-')
        throw UsageError{"ittt convert: expected IN and OUT, the source and destination checkpoint directories, before the flags", use};
    ConvertFlags c;
    c.in = argv[2];
    c.out = argv[3];
    Args f("convert", use, argc, argv, 4);
    c.add = f.flag("--add-ttt");
    c.strip = f.flag("--strip-ttt");
    c.layers = f.int_list("--ttt-layers", 0, 1023);
    if (f.has("--ttt-chunk")) c.chunk = f.integer(kTttChunk);
    if (f.has("--ttt-lr")) c.lr = f.number("--ttt-lr", 0.3);
    const std::string target = f.str("--ttt-target", "");
    c.overwrite = f.flag("--overwrite");
    c.no_proj = f.flag("--ttt-no-proj");
    c.offsets = f.int_list("--ttt-conv-offsets", -1024, 1024);
    c.seed = static_cast<uint64_t>(f.integer(kConvertSeed));
    if (f.has("--dtype") && f.has("--save-dtype")) f.error("give --dtype or --save-dtype, not both");
    const std::string dtype = f.str("--dtype", "");
    c.format = read_weights_format(f);
    if (!dtype.empty()) {
        if (dtype != "f32" && dtype != "bf16") f.error("--dtype: expected f32 or bf16, found '" + dtype + "'");
        c.format.bf16 = dtype == "bf16";
    }
    f.finish();
    if (c.add && c.strip) f.error("give --add-ttt or --strip-ttt, not both");
    const bool ttt_options = !c.layers.empty() || c.chunk || c.lr || !target.empty() || c.no_proj || !c.offsets.empty() || f.has("--seed");
    if (!c.add && ttt_options) f.error("--ttt-layers, --ttt-chunk, --ttt-lr, --ttt-target, --ttt-no-proj, --ttt-conv-offsets and --seed need --add-ttt");
    if (c.add && c.layers.empty()) f.error("--add-ttt needs --ttt-layers (e.g. --ttt-layers 0,6)");
    if (!target.empty()) {
        try {
            c.target = parse_ttt_target_source(target);
        } catch (const Error& e) {
            f.error(cat("--ttt-target: ", e.what()));
        }
    }
    return c;
}

// IN's config with the TTT layers added (the release's init) or stripped, as the flags ask.
ModelConfig converted_config(const ConvertFlags& c, ModelConfig cfg) {
    const bool has_ttt = cfg.ttt_mode && !cfg.ttt_layers.empty();
    if (c.add) {
        ITTT_CHECK(!has_ttt, c.in, " already has TTT layers (", cfg.ttt_layers.size(),
                   "); strip them first (--strip-ttt) or train it as it is");
        cfg.ttt_mode = true;
        cfg.ttt_layers.assign(c.layers.begin(), c.layers.end());
        if (c.chunk) cfg.ttt_chunk = static_cast<int>(*c.chunk);
        if (c.lr) cfg.ttt_lr = *c.lr;
        if (c.target) cfg.ttt_target = *c.target;
        cfg.ttt_proj = !c.no_proj;
        cfg.ttt_target_mode = TttTargetMode::Learned;
        if (!c.offsets.empty()) cfg.ttt_conv_offsets.assign(c.offsets.begin(), c.offsets.end());
        try {
            cfg.validate();
        } catch (const Error& e) {
            fail(cat("--add-ttt: ", e.what()));
        }
    } else if (c.strip) {
        ITTT_CHECK(has_ttt, c.in, " has no TTT layers to strip");
        cfg.ttt_mode = false;
        cfg.ttt_layers.clear();
    }
    return cfg;
}

int convert(const ConvertFlags& c) {
    const std::string& in = c.in;
    const std::string& out = c.out;
    const WeightsFormat& format = c.format;
    const ResolvedCheckpoint r = resolve_checkpoint(in);
    if (!r.note.empty()) std::fprintf(stderr, "ittt convert: %s\n", r.note.c_str());
    check_destination(in, r.dir, out);
    // One writer per OUT (io/writer_lock.h), from here to the publish.
    make_directories(parent_directory(out));
    WriterLock lock(checkpoint_lock_path(out), cat("OUT ", out), "ittt convert");
    std::vector<std::string> notes;
    LoadOptions opt;
    opt.notes = &notes;
    Model src = load_model(r.dir, DType::F32, Device::CPU, opt);
    for (const std::string& n : notes) std::fprintf(stderr, "ittt convert: %s\n", n.c_str());

    const ModelConfig cfg = converted_config(c, src.config());
    Model dst = with_config(src, cfg, c.seed);

    std::vector<std::pair<std::string, std::string>> extra;
    for (const char* name : kCompanionFiles) {
        std::string path = join_path(r.dir, name);
        if (!is_regular_file(path) && r.dir != in) path = join_path(in, name);  // a run directory's top
        if (is_regular_file(path)) extra.push_back({name, read_file(path)});
    }
    // Keys of IN's config.json that ittt does not write travel on unchanged
    // (transformers reads bos/eos/pad ids, max_position_embeddings, ... from
    // there); the dtype keys follow the weights as written.
    Json kept = Json::parse(read_file(checkpoint_config_path(r.dir)), checkpoint_config_path(r.dir));
    for (const char* key : {"dtype", "torch_dtype"})
        if (kept.contains(key)) kept.set(key, format.bf16 ? "bfloat16" : "float32");

    CheckpointStaging staging(out);
    write_checkpoint_files(staging.dir(), dst.config(), model_weights(dst), nullptr, nullptr, format, &kept);
    for (const auto& [name, bytes] : extra) write_file_atomic(staging.file(name), bytes);
    if (is_directory(out) && !list_directory(out).empty()) {
        const std::string diff = difference(staging.dir(), out);
        if (!diff.empty() && !c.overwrite)
            fail(cat("OUT ", out, " already holds a different checkpoint (", diff,
                     "); give --overwrite to replace it, or choose another OUT (nothing was changed)"));
        if (!diff.empty()) std::fprintf(stderr, "ittt convert: replacing the checkpoint at %s (--overwrite; %s)\n", out.c_str(), diff.c_str());
    }
    staging.publish();
    std::printf("wrote %s: %lld parameters%s%s, %s%s\n", out.c_str(), static_cast<long long>(dst.parameter_count()),
                c.add ? cat(", TTT layers ", Json([&] {
                              Json l = Json::array();
                              for (int x : cfg.ttt_layers) l.push_back(x);
                              return l;
                          }()).dump(), " added").c_str() : "",
                c.strip ? ", TTT layers stripped" : "", format.bf16 ? "bf16" : "f32",
                format.shard_size > 0 ? cat(", shards of at most ", format.shard_size, " bytes").c_str() : "");
    return 0;
}

}  // namespace

int cmd_convert(int argc, char** argv) {
    const std::string use = usage();
    for (int i = 2; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") return std::printf("%s", use.c_str()), 0;
    return convert(read_convert_flags(argc, argv, use));
}

}  // namespace ittt
