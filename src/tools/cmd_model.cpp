// cmd_model.cpp: ittt init, eval, forward, generate (train: cmd_train.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "driver/attention_distance.h"
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

// ---------------------------------------------------------------- init

namespace {
struct InitFlags {
    std::string config, out;
    uint64_t seed = 0;
};

std::string init_usage() {
    return std::string("usage: ittt init --config FILE --out DIR [--seed S]\n"
                       "  Writes a seeded, randomly initialised checkpoint (config.json + model.safetensors),\n"
                       "  published whole (an existing checkpoint at DIR is replaced atomically).\n"
                       "  --config FILE            a config.json with Hugging Face Qwen3 + In-Place TTT keys (see data/configs/)\n"
                       "  --out DIR                checkpoint directory to create\n") +
           help_line(kInitSeed);
}

InitFlags read_init_flags(Args& a) {
    InitFlags o;
    o.config = a.required("--config");
    o.out = a.required("--out");
    o.seed = static_cast<uint64_t>(a.integer(kInitSeed));
    a.finish();
    return o;
}

int run_init(const InitFlags& o) {
    if (const std::string run = run_of_step_directory(o.out); !run.empty())
        fail(cat("--out ", o.out, " names a step-N checkpoint of the training run ", run,
                 ": a checkpoint without optimizer state there would make --resume of that run fail; choose another --out"));
    std::vector<std::string> defaults;
    Model m(load_config_json(o.config, &defaults));
    print_config_defaults(defaults, "ittt init");
    m.init_random(o.seed);
    make_directories(parent_directory(o.out));
    WriterLock lock(checkpoint_lock_path(o.out), cat("--out ", o.out), "ittt init");  // one writer per checkpoint (io/writer_lock.h)
    save_model(o.out, m);
    std::printf("wrote %s: %lld parameters, seed %llu\n", o.out.c_str(), static_cast<long long>(m.parameter_count()),
                static_cast<unsigned long long>(o.seed));
    return 0;
}
}  // namespace

