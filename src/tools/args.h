// args.h: the flag parser shared by every `ittt` subcommand.
//
//   const IntFlag kSteps{"--steps", "N", 200, 0, 1000000000, "optimizer steps"};
//   Args a("train", usage, argc, argv, 2);      // usage includes help_line(kSteps)
//   int64_t steps = a.integer(kSteps);
//   std::string task = a.required("--task");
//   a.finish();   // unknown flags and stray words become one-line errors
//
// Flags are "--name value" or "--name=value"; boolean flags take no value.
// Strict by design, because a guess is worse than an error:
//   - a flag given twice is refused (which one would count?);
//   - integers are parsed as 64-bit and must lie in the flag's stated range,
//     which its --help line shows (help_line() and integer() read the same
//     IntFlag, so the two cannot disagree); nothing is truncated to int later;
//   - lists ("1,2,3") refuse empty items, so "1,2," is an error, not [1, 2].
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

// An integer flag: its name, the word shown for its value, default and range.
struct IntFlag {
    const char* name;
    const char* meta;
    int64_t fallback, min, max;
    const char* help;
};
// "  --steps N            optimizer steps (default 200, in [0, 1000000000])\n"
std::string help_line(const IntFlag& f);
// "[0, 1000000000]"
std::string range_text(int64_t min, int64_t max);

// "a,b,c" -> {"a", "b", "c"}; an empty item ("a,,b", "a,", ",a", "") throws
// ittt::Error naming it. The one splitter for --tokens, --task-opt, --kernel, --sweep.
std::vector<std::string> split_list(const std::string& s, const std::string& what);
// "-12" -> -12 within [min, max]; throws ittt::Error naming `what` otherwise
// (not a number, trailing characters, beyond 64 bits, outside the range).
int64_t parse_integer(const std::string& s, int64_t min, int64_t max, const std::string& what);

class Args {
public:
    Args(std::string command, std::string usage, int argc, char** argv, int first);

    bool help() const { return help_; }
    const std::string& usage() const { return usage_; }

    std::string str(const std::string& flag, const std::string& fallback);
    std::string required(const std::string& flag);
    int64_t integer(const IntFlag& f);
    int64_t integer(const std::string& flag, int64_t fallback, int64_t min, int64_t max);
    double number(const std::string& flag, double fallback);
    bool flag(const std::string& flag);          // present or not
    bool has(const std::string& flag) const { return values_.count(flag) > 0 || switches_.count(flag) > 0; }
    std::vector<int32_t> int_list(const std::string& flag, int32_t min, int32_t max);  // "3,1,4"
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
