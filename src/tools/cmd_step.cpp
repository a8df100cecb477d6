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

#include "driver/model_probe.h"
#include "driver/plots.h"
#include "driver/terminal.h"
#include "driver/theory.h"
#include "model/model_io.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace ittt {

namespace {

// Flags the theory engine parses itself (theory::set_option).
const char* const kTheoryFlags[] = {"--seed", "--trials",    "--d",         "--vocab",     "--f",
                                    "--chunk", "--chunks",   "--key-chunk", "--lr",        "--embed",
                                    "--features", "--mlp-input", "--step-trial", "--sweep"};

std::string usage() {
    return std::string(
               "usage: ittt step --theory [theory options] [output options]\n"
               "       ittt step --ckpt DIR [--task theorem|mqar] [model options] [output options]\n"
               "  Steps through a sequence chunk by chunk, watching the fast weights learn, and checks\n"
               "  the induction-head theorem (docs/theory.md). Keys: Enter/n next chunk, p previous, q quit.\n"
               "\n"
               "output options:\n"
               "  --auto            print every chunk without waiting for keys (implied when stdin or stdout\n"
               "                    is not a terminal, and by --json)\n"
               "  --json            JSON lines: one object per chunk, a summary object per target, then the\n"
               "                    sweep (theory) and {\"type\": \"plots\", \"paths\": [...]}\n"
               "  --no-steps        the summary only, no chunk-by-chunk view\n"
               "  --plots DIR       where figures go: PNG + SVG + gnuplot script (default out/step)\n"
               "  --no-plots        write no figures\n"
               "\n"
               "theory mode (--theory): the setting of Theorem 1, many seeded trials\n") +
           theory::options_help() +
           "  (the sweep over d runs only when --sweep is given)\n"
           "\n"
           "model mode (--ckpt DIR): the same measurements at a checkpoint's real logits, for the\n"
           "learned target and for the same weights with only the offset-0 conv tap\n"
           "  --ckpt DIR        checkpoint directory (config.json + model.safetensors), with TTT layers\n"
           "  --task NAME       theorem (default) or mqar; the markers give keys, values and queries\n"
           "  --task-opt K=V,.. task options; theorem's chunk and window default to the model's\n"
           "                    ttt_chunk and sliding_window\n"
           "  --seq-len n       tokens per sequence (default 4 * ttt_chunk)\n"
           "  --seed S          seed of the sequences (default 1)\n"
           "  --examples K      sequences averaged in the summary (default 16)\n"
           "  --step-example i  the sequence shown chunk by chunk (default 0)\n"
           "  --top K           top tokens listed per query (default 5)\n" +
           kRuntimeFlagsUsage;
}

struct Output {
    bool automatic = false, json = false, steps = true;
    std::string plot_dir;  // empty: no plots
};

Output read_output(Args& a) {
    Output o;
    o.automatic = a.flag("--auto");
    o.json = a.flag("--json");
    o.steps = !a.flag("--no-steps");
    bool no_plots = a.flag("--no-plots");
    std::string dir = a.str("--plots", "out/step");
    if (no_plots && a.has("--plots")) a.error("give --plots DIR or --no-plots, not both");
    if (!no_plots) o.plot_dir = dir;
    return o;
}

// The chunk pages: a pager on a terminal, every page otherwise.
void show_pages(const terminal::Pages& pages, const Output& out) {
    if (!out.steps || out.json || pages.count == 0) return;
    if (!out.automatic && terminal::interactive_possible()) {
        std::fflush(stdout);
        terminal::run_pager(pages);
    } else {
        std::fputs(terminal::all_pages(pages).c_str(), stdout);
    }
}

// Figures, with their paths printed. A machine without gnuplot still gets the
// verdicts: the plots are skipped with the reason.
template <class F>
void write_plots(const Output& out, F draw) {
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
        std::string line = "{\"type\":\"plots\",\"dir\":\"" + out.plot_dir + "\",\"paths\":[";
        for (size_t i = 0; i < paths.size(); ++i) line += (i ? ",\"" : "\"") + paths[i] + "\"";
        line += "]";
        if (!problem.empty()) line += ",\"skipped\":true";
        std::printf("%s}\n", line.c_str());
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

int run_theory(Args& a) {
    theory::TheoryOptions o;
    for (const char* flag : kTheoryFlags)
        if (a.has(flag)) theory::set_option(o, flag, a.str(flag, ""));
    const bool sweep = a.has("--sweep");
    Output out = read_output(a);
    a.finish();
    theory::validate_options(o);

    theory::TheoryResult result = theory::run_trials(o);
    theory::StepResult step = theory::run_step(o);
    std::vector<theory::SweepPoint> points;
    if (sweep) points = theory::run_sweep(o);

    if (out.json) {
        if (out.steps) std::fputs(theory::format_step_json(step).c_str(), stdout);
        std::fputs(theory::format_summary_json(result).c_str(), stdout);
        if (sweep) std::fputs(theory::format_sweep_json(points).c_str(), stdout);
    } else {
        std::fputs(theory::format_summary_text(result).c_str(), stdout);
        std::printf("\n");
        terminal::Pages pages{static_cast<int>(step.chunks.size()), [&](int i) { return terminal::theory_chunk_page(step, i); },
                              "chunk"};
        show_pages(pages, out);
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

int run_model(Args& a) {
    Device device = apply_runtime_flags(a);
    const std::string ckpt = a.required("--ckpt");
    const std::string task_name = a.str("--task", "theorem");
    std::map<std::string, std::string> task_opts = parse_option_list(a.str("--task-opt", ""));
    probe::ProbeOptions o;
    const int64_t seq_len = a.integer("--seq-len", 0, 0, 1 << 20);
    o.seed = static_cast<uint64_t>(a.integer("--seed", 1, 0));
    o.examples = static_cast<int>(a.integer("--examples", 16, 1, 1 << 16));
    o.step_example = static_cast<int>(a.integer("--step-example", 0, 0, 1 << 16));
    o.top = static_cast<int>(a.integer("--top", 5, 1, 1000));
    Output out = read_output(a);
    for (const char* flag : kTheoryFlags)
        if (std::string(flag) != "--seed" && a.has(flag))
            a.error(std::string(flag) + " is a theory-mode option (with --theory); the model mode takes the checkpoint's values");
    a.finish();

    Model model = load_model(ckpt, DType::F32, device);
    const ModelConfig& cfg = model.config();
    if (task_name == "theorem") {
        // The probe is only a probe when the pair sits in an earlier chunk than
        // the query and outside the attention window: take both from the model.
        if (!task_opts.count("chunk")) task_opts["chunk"] = std::to_string(cfg.ttt_chunk);
        if (!task_opts.count("window")) task_opts["window"] = std::to_string(cfg.sliding_window > 0 ? cfg.sliding_window : cfg.ttt_chunk);
    }
    o.task = parse_task_config(task_name, task_opts);
    o.seq_len = seq_len > 0 ? static_cast<int>(seq_len) : 4 * cfg.ttt_chunk;
    if (o.step_example >= o.examples) a.error(cat("--step-example ", o.step_example, " must be below --examples ", o.examples));

    probe::ProbeRun run = probe::run_probe(model, o);
    run.summary.checkpoint = ckpt;
    if (out.json) {
        if (out.steps) std::fputs(probe::format_step_json(run.step).c_str(), stdout);
        std::fputs(probe::format_summary_json(run.summary).c_str(), stdout);
    } else {
        std::fputs(probe::format_summary_text(run.summary).c_str(), stdout);
        std::printf("\n");
        terminal::Pages pages{static_cast<int>(run.step.chunks.size()),
                              [&](int i) { return probe::format_chunk_text(run.step, i); }, "chunk"};
        show_pages(pages, out);
    }
    write_plots(out, [&](const std::string& dir) { return probe::plot_probe_step(run.step, dir); });
    return 0;
}

}  // namespace

int cmd_step(int argc, char** argv) {
    Args a("step", usage(), argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    const bool theory_mode = a.flag("--theory");
    const bool model_mode = a.has("--ckpt");
    if (theory_mode == model_mode) a.error("give exactly one of --theory or --ckpt DIR");
    return theory_mode ? run_theory(a) : run_model(a);
}

}  // namespace ittt
