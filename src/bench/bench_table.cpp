// bench_table.cpp: the table and number formatting of bench.h, shared by build/ittt_bench
// and build/ittt_cp_bench.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench/bench.h"
#include "runtime/error.h"

namespace ittt::bench {

std::string fmt(const char* format, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, value);
    return buf;
}

Stats stats(std::vector<double> x) {
    Stats s;
    s.count = x.size();
    if (x.empty()) return s;
    std::sort(x.begin(), x.end());
    const size_t m = x.size() / 2;
    s.median = x.size() % 2 ? x[m] : 0.5 * (x[m - 1] + x[m]);
    s.min = x.front();
    return s;
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    if (!(in >> a >> b >> c)) return "n/a";
    return a + " " + b + " " + c;
}

namespace {

// A text field of the CSV: commas, quotes and line breaks become ';', so that a line splits on
// ',' alone (docs/profiling.md, "The CSV"); an empty field is written as "-".
std::string csv_text(const std::string& s) {
    std::string out = s.empty() ? std::string("-") : s;
    for (char& c : out)
        if (c == ',' || c == '"' || c == '\n' || c == '\r') c = ';';
    return out;
}

// A number of the CSV: %.6g, or an empty field where there is none (NaN, or not positive when
// `positive` says a zero means "not measured").
std::string csv_number(double x, bool positive) {
    if (std::isnan(x) || (positive && !(x > 0))) return "";
    return fmt("%.6g", x);
}

}  // namespace

namespace {
int g_failed = 0;
}

void guarded(const std::string& what, const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        ++g_failed;
        std::printf("%s: failed: %s\n", what.c_str(), e.what());
        std::fflush(stdout);
    }
}

int failed_count() { return g_failed; }

std::string csv_header() {
    return "benchmark,op,variant,version,name,kernels,shape,device,ms,calls,rate,unit,"
           "comparator,comparator_ms,comparator_rate,fraction,max_rel_diff";
}

std::string csv_line(const Measurement& m) {
    const bool compared = m.comparator_seconds > 0;
    const std::vector<std::string> fields = {
        csv_text(m.benchmark), csv_text(m.op), csv_text(m.variant), std::to_string(m.version), csv_text(m.name),
        csv_text(m.kernels), csv_text(m.shape), csv_text(m.device), csv_number(m.seconds * 1e3, true), std::to_string(m.calls),
        csv_number(m.rate(), false), csv_text(m.unit), csv_text(m.comparator),
        compared ? csv_number(m.comparator_seconds * 1e3, true) : "", compared ? csv_number(m.comparator_rate(), false) : "",
        compared && m.comparator_rate() > 0 ? csv_number(m.rate() / m.comparator_rate(), false) : "",
        csv_number(m.max_rel_diff, false)};
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + fields[i];
    return line;
}

void Results::add(const Measurement& m) {
    rows_.push_back(m);
    if (ctx_.csv.empty()) return;
    std::ifstream existing(ctx_.csv);
    const bool fresh = !existing || existing.peek() == std::ifstream::traits_type::eof();
    existing.close();
    std::ofstream out(ctx_.csv, std::ios::app);
    ITTT_CHECK(out.good(), "--csv ", ctx_.csv, ": cannot open for appending (", std::strerror(errno), ")");
    if (fresh) out << csv_header() << "\n";
    out << csv_line(m) << "\n";
    out.flush();
    ITTT_CHECK(out.good(), "--csv ", ctx_.csv, ": write failed (", std::strerror(errno), ")");
}

void Results::report(const std::string& title) const {
    Table t({"op", "variant", "version", "shape", "ms", "rate", "comparator", "its rate", "fraction", "max rel diff"});
    for (const Measurement& m : rows_) {
        const bool compared = m.comparator_seconds > 0;
        t.row({m.op, m.variant, cat(m.version, " ", m.name), m.shape, fmt("%.3f", m.seconds * 1e3), fmt("%.1f ", m.rate()) + m.unit,
               m.comparator, compared ? fmt("%.1f ", m.comparator_rate()) + m.unit : "-",
               compared ? fmt("%.1f%%", 100.0 * m.rate() / m.comparator_rate()) : "-",
               std::isnan(m.max_rel_diff) ? "-" : fmt("%.1e", m.max_rel_diff)});
    }
    t.print(title);
}

void Table::print(const std::string& title) const {
    std::vector<size_t> width;
    for (const auto& r : rows_)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    std::printf("\n%s\n", title.c_str());
    for (size_t k = 0; k < rows_.size(); ++k) {
        std::printf("|");
        for (size_t i = 0; i < rows_[k].size(); ++i) std::printf(" %-*s |", static_cast<int>(width[i]), rows_[k][i].c_str());
        std::printf("\n");
        if (k == 0) {
            std::printf("|");
            for (size_t w : width) std::printf("%s|", std::string(w + 2, '-').c_str());
            std::printf("\n");
        }
    }
    std::fflush(stdout);
}

}  // namespace ittt::bench
