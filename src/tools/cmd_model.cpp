// cmd_model.cpp: ittt init, eval, forward, generate (train: cmd_train.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/config_json.h"
#include "io/json.h"
#include "io/writer_lock.h"
#include "model/memory_budget.h"
#include "model/model_io.h"
#include "model/session.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/context_parallel.h"

namespace ittt {

namespace {
constexpr int64_t kMaxSeed = INT64_MAX;
const IntFlag kInitSeed{"--seed", "S", 0, 0, kMaxSeed, "initialisation seed"};
const IntFlag kEvalSeed{"--seed", "S", 0, 0, kMaxSeed, "seed of the held-out batches (required)"};
const IntFlag kEvalBatches{"--batches", "K", 4, 1, 1 << 20, "batches to score"};
const IntFlag kEvalBatch{"--batch", "B", 16, 1, 1 << 30, "sequences per batch"};
const IntFlag kEvalSeqLen{"--seq-len", "n", 128, 1, 1 << 24, "tokens per sequence"};
const IntFlag kTop{"--top", "K", 5, 1, 1 << 20, "tokens listed per position (at most the vocabulary)"};
const IntFlag kGenerateN{"--n", "N", 16, 0, 1 << 24, "tokens to generate"};
const IntFlag kGenerateSeed{"--seed", "S", 0, 0, kMaxSeed, "sampling seed (with --temperature > 0)"};
}  // namespace

int cmd_init(int argc, char** argv) {
    Args a("init",
           std::string("usage: ittt init --config FILE --out DIR [--seed S]\n"
                       "  Writes a seeded, randomly initialised checkpoint (config.json + model.safetensors),\n"
                       "  published whole (an existing checkpoint at DIR is replaced atomically).\n"
                       "  --config FILE            a config.json with Hugging Face Qwen3 + In-Place TTT keys (see data/configs/)\n"
                       "  --out DIR                checkpoint directory to create\n") +
               help_line(kInitSeed),
           argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    std::string config = a.required("--config"), out = a.required("--out");
    uint64_t seed = static_cast<uint64_t>(a.integer(kInitSeed));
    a.finish();
    if (const std::string run = run_of_step_directory(out); !run.empty())
        fail(cat("--out ", out, " names a step-N checkpoint of the training run ", run,
                 ": a checkpoint without optimizer state there would make --resume of that run fail; choose another --out"));
    std::vector<std::string> defaults;
    Model m(load_config_json(config, &defaults));
    print_config_defaults(defaults, "ittt init");
    m.init_random(seed);
    make_directories(parent_directory(out));
    WriterLock lock(checkpoint_lock_path(out), cat("--out ", out), "ittt init");  // one writer per checkpoint (io/writer_lock.h)
    save_model(out, m);
    std::printf("wrote %s: %lld parameters, seed %llu\n", out.c_str(), static_cast<long long>(m.parameter_count()),
                static_cast<unsigned long long>(seed));
    return 0;
}

int cmd_eval(int argc, char** argv) {
    std::string usage = std::string(
                            "usage: ittt eval --ckpt DIR --task NAME --seed S [options]\n"
                            "  Accuracy (over scored positions) and mean loss on held-out seeded batches.\n") +
                        kCheckpointFlagsUsage + help_line(kEvalSeed) + help_line(kEvalBatches) + help_line(kEvalBatch) +
                        help_line(kEvalSeqLen) + "  --json                   one JSON object\n" + kTaskFlagsUsage + kRuntimeFlagsUsage +
                        kContextParallelUsage;
    Args a("eval", usage, argc, argv, 2);
    if (a.help()) return std::printf("%s", usage.c_str()), 0;
    Device device = apply_runtime_flags(a);
    TaskConfig task = read_task(a);
    CheckpointFlags ckpt = read_checkpoint_flags(a);
    if (!a.has("--seed")) a.error("missing required flag --seed");
    uint64_t seed = static_cast<uint64_t>(a.integer(kEvalSeed));
    int batches = static_cast<int>(a.integer(kEvalBatches));
    int batch = static_cast<int>(a.integer(kEvalBatch));
    int seq_len = static_cast<int>(a.integer(kEvalSeqLen));
    bool json = a.flag("--json");
    const bool context_parallel = read_context_parallel(a);
    a.finish();
    parallel::Context* cp = context_parallel ? start_context_parallel(device) : nullptr;
    Model model = load_checkpoint_model(ckpt, "eval", device);
    model.set_context_parallel(cp);
    require_memory(forward_bytes(model.config(), batch, seq_len, false), cat("a forward of a batch of ", batch, " x ", seq_len, " tokens"));
    EvalResult r = evaluate(model, task, batch, seq_len, batches, seed, &ckpt);
    if (json)
        std::printf("{\"task\": \"%s\", \"seed\": %llu, \"accuracy\": %.6f, \"correct\": %lld, \"scored\": %lld, "
                    "\"examples_all_correct\": %lld, \"examples\": %lld, \"loss\": %.6f}\n",
                    task.describe().c_str(), static_cast<unsigned long long>(seed), r.accuracy.fraction(),
                    static_cast<long long>(r.accuracy.correct), static_cast<long long>(r.accuracy.scored),
                    static_cast<long long>(r.accuracy.examples_all_correct), static_cast<long long>(r.accuracy.examples), r.loss);
    else
        std::printf("%s, seed %llu: accuracy %.4f (%lld/%lld scored), %lld/%lld examples fully correct, loss %.4f\n",
                    task.describe().c_str(), static_cast<unsigned long long>(seed), r.accuracy.fraction(),
                    static_cast<long long>(r.accuracy.correct), static_cast<long long>(r.accuracy.scored),
                    static_cast<long long>(r.accuracy.examples_all_correct), static_cast<long long>(r.accuracy.examples), r.loss);
    return 0;
}

namespace {
// The input: ids (--tokens 1,5,9) or text (--text / --prompt) for the checkpoint's
// tokenizer.json, which is read after the flags are checked (see with_tokenizer).
struct Prompt {
    std::string flag;  // the flag it came from, for messages
    std::vector<int32_t> ids;
    std::optional<std::string> text;
    std::optional<Tokenizer> tokenizer;  // DIR/tokenizer.json, when the directory has one
};
Prompt read_prompt(Args& a, const std::string& text_flag) {
    Prompt p;
    p.ids = a.int_list("--tokens", 0, INT32_MAX);
    if (a.has(text_flag)) p.text = a.str(text_flag, "");
    if (p.text && !p.ids.empty()) a.error(cat("give --tokens or ", text_flag, ", not both"));
    if (!p.text && p.ids.empty())
        a.error(cat("missing required flag --tokens (comma-separated ids, e.g. 1,5,9) or ", text_flag, " TEXT"));
    p.flag = p.text ? text_flag : "--tokens";
    return p;
}
// Loads tokenizer.json when present (text needs it) and encodes the text: the
// checkpoint's own, else the one at the top of a run directory given as --ckpt.
void with_tokenizer(Prompt& p, const std::string& resolved, const std::string& given) {
    std::string path = (std::filesystem::path(resolved) / "tokenizer.json").string();
    if (!std::filesystem::exists(path) && std::filesystem::exists(std::filesystem::path(given) / "tokenizer.json"))
        path = (std::filesystem::path(given) / "tokenizer.json").string();
    if (std::filesystem::exists(path)) p.tokenizer = Tokenizer::load(path);
    if (!p.text) return;
    ITTT_CHECK(p.tokenizer, path, ": not found: ", p.flag, " needs the checkpoint's tokenizer.json (or give --tokens ids)");
    p.ids = p.tokenizer->encode(*p.text);
    ITTT_CHECK(!p.ids.empty(), p.flag, ": the text encodes to no tokens");
}
// After the load, which tells the vocabulary size.
void check_tokens(const Args& a, const Prompt& p, int vocab) {
    for (size_t i = 0; i < p.ids.size(); ++i)
        if (p.ids[i] < 0 || p.ids[i] >= vocab)
            a.error(cat(p.flag, ": id ", p.ids[i], " at index ", i, " is outside the vocabulary [0, ", vocab, ")",
                        p.text ? " of the model (the tokenizer has more tokens than the model)" : ""));
}
// Generated ids as text; ids the tokenizer does not have (a model's padded vocabulary
// rows) cannot be shown and are left out of the text (the ids list keeps them).
std::string decodable(const Tokenizer& tok, const std::vector<int32_t>& ids) {
    std::vector<int32_t> known;
    for (int32_t id : ids)
        if (tok.has_id(id)) known.push_back(id);
    return tok.decode(known);
}
// ", "key": "value"" with the value JSON-escaped, for the hand-printed JSON lines below.
void print_json_string(const std::string& key, const std::string& value) {
    std::printf(", %s: %s", Json(key).dump().c_str(), Json(value).dump().c_str());
}
}  // namespace

int cmd_forward(int argc, char** argv) {
    std::string usage = std::string(
                            "usage: ittt forward --ckpt DIR (--tokens 3,1,4,1,5 | --text TEXT) [--top K] [--json]\n"
                            "  Logits at every position (prefill, inference mode). Text output shows the top K\n"
                            "  tokens per position; --json prints every logit.\n"
                            "  --tokens IDS             comma-separated token ids in [0, vocab_size)\n"
                            "  --text TEXT              encoded with DIR/tokenizer.json (Hugging Face format); tokens are\n"
                            "                           then shown as text too\n") +
                        kCheckpointFlagsUsage + help_line(kTop) + kRuntimeFlagsUsage + kContextParallelUsage;
    Args a("forward", usage, argc, argv, 2);
    if (a.help()) return std::printf("%s", usage.c_str()), 0;
    Device device = apply_runtime_flags(a);
    CheckpointFlags ckpt = read_checkpoint_flags(a);
    const int64_t top = a.integer(kTop);
    bool json = a.flag("--json");
    Prompt prompt = read_prompt(a, "--text");
    const bool context_parallel = read_context_parallel(a);
    a.finish();  // every flag checked before the (slow, fallible) load
    parallel::Context* cp = context_parallel ? start_context_parallel(device) : nullptr;
    std::string dir;
    Model model = load_checkpoint_model(ckpt, "forward", device, &dir);
    model.set_context_parallel(cp);
    with_tokenizer(prompt, dir, ckpt.dir);
    const int V = model.config().vocab_size;
    check_tokens(a, prompt, V);
    const std::vector<int32_t>& toks = prompt.ids;
    // A token as text, when there is a tokenizer: " (\"...\")" with the JSON escapes.
    auto shown = [&](int32_t id) {
        if (!prompt.tokenizer || !prompt.tokenizer->has_id(id)) return std::string();
        return " " + Json(prompt.tokenizer->decode({id})).dump();
    };
    ForwardOptions opt;
    opt.inference = true;
    const int64_t n = static_cast<int64_t>(toks.size());
    require_memory(forward_bytes(model.config(), 1, n, false), cat("a forward of ", n, " tokens"));
    Tensor logits_t = model.forward(Tensor::from_vector(toks, {1, n}).to(device), opt);
    if (cp) logits_t = gather_logits(model, logits_t);  // rank 0 prints the whole sequence
    if (!logits_t.defined()) return 0;
    check_logits(ckpt, cp ? nullptr : &model, logits_t, "forward");
    std::vector<float> logits = logits_t.to_f32_vector();
    if (json) {
        std::printf("{\"tokens\": [");
        for (int64_t t = 0; t < n; ++t) std::printf("%s%d", t ? ", " : "", toks[static_cast<size_t>(t)]);
        std::printf("]");
        if (prompt.text) print_json_string("text", *prompt.text);
        std::printf(", \"vocab_size\": %d, \"logits\": [", V);
        for (int64_t t = 0; t < n; ++t) {
            std::printf("%s[", t ? ", " : "");
            for (int v = 0; v < V; ++v) std::printf("%s%.7g", v ? ", " : "", logits[static_cast<size_t>(t * V + v)]);
            std::printf("]");
        }
        std::printf("]}\n");
        return 0;
    }
    for (int64_t t = 0; t < n; ++t) {
        std::vector<int> idx(static_cast<size_t>(V));
        for (int v = 0; v < V; ++v) idx[static_cast<size_t>(v)] = v;
        const float* row = logits.data() + t * V;
        const int k = static_cast<int>(std::min<int64_t>(top, V));
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int x, int y) { return row[x] > row[y]; });
        std::printf("pos %3lld token %5d%s | top:", static_cast<long long>(t), toks[static_cast<size_t>(t)],
                    shown(toks[static_cast<size_t>(t)]).c_str());
        for (int i = 0; i < k; ++i)
            std::printf(" %d%s (%.3f)", idx[static_cast<size_t>(i)], shown(idx[static_cast<size_t>(i)]).c_str(),
                        row[idx[static_cast<size_t>(i)]]);
        std::printf("\n");
    }
    return 0;
}

