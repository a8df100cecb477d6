// lab_plot.h: a lab's figure, drawn with the project's gnuplot helpers (src/driver/plots.h).
//
// Labs that measure something plot it on a full run (not with --check, which stays
// fast and needs no gnuplot): out/labs/<lab>/<name>.png, .svg and .gp (the script with
// its data inlined: `gnuplot <name>.gp` redraws it). A lab that includes this header
// links the driver library and boost (LAB_PLOT_BINS in labs.mk). Built with PLOTS=0, or
// without gnuplot on the PATH, the lab says so and goes on.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "driver/plots.h"
#include "lab_util.h"

namespace lab {

// A series of (x, y) points drawn in gnuplot's `style` (lines, points, linespoints).
inline ittt::plots::Series series(const std::string& label, std::vector<double> x = {}, std::vector<double> y = {},
                                  const std::string& style = "linespoints") {
    ittt::plots::Series s;
    s.label = label, s.x = std::move(x), s.y = std::move(y), s.style = style;
    return s;
}

inline void plot(const Options& o, const ittt::plots::LinePlot& p, const std::string& lab_name, const std::string& name) {
    if (o.check) return;
    try {
        const std::string dir = "out/labs/" + lab_name;
        std::filesystem::create_directories(dir);
        std::string written;
        for (const std::string& path : ittt::plots::line_plot(p, dir + "/" + name))
            if (path.size() > 4 && path.compare(path.size() - 4, 4, ".png") == 0) written = path;
        if (!written.empty()) std::printf("  figure: %s\n", written.c_str());
    } catch (const std::exception& e) {
        std::printf("  (no figure: %s)\n", e.what());
    }
}

}  // namespace lab
