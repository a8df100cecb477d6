#include "tools/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "runtime/error.h"

namespace ittt {

std::string range_text(int64_t min, int64_t max) { return cat("[", min, ", ", max, "]"); }

std::string help_line(const IntFlag& f) {
    std::string left = cat("  ", f.name, " ", f.meta);
    if (left.size() < 27) left.append(27 - left.size(), ' ');
    else left += "  ";
    return cat(left, f.help, " (default ", f.fallback, ", in ", range_text(f.min, f.max), ")\n");
}

std::vector<std::string> split_list(const std::string& s, const std::string& what) {
    std::vector<std::string> items;
    size_t start = 0;
    while (true) {
        size_t comma = s.find(',', start);
        std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        ITTT_CHECK(!item.empty(), what, ": empty item ", s.empty() ? "(the list is empty)" : cat("at position ", items.size() + 1, " in '", excerpt(s), "'"),
                   " (items are separated by single commas, without a trailing comma)");
        items.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return items;
}

int64_t parse_integer(const std::string& s, int64_t min, int64_t max, const std::string& what) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    const bool digits = !s.empty() && s.find_first_not_of("+-0123456789") == std::string::npos;
    if (!digits || end == s.c_str() || *end != '\0') fail(cat(what, " expects an integer in ", range_text(min, max), ", found '", excerpt(s), "'"));
    if (errno == ERANGE || v < min || v > max) fail(cat(what, " must be in ", range_text(min, max), ", found ", s));
    return v;
}

Args::Args(std::string command, std::string usage, int argc, char** argv, int first)
    : command_(std::move(command)), usage_(std::move(usage)) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help_ = true;
            continue;
        }
        if (a.rfind("--", 0) != 0 || a.size() < 3) error("unexpected argument '" + excerpt(a) + "' (flags start with --)");
        size_t eq = a.find('=');
        std::string name = eq == std::string::npos ? a : a.substr(0, eq);
        if (values_.count(name) || switches_.count(name))
            error(excerpt(name) + " is given twice (give each flag once; a repeated flag is refused rather than guessing which one counts)");
        if (eq != std::string::npos) {
            values_[name] = a.substr(eq + 1);
        } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
            values_[name] = argv[++i];
        } else {
            switches_.insert(name);
        }
    }
}

void Args::error(const std::string& message) const { throw UsageError{"ittt " + command_ + ": " + message, usage_}; }

std::string Args::str(const std::string& flag, const std::string& fallback) {
    used_.insert(flag);
    if (switches_.count(flag)) error(flag + " expects a value");
    auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& flag) {
    used_.insert(flag);
    if (switches_.count(flag)) error(flag + " expects a value");
    if (!values_.count(flag)) error("missing required flag " + flag);
    return values_[flag];
}

int64_t Args::integer(const IntFlag& f) { return integer(f.name, f.fallback, f.min, f.max); }

int64_t Args::integer(const std::string& flag, int64_t fallback, int64_t min, int64_t max) {
    if (!has(flag)) {
        used_.insert(flag);
        return fallback;
    }
    std::string s = str(flag, "");
    try {
        return parse_integer(s, min, max, flag);
    } catch (const Error& e) {
        error(e.what());
    }
}

double Args::number(const std::string& flag, double fallback) {
    if (!has(flag)) {
        used_.insert(flag);
        return fallback;
    }
    std::string s = str(flag, "");
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (errno != 0 || end == s.c_str() || *end != '\0' || !std::isfinite(v)) error(flag + " expects a finite number, found '" + excerpt(s) + "'");
    return v;
}

bool Args::flag(const std::string& flag) {
    used_.insert(flag);
    if (values_.count(flag)) error(flag + " takes no value, found '" + excerpt(values_[flag]) + "'");
    return switches_.count(flag) > 0;
}

std::vector<int32_t> Args::int_list(const std::string& flag, int32_t min, int32_t max) {
    if (!has(flag)) {
        used_.insert(flag);
        return {};
    }
    std::string s = str(flag, "");
    std::vector<int32_t> out;
    try {
        for (const std::string& item : split_list(s, flag)) out.push_back(static_cast<int32_t>(parse_integer(item, min, max, flag + " item")));
    } catch (const Error& e) {
        error(cat(e.what(), " (expects comma-separated integers, found '", excerpt(s), "')"));
    }
    return out;
}

void Args::finish() {
    for (const auto& [k, v] : values_)
        if (!used_.count(k)) error("unknown flag " + excerpt(k));
    for (const auto& k : switches_)
        if (!used_.count(k)) error("unknown flag " + excerpt(k));
}

}  // namespace ittt