int cmd_init(int argc, char** argv) {
    Args a("init", init_usage(), argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    return run_init(read_init_flags(a));
}

// ---------------------------------------------------------------- eval

namespace {
struct EvalFlags {
    RuntimeFlags runtime;
    TaskConfig task;
    CheckpointFlags ckpt;
    uint64_t seed = 0;
    int batches = 0, batch = 0, seq_len = 0;
    bool json = false;
    bool context_parallel = false;
    std::vector<int32_t> attention_distance;  // thresholds W; empty: not measured
};

std::string eval_usage() {
    return std::string("usage: ittt eval --ckpt DIR --task NAME --seed S [options]\n"
                       "  Accuracy (over scored positions) and mean loss on held-out seeded batches.\n") +
           kCheckpointFlagsUsage + help_line(kEvalSeed) + help_line(kEvalBatches) + help_line(kEvalBatch) + help_line(kEvalSeqLen) +
           "  --json                   one JSON object\n"
           "  --attention-distance W,...  also measure how far back each layer's query heads attend over the\n"
           "                           scored positions: the mean distance and the share of the attention at\n"
           "                           distance >= each W tokens (e.g. 64,256; docs/results.md section 2)\n" +
           kTaskFlagsUsage + kRuntimeFlagsUsage + kContextParallelUsage;
}

EvalFlags read_eval_flags(Args& a) {
    EvalFlags o;
    o.runtime = read_runtime_flags(a);
    o.task = read_task(a);
    o.ckpt = read_checkpoint_flags(a);
    if (!a.has("--seed")) a.error("missing required flag --seed");
    o.seed = static_cast<uint64_t>(a.integer(kEvalSeed));
    o.batches = static_cast<int>(a.integer(kEvalBatches));
    o.batch = static_cast<int>(a.integer(kEvalBatch));
    o.seq_len = static_cast<int>(a.integer(kEvalSeqLen));
    o.json = a.flag("--json");
    o.attention_distance = a.int_list("--attention-distance", 1, INT32_MAX);
    o.context_parallel = read_context_parallel(a);
    if (o.context_parallel && !o.attention_distance.empty()) a.error("--attention-distance needs the whole sequence: not with --context-parallel");
    a.finish();
    return o;
}

void print_eval(const EvalFlags& o, const EvalResult& r, const AttentionDistance* distance) {
    if (o.json) {
        JsonWriter j;
        j.begin_object().field("task", o.task.describe()).field("seed", o.seed).field("accuracy", r.accuracy.fraction());
        j.field("correct", r.accuracy.correct).field("scored", r.accuracy.scored);
        j.field("examples_all_correct", r.accuracy.examples_all_correct).field("examples", r.accuracy.examples).field("loss", r.loss);
        if (distance) distance->write_json(j.key("attention_distance"));
        std::printf("%s\n", j.end_object().text().c_str());
        return;
    }
    std::printf("%s, seed %llu: accuracy %.4f (%lld/%lld scored), %lld/%lld examples fully correct, loss %.4f\n",
                o.task.describe().c_str(), static_cast<unsigned long long>(o.seed), r.accuracy.fraction(),
                static_cast<long long>(r.accuracy.correct), static_cast<long long>(r.accuracy.scored),
                static_cast<long long>(r.accuracy.examples_all_correct), static_cast<long long>(r.accuracy.examples), r.loss);
    if (distance) std::printf("%s", distance->format_text().c_str());
}

int run_eval(const EvalFlags& o) {
    parallel::Context* cp = o.context_parallel ? start_context_parallel(o.runtime.device) : nullptr;
    Model model = load_checkpoint_model(o.ckpt, "eval", o.runtime.device);
    model.set_context_parallel(cp);
    require_memory(forward_bytes(model.config(), o.batch, o.seq_len, false),
                   cat("a forward of a batch of ", o.batch, " x ", o.seq_len, " tokens"));
    std::optional<AttentionDistance> distance;
    if (!o.attention_distance.empty()) distance.emplace(std::vector<int>(o.attention_distance.begin(), o.attention_distance.end()));
    EvalResult r = evaluate(model, o.task, o.batch, o.seq_len, o.batches, o.seed, &o.ckpt, [&](const Batch& b) {
        if (distance) distance->add(model, b);
    });
    print_eval(o, r, distance ? &*distance : nullptr);
    return 0;
}
}  // namespace

int cmd_eval(int argc, char** argv) {
    Args a("eval", eval_usage(), argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    return run_eval(read_eval_flags(a));
}

// ---------------------------------------------------------------- forward and generate

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
}  // namespace

namespace {
struct ForwardFlags {
    RuntimeFlags runtime;
    CheckpointFlags ckpt;
    int64_t top = 0;
    bool json = false;
    Prompt prompt;  // --tokens or --text (the tokenizer is read with the checkpoint)
    bool context_parallel = false;
};

std::string forward_usage() {
    return std::string("usage: ittt forward --ckpt DIR (--tokens 3,1,4,1,5 | --text TEXT) [--top K] [--json]\n"
                       "  Logits at every position (prefill, inference mode). Text output shows the top K\n"
                       "  tokens per position; --json prints every logit.\n"
                       "  --tokens IDS             comma-separated token ids in [0, vocab_size)\n"
                       "  --text TEXT              encoded with DIR/tokenizer.json (Hugging Face format); tokens are\n"
                       "                           then shown as text too\n") +
           kCheckpointFlagsUsage + help_line(kTop) + kRuntimeFlagsUsage + kContextParallelUsage;
}

ForwardFlags read_forward_flags(Args& a) {
    ForwardFlags o;
    o.runtime = read_runtime_flags(a);
    o.ckpt = read_checkpoint_flags(a);
    o.top = a.integer(kTop);
    o.json = a.flag("--json");
    o.prompt = read_prompt(a, "--text");
    o.context_parallel = read_context_parallel(a);
    a.finish();  // every flag checked before the (slow, fallible) load
    return o;
}

// {"tokens": [...], "text": "..." (with --text), "vocab_size": V, "logits": [[V floats] per position]}
void print_forward_json(const Prompt& prompt, int V, const std::vector<float>& logits) {
    const int64_t n = static_cast<int64_t>(prompt.ids.size());
    JsonWriter j;
    j.begin_object().array("tokens", prompt.ids);
    if (prompt.text) j.field("text", *prompt.text);
    j.field("vocab_size", V).key("logits").begin_array();
    for (int64_t t = 0; t < n; ++t) j.array_of(logits.begin() + t * V, logits.begin() + (t + 1) * V);
    std::printf("%s\n", j.end_array().end_object().text().c_str());
}

// One line per position: the token and the top K tokens with their logits.
void print_forward_text(const Prompt& prompt, int V, int64_t top, const std::vector<float>& logits) {
    // A token as text, when there is a tokenizer: " \"...\"" with the JSON escapes.
    auto shown = [&](int32_t id) {
        if (!prompt.tokenizer || !prompt.tokenizer->has_id(id)) return std::string();
        return " " + Json(prompt.tokenizer->decode({id})).dump();
    };
    const std::vector<int32_t>& toks = prompt.ids;
    for (size_t t = 0; t < toks.size(); ++t) {
        std::vector<int> idx(static_cast<size_t>(V));
        for (int v = 0; v < V; ++v) idx[static_cast<size_t>(v)] = v;
        const float* row = logits.data() + t * static_cast<size_t>(V);
        const int k = static_cast<int>(std::min<int64_t>(top, V));
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int x, int y) { return row[x] > row[y]; });
        std::printf("pos %3zu token %5d%s | top:", t, toks[t], shown(toks[t]).c_str());
        for (int i = 0; i < k; ++i)
            std::printf(" %d%s (%.3f)", idx[static_cast<size_t>(i)], shown(idx[static_cast<size_t>(i)]).c_str(), row[idx[static_cast<size_t>(i)]]);
        std::printf("\n");
    }
}

