// plots.cpp: gnuplot scripts for the driver's figures, rendered through
// gnuplot-iostream. See plots.h.
#include "driver/plots.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "runtime/error.h"

#if ITTT_WITH_GNUPLOT
#include <gnuplot-iostream.h>
#endif

namespace ittt::plots {

// ---------------------------------------------------------------- availability

bool enabled() { return ITTT_WITH_GNUPLOT != 0; }

namespace {

const char* kDisabled = "plots are disabled: this build has no gnuplot-iostream (PLOTS=0); no figures written";

// Runs a command and returns its stdout (and whatever it redirects there);
// ok is false when it could not be started or exited non-zero.
std::string capture(const std::string& command, bool& ok) {
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) {
        ok = false;
        return out;
    }
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe)) out += buf;
    ok = pclose(pipe) == 0;
    return out;
}

// The reason gnuplot cannot be used, "" when it can. Asked once per process.
const std::string& gnuplot_problem() {
    static const std::string problem = [] {
        bool ok = false;
        std::string version = capture("gnuplot --version 2>/dev/null", ok);
        if (ok && version.rfind("gnuplot", 0) == 0) return std::string();
        return std::string("plots need gnuplot, but `gnuplot --version` failed: install it (apt-get install gnuplot-nox) ") +
               "or build with PLOTS=0";
    }();
    return problem;
}

// Single-quoted gnuplot string: a quote inside is doubled.
std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

// gnuplot reads "NaN" as a missing point (set datafile missing 'NaN').
std::string number(double x) {
    if (!std::isfinite(x)) return "NaN";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", x);
    return buf;
}

std::string datablock(const std::string& name, const std::vector<std::vector<double>>& columns) {
    std::string out = "$" + name + " << EOD\n";
    size_t n = columns.empty() ? 0 : columns[0].size();
    for (size_t i = 0; i < n; ++i) {
        for (size_t c = 0; c < columns.size(); ++c) out += (c ? " " : "") + number(columns[c][i]);
        out += "\n";
    }
    return out + "EOD\n";
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"};

std::string common_header(const std::string& title) {
    return "set title " + quote(title) + "\nset datafile missing 'NaN'\nset grid lc rgb '#dddddd'\n";
}

#if ITTT_WITH_GNUPLOT
// Single-quoted shell word.
std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Renders `body` (a script that ends with a plot command) to PNG and SVG and
// keeps the whole script as <stem>.gp. Returns the three paths.
std::vector<std::string> render(const std::string& body, const std::string& stem, int width, int height) {
    require_gnuplot();
    const std::string png = stem + ".png", svg = stem + ".svg", gp = stem + ".gp", log = stem + ".log";
    std::ostringstream script;
    script << "# " << gp << ": written by ittt; run `gnuplot " << gp << "` to redraw " << png << " and " << svg << "\n";
    script << "set terminal " << png_terminal() << " noenhanced size " << width << "," << height
           << (png_terminal() == "pngcairo" ? " font 'sans,10'" : "") << "\n";
    script << "set output " << quote(png) << "\n" << body;
    script << "set terminal svg noenhanced size " << width << "," << height << " font 'sans,10' background rgb 'white'\n";
    script << "set output " << quote(svg) << "\nreplot\nunset output\n";
    {
        std::ofstream out(gp);
        ITTT_CHECK(out.good(), "plots: cannot write ", gp, " (does its folder exist?)");
        out << script.str();
    }
    // Stale figures must not pass for new ones in the check below.
    std::remove(png.c_str());
    std::remove(svg.c_str());
    {
        // A gnuplot that dies early would turn our next write into SIGPIPE.
        auto previous = std::signal(SIGPIPE, SIG_IGN);
        {
            Gnuplot gnuplot("gnuplot 2>" + shell_quote(log));
            gnuplot << script.str();
            gnuplot.flush();
        }  // the destructor waits for gnuplot to finish
        std::signal(SIGPIPE, previous);
    }
    auto nonempty = [](const std::string& path) {
        std::ifstream f(path, std::ios::binary | std::ios::ate);
        return f.good() && f.tellg() > 0;
    };
    if (!nonempty(png) || !nonempty(svg)) {
        std::ifstream errors(log);
        std::string text((std::istreambuf_iterator<char>(errors)), std::istreambuf_iterator<char>());
        if (text.size() > 600) text = text.substr(0, 600) + " ...";
        fail(cat("plots: gnuplot did not write ", nonempty(png) ? svg : png, " (script ", gp, "): ",
                 text.empty() ? "no message" : text));
    }
    std::remove(log.c_str());
    return {png, svg, gp};
}
#else
std::vector<std::string> render(const std::string&, const std::string&, int, int) {
    static bool said = false;
    if (!said) std::fprintf(stderr, "%s\n", kDisabled);
    said = true;
    return {};
}
#endif

}  // namespace

