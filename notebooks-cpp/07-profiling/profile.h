// Lab 07's timing table, shared by lab.cpp and solution.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../lab_util.h"

// Best-of-3 times, summed by op name (an op called in two layers counts twice).
struct Profile {
    std::map<std::string, double> seconds;
    void time(const std::string& name, const std::function<void()>& fn) { seconds[name] += lab::time_best(fn, 3); }
    double total() const {
        double s = 0;
        for (const auto& kv : seconds) s += kv.second;
        return s;
    }
    void print(double whole, const char* whole_name, const char* rest_note) const {
        std::vector<std::pair<double, std::string>> rows;
        for (const auto& kv : seconds) rows.push_back({kv.second, kv.first});
        std::sort(rows.rbegin(), rows.rend());
        for (const auto& r : rows)
            std::printf("  %-34s %9.3f ms  %5.1f%% of %s\n", r.second.c_str(), r.first * 1e3, 100 * r.first / whole, whole_name);
        std::printf("  %-34s %9.3f ms  %5.1f%% %s\n", "sum of these ops", total() * 1e3, 100 * total() / whole, rest_note);
    }
};

struct Shapes {
    int64_t B, n, N, d, f, V, Hq, Hkv, hd;
};
