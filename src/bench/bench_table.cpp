// bench_table.cpp: the table and number formatting of bench.h, shared by build/ittt_bench
// and build/ittt_cp_bench.
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "bench/bench.h"

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