std::string unavailable_reason() {
    if (!enabled()) return kDisabled;
    return gnuplot_problem();
}

void require_gnuplot() {
    ITTT_CHECK(enabled(), kDisabled);
    ITTT_CHECK(gnuplot_problem().empty(), gnuplot_problem());
}

std::string png_terminal() {
    static const std::string terminal = [] {
        if (!enabled() || !gnuplot_problem().empty()) return std::string("png");
        bool ok = false;
        // gnuplot prints nothing when the terminal exists and an error when it does not.
        std::string out = capture("gnuplot -e \"set terminal pngcairo\" 2>&1", ok);
        return std::string(ok && out.empty() ? "pngcairo" : "png");
    }();
    return terminal;
}

// ---------------------------------------------------------------- histogram binning

std::vector<double> histogram_edges(const HistogramPlot& p) {
    ITTT_CHECK(p.bins >= 1, "histogram_edges: bins must be at least 1, found ", p.bins);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : p.samples)
        for (double v : s.second)
            if (std::isfinite(v)) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
    if (!(lo <= hi)) lo = hi = 0;  // no finite values
    if (lo == hi) {
        lo -= 0.5;
        hi += 0.5;
    }
    std::vector<double> edges(static_cast<size_t>(p.bins) + 1);
    for (int i = 0; i <= p.bins; ++i) edges[static_cast<size_t>(i)] = lo + (hi - lo) * i / p.bins;
    edges.back() = hi;  // exact, so the maximum lands in the last bin
    return edges;
}

std::vector<int> histogram_counts(const std::vector<double>& values, const std::vector<double>& edges) {
    ITTT_CHECK(edges.size() >= 2, "histogram_counts: expected at least 2 edges, found ", edges.size());
    std::vector<int> counts(edges.size() - 1, 0);
    for (double v : values) {
        if (!(v >= edges.front() && v <= edges.back())) continue;
        size_t bin = static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin());
        bin = std::min(bin == 0 ? 0 : bin - 1, counts.size() - 1);
        ++counts[bin];
    }
    return counts;
}

// ---------------------------------------------------------------- scripts