// a: the command line, for the usage error of an id outside the model's vocabulary.
int run_forward(const ForwardFlags& o, const Args& a) {
    parallel::Context* cp = o.context_parallel ? start_context_parallel(o.runtime.device) : nullptr;
    std::string dir;
    Model model = load_checkpoint_model(o.ckpt, "forward", o.runtime.device, &dir);
    model.set_context_parallel(cp);
    Prompt prompt = o.prompt;
    with_tokenizer(prompt, dir, o.ckpt.dir);
    const int V = model.config().vocab_size;
    check_tokens(a, prompt, V);
    ForwardOptions inference;
    inference.inference = true;
    const int64_t n = static_cast<int64_t>(prompt.ids.size());
    require_memory(forward_bytes(model.config(), 1, n, false), cat("a forward of ", n, " tokens"));
    Tensor logits = model.forward(Tensor::from_vector(prompt.ids, {1, n}).to(o.runtime.device), inference);
    if (cp) logits = gather_logits(model, logits);  // rank 0 prints the whole sequence
    if (!logits.defined()) return 0;
    check_logits(o.ckpt, cp ? nullptr : &model, logits, "forward");
    if (o.json) print_forward_json(prompt, V, logits.to_f32_vector());
    else print_forward_text(prompt, V, o.top, logits.to_f32_vector());
    return 0;
}
}  // namespace

