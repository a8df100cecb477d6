#include "tools/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace ittt {

Args::Args(std::string command, std::string usage, int argc, char** argv, int first)
    : command_(std::move(command)), usage_(std::move(usage)) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help_ = true;
            continue;
        }
        if (a.rfind("--", 0) != 0 || a.size() < 3) error("unexpected argument '" + a + "' (flags start with --)");
        size_t eq = a.find('=');
        if (eq != std::string::npos) {
            values_[a.substr(0, eq)] = a.substr(eq + 1);
        } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
            values_[a] = argv[++i];
        } else {
            switches_.insert(a);
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
    if (!values_.count(flag)) error("missing required flag " + flag);
    return values_[flag];
}

int64_t Args::integer(const std::string& flag, int64_t fallback, int64_t min, int64_t max) {
    std::string s = str(flag, "");
    if (s.empty()) return fallback;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0') error(flag + " expects an integer, found '" + s + "'");
    if (v < min || v > max) {
        std::ostringstream o;
        o << flag << " must be in [" << min << ", " << max << "], found " << v;
        error(o.str());
    }
    return v;
}

double Args::number(const std::string& flag, double fallback) {
    std::string s = str(flag, "");
    if (s.empty()) return fallback;
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (errno != 0 || end == s.c_str() || *end != '\0' || !std::isfinite(v)) error(flag + " expects a number, found '" + s + "'");
    return v;
}

bool Args::flag(const std::string& flag) {
    used_.insert(flag);
    if (values_.count(flag)) error(flag + " takes no value, found '" + values_[flag] + "'");
    return switches_.count(flag) > 0;
}

std::vector<int32_t> Args::int_list(const std::string& flag) {
    std::string s = str(flag, "");
    std::vector<int32_t> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        errno = 0;
        long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX)
            error(flag + " expects comma-separated integers, found '" + item + "' in '" + s + "'");
        out.push_back(static_cast<int32_t>(v));
    }
    return out;
}

void Args::finish() {
    for (const auto& [k, v] : values_)
        if (!used_.count(k)) error("unknown flag " + k);
    for (const auto& k : switches_)
        if (!used_.count(k)) error("unknown flag " + k);
}

}  // namespace ittt