std::string line_plot_script(const LinePlot& p) {
    std::ostringstream s;
    s << common_header(p.title);
    s << "set xlabel " << quote(p.xlabel) << "\nset ylabel " << quote(p.ylabel) << "\n";
    s << "set key below\n";
    if (p.log_x) s << "set logscale x\n";
    if (p.log_y) s << "set logscale y\n";
    const bool y2 = std::any_of(p.series.begin(), p.series.end(), [](const Series& sr) { return sr.right_axis; });
    if (y2) {
        s << "set ytics nomirror\nset y2tics\nset y2label " << quote(p.y2label) << "\n";
        if (p.y2min < p.y2max) s << "set y2range [" << number(p.y2min) << ":" << number(p.y2max) << "]\n";
    }
    if (!p.xtics.empty()) {
        s << "set xtics (";
        for (size_t i = 0; i < p.xtics.size(); ++i) s << (i ? ", " : "") << number(p.xtics[i]);
        s << ")\n";
    }
    std::vector<std::string> items;
    for (size_t i = 0; i < p.series.size(); ++i) {
        const Series& sr = p.series[i];
        ITTT_CHECK(sr.x.size() == sr.y.size(), "line_plot: series '", sr.label, "' has ", sr.x.size(), " x values and ",
                   sr.y.size(), " y values");
        std::vector<double> x = sr.x, y = sr.y;
        for (size_t k = 0; k < x.size(); ++k) {
            if (p.log_x && !(x[k] > 0)) x[k] = std::numeric_limits<double>::quiet_NaN();
            if (p.log_y && !(y[k] > 0)) y[k] = std::numeric_limits<double>::quiet_NaN();
        }
        std::string name = "s" + std::to_string(i);
        s << datablock(name, {x, y});
        std::string color = sr.color.empty() ? kColors[i % (sizeof kColors / sizeof kColors[0])] : sr.color;
        items.push_back(cat("$", name, " using 1:2", sr.right_axis ? " axes x1y2" : "", " with ", sr.style,
                            " lw 2 pt 7 ps 0.8 lc rgb '", color, "'", sr.dashed ? " dt 2" : "", " title ", quote(sr.label)));
    }
    for (const auto& h : p.hlines) {
        if (p.log_y && !(h.second > 0)) continue;
        items.push_back(cat(number(h.second), " with lines lw 1.5 dt 3 lc rgb '#555555' title ", quote(h.first)));
    }
    ITTT_CHECK(!items.empty(), "line_plot '", p.title, "': nothing to plot (no series, no reference lines)");
    s << "plot ";
    for (size_t i = 0; i < items.size(); ++i) s << (i ? ", \\\n     " : "") << items[i];
    s << "\n";
    return s.str();
}

std::string histogram_script(const HistogramPlot& p) {
    ITTT_CHECK(!p.samples.empty(), "histogram_plot '", p.title, "': no samples to draw");
    std::vector<double> edges = histogram_edges(p);
    std::vector<double> centers(edges.size() - 1);
    for (size_t i = 0; i + 1 < edges.size(); ++i) centers[i] = 0.5 * (edges[i] + edges[i + 1]);
    std::ostringstream s;
    s << common_header(p.title);
    s << "set xlabel " << quote(p.xlabel) << "\nset ylabel " << quote(p.ylabel) << "\n";
    // A little room left and right, so that a marker on the extreme value stays visible.
    s << "set key below\nset yrange [0:*]\nset offsets graph 0.03, graph 0.03, 0, 0\n";
    std::vector<std::string> items;
    int highest = 1;
    for (size_t i = 0; i < p.samples.size(); ++i) {
        std::vector<int> counts = histogram_counts(p.samples[i].second, edges);
        highest = std::max(highest, *std::max_element(counts.begin(), counts.end()));
        std::string name = "h" + std::to_string(i);
        s << datablock(name, {centers, std::vector<double>(counts.begin(), counts.end())});
        items.push_back(cat("$", name, " using 1:2 with histeps lw 2 lc rgb '", kColors[i % 8], "' title ",
                            quote(p.samples[i].first)));
    }
    // Markers are vertical segments drawn as data, so that they get key entries
    // instead of labels that collide when two markers sit close together.
    for (size_t m = 0; m < p.markers.size(); ++m) {
        const auto& mk = p.markers[m];
        if (!std::isfinite(mk.second)) continue;
        std::string name = "m" + std::to_string(m);
        s << datablock(name, {{mk.second, mk.second}, {0.0, highest * 1.05}});
        items.push_back(cat("$", name, " using 1:2 with lines dt 2 lw 2 lc rgb '", kColors[(p.samples.size() + m) % 8],
                            "' title ", quote(mk.first)));
    }
    s << "plot ";
    for (size_t i = 0; i < items.size(); ++i) s << (i ? ", \\\n     " : "") << items[i];
    s << "\n";
    return s.str();
}

