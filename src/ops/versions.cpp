// versions.cpp: the run-time kernel version switch (--kernel gemm=1,attention=2).
#include <map>
#include <sstream>

#include "ops/ops.h"

namespace ittt::ops {

namespace {
// Every op family with a version switch, and its highest version on any device.
// Which versions exist on which device is checked again when the op runs.
const std::map<std::string, int>& known_versions() {
    static const std::map<std::string, int> known = {
        {"adamw", 1},     {"attention", 2}, {"conv1d", 1},    {"cross_entropy", 2}, {"embedding", 2}, {"gemm", 5},
        {"prefix_scan", 1}, {"rmsnorm", 1}, {"rope", 1},      {"swiglu", 1},        {"ttt_apply", 2}, {"ttt_delta", 2},
    };
    return known;
}

std::map<std::string, int>& table() {
    static std::map<std::string, int> versions;
    return versions;
}
}  // namespace

void set_version(const std::string& op, int v) {
    auto known = known_versions().find(op);
    if (known == known_versions().end()) {
        std::string names;
        for (const auto& [name, max] : known_versions()) names += (names.empty() ? "" : ", ") + name;
        fail(cat("kernel versions: unknown op '", op, "' (ops with versions: ", names, ")"));
    }
    ITTT_CHECK(v >= 0 && v <= known->second, "kernel version for ", op, ": expected 0 (best) to ", known->second, ", found ", v);
    table()[op] = v;
}

int version(const std::string& op) {
    auto it = table().find(op);
    return it == table().end() ? 0 : it->second;
}

void set_versions_from_string(const std::string& spec) {
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        size_t eq = item.find('=');
        ITTT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "--kernel: expected op=version (e.g. gemm=1), found '",
                   item, "'");
        std::string value = item.substr(eq + 1);
        ITTT_CHECK(value.find_first_not_of("0123456789") == std::string::npos, "--kernel: version for '", item.substr(0, eq),
                   "' must be a number, found '", value, "'");
        set_version(item.substr(0, eq), std::stoi(value));
    }
}

}  // namespace ittt::ops
