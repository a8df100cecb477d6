// terminal.cpp: the pager of the step-through driver. See terminal.h.
#include "driver/terminal.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "runtime/error.h"

namespace ittt::terminal {

// ---------------------------------------------------------------- rendering (no I/O)

Action key_action(char c) {
    switch (c) {
        case '\n': case '\r': case 'n': case ' ': case 'j': return Action::Next;
        case 'p': case 'b': case 'k': case 0x7f: case '\b': return Action::Previous;
        case 'g': return Action::First;
        case 'G': return Action::Last;
        case 'q': case 'Q': case 0x1b: case 0x04: case 0: return Action::Quit;
        case 'r': case 0x0c: return Action::Redraw;  // r or Ctrl-L
        default: return Action::None;
    }
}

int line_count(const std::string& text) {
    if (text.empty()) return 0;
    int n = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    return text.back() == '\n' ? n : n + 1;
}

std::string footer(const Pages& pages, int index) {
    const bool last = index + 1 >= pages.count;
    return cat(pages.noun, " ", index, "  [", index + 1, "/", pages.count, "]   [Enter/n] ", last ? "finish" : "next",
               "  [p] previous  [g/G] first/last  [q] quit");
}

std::string frame(const Pages& pages, int index, int height) {
    std::string page = pages.render(index);
    if (!page.empty() && page.back() != '\n') page += '\n';
    int lines = line_count(page);
    if (height > 0 && lines > height) {
        // Cut, never scroll: a scrolled screen would move the footer.
        size_t cut = 0;
        for (int i = 0; i < height - 1; ++i) cut = page.find('\n', cut) + 1;
        page = page.substr(0, cut) + cat("... (", lines - height + 1, " more lines: enlarge the terminal, or use --auto)\n");
        lines = height;
    }
    for (; lines < height; ++lines) page += '\n';
    return page + footer(pages, index) + "\n";
}

std::string all_pages(const Pages& pages) {
    std::string out;
    for (int i = 0; i < pages.count; ++i) {
        std::string title = cat("---- ", pages.noun, " ", i, " [", i + 1, "/", pages.count, "] ");
        out += (i ? "\n" : "") + title + std::string(title.size() < 72 ? 72 - title.size() : 0, '-') + "\n";
        std::string page = pages.render(i);
        out += page;
        if (!page.empty() && page.back() != '\n') out += '\n';
    }
    return out;
}

namespace {

std::string num(double x, const char* spec = "%.4g") {
    char buf[64];
    std::snprintf(buf, sizeof buf, spec, x);
    return buf;
}

std::string pad(const std::string& s, size_t width, bool right = false) {
    if (s.size() >= width) return s;
    return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::string theory_chunk_page(const theory::StepResult& s, int chunk) {
    ITTT_CHECK(chunk >= 0 && chunk < static_cast<int>(s.chunks.size()), "theory_chunk_page: chunk ", chunk, " outside [0, ",
               s.chunks.size(), ")");
    const theory::ProbeSequence& q = s.sequence;
    const theory::ChunkView& cv = s.chunks[static_cast<size_t>(chunk)];
    const theory::TheoryOptions& o = s.options;
    // Short enough for an 100-column terminal: a wrapped line would move the footer.
    std::string out = cat("theory step, trial ", s.trial, ": d=", o.d, " vocab=", o.vocab, " ", theory::feature_kind_name(o.features),
                          " features, ", theory::embedding_kind_name(o.embed), " embeddings, chunk=", o.chunk, " lr=", o.lr,
                          " seed=", o.seed, "\n");
    out += cat("pair (k*, v*) = (", q.key, ", ", q.value, ") at positions ", q.key_pos, ", ", q.key_pos + 1, "; query k* at q=",
               q.query_pos, " (chunk ", s.options.query_chunk(), ")\n");
    out += cat("chunk ", cv.chunk, ": positions ", cv.begin, "-", cv.end - 1, (cv.has_pair ? ", holds the pair" : ""),
               "   ([k*] key, [v*] value)\n");
    std::string line;
    int line_start = cv.begin;
    for (int t = cv.begin; t < cv.end; ++t) {
        const int tok = q.tokens[static_cast<size_t>(t)];
        std::string word = t == q.key_pos ? cat("[k*:", tok, "]") : t == q.key_pos + 1 ? cat("[v*:", tok, "]") : std::to_string(tok);
        if (!line.empty() && line.size() + word.size() + 1 > 88) {
            out += cat("  ", pad(std::to_string(line_start), 4, true), " | ", line, "\n");
            line.clear();
            line_start = t;
        }
        line += (line.empty() ? "" : " ") + word;
    }
    if (!line.empty()) out += cat("  ", pad(std::to_string(line_start), 4, true), " | ", line, "\n");
    out += "\nat the query, logits l(w) = e_w.(sum of lr dW_0..dW_i) z_q, the change from the slow weight\n";

    const size_t wl = 30, wc = 22;
    auto row = [&](const std::string& label, const std::string& a, const std::string& b) {
        out += pad("  " + label, wl) + pad(" " + a, wc, true) + pad(" " + b, wc, true) + "\n";
    };
    row("", theory::target_title(theory::Target::LmAligned), theory::target_title(theory::Target::Reconstruction));
    const theory::ChunkTargetView* v[2] = {&cv.view[0], &cv.view[1]};
    double before[2] = {0, 0};
    if (chunk > 0)
        for (int ti = 0; ti < 2; ++ti) before[ti] = s.chunks[static_cast<size_t>(chunk - 1)].view[ti].dlogit_correct;
    row(cat("||lr dW_", cv.chunk, "||_F"), num(v[0]->dW_fro), num(v[1]->dW_fro));
    row("l(v*) before -> after", num(before[0]) + " -> " + num(v[0]->dlogit_correct),
        num(before[1]) + " -> " + num(v[1]->dlogit_correct));
    row(cat("dl(v*) from chunk ", cv.chunk), num(v[0]->dlogit_correct - before[0], "%+.4g"),
        num(v[1]->dlogit_correct - before[1], "%+.4g"));
    row("rank(v*) after", std::to_string(v[0]->rank_correct), std::to_string(v[1]->rank_correct));
    row("l(k*) after", num(v[0]->dlogit_key), num(v[1]->dlogit_key));
    row("max |l(w)|, w != v*", num(v[0]->dlogit_other_maxabs), num(v[1]->dlogit_other_maxabs));
    row("mean |l(w)|, w != v*", num(v[0]->dlogit_other_meanabs), num(v[1]->dlogit_other_meanabs));
    auto tops = [&](const theory::ChunkTargetView& x) {
        std::string t;
        for (size_t i = 0; i < x.top5.size(); ++i) {
            const int w = x.top5[i];
            t += (i ? " " : "") + (w == q.value ? std::string("v*") : w == q.key ? std::string("k*") : std::to_string(w));
        }
        return t;
    };
    row("top-5 after", tops(*v[0]), tops(*v[1]));
    return out;
}

bool interactive_possible() { return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO); }

// ---------------------------------------------------------------- raw mode

namespace {

const char kEnterScreen[] = "\x1b[?1049h\x1b[?25l";  // alternate screen, cursor hidden
const char kLeaveScreen[] = "\x1b[?25h\x1b[?1049l";  // cursor shown, main screen back
const char kClearHome[] = "\x1b[H\x1b[2J";

struct termios g_saved;
volatile sig_atomic_t g_active = 0;
const int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
struct sigaction g_previous[sizeof kSignals / sizeof kSignals[0]];

void write_all(const char* s, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(STDOUT_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= static_cast<size_t>(w);
    }
}

// Only async-signal-safe calls: write, tcsetattr, signal, raise.
void restore_and_reraise(int sig) {
    if (g_active) {
        g_active = 0;
        write_all(kLeaveScreen, sizeof kLeaveScreen - 1);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved);
    }
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

int terminal_rows() {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) return ws.ws_row;
    return 24;
}

}  // namespace

RawTerminal::RawTerminal() {
    ITTT_CHECK(isatty(STDIN_FILENO), "interactive stepping needs a terminal on stdin (use --auto in scripts)");
    ITTT_CHECK(tcgetattr(STDIN_FILENO, &g_saved) == 0, "tcgetattr failed: ", std::strerror(errno));
    struct termios raw = g_saved;
    // Keys arrive one at a time, unechoed. ISIG stays on (Ctrl-C still raises
    // SIGINT, caught below) and OPOST too ('\n' still returns the carriage).
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_handler = restore_and_reraise;
        sigemptyset(&sa.sa_mask);
        sigaction(kSignals[i], &sa, &g_previous[i]);
    }
    ITTT_CHECK(tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0, "tcsetattr failed: ", std::strerror(errno));
    g_active = 1;
    write_all(kEnterScreen, sizeof kEnterScreen - 1);
}