int cmd_forward(int argc, char** argv) {
    Args a("forward", forward_usage(), argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    return run_forward(read_forward_flags(a), a);
}

namespace {
struct GenerateFlags {
    RuntimeFlags runtime;
    CheckpointFlags ckpt;
    int64_t n = 0;
    double temperature = 0;  // 0: greedy
    uint64_t seed = 0;
    bool json = false;
    Prompt prompt;  // --tokens or --prompt
};

std::string generate_usage() {
    return std::string("usage: ittt generate --ckpt DIR (--tokens 1,5,9 | --prompt TEXT) --n N [--temperature T] [--seed S] [--json]\n"
                       "  Streaming decode: prefill the prompt, then N tokens one at a time with the KV cache\n"
                       "  and the TTT fast weights updated chunk by chunk. Greedy unless --temperature > 0.\n"
                       "  --prompt TEXT  encoded with DIR/tokenizer.json (Hugging Face format); the output is then text\n"
                       "  --json         ids (and text with a tokenizer), the TTT state size, and every fast-weight\n"
                       "                 update: layer, chunk, ||eta dW||_F before and after ttt_clip_tau, clipped\n"
                       "  --tokens IDS             the prompt: comma-separated token ids in [0, vocab_size)\n"
                       "  --temperature T          sampling temperature (default 0: greedy, >= 0)\n") +
           kCheckpointFlagsUsage + help_line(kGenerateN) + help_line(kGenerateSeed) + kRuntimeFlagsUsage;
}

GenerateFlags read_generate_flags(Args& a) {
    GenerateFlags o;
    o.runtime = read_runtime_flags(a);
    o.ckpt = read_checkpoint_flags(a);
    o.n = a.integer(kGenerateN);
    o.temperature = a.number("--temperature", 0.0);
    if (o.temperature < 0) a.error(cat("--temperature must be >= 0, found ", o.temperature));
    o.seed = static_cast<uint64_t>(a.integer(kGenerateSeed));
    o.json = a.flag("--json");
    o.prompt = read_prompt(a, "--prompt");
    a.finish();
    return o;
}

// The next token from the last position's logits: the argmax, or a draw at the temperature.
int next_token(const std::vector<float>& last, double temperature, Rng& rng) {
    if (temperature <= 0) return static_cast<int>(std::max_element(last.begin(), last.end()) - last.begin());
    double mx = *std::max_element(last.begin(), last.end()), total = 0;
    std::vector<double> p(last.size());
    for (size_t v = 0; v < p.size(); ++v) total += p[v] = std::exp((last[v] - mx) / temperature);
    double r = rng.uniform() * total;
    int next = 0;
    while (next + 1 < static_cast<int>(p.size()) && (r -= p[static_cast<size_t>(next)]) > 0) ++next;
    return next;
}

// {"prompt": [...], "generated": [...], "prompt_text", "generated_text" (with a tokenizer),
//  "ttt_state_bytes", "ttt_clip_tau", "ttt_clipped_updates", "ttt_updates": [{layer, chunk, norm, applied, clipped}]}
void print_generate_json(const Prompt& prompt, const std::vector<int32_t>& out, const Session& session, double clip_tau) {
    JsonWriter j;
    j.begin_object().array("prompt", prompt.ids).array("generated", out);
    if (prompt.tokenizer) {
        j.field("prompt_text", prompt.text ? *prompt.text : prompt.tokenizer->decode(prompt.ids));
        j.field("generated_text", decodable(*prompt.tokenizer, out));
    }
    j.field("ttt_state_bytes", session.ttt_state_bytes());
    // Every fast-weight update, in order; clipped means ttt_clip_tau scaled it down to tau.
    const std::vector<TttUpdate>& ups = session.updates();
    int clipped = 0;
    for (const TttUpdate& u : ups) clipped += u.clipped;
    j.field("ttt_clip_tau", clip_tau).field("ttt_clipped_updates", clipped).key("ttt_updates").begin_array();
    for (const TttUpdate& u : ups)
        j.begin_object().field("layer", u.layer).field("chunk", u.chunk).field("norm", u.norm).field("applied", u.applied).field("clipped", u.clipped).end_object();
    std::printf("%s\n", j.end_array().end_object().text().c_str());
}

// a: the command line, for the usage error of an id outside the model's vocabulary.
int run_generate(const GenerateFlags& o, const Args& a) {
    std::string dir;
    Model model = load_checkpoint_model(o.ckpt, "generate", o.runtime.device, &dir);
    Prompt prompt = o.prompt;
    with_tokenizer(prompt, dir, o.ckpt.dir);
    check_tokens(a, prompt, model.config().vocab_size);
    const std::vector<int32_t>& toks = prompt.ids;
    {
        // The KV caches grow to prompt + n positions; the prompt runs as one forward.
        const ModelConfig& c = model.config();
        const double positions = static_cast<double>(toks.size()) + static_cast<double>(o.n);
        require_memory(forward_bytes(c, 1, static_cast<int64_t>(toks.size()), false) +
                           2.0 * 4 * positions * c.num_hidden_layers * c.num_key_value_heads * c.head_dim,
                       cat("the KV caches of ", toks.size(), " + ", o.n, " positions"));
    }
    Session session(model);
    Rng rng(o.seed);
    Tensor prefill = session.prefill(toks);
    check_logits(o.ckpt, nullptr, prefill, "generate, prefill");
    std::vector<float> last = prefill.rows(static_cast<int64_t>(toks.size()) - 1, static_cast<int64_t>(toks.size())).to_f32_vector();
    std::vector<int32_t> out;
    for (int64_t i = 0; i < o.n; ++i) {
        out.push_back(next_token(last, o.temperature, rng));
        if (i + 1 < o.n) {
            Tensor logits = session.decode(out.back());
            check_logits(o.ckpt, nullptr, logits.view({1, logits.numel()}), cat("generate, token ", i + 1));
            last = logits.to_f32_vector();
        }
    }
    if (o.json) {
        print_generate_json(prompt, out, session, model.config().ttt_clip_tau);
    } else if (prompt.text) {
        std::printf("%s\n", decodable(*prompt.tokenizer, out).c_str());
    } else {
        for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? "," : "", out[i]);
        std::printf("\n");
    }
    return 0;
}
}  // namespace

int cmd_generate(int argc, char** argv) {
    Args a("generate", generate_usage(), argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    return run_generate(read_generate_flags(a), a);
}

}  // namespace ittt
