#include "io/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <vector>

#include "runtime/error.h"

namespace ittt::fault {

namespace {

struct State {
    std::mutex mu;
    bool loaded = false;  // ITTT_FAULT read (or a plan set by a test)
    Plan plan;
    int64_t total = 0;
    int64_t per_op[6] = {0, 0, 0, 0, 0, 0};
};

State& state() {
    static State s;
    return s;
}

const struct {
    const char* name;
    Op op;
} kOps[] = {{"mkdir", Op::Mkdir}, {"create", Op::Create}, {"write", Op::Write},
            {"fsync", Op::Fsync}, {"rename", Op::Rename}, {"remove", Op::Remove}};

const struct {
    const char* name;
    int error;
} kErrors[] = {{"enospc", ENOSPC}, {"eio", EIO}, {"erofs", EROFS}, {"eacces", EACCES}};

}  // namespace

const char* op_name(Op op) {
    for (const auto& o : kOps)
        if (o.op == op) return o.name;
    return "?";
}

Plan parse_plan(const std::string& spec, const std::string& source) {
    Plan p;
    auto bad = [&](const std::string& why) {
        fail(cat(source, "='", spec, "': ", why,
                 " (expected trace and/or KIND:N:EFFECT, e.g. write:3:enospc; kinds any, mkdir, create, write, fsync, "
                 "rename, remove; effects enospc, eio, erofs, eacces, kill, term, int)"));
    };
    std::stringstream items(spec);
    std::string item;
    bool have_rule = false;
    while (std::getline(items, item, ',')) {
        if (item == "trace") {
            p.trace = true;
            continue;
        }
        std::vector<std::string> f;
        std::stringstream parts(item);
        for (std::string x; std::getline(parts, x, ':');) f.push_back(x);
        if (f.size() != 3) bad("'" + item + "' is not KIND:N:EFFECT");
        if (have_rule) bad("only one KIND:N:EFFECT rule is allowed");
        have_rule = true;
        if (f[0] == "any") {
            p.any = true;
        } else {
            bool found = false;
            for (const auto& o : kOps)
                if (f[0] == o.name) p.op = o.op, p.any = false, found = true;
            if (!found) bad("unknown kind '" + f[0] + "'");
        }
        char* end = nullptr;
        errno = 0;
        long long n = std::strtoll(f[1].c_str(), &end, 10);
        if (f[1].empty() || *end != '\0' || errno != 0 || n < 1) bad("N must be an integer >= 1, found '" + f[1] + "'");
        p.n = n;
        if (f[2] == "kill") {
            p.effect = Effect::Kill;
        } else if (f[2] == "term" || f[2] == "int") {
            p.effect = Effect::Signal;
            p.signal = f[2] == "term" ? SIGTERM : SIGINT;
        } else {
            bool found = false;
            for (const auto& e : kErrors)
                if (f[2] == e.name) p.effect = Effect::Errno, p.error = e.error, found = true;
            if (!found) bad("unknown effect '" + f[2] + "'");
        }
    }
    if (!p.trace && !have_rule) bad("empty plan");
    return p;
}

void set_plan(const Plan& plan) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.loaded = true;
    s.plan = plan;
    s.total = 0;
    for (int64_t& c : s.per_op) c = 0;
}

void clear() { set_plan(Plan{}); }

namespace {
void load_locked(State& s) {
    if (s.loaded) return;
    s.loaded = true;
    if (const char* env = std::getenv("ITTT_FAULT"); env && *env) s.plan = parse_plan(env, "ITTT_FAULT");
}
}  // namespace

void load_environment() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    load_locked(s);
}

int before(Op op, const std::string& path) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    load_locked(s);
    const int64_t total = ++s.total;
    const int64_t of_kind = ++s.per_op[static_cast<int>(op)];
    const Plan& p = s.plan;
    if (p.trace) std::fprintf(stderr, "ittt fault point %lld: %s %s\n", static_cast<long long>(total), op_name(op), path.c_str());
    const bool hit = p.effect != Effect::None && (p.any ? total == p.n : (op == p.op && of_kind == p.n));
    if (!hit) return 0;
    if (p.effect == Effect::Kill) {
        if (p.trace) std::fprintf(stderr, "ittt fault point %lld: SIGKILL\n", static_cast<long long>(total));
        ::kill(::getpid(), SIGKILL);
        ::_exit(137);  // not reached
    }
    if (p.effect == Effect::Signal) {
        if (p.trace) std::fprintf(stderr, "ittt fault point %lld: %s\n", static_cast<long long>(total), p.signal == SIGTERM ? "SIGTERM" : "SIGINT");
        ::raise(p.signal);  // a handler runs now; without one the process ends here
        return 0;
    }
    return p.error;
}

int64_t points_seen() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    return s.total;
}

}  // namespace ittt::fault