static int heatmap_height(const HeatmapPlot& p) { return p.height > 0 ? p.height : std::clamp(160 + 14 * p.rows, 420, 2400); }

std::string heatmap_script(const HeatmapPlot& p) {
    ITTT_CHECK(p.rows >= 1 && p.cols >= 1 && static_cast<int64_t>(p.values.size()) == static_cast<int64_t>(p.rows) * p.cols,
               "heatmap_plot '", p.title, "': expected ", p.rows, " x ", p.cols, " values, found ", p.values.size());
    ITTT_CHECK(p.row_labels.empty() || static_cast<int>(p.row_labels.size()) == p.rows, "heatmap_plot: ",
               p.row_labels.size(), " row labels for ", p.rows, " rows");
    ITTT_CHECK(p.col_labels.empty() || static_cast<int>(p.col_labels.size()) == p.cols, "heatmap_plot: ",
               p.col_labels.size(), " column labels for ", p.cols, " columns");
    double m = 0;
    for (double v : p.values)
        if (std::isfinite(v)) m = std::max(m, std::fabs(v));
    if (m == 0) m = 1;
    std::ostringstream s;
    s << common_header(p.title);
    s << "set xlabel " << quote(p.xlabel) << "\nset ylabel " << quote(p.ylabel) << "\nset cblabel " << quote(p.cblabel) << "\n";
    s << "unset grid\nset tics scale 0\nset palette defined (-1 '#2166ac', 0 '#f7f7f7', 1 '#b2182b')\n";
    s << "set cbrange [" << number(-m) << ":" << number(m) << "]\n";
    // Row 0 at the top, like a table.
    s << "set xrange [-0.5:" << p.cols - 0.5 << "]\nset yrange [" << p.rows - 0.5 << ":-0.5]\n";
    auto tics = [&](const char* axis, const std::vector<std::string>& labels) {
        std::string list;
        for (size_t i = 0; i < labels.size(); ++i)
            if (!labels[i].empty()) list += (list.empty() ? "" : ", ") + quote(labels[i]) + " " + std::to_string(i);
        if (!labels.empty()) s << "set " << axis << " (" << list << ")\n";
    };
    if (!p.col_labels.empty()) s << "set xtics rotate by 45 right\n";
    tics("xtics", p.col_labels);
    tics("ytics", p.row_labels);
    s << "$m << EOD\n";
    for (int r = 0; r < p.rows; ++r) {
        for (int c = 0; c < p.cols; ++c) s << (c ? " " : "") << number(p.values[static_cast<size_t>(r) * p.cols + c]);
        s << "\n";
    }
    s << "EOD\nplot $m matrix with image notitle\n";
    return s.str();
}

std::vector<std::string> line_plot(const LinePlot& p, const std::string& stem) {
    return render(line_plot_script(p), stem, p.width, p.height);
}
std::vector<std::string> histogram_plot(const HistogramPlot& p, const std::string& stem) {
    return render(histogram_script(p), stem, p.width, p.height);
}
std::vector<std::string> heatmap_plot(const HeatmapPlot& p, const std::string& stem) {
    return render(heatmap_script(p), stem, p.width, heatmap_height(p));
}

// ---------------------------------------------------------------- theory figures

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
    if (dir.empty()) return name;
    return dir.back() == '/' ? dir + name : dir + "/" + name;
}

void append(std::vector<std::string>& to, const std::vector<std::string>& from) { to.insert(to.end(), from.begin(), from.end()); }

std::string trial_caption(const theory::StepResult& s) {
    return cat("trial ", s.trial, ": k*=", s.sequence.key, " at t*=", s.sequence.key_pos, ", v*=", s.sequence.value,
               ", query at q=", s.sequence.query_pos);
}

}  // namespace

