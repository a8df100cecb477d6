// The step-through pager in a real pseudo-terminal (issue 9, defect 6): at
// 80x24 it never prints a line the terminal would wrap, never more than 24
// lines, keeps the chunk title, the token row and the update norm at the top
// of every screen, scrolls a page taller than the screen with j/k, follows a
// resize (SIGWINCH) and leaves the terminal as it found it.
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "cli_util.h"
#include "driver/terminal.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;
using Catch::StartsWith;

namespace {

const std::string kClear = "\x1b[H\x1b[2J";

// The program on the other side of a pseudo-terminal.
struct PtyChild {
    pid_t pid = -1;
    int master = -1;
    std::string output;  // everything it wrote

    PtyChild(const std::vector<std::string>& args, int rows, int cols) {
        struct winsize ws {};
        ws.ws_row = static_cast<unsigned short>(rows);
        ws.ws_col = static_cast<unsigned short>(cols);
        pid = ::forkpty(&master, nullptr, nullptr, &ws);
        REQUIRE(pid >= 0);
        if (pid == 0) {
            std::vector<char*> argv;
            for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            ::setenv("OMP_NUM_THREADS", "1", 1);
            ::setenv("TERM", "xterm", 1);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ~PtyChild() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            int status;
            ::waitpid(pid, &status, 0);
        }
        if (master >= 0) ::close(master);
    }

    // Reads until `done(output)` or the timeout; false on timeout or end of output.
    template <class Done>
    bool read_until(Done done, double seconds = 20) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (!done(output)) {
            int left = static_cast<int>(std::chrono::duration<double, std::milli>(deadline - std::chrono::steady_clock::now()).count());
            if (left <= 0) return false;
            struct pollfd p = {master, POLLIN, 0};
            if (::poll(&p, 1, left) <= 0) continue;
            char buf[4096];
            ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) return done(output);  // EIO: the child closed the terminal
            output.append(buf, static_cast<size_t>(n));
        }
        return true;
    }
    void send(const std::string& keys) { REQUIRE(::write(master, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size())); }
    void resize(int rows, int cols) {
        struct winsize ws {};
        ws.ws_row = static_cast<unsigned short>(rows);
        ws.ws_col = static_cast<unsigned short>(cols);
        REQUIRE(::ioctl(master, TIOCSWINSZ, &ws) == 0);  // the kernel sends SIGWINCH to the child
    }
    int wait_exit() {
        int status = 0;
        ::waitpid(pid, &status, 0);
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
};

size_t frames_in(const std::string& out) {
    size_t n = 0;
    for (size_t at = out.find(kClear); at != std::string::npos; at = out.find(kClear, at + 1)) ++n;
    return n;
}

// True once `count` frames have been drawn completely: rows - 1 lines, then the
// footer, which ends in "quit" (or in '>' where it was cut to the width).
auto frames_drawn(size_t count, int rows) {
    return [count, rows](const std::string& out) {
        if (frames_in(out) < count) return false;
        std::string f = out.substr(out.rfind(kClear));
        if (std::count(f.begin(), f.end(), '\n') != rows - 1) return false;
        return f.size() >= 4 && (f.compare(f.size() - 4, 4, "quit") == 0 || f.back() == '>');
    };
}

// The lines of the last frame, escape sequences removed ("\r\n" from the terminal's output processing).
std::vector<std::string> last_frame(const std::string& out) {
    std::string f = out.substr(out.rfind(kClear) + kClear.size());
    std::string clean;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] == '\x1b') {  // CSI: ESC [ params final-byte
            size_t j = i + 1;
            if (j < f.size() && f[j] == '[') {
                ++j;
                while (j < f.size() && !(f[j] >= 0x40 && f[j] <= 0x7e)) ++j;
            }
            i = j;
            continue;
        }
        if (f[i] != '\r') clean += f[i];
    }
    std::vector<std::string> lines;
    size_t start = 0;
    while (true) {
        size_t nl = clean.find('\n', start);
        lines.push_back(clean.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    return lines;
}

// Every line fits, the frame fills the screen exactly, the header sits on top:
// the chunk's title, its token grid and the update norm, then the body, then the
// two footer lines (where, then every key). The summary is page 1, chunk c page c + 2.
void check_frame(const std::vector<std::string>& lines, int rows, int cols, int chunk) {
    std::string all;
    for (const std::string& l : lines) all += l + "\n";
    INFO("frame:\n" << all);
    CHECK(static_cast<int>(lines.size()) == rows);
    for (const std::string& l : lines) CHECK(terminal::display_width(l) < cols);  // the last column stays free
    REQUIRE(lines.size() >= 6);
    CHECK_THAT(lines[0], StartsWith(cat("chunk ", chunk, " of 4 (positions ")));
    // The token grid, then the update norm, before the body (the title and legend may fold).
    size_t tokens = 1, norm = 1;
    while (tokens < lines.size() && lines[tokens].find("x_t") == std::string::npos) ++tokens;
    while (norm < lines.size() && lines[norm].rfind(cat("||eta dW_", chunk, "||_F"), 0) != 0) ++norm;
    CHECK(tokens <= 7);
    CHECK(norm > tokens);
    CHECK(norm < 16);
    CHECK_THAT(lines[lines.size() - 2], StartsWith(cat("chunk ", chunk, " [", chunk + 2, "/5]")));
    CHECK_THAT(lines.back(), StartsWith("n next  p prev  j/k line"));
}

// The first body line: the one after the update-norm row.
std::string first_body_line(const std::vector<std::string>& lines) {
    for (size_t i = 0; i + 1 < lines.size(); ++i)
        if (lines[i].rfind("||eta dW_", 0) == 0) return lines[i + 1];
    return "";
}

}  // namespace

