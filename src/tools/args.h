// args.h: the flag parser shared by every `ittt` subcommand.
//
//   Args a("train", usage, argc, argv, 2);
//   int64_t steps = a.integer("--steps", 200);
//   std::string task = a.required("--task");
//   a.finish();   // unknown flags and stray words become one-line errors
//
// Flags are "--name value" or "--name=value"; boolean flags take no value.
// Every error names the subcommand, the flag and what was expected vs found;
// main() prints it followed by the usage text.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace ittt {

struct UsageError {
    std::string message;  // one line
    std::string usage;    // the subcommand's usage text
};

class Args {
public:
    Args(std::string command, std::string usage, int argc, char** argv, int first);

    bool help() const { return help_; }
    const std::string& usage() const { return usage_; }

    std::string str(const std::string& flag, const std::string& fallback);
    std::string required(const std::string& flag);
    int64_t integer(const std::string& flag, int64_t fallback, int64_t min = INT64_MIN, int64_t max = INT64_MAX);
    double number(const std::string& flag, double fallback);
    bool flag(const std::string& flag);          // present or not
    bool has(const std::string& flag) const { return values_.count(flag) > 0 || switches_.count(flag) > 0; }
    std::vector<int32_t> int_list(const std::string& flag);  // "3,1,4"
    // Throws UsageError for any flag that no accessor asked about.
    void finish();
    [[noreturn]] void error(const std::string& message) const;

private:
    std::string command_, usage_;
    std::map<std::string, std::string> values_;
    std::set<std::string> switches_;  // flags seen without a value
    std::set<std::string> used_;
    bool help_ = false;
};

}  // namespace ittt