std::vector<std::string> plot_theory_chunks(const theory::StepResult& s, const std::string& dir) {
    LinePlot p;
    p.title = "dl(v*) at the query as chunk updates are applied (" + trial_caption(s) + ")";
    // x as in the model mode's figure: k = the updates of chunks 0..k-1 applied, 0 = none.
    p.xlabel = "chunk updates applied: 0 = none, k = the updates of chunks 0..k-1";
    p.ylabel = "logit change dl(v*) against no update";
    std::vector<double> x = {0.0};
    for (const auto& c : s.chunks) x.push_back(c.chunk + 1);
    p.xtics = x;
    for (int ti = 0; ti < 2; ++ti) {
        std::vector<double> correct = {0.0}, other = {0.0};
        for (const auto& c : s.chunks) {
            correct.push_back(c.view[ti].dlogit_correct);
            other.push_back(c.view[ti].dlogit_other_maxabs);
        }
        std::string name = theory::target_title(theory::kTargets[ti]);
        std::string color = kColors[ti];  // each target's two curves share a colour
        p.series.push_back({name + ": dl(v*)", x, correct, "linespoints", false, color});
        p.series.push_back({name + ": max |dl(w)|, w != v*", x, other, "linespoints", true, color});
    }
    p.hlines.push_back({"0", 0.0});
    return line_plot(p, join_path(dir, "theory_chunks"));
}

std::vector<std::string> plot_theory_histogram(const theory::StepResult& s, const std::string& dir) {
    HistogramPlot p;
    p.title = "dl over the vocabulary at the query (" + trial_caption(s) + ")";
    p.xlabel = "logit change dl(w)";
    p.ylabel = "tokens";
    for (int ti = 0; ti < 2; ++ti) p.samples.push_back({theory::target_title(theory::kTargets[ti]), s.final_dlogit[ti]});
    const auto v = static_cast<size_t>(s.sequence.value), k = static_cast<size_t>(s.sequence.key);
    p.markers.push_back({"LM-aligned dl(v*)", s.final_dlogit[0][v]});
    p.markers.push_back({"reconstruction dl(v*)", s.final_dlogit[1][v]});
    p.markers.push_back({"reconstruction dl(k*)", s.final_dlogit[1][k]});
    return histogram_plot(p, join_path(dir, "theory_histogram"));
}

std::vector<std::string> plot_theory_heatmaps(const theory::StepResult& s, const std::string& dir, int top) {
    ITTT_CHECK(top >= 2, "plot_theory_heatmaps: top must be at least 2 (v* and k*), found ", top);
    const int V = s.options.vocab, prior = s.contributions[0].rows;
    const int v = s.sequence.value, k = s.sequence.key;
    // Columns: v*, k*, then the tokens that moved most under either target.
    std::vector<int> columns = {v, k};
    std::vector<int> rest;
    for (int w = 0; w < V; ++w)
        if (w != v && w != k) rest.push_back(w);
    auto moved = [&](int w) {
        return std::max(std::fabs(s.final_dlogit[0][static_cast<size_t>(w)]), std::fabs(s.final_dlogit[1][static_cast<size_t>(w)]));
    };
    std::stable_sort(rest.begin(), rest.end(), [&](int a, int b) { return moved(a) > moved(b); });
    for (int w : rest)
        if (static_cast<int>(columns.size()) < std::min(top, V)) columns.push_back(w);

    std::vector<std::string> col_labels;
    for (int w : columns) col_labels.push_back(w == v ? cat("v*=", w) : w == k ? cat("k*=", w) : std::to_string(w));
    std::vector<std::string> row_labels(static_cast<size_t>(prior));
    const int key_pos = s.sequence.key_pos, C = s.options.chunk;
    // Every row is labelled in short contexts. In long ones, about 16 chunk
    // starts are, kept clear of the pair's labels so the text does not collide.
    const bool every_row = prior <= 48;
    const int chunk_step = std::max(1, (prior / C + 15) / 16), clearance = every_row ? 0 : prior / 60;
    for (int t = 0; t < prior; ++t) {
        if (t == key_pos) row_labels[static_cast<size_t>(t)] = cat("t*=", t, " (k*)");
        else if (t == key_pos + 1) row_labels[static_cast<size_t>(t)] = every_row ? cat(t, " (v*)") : "";
        else if (t % C == 0 && (t / C) % chunk_step == 0 && std::abs(t - key_pos) > clearance)
            row_labels[static_cast<size_t>(t)] = cat(t, " [chunk ", t / C, "]");
        else if (every_row) row_labels[static_cast<size_t>(t)] = std::to_string(t);
    }
    std::vector<std::string> paths;
    for (int ti = 0; ti < 2; ++ti) {
        HeatmapPlot p;
        theory::Target target = theory::kTargets[ti];
        p.title = cat(theory::target_title(target), ": each prior position's part of dl(w) at the query (", trial_caption(s), ")");
        p.xlabel = "token w";
        p.ylabel = "position t";
        p.cblabel = "eta (e_w.V_t)(Z_t.z_q)";
        p.rows = prior;
        p.cols = static_cast<int>(columns.size());
        p.row_labels = row_labels;
        p.col_labels = col_labels;
        for (int t = 0; t < prior; ++t)
            for (int w : columns) p.values.push_back(s.contributions[ti].at(t, w));
        append(paths, heatmap_plot(p, join_path(dir, cat("theory_heatmap_", theory::target_name(target)))));
    }
    return paths;
}

