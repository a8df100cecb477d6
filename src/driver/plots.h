// plots.h: figures for the step-through driver, drawn by gnuplot through
// gnuplot-iostream.
//
// Each plot writes <stem>.png (pngcairo, or the plain png terminal when cairo
// is missing), <stem>.svg and <stem>.gp, the gnuplot script with its data
// inlined, so a figure can be re-rendered or restyled without rerunning
// anything: `gnuplot <stem>.gp`. Every function returns the paths it wrote.
//
// Built with PLOTS=0 (ITTT_WITH_GNUPLOT=0) the functions write nothing, return
// an empty list and print one line saying that plots are disabled. Built with
// plots but without a working `gnuplot` on the PATH they throw ittt::Error
// saying so.
//
// The generic figures (lines, histogram, heatmap) take plain numbers and labels,
// so the model-backed mode can draw its own data with them; the plot_theory_*
// functions below build them from the theory mode's results.
//
//   plots::LinePlot p;  p.title = "dl(v*) per chunk";  p.series.push_back({"LM-aligned", xs, ys});
//   for (auto& path : plots::line_plot(p, "out/dl_per_chunk")) std::cout << path << "\n";
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "driver/theory.h"

namespace ittt::plots {

// True when built with gnuplot-iostream.
bool enabled();
// Why no files are written, or "" when plots are enabled and gnuplot runs.
std::string unavailable_reason();
// Throws Error with a clear message when gnuplot cannot be run (checked once).
void require_gnuplot();
// "pngcairo" or "png": what this machine's gnuplot offers.
std::string png_terminal();

struct Series {
    std::string label;
    std::vector<double> x, y;
    std::string style = "linespoints";  // gnuplot "with" clause: lines, points, linespoints, ...
    bool dashed = false;
    std::string color;  // "#rrggbb"; empty: the next colour of a fixed cycle
    bool right_axis = false;  // drawn against the right-hand y axis (LinePlot::y2label)
};

struct LinePlot {
    std::string title, xlabel, ylabel;
    std::string y2label;                // the right-hand axis, for series with right_axis
    double y2min = 0, y2max = 0;        // its range when y2min < y2max (else gnuplot's choice)
    bool log_x = false, log_y = false;  // values <= 0 on a log axis are skipped (gnuplot's missing value)
    std::vector<Series> series;
    std::vector<std::pair<std::string, double>> hlines;  // labelled horizontal reference lines
    std::vector<double> xtics;                            // explicit tick positions (empty: gnuplot's choice)
    int width = 900, height = 560;
};

struct HistogramPlot {
    std::string title, xlabel, ylabel = "count";
    std::vector<std::pair<std::string, std::vector<double>>> samples;  // one histogram per (label, values), shared bins
    int bins = 40;
    std::vector<std::pair<std::string, double>> markers;  // labelled vertical lines (e.g. dl(v*))
    int width = 900, height = 560;
};

// A rows x cols matrix drawn as an image with a diverging palette centred on 0.
// Row 0 is drawn at the top. Empty labels are left out (thin the ticks that way).
struct HeatmapPlot {
    std::string title, xlabel, ylabel, cblabel;
    int rows = 0, cols = 0;
    std::vector<double> values;  // row-major rows x cols
    std::vector<std::string> row_labels, col_labels;
    int width = 900, height = 0;  // height 0: sized from the number of rows
};

// Bin edges shared by all samples: bins+1 edges over [min, max] of all values
// (a unit-wide range around the value when they are all equal).
std::vector<double> histogram_edges(const HistogramPlot& p);
// Counts of `values` in the bins of `edges` (the last bin includes its right edge).
std::vector<int> histogram_counts(const std::vector<double>& values, const std::vector<double>& edges);

// The gnuplot scripts, without terminal or output: what the .gp files hold
// after their header. Exposed so tests can check them without gnuplot.
std::string line_plot_script(const LinePlot& p);
std::string histogram_script(const HistogramPlot& p);
std::string heatmap_script(const HeatmapPlot& p);

// stem: path without extension, e.g. "out/theory_chunks". The folder must exist.
std::vector<std::string> line_plot(const LinePlot& p, const std::string& stem);
std::vector<std::string> histogram_plot(const HistogramPlot& p, const std::string& stem);
std::vector<std::string> heatmap_plot(const HeatmapPlot& p, const std::string& stem);

// ---- the theory mode's figures (files named theory_* inside dir) ----

// (a) dl(v*) at the query after each chunk, both targets (with max |dl(w)|, w != v*, dashed).
std::vector<std::string> plot_theory_chunks(const theory::StepResult& s, const std::string& dir);
// (b) the distribution of dl over the vocabulary at the query, both targets, v* and k* marked.
std::vector<std::string> plot_theory_histogram(const theory::StepResult& s, const std::string& dir);
// (c) per-position contributions lr (e_w^T V_t)(Z_t^T z_q): positions x (v*, k*, top tokens), one file per target.
std::vector<std::string> plot_theory_heatmaps(const theory::StepResult& s, const std::string& dir, int top = 10);
// (d) measured values and bounds against d (log-log), in units of lr * c_align.
std::vector<std::string> plot_theory_sweep(const std::vector<theory::SweepPoint>& sweep, const std::string& dir);
// (a) + (b) + (c).
std::vector<std::string> plot_theory_step(const theory::StepResult& s, const std::string& dir);

}  // namespace ittt::plots
