// error.h: the one way this project reports a problem.
//
// Every failure, from a bad command-line flag to a shape mismatch inside an op,
// throws ittt::Error with a message that names the problem: what was expected
// and what was found. The command-line tool catches it at the top and prints it
// as one line. Internal preconditions use the same macro, so a student who
// wires an op up wrong gets "rmsnorm_forward: weight has 64 elements, expected
// 32 (the last dim of x)" instead of a segfault.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ittt {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// cat("a", 1, "b") == "a1b": builds messages without printf format strings.
template <class... Args>
std::string cat(const Args&... args) {
    std::ostringstream s;
    (s << ... << args);
    return s.str();
}

[[noreturn]] inline void fail(const std::string& message) { throw Error(message); }

// Input quoted in a message, cut to its first `limit` bytes (at a UTF-8
// character boundary) with its size: a 10 MB token in a file must not make a
// 10 MB error line. "abc", or "abcd... (10485760 bytes in all, the first 300 shown)".
inline std::string excerpt(const std::string& s, size_t limit = 300) {
    if (s.size() <= limit) return s;
    size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    return s.substr(0, cut) + cat("... (", s.size(), " bytes in all, the first ", cut, " shown)");
}

}  // namespace ittt

// ITTT_CHECK(cond, message parts...): throw ittt::Error(message) when cond is false.
#define ITTT_CHECK(cond, ...)                                   \
    do {                                                        \
        if (!(cond)) ::ittt::fail(::ittt::cat(__VA_ARGS__));    \
    } while (0)