std::vector<std::string> plot_theory_sweep(const std::vector<theory::SweepPoint>& sweep, const std::string& dir) {
    ITTT_CHECK(!sweep.empty(), "plot_theory_sweep: the sweep has no points");
    LinePlot p;
    const theory::TheoryOptions& o = sweep.front().result.options;
    p.title = cat("Theorem 1 against d: vocab ", o.vocab, ", ", theory::feature_kind_name(o.features), " features, ",
                  theory::embedding_kind_name(o.embed), " embeddings, ", o.trials, " trials");
    p.xlabel = "d";
    p.ylabel = "value / (eta * c_align)";
    p.log_x = p.log_y = true;
    std::vector<double> d, lm_correct, lower, lm_other, eps, rc_correct, align;
    for (const auto& pt : sweep) {
        const theory::TheoryResult& r = pt.result;
        double unit = r.options.lr * r.c_align;
        d.push_back(pt.d);
        lm_correct.push_back(r.target(theory::Target::LmAligned).dlogit_correct_mean / unit);
        lower.push_back(r.bound_lower / unit);
        lm_other.push_back(r.target(theory::Target::LmAligned).dlogit_other_maxabs / unit);
        eps.push_back(r.bound_cross / unit);
        rc_correct.push_back(std::fabs(r.target(theory::Target::Reconstruction).dlogit_correct_mean) / unit);
        align.push_back(r.c_align_other_model / r.c_align);
    }
    p.xtics = d;
    // A measured value and its bound share a colour: solid measured, dashed bound.
    p.series = {
        {"LM-aligned E[dl(v*)]", d, lm_correct, "linespoints", false, kColors[0]},
        {"its lower bound c_norm^2", d, lower, "linespoints", true, kColors[0]},
        {"LM-aligned max |E[dl(w)]|, w != v*", d, lm_other, "linespoints", false, kColors[2]},
        {"upper bound eps (LM others, reconstruction v*)", d, eps, "linespoints", true, kColors[2]},
        {"reconstruction |E[dl(v*)]|", d, rc_correct, "linespoints", false, kColors[1]},
        {"model's mean Z_a.Z_b / c_align (assumed 0)", d, align, "lines", true, kColors[7]},
    };
    return line_plot(p, join_path(dir, "theory_sweep"));
}

std::vector<std::string> plot_theory_step(const theory::StepResult& s, const std::string& dir) {
    std::vector<std::string> paths;
    append(paths, plot_theory_chunks(s, dir));
    append(paths, plot_theory_histogram(s, dir));
    append(paths, plot_theory_heatmaps(s, dir));
    return paths;
}

}  // namespace ittt::plots