TEST_CASE("pager at 80x24 in a pseudo-terminal: fits, header pinned, scrolls, follows a resize", "[driver][pager][cli]") {
    REQUIRE(is_executable(ittt_binary()));
    PtyChild child({ittt_binary(), "step", "--ckpt", repo_file("data/demo"), "--task", "mqar", "--task-opt", "pairs=4,gap=32",
                    "--seq-len", "64", "--examples", "4", "--no-plots"},
                   24, 80);
    REQUIRE(child.read_until(frames_drawn(1, 24)));
    CHECK(child.output.find("\x1b[?1049h") != std::string::npos);  // the alternate screen
    // It opens on the summary: page 1 of 5, every line within the screen.
    std::vector<std::string> summary = last_frame(child.output);
    CHECK(summary.size() == 24u);
    CHECK_THAT(summary[0], StartsWith("model probe: "));
    CHECK_THAT(summary[summary.size() - 2], StartsWith("summary [1/5]"));
    for (const std::string& l : summary) CHECK(terminal::display_width(l) < 80);

    child.send("n");  // chunk 0
    REQUIRE(child.read_until(frames_drawn(2, 24)));
    std::vector<std::string> f0 = last_frame(child.output);
    check_frame(f0, 24, 80, 0);
    // Chunk 0 holds the pairs: every query after it has a block, taller than the screen.
    INFO("footer: " << f0.back());
    CHECK_THAT(f0[f0.size() - 2], Contains("lines 1-"));

    child.send("j");  // one line down: the header stays, the body moves up by one
    REQUIRE(child.read_until(frames_drawn(3, 24)));
    std::vector<std::string> f1 = last_frame(child.output);
    check_frame(f1, 24, 80, 0);
    for (size_t i = 0; i < 4; ++i) CHECK(f1[i] == f0[i]);
    size_t body0 = 0;
    while (body0 < f0.size() && f0[body0].rfind("||eta dW_", 0) != 0) ++body0;
    REQUIRE(body0 + 2 < f0.size());
    CHECK(first_body_line(f1) == f0[body0 + 2]);
    CHECK_THAT(f1[f1.size() - 2], Contains("lines 2-"));

    child.send("\x1b[B");  // the down arrow scrolls too
    REQUIRE(child.read_until(frames_drawn(4, 24)));
    std::vector<std::string> f = last_frame(child.output);
    CHECK_THAT(f[f.size() - 2], Contains("lines 3-"));
    child.send("k");
    REQUIRE(child.read_until(frames_drawn(5, 24)));
    f = last_frame(child.output);
    CHECK_THAT(f[f.size() - 2], Contains("lines 2-"));

    child.send("n");  // the next chunk starts at its top
    REQUIRE(child.read_until(frames_drawn(6, 24)));
    std::vector<std::string> f2 = last_frame(child.output);
    check_frame(f2, 24, 80, 1);

    child.resize(20, 60);  // SIGWINCH: redrawn at the new size
    REQUIRE(child.read_until(frames_drawn(7, 20)));
    check_frame(last_frame(child.output), 20, 60, 1);

    child.send("s");  // back to the summary
    REQUIRE(child.read_until(frames_drawn(8, 20)));
    f = last_frame(child.output);
    CHECK_THAT(f[f.size() - 2], StartsWith("summary [1/5]"));

    child.send("q");
    REQUIRE(child.read_until([](const std::string& out) { return out.find("\x1b[?1049l") != std::string::npos; }));
    CHECK(child.wait_exit() == 0);
}
