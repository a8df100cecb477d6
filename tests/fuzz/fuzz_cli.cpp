// libFuzzer target: the command-line value parsers (tools/args.h, the task
// options of tasks/tasks.h, the ITTT_FAULT plan). The input is split at '\n'
// into argv words for Args; the whole input also goes through the list and
// integer parsers directly. Every input must be accepted or refused with
// UsageError / ittt::Error; accepted values must satisfy what the parsers
// promise (in range, no empty list item, the list joins back to the input).
#include <cstdint>
#include <string>
#include <vector>

#include "io/fault_injection.h"
#include "runtime/error.h"
#include "tasks/tasks.h"
#include "tools/args.h"

namespace {
const ittt::IntFlag kSteps{"--steps", "N", 200, 0, 1000000000, "steps"};
const ittt::IntFlag kSeed{"--seed", "S", 0, 0, INT64_MAX, "seed"};
const ittt::IntFlag kNeg{"--neg", "N", -5, -1000, -1, "negative"};

void check_args(const std::vector<std::string>& words) {
    std::vector<char*> argv;
    for (const std::string& w : words) argv.push_back(const_cast<char*>(w.c_str()));
    try {
        ittt::Args a("fuzz", "usage", static_cast<int>(argv.size()), argv.data(), 0);
        for (const ittt::IntFlag* f : {&kSteps, &kSeed, &kNeg}) {
            int64_t v = a.integer(*f);
            if (v < f->min || v > f->max) __builtin_trap();
        }
        double x = a.number("--lr", 1.0);
        if (x != x) __builtin_trap();  // NaN must be refused
        for (int32_t id : a.int_list("--tokens", 0, 1000))
            if (id < 0 || id > 1000) __builtin_trap();
        (void)a.str("--name", "");
        (void)a.flag("--json");
        a.finish();
    } catch (const ittt::UsageError& e) {
        if (e.message.empty()) __builtin_trap();
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> words;
    size_t start = 0;
    while (start <= text.size() && words.size() < 64) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        words.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    check_args(words);
    try {
        std::vector<std::string> items = ittt::split_list(text, "fuzz");
        std::string joined;
        for (size_t i = 0; i < items.size(); ++i) {
            if (items[i].empty()) __builtin_trap();
            joined += (i ? "," : "") + items[i];
        }
        if (joined != text) __builtin_trap();
    } catch (const ittt::Error&) {
    }
    try {
        int64_t v = ittt::parse_integer(text, -7, 1 << 20, "fuzz");
        if (v < -7 || v > (1 << 20)) __builtin_trap();
    } catch (const ittt::Error&) {
    }
    for (const char* task : {"mqar", "needle", "induction", "theorem"}) {
        try {
            ittt::TaskConfig t = ittt::parse_task_config(task, ittt::parse_option_list(text));
            (void)t.describe();
        } catch (const ittt::Error&) {
        }
    }
    try {
        (void)ittt::fault::parse_plan(text, "ITTT_FAULT");
    } catch (const ittt::Error&) {
    }
    return 0;
}
