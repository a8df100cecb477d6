// cmd_step.cpp: ittt step, the step-through driver. Two modes:
//   --theory    the constructed setting of Theorem 1 (src/driver/theory.h)
//   --ckpt DIR  a trained checkpoint at its real logits (src/driver/model_probe.h)
// Both print a summary with verdicts, then the chunk-by-chunk view (a pager on
// a terminal, or every page with --auto), then write figures.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "driver/html_report.h"
#include "driver/model_probe.h"
#include "driver/plots.h"
#include "driver/terminal.h"
#include "driver/theory.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "model/memory_budget.h"
#include "model/model_io.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace ittt {

namespace {

using theory::TheoryOptions;

constexpr int64_t kMaxSeed = INT64_MAX;
// The theory engine's flags, each parsed straight into its field of
// TheoryOptions, with the ranges this command enforces (theory::validate_options
// adds the cross-checks, e.g. key-chunk < chunks - 1).
const TheoryOptions kTheoryDefaults;
struct TheoryIntFlag {
    IntFlag flag;
    int TheoryOptions::*field;
};
const IntFlag kTheorySeed{"--seed", "N", static_cast<int64_t>(kTheoryDefaults.seed), 0, kMaxSeed, "seed of the model and of every trial"};
const TheoryIntFlag kTheoryInts[] = {
    {{"--trials", "N", kTheoryDefaults.trials, 1, 1000000, "sequences averaged over"}, &TheoryOptions::trials},
    {{"--d", "N", kTheoryDefaults.d, 1, 1 << 20, "embedding width"}, &TheoryOptions::d},
    {{"--vocab", "N", kTheoryDefaults.vocab, 3, 1 << 16, "ordinary tokens"}, &TheoryOptions::vocab},
    {{"--f", "N", kTheoryDefaults.f, 0, 1 << 22, "SwiGLU width, 0 = 3*d (identity features use f = d)"}, &TheoryOptions::f},
    {{"--chunk", "N", kTheoryDefaults.chunk, 2, 1 << 16, "positions per chunk"}, &TheoryOptions::chunk},
    {{"--chunks", "N", kTheoryDefaults.n_chunks, 2, 1 << 12, "chunks per sequence; the query is in the last"}, &TheoryOptions::n_chunks},
    {{"--key-chunk", "N", kTheoryDefaults.key_chunk, 0, (1 << 12) - 2, "chunk holding the pair (k*, v*)"}, &TheoryOptions::key_chunk},
    {{"--step-trial", "N", kTheoryDefaults.step_trial, 0, 999999, "trial shown chunk by chunk"}, &TheoryOptions::step_trial},
};
const int64_t kSweepMax = 1 << 20;
// The theory engine's other flags (a number, the kinds, the sweep's widths).
const char* const kTheoryOther[] = {"--lr", "--embed", "--features", "--mlp-input", "--sweep"};

std::string theory_help() {
    std::string h = help_line(kTheorySeed);
    for (const TheoryIntFlag& f : kTheoryInts) h += help_line(f.flag);
    std::string sweep;
    for (size_t i = 0; i < kTheoryDefaults.sweep.size(); ++i) sweep += (i ? "," : "") + std::to_string(kTheoryDefaults.sweep[i]);
    return h + cat("  --lr X                   fast-weight learning rate eta (default ", kTheoryDefaults.lr, ", > 0)\n",
                   "  --embed K                gaussian (N(0,1/d)) or orthogonal (+-unit vectors, vocab <= d)\n",
                   "  --features K             swiglu (silu(Wg h) * (Wu h)) or identity (z = e)\n",
                   "  --mlp-input K            raw (h = e, the theorem's setting) or rmsnorm (h = RMSNorm(e))\n",
                   "  --sweep LIST             widths d for the sweep (default ", sweep, ", each in ", range_text(1, kSweepMax), ")\n");
}

const IntFlag kModelSeqLen{"--seq-len", "n", 0, 0, 1 << 20, "tokens per sequence (0: 4 * ttt_chunk)"};
const IntFlag kModelSeed{"--seed", "S", 1, 0, kMaxSeed, "seed of the sequences"};
const IntFlag kModelExamples{"--examples", "K", 16, 1, 1 << 16, "sequences averaged in the summary"};
const IntFlag kModelStepExample{"--step-example", "i", 0, 0, (1 << 16) - 1, "the sequence shown chunk by chunk"};
const IntFlag kModelTop{"--top", "K", 5, 1, 1000, "top tokens listed per query"};
const IntFlag kModelQuery{"--query", "j", 0, 0, (1 << 16) - 1, "page view: only query ?j (pair j) on every chunk page"};

std::string usage() {
    return std::string(
               "usage: ittt step --theory [theory options] [output options]\n"
               "       ittt step --ckpt DIR [--task theorem|mqar] [model options] [output options]\n"
               "  Steps through a sequence chunk by chunk, watching the fast weights learn, and checks\n"
               "  the induction-head theorem (docs/theory.md). The pager opens on the summary; keys:\n"
               "  n/Enter next, p previous, j/k or arrows scroll, space/b a screen, g/G first/last,\n"
               "  s summary, q quit. It fits the terminal (and follows resizes).\n"
               "\n"
               "output options:\n"
               "  --auto                   print every chunk without waiting for keys (implied when stdin\n"
               "                           or stdout is not a terminal, and by --json)\n"
               "  --json                   JSON lines: one object per chunk, a summary object per target,\n"
               "                           then the sweep (theory) and {\"type\": \"plots\", \"paths\": [...]}\n"
               "  --no-steps               the summary only, no chunk-by-chunk view\n"
               "  --plots DIR              where figures go: PNG + SVG + gnuplot script (default out/step)\n"
               "  --no-plots               write no figures\n"
               "\n"
               "theory mode (--theory): the setting of Theorem 1, many seeded trials\n") +
           theory_help() +
           "  (the sweep over d runs only when --sweep is given)\n"
           "\n"
           "model mode (--ckpt DIR): the same measurements at a checkpoint's real logits, for the\n"
           "learned target and for the same weights with only the offset-0 conv tap\n" +
           kCheckpointFlagsUsage +
           "  --task NAME              theorem (default) or mqar; the markers give keys, values and queries\n"
           "  --task-opt K=V,..        task options; theorem's chunk and window default to the model's\n"
           "                           ttt_chunk and sliding_window (docs/tasks.md)\n" +
           help_line(kModelSeqLen) + help_line(kModelSeed) + help_line(kModelExamples) + help_line(kModelStepExample) +
           help_line(kModelTop) +
           "  --compact                page view: tokens, what each key retrieves and a mark per query,\n"
           "                           one 80x24 screen per chunk\n" +
           help_line(kModelQuery) +
           "  --html FILE              also write a self-contained HTML page to step through (no\n"
           "                           network: inline CSS, JavaScript and SVG)\n" +
           kRuntimeFlagsUsage;
}

// About what the theory engine holds at once, in doubles: the embeddings, Wg
// and Wu, every token's features, one sequence's features and targets, and the
// per-position contributions of the step view. For the widest d of a sweep too.
double theory_bytes(const TheoryOptions& o, bool sweep) {
    double worst = 0;
    std::vector<int> widths = {o.d};
    if (sweep) widths.insert(widths.end(), o.sweep.begin(), o.sweep.end());
    for (int d : widths) {
        TheoryOptions x = o;
        x.d = d;
        const double V = x.vocab, D = d, F = x.feature_width(), L = x.seq_len();
        worst = std::max(worst, 8 * (V * D + 2 * F * D + V * F + L * (2 * D + 2 * F) + 2 * L * V + 2 * D * F));
    }
    return worst;
}

// What every mode prints and writes besides its measurements.
struct OutputFlags {
    bool automatic = false, json = false, steps = true;
    std::string plot_dir;  // empty: no plots
};

OutputFlags read_output(Args& a) {
    OutputFlags o;
    o.automatic = a.flag("--auto");
    o.json = a.flag("--json");
    o.steps = !a.flag("--no-steps");
    bool no_plots = a.flag("--no-plots");
    std::string dir = a.str("--plots", "out/step");
    if (no_plots && a.has("--plots")) a.error("give --plots DIR or --no-plots, not both");
    if (!no_plots) o.plot_dir = dir;
    return o;
}

// `ittt step --theory`: the engine's options, each flag in its field.
struct TheoryModeFlags {
    TheoryOptions theory;
    bool sweep = false;  // run the sweep over d (only when --sweep is given)
    OutputFlags output;
};

// A flag naming a kind (--embed gaussian): the engine's parser, its error a usage error.
template <class Kind>
Kind read_kind(Args& a, const char* flag, Kind fallback, Kind (*parse)(const std::string&)) {
    if (!a.has(flag)) return fallback;
    const std::string name = a.str(flag, "");
    try {
        return parse(name);
    } catch (const Error& e) {
        a.error(e.what());
    }
}

TheoryModeFlags read_theory_mode(Args& a) {
    TheoryModeFlags m;
    TheoryOptions& o = m.theory;
    o.seed = static_cast<uint64_t>(a.integer(kTheorySeed));
    for (const TheoryIntFlag& f : kTheoryInts) o.*f.field = static_cast<int>(a.integer(f.flag));
    o.lr = a.number("--lr", o.lr);
    o.embed = read_kind(a, "--embed", o.embed, theory::parse_embedding_kind);
    o.features = read_kind(a, "--features", o.features, theory::parse_feature_kind);
    o.mlp_input = read_kind(a, "--mlp-input", o.mlp_input, theory::parse_mlp_input);
    m.sweep = a.has("--sweep");
    if (m.sweep) {
        const std::string list = a.str("--sweep", "");
        o.sweep.clear();
        try {
            for (const std::string& item : split_list(list, "--sweep"))
                o.sweep.push_back(static_cast<int>(parse_integer(item, 1, kSweepMax, "--sweep: a width")));
        } catch (const Error& e) {
            a.error(e.what());
        }
    }
    for (const char* flag : {"--compact", "--query", "--html"})
        if (a.has(flag)) a.error(cat(flag, " is a model-mode option (with --ckpt DIR)"));
    m.output = read_output(a);
    a.finish();
    return m;
}

// `ittt step --ckpt DIR`: the checkpoint, the task and the probe's sizes.
struct ModelModeFlags {
    RuntimeFlags runtime;
    CheckpointFlags ckpt;
    std::string task_name;
    std::map<std::string, std::string> task_opts;  // theorem's chunk and window default to the model's
    int64_t seq_len = 0;                           // 0: 4 * ttt_chunk
    probe::ProbeOptions probe;                     // seed, examples, step_example, top (the task once the model is read)
    probe::PageOptions page;                       // --compact, --query j
    std::string html;                              // --html FILE ("": none)
    OutputFlags output;
};

ModelModeFlags read_model_mode(Args& a) {
    ModelModeFlags m;
    m.runtime = read_runtime_flags(a);
    m.ckpt = read_checkpoint_flags(a);
    m.task_name = a.str("--task", "theorem");
    try {
        if (a.has("--task-opt")) split_list(a.str("--task-opt", ""), "--task-opt");
        m.task_opts = parse_option_list(a.str("--task-opt", ""));
    } catch (const Error& e) {
        a.error(e.what());
    }
    m.seq_len = a.integer(kModelSeqLen);
    m.probe.seed = static_cast<uint64_t>(a.integer(kModelSeed));
    m.probe.examples = static_cast<int>(a.integer(kModelExamples));
    m.probe.step_example = static_cast<int>(a.integer(kModelStepExample));
    m.probe.top = static_cast<int>(a.integer(kModelTop));
    const bool compact = a.flag("--compact");
    if (a.has("--query")) {
        if (compact) a.error("give --compact or --query j, not both");
        m.page.view = probe::PageView::Query;
        m.page.pair = static_cast<int>(a.integer(kModelQuery));
    } else if (compact) {
        m.page.view = probe::PageView::Compact;
    }
    m.html = a.str("--html", "");
    if (a.has("--html") && m.html.empty()) a.error("--html: expected a file name");
    m.output = read_output(a);
    auto theory_only = [&](const std::string& flag) {
        if (a.has(flag)) a.error(flag + " is a theory-mode option (with --theory); the model mode takes the checkpoint's values");
    };
    for (const TheoryIntFlag& f : kTheoryInts) theory_only(f.flag.name);
    for (const char* flag : kTheoryOther) theory_only(flag);
    a.finish();
    if (m.probe.step_example >= m.probe.examples)
        a.error(cat("--step-example ", m.probe.step_example, " must be below --examples ", m.probe.examples));
    return m;
}

// The summary, then the chunk pages: on a terminal a pager that opens on the
// summary (page 0, `s` returns to it) and steps through the chunks; otherwise
// the summary and every page one after another. The summary is printed before
// the pager too, so it stays on the screen after quitting.
void show_pages(const std::string& summary, const terminal::Pages& chunks, const OutputFlags& out) {
    std::fputs(summary.c_str(), stdout);
    std::printf("\n");
    if (!out.steps || chunks.count == 0) return;
    if (!out.automatic && terminal::interactive_possible()) {
        terminal::Pages pages = chunks;
        pages.count = chunks.count + 1;
        pages.render = [&](int i) { return i == 0 ? terminal::Page{"", summary} : chunks.render(i - 1); };
        pages.name = [&](int i) { return i == 0 ? std::string("summary") : chunks.page_name(i - 1); };
        pages.summary = 0;
        std::fflush(stdout);
        terminal::run_pager(pages);
    } else {
        std::fputs(terminal::all_pages(chunks).c_str(), stdout);
    }
}

// Figures, with their paths printed. A machine without gnuplot still gets the
// verdicts: the plots are skipped with the reason.
template <class F>
void write_plots(const OutputFlags& out, F draw) {
    if (out.plot_dir.empty()) return;
    std::vector<std::string> paths;
    std::string problem;
    try {
        std::filesystem::create_directories(out.plot_dir);
        paths = draw(out.plot_dir);
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (out.json) {
        JsonWriter line(JsonLayout::Compact);  // the layout of the driver's other lines
        line.begin_object().field("type", "plots").field("dir", out.plot_dir).array("paths", paths);
        if (!problem.empty()) line.field("skipped", true);
        std::printf("%s\n", line.end_object().text().c_str());
        if (!problem.empty()) std::fprintf(stderr, "ittt step: plots skipped: %s\n", problem.c_str());
        return;
    }
    if (!problem.empty()) {
        std::printf("\nplots skipped: %s\n", problem.c_str());
        return;
    }
    if (paths.empty()) return;  // PLOTS=0: plots.cpp said so on stderr
    std::printf("\nplots (PNG, SVG and the gnuplot script of each):\n");
    for (const std::string& p : paths)
        if (p.size() > 4 && p.compare(p.size() - 4, 4, ".png") == 0) std::printf("  %s\n", p.c_str());
    std::printf("  (the .svg and .gp files lie next to each .png)\n");
}

int run_theory(const TheoryModeFlags& m) {
    const TheoryOptions& o = m.theory;
    const bool sweep = m.sweep;
    const OutputFlags& out = m.output;
    theory::validate_options(o);
    require_memory(theory_bytes(o, sweep), cat("the theory setting (d=", o.d, ", vocab=", o.vocab, ", f=", o.feature_width(),
                                               ", ", o.seq_len(), " positions)"));

    theory::TheoryResult result = theory::run_trials(o);
    theory::StepResult step = theory::run_step(o);
    std::vector<theory::SweepPoint> points;
    if (sweep) points = theory::run_sweep(o);

    if (out.json) {
        if (out.steps) std::fputs(theory::format_step_json(step).c_str(), stdout);
        std::fputs(theory::format_summary_json(result).c_str(), stdout);
        if (sweep) std::fputs(theory::format_sweep_json(points).c_str(), stdout);
    } else {
        terminal::Pages pages{static_cast<int>(step.chunks.size()), [&](int i) { return terminal::theory_chunk_page(step, i); },
                              "chunk", {}, -1};
        show_pages(theory::format_summary_text(result), pages, out);
        if (sweep) std::printf("\n%s", theory::format_sweep_text(points).c_str());
    }
    write_plots(out, [&](const std::string& dir) {
        std::vector<std::string> paths = plots::plot_theory_step(step, dir);
        if (sweep) {
            std::vector<std::string> more = plots::plot_theory_sweep(points, dir);
            paths.insert(paths.end(), more.begin(), more.end());
        }
        return paths;
    });
    return 0;
}

int run_model(const ModelModeFlags& m) {
    const CheckpointFlags& ckpt = m.ckpt;
    const OutputFlags& out = m.output;
    probe::ProbeOptions o = m.probe;
    std::map<std::string, std::string> task_opts = m.task_opts;
    Model model = load_checkpoint_model(ckpt, "step", m.runtime.device);
    const ModelConfig& cfg = model.config();
    if (m.task_name == "theorem") {
        // The probe is only a probe when the pair sits in an earlier chunk than
        // the query and outside the attention window: take both from the model.
        if (!task_opts.count("chunk")) task_opts["chunk"] = std::to_string(cfg.ttt_chunk);
        if (!task_opts.count("window")) task_opts["window"] = std::to_string(cfg.sliding_window > 0 ? cfg.sliding_window : cfg.ttt_chunk);
    }
    o.task = parse_task_config(m.task_name, task_opts);
    o.seq_len = m.seq_len > 0 ? static_cast<int>(m.seq_len) : 4 * cfg.ttt_chunk;
    {
        // One forward of every sequence at a time, and both targets' logits at every update limit.
        const double T = (o.seq_len + cfg.ttt_chunk - 1) / cfg.ttt_chunk;
        require_memory(forward_bytes(cfg, o.examples, o.seq_len, false) + 16.0 * (T + 2) * o.examples * o.seq_len * cfg.vocab_size,
                       cat("probing ", o.examples, " sequences of ", o.seq_len, " tokens"));
        // Non-finite logits would make every measurement below a confident-looking NaN.
        Batch b = make_batch(o.task, cfg.vocab_size, 1, o.seq_len, o.seed);
        ForwardOptions inference;
        inference.inference = true;
        check_logits(ckpt, &model, model.forward(b.tokens_tensor().to(model.device()), inference), "step");
    }

    probe::ProbeRun run = probe::run_probe(model, o);
    run.summary.checkpoint = ckpt.dir;
    try {
        probe::validate_page_options(run.step, m.page);
    } catch (const Error& e) {
        throw UsageError{std::string("ittt step: ") + e.what(), usage()};
    }
    if (out.json) {
        if (out.steps) std::fputs(probe::format_step_json(run.step).c_str(), stdout);
        std::fputs(probe::format_summary_json(run.summary).c_str(), stdout);
    } else {
        const probe::PageOptions& view = m.page;
        terminal::Pages pages{static_cast<int>(run.step.chunks.size()),
                              [&](int i) {
                                  return terminal::Page{probe::format_chunk_header(run.step, i, view),
                                                        probe::format_chunk_body(run.step, i, view)};
                              },
                              "chunk", {}, -1};
        show_pages(probe::format_summary_text(run.summary), pages, out);
    }
    if (!m.html.empty()) {
        write_file_atomic(m.html, html::format_report(run));
        if (out.json) {
            JsonWriter line(JsonLayout::Compact);
            std::printf("%s\n", line.begin_object().field("type", "html").field("path", m.html).end_object().text().c_str());
        } else {
            std::printf("\nHTML report: %s (open it in a browser; it needs no network)\n", m.html.c_str());
        }
    }
    write_plots(out, [&](const std::string& dir) {
        std::vector<std::string> paths = probe::plot_probe_summary(run.summary, dir);
        std::vector<std::string> more = probe::plot_probe_step(run.step, dir);
        paths.insert(paths.end(), more.begin(), more.end());
        return paths;
    });
    return 0;
}

}  // namespace

int cmd_step(int argc, char** argv) {
    Args a("step", usage(), argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    const bool theory_mode = a.flag("--theory");
    const bool model_mode = a.has("--ckpt");
    if (theory_mode == model_mode) a.error("give exactly one of --theory or --ckpt DIR");
    return theory_mode ? run_theory(read_theory_mode(a)) : run_model(read_model_mode(a));
}

}  // namespace ittt