int cmd_generate(int argc, char** argv) {
    std::string usage = std::string(
                            "usage: ittt generate --ckpt DIR (--tokens 1,5,9 | --prompt TEXT) --n N [--temperature T] [--seed S] [--json]\n"
                            "  Streaming decode: prefill the prompt, then N tokens one at a time with the KV cache\n"
                            "  and the TTT fast weights updated chunk by chunk. Greedy unless --temperature > 0.\n"
                            "  --prompt TEXT  encoded with DIR/tokenizer.json (Hugging Face format); the output is then text\n"
                            "  --json         ids (and text with a tokenizer), the TTT state size, and every fast-weight\n"
                            "                 update: layer, chunk, ||eta dW||_F before and after ttt_clip_tau, clipped\n"
                            "  --tokens IDS             the prompt: comma-separated token ids in [0, vocab_size)\n"
                            "  --temperature T          sampling temperature (default 0: greedy, >= 0)\n") +
                        kCheckpointFlagsUsage + help_line(kGenerateN) + help_line(kGenerateSeed) + kRuntimeFlagsUsage;
    Args a("generate", usage, argc, argv, 2);
    if (a.help()) return std::printf("%s", usage.c_str()), 0;
    Device device = apply_runtime_flags(a);
    CheckpointFlags ckpt = read_checkpoint_flags(a);
    int64_t n = a.integer(kGenerateN);
    double temperature = a.number("--temperature", 0.0);
    if (temperature < 0) a.error(cat("--temperature must be >= 0, found ", temperature));
    uint64_t seed = static_cast<uint64_t>(a.integer(kGenerateSeed));
    bool json = a.flag("--json");
    Prompt prompt = read_prompt(a, "--prompt");
    a.finish();
    std::string dir;
    Model model = load_checkpoint_model(ckpt, "generate", device, &dir);
    with_tokenizer(prompt, dir, ckpt.dir);
    check_tokens(a, prompt, model.config().vocab_size);
    const std::vector<int32_t>& toks = prompt.ids;
    {
        // The KV caches grow to prompt + n positions; the prompt runs as one forward.
        const ModelConfig& c = model.config();
        const double positions = static_cast<double>(toks.size()) + static_cast<double>(n);
        require_memory(forward_bytes(c, 1, static_cast<int64_t>(toks.size()), false) +
                           2.0 * 4 * positions * c.num_hidden_layers * c.num_key_value_heads * c.head_dim,
                       cat("the KV caches of ", toks.size(), " + ", n, " positions"));
    }
    Session session(model);
    Rng rng(seed);
    Tensor prefill = session.prefill(toks);
    check_logits(ckpt, nullptr, prefill, "generate, prefill");
    std::vector<float> last = prefill.rows(static_cast<int64_t>(toks.size()) - 1, static_cast<int64_t>(toks.size())).to_f32_vector();
    std::vector<int32_t> out;
    for (int64_t i = 0; i < n; ++i) {
        int next = 0;
        if (temperature <= 0) {
            next = static_cast<int>(std::max_element(last.begin(), last.end()) - last.begin());
        } else {
            double mx = *std::max_element(last.begin(), last.end()), total = 0;
            std::vector<double> p(last.size());
            for (size_t v = 0; v < p.size(); ++v) total += p[v] = std::exp((last[v] - mx) / temperature);
            double r = rng.uniform() * total;
            while (next + 1 < static_cast<int>(p.size()) && (r -= p[static_cast<size_t>(next)]) > 0) ++next;
        }
        out.push_back(next);
        if (i + 1 < n) {
            Tensor logits = session.decode(next);
            check_logits(ckpt, nullptr, logits.view({1, logits.numel()}), cat("generate, token ", i + 1));
            last = logits.to_f32_vector();
        }
    }
    if (json) {
        std::printf("{\"prompt\": [");
        for (size_t i = 0; i < toks.size(); ++i) std::printf("%s%d", i ? ", " : "", toks[i]);
        std::printf("], \"generated\": [");
        for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? ", " : "", out[i]);
        std::printf("]");
        if (prompt.tokenizer) {
            print_json_string("prompt_text", prompt.text ? *prompt.text : prompt.tokenizer->decode(toks));
            print_json_string("generated_text", decodable(*prompt.tokenizer, out));
        }
        std::printf(", \"ttt_state_bytes\": %zu", session.ttt_state_bytes());
        // Every fast-weight update, in order; clipped means ttt_clip_tau scaled it down to tau.
        const std::vector<TttUpdate>& ups = session.updates();
        int clipped = 0;
        for (const TttUpdate& u : ups) clipped += u.clipped;
        std::printf(", \"ttt_clip_tau\": %.17g, \"ttt_clipped_updates\": %d, \"ttt_updates\": [", model.config().ttt_clip_tau, clipped);
        for (size_t i = 0; i < ups.size(); ++i)
            std::printf("%s{\"layer\": %d, \"chunk\": %d, \"norm\": %.17g, \"applied\": %.17g, \"clipped\": %s}", i ? ", " : "",
                        ups[i].layer, ups[i].chunk, ups[i].norm, ups[i].applied, ups[i].clipped ? "true" : "false");
        std::printf("]}\n");
    } else if (prompt.text) {
        std::printf("%s\n", decodable(*prompt.tokenizer, out).c_str());
    } else {
        for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? "," : "", out[i]);
        std::printf("\n");
    }
    return 0;
}

}  // namespace ittt
