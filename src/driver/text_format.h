// text_format.h: the small text helpers the driver's pages share (numbers,
// padding, paragraphs wrapped for an 80-column terminal).
#pragma once
#include <cmath>
#include <cstdio>
#include <string>

namespace ittt::text {

// printf-formatted number; "n/a" for NaN, "inf" / "-inf".
inline std::string fmt(double x, const char* spec = "%.4g") {
    if (std::isnan(x)) return "n/a";
    if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
    char buf[64];
    std::snprintf(buf, sizeof buf, spec, x);
    return buf;
}

// s padded with spaces to `width` (on the left when `right`); never cut.
inline std::string pad(const std::string& s, size_t width, bool right = false) {
    if (s.size() >= width) return s;
    return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

// A paragraph broken at spaces into lines of at most `width` columns, the first
// starting with `first`, the others with `rest` (both counted in the width).
// A word longer than a line stays whole on a line of its own.
inline std::string wrap(const std::string& paragraph, size_t width = 79, const std::string& first = "",
                        const std::string& rest = "  ") {
    std::string out, line = first;
    bool empty = true;  // no word on this line yet
    size_t i = 0;
    while (i < paragraph.size()) {
        while (i < paragraph.size() && paragraph[i] == ' ') ++i;
        size_t end = paragraph.find(' ', i);
        if (end == std::string::npos) end = paragraph.size();
        if (end == i) break;
        const std::string word = paragraph.substr(i, end - i);
        i = end;
        if (!empty && line.size() + 1 + word.size() > width) {
            out += line + "\n";
            line = rest;
            empty = true;
        }
        line += (empty ? "" : " ") + word;
        empty = false;
    }
    if (!empty) out += line + "\n";
    return out;
}

}  // namespace ittt::text