RawTerminal::~RawTerminal() {
    if (g_active) {
        g_active = 0;
        write_all(kLeaveScreen, sizeof kLeaveScreen - 1);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved);
    }
    for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

char RawTerminal::read_key() {
    char c = 0;
    ssize_t got;
    do got = ::read(STDIN_FILENO, &c, 1);
    while (got < 0 && errno == EINTR);
    if (got <= 0) return 0;
    if (c != 0x1b) return c;
    // An escape sequence arrives in one burst; a lone Esc does not continue.
    auto next = [](char& out) {
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        return poll(&p, 1, 30) > 0 && ::read(STDIN_FILENO, &out, 1) == 1;
    };
    char a = 0, b = 0;
    if (!next(a) || (a != '[' && a != 'O') || !next(b)) return 0x1b;
    switch (b) {
        case 'C': case 'B': return 'n';  // right, down
        case 'D': case 'A': return 'p';  // left, up
        case 'H': return 'g';            // Home
        case 'F': return 'G';            // End
        case '5': case '6': {            // PgUp / PgDn end with '~'
            char tilde = 0;
            next(tilde);
            return b == '5' ? 'p' : 'n';
        }
        default: return 1;  // an unknown sequence: Ctrl-A, which does nothing
    }
}

// ---------------------------------------------------------------- the pager

int run_pager(const Pages& pages) {
    if (pages.count <= 0) return -1;
    RawTerminal term;
    // Every page gets the height of the tallest, capped by the window.
    int tallest = 0;
    for (int i = 0; i < pages.count; ++i) tallest = std::max(tallest, line_count(pages.render(i)));
    int index = 0;
    bool redraw = true;
    while (true) {
        if (redraw) {
            const int height = std::min(tallest, terminal_rows() - 1);
            std::string screen = kClearHome + frame(pages, index, height);
            write_all(screen.data(), screen.size());
            redraw = false;
        }
        switch (key_action(term.read_key())) {
            case Action::Next:
                if (index + 1 >= pages.count) return index;
                ++index;
                redraw = true;
                break;
            case Action::Previous:
                if (index > 0) --index, redraw = true;
                break;
            case Action::First:
                redraw = index != 0;
                index = 0;
                break;
            case Action::Last:
                redraw = index != pages.count - 1;
                index = pages.count - 1;
                break;
            case Action::Quit:
                return index;
            case Action::Redraw:
                redraw = true;
                break;
            case Action::None:
                break;
        }
    }
}

}  // namespace ittt::terminal
