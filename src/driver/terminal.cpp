// terminal.cpp: the pager of the step-through driver. See terminal.h.
#include "driver/terminal.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/error.h"

namespace ittt::terminal {

// ---------------------------------------------------------------- rendering (no I/O)

Action key_action(char c) {
    switch (c) {
        case '\n': case '\r': case 'n': return Action::Next;
        case 'p': case 0x7f: case '\b': return Action::Previous;
        case 'j': return Action::ScrollDown;
        case 'k': return Action::ScrollUp;
        case ' ': return Action::PageDown;
        case 'b': return Action::PageUp;
        case 'g': return Action::First;
        case 'G': return Action::Last;
        case 's': return Action::Summary;
        case 'q': case 'Q': case 0x1b: case 0x04: case 0: return Action::Quit;
        case 'r': case 0x0c: return Action::Redraw;  // r or Ctrl-L (also what a resize sends)
        default: return Action::None;
    }
}

int line_count(const std::string& text) {
    if (text.empty()) return 0;
    int n = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    return text.back() == '\n' ? n : n + 1;
}

namespace {

bool continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The byte offset where column `col` starts (or the end of the line).
size_t byte_of_column(const std::string& line, int col) {
    size_t i = 0;
    for (int c = 0; i < line.size(); ++i) {
        if (continuation_byte(line[i])) continue;
        if (c++ == col) return i;
    }
    return line.size();
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

// A line cut to `width` columns, with '>' in the last one when something was cut.
std::string truncated(const std::string& line, int width) {
    if (display_width(line) <= width) return line;
    return line.substr(0, byte_of_column(line, std::max(0, width - 1))) + ">";
}

// Where a page's lines go on a screen of this size.
struct Layout {
    std::vector<std::string> header, body;
    int body_rows = 0;  // rows for the body window
};

Layout layout(const Pages& pages, int index, const ScreenSize& screen) {
    const int width = usable_width(screen), rows = std::max(1 + 1 + kFooterLines, screen.rows);
    Page page = pages.render(index);
    Layout l;
    l.header = fold_lines(page.header, width);
    l.body = fold_lines(page.body, width);
    const size_t max_header = static_cast<size_t>(std::max(1, rows - 1 - kFooterLines));  // one body row, and the footer
    if (l.header.size() > max_header) {
        l.header.resize(max_header);
        l.header.back() = truncated("... (the header does not fit: enlarge the terminal, or use --auto)", width);
    }
    l.body_rows = std::max(0, rows - kFooterLines - static_cast<int>(l.header.size()));
    return l;
}

}  // namespace

int display_width(const std::string& line) {
    int w = 0;
    for (char c : line) w += !continuation_byte(c);
    return w;
}

std::vector<std::string> fold_lines(const std::string& text, int width) {
    width = std::max(width, 8);
    std::vector<std::string> out;
    for (std::string line : split_lines(text)) {
        if (display_width(line) <= width) {
            out.push_back(line);
            continue;
        }
        // Continuation indent: under the text after a "| " gutter (token rows),
        // else two more than the line's own indent; never more than half the width.
        size_t gutter = line.find("| ");
        int indent = gutter != std::string::npos && display_width(line.substr(0, gutter)) < width / 2
                         ? display_width(line.substr(0, gutter + 2))
                         : static_cast<int>(line.find_first_not_of(' ') == std::string::npos ? 0 : line.find_first_not_of(' ')) + 2;
        indent = std::min(indent, width / 2);
        bool first = true;
        while (!line.empty()) {
            const int room = first ? width : width - indent;
            const std::string lead = first ? "" : std::string(static_cast<size_t>(indent), ' ');
            if (display_width(line) <= room) {
                out.push_back(lead + line);
                break;
            }
            size_t cut = byte_of_column(line, room);
            size_t space = line.rfind(' ', cut);
            size_t text_start = line.find_first_not_of(' ');
            if (space != std::string::npos && space > text_start && space > 0) cut = space;  // break at a space
            out.push_back(lead + line.substr(0, cut));
            line = line.substr(cut);
            line.erase(0, line.find_first_not_of(' ') == std::string::npos ? line.size() : line.find_first_not_of(' '));
            first = false;
        }
    }
    return out;
}

int usable_width(const ScreenSize& screen) { return std::max(8, screen.cols - 1); }

int max_scroll(const Pages& pages, int index, const ScreenSize& screen) {
    Layout l = layout(pages, index, screen);
    return std::max(0, static_cast<int>(l.body.size()) - l.body_rows);
}

std::string footer(const Pages& pages, int index, int first_line, int last_line, int body_lines) {
    const bool last = index + 1 >= pages.count;
    std::string where = body_lines == 0 ? "" : cat("  lines ", first_line, "-", last_line, "/", body_lines);
    return cat(pages.page_name(index), " [", index + 1, "/", pages.count, "]", where, "\nn ", last ? "finish" : "next",
               "  p prev  j/k line  space/b screen  g/G first/last", pages.summary >= 0 ? "  s summary" : "", "  q quit");
}

std::string frame(const Pages& pages, int index, const ScreenSize& screen, int scroll) {
    Layout l = layout(pages, index, screen);
    const int width = usable_width(screen);
    const int body = static_cast<int>(l.body.size());
    scroll = std::max(0, std::min(scroll, body - l.body_rows));
    std::string out;
    for (const std::string& h : l.header) out += h + "\n";
    for (int r = 0; r < l.body_rows; ++r) out += (scroll + r < body ? l.body[static_cast<size_t>(scroll + r)] : std::string()) + "\n";
    const std::string f = footer(pages, index, scroll + 1, std::min(body, scroll + l.body_rows), body);
    const size_t nl = f.find('\n');
    return out + truncated(f.substr(0, nl), width) + "\n" + truncated(f.substr(nl + 1), width);
}

std::string all_pages(const Pages& pages) {
    std::string out;
    for (int i = 0; i < pages.count; ++i) {
        std::string title = cat("---- ", pages.page_name(i), " [", i + 1, "/", pages.count, "] ");
        out += (i ? "\n" : "") + title + std::string(title.size() < 72 ? 72 - title.size() : 0, '-') + "\n";
        std::string page = pages.render(i).text();
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

Page theory_chunk_page(const theory::StepResult& s, int chunk) {
    ITTT_CHECK(chunk >= 0 && chunk < static_cast<int>(s.chunks.size()), "theory_chunk_page: chunk ", chunk, " outside [0, ",
               s.chunks.size(), ")");
    const theory::ProbeSequence& q = s.sequence;
    const theory::ChunkView& cv = s.chunks[static_cast<size_t>(chunk)];
    const theory::TheoryOptions& o = s.options;
    // Written to fit 80 columns; the pager folds anything wider.
    Page page;
    std::string& out = page.header;
    out = cat("theory step, trial ", s.trial, ": d=", o.d, " vocab=", o.vocab, " chunk=", o.chunk, " lr=", o.lr, " seed=", o.seed,
              " (", theory::feature_kind_name(o.features), ", ", theory::embedding_kind_name(o.embed), ")\n");
    out += cat("pair (k*, v*) = (", q.key, ", ", q.value, ") at ", q.key_pos, ", ", q.key_pos + 1, "; query k* at q=", q.query_pos,
               " (chunk ", s.options.query_chunk(), ")\n");
    out += cat("chunk ", cv.chunk, ": positions ", cv.begin, "-", cv.end - 1, (cv.has_pair ? ", holds the pair" : ""),
               "   ([k*] key, [v*] value)\n");
    std::string line;
    int line_start = cv.begin;
    for (int t = cv.begin; t < cv.end; ++t) {
        const int tok = q.tokens[static_cast<size_t>(t)];
        std::string word = t == q.key_pos ? cat("[k*:", tok, "]") : t == q.key_pos + 1 ? cat("[v*:", tok, "]") : std::to_string(tok);
        if (!line.empty() && line.size() + word.size() + 1 > 68) {
            out += cat("  ", pad(std::to_string(line_start), 4, true), " | ", line, "\n");
            line.clear();
            line_start = t;
        }
        line += (line.empty() ? "" : " ") + word;
    }
    if (!line.empty()) out += cat("  ", pad(std::to_string(line_start), 4, true), " | ", line, "\n");

    const size_t wl = 30, wc = 22;
    auto row = [&](std::string& to, const std::string& label, const std::string& a, const std::string& b) {
        to += pad("  " + label, wl) + pad(" " + a, wc, true) + pad(" " + b, wc, true) + "\n";
    };
    row(out, "", theory::target_title(theory::Target::LmAligned), theory::target_title(theory::Target::Reconstruction));
    const theory::ChunkTargetView* v[2] = {&cv.view[0], &cv.view[1]};
    row(out, cat("||eta dW_", cv.chunk, "||_F"), num(v[0]->dW_fro), num(v[1]->dW_fro));

    std::string& body = page.body;
    body = "\nthe change at the query from the slow weight (eta = --lr):\n  l(w) = e_w.(eta (dW_0 + .. + dW_i)) z_q\n";
    double before[2] = {0, 0};
    if (chunk > 0)
        for (int ti = 0; ti < 2; ++ti) before[ti] = s.chunks[static_cast<size_t>(chunk - 1)].view[ti].dlogit_correct;
    row(body, "l(v*) before -> after", num(before[0]) + " -> " + num(v[0]->dlogit_correct),
        num(before[1]) + " -> " + num(v[1]->dlogit_correct));
    row(body, cat("dl(v*) from chunk ", cv.chunk), num(v[0]->dlogit_correct - before[0], "%+.4g"),
        num(v[1]->dlogit_correct - before[1], "%+.4g"));
    row(body, "rank(v*) after", std::to_string(v[0]->rank_correct), std::to_string(v[1]->rank_correct));
    row(body, "l(k*) after", num(v[0]->dlogit_key), num(v[1]->dlogit_key));
    row(body, "max |l(w)|, w != v*", num(v[0]->dlogit_other_maxabs), num(v[1]->dlogit_other_maxabs));
    row(body, "mean |l(w)|, w != v*", num(v[0]->dlogit_other_meanabs), num(v[1]->dlogit_other_meanabs));
    auto tops = [&](const theory::ChunkTargetView& x) {
        std::string t;
        for (size_t i = 0; i < x.top5.size(); ++i) {
            const int w = x.top5[i];
            t += (i ? " " : "") + (w == q.value ? std::string("v*") : w == q.key ? std::string("k*") : std::to_string(w));
        }
        return t;
    };
    row(body, "top-5 after", tops(*v[0]), tops(*v[1]));
    return page;
}

bool interactive_possible() { return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO); }

// ---------------------------------------------------------------- raw mode

namespace {

const char kEnterScreen[] = "\x1b[?1049h\x1b[?25l";  // alternate screen, cursor hidden
const char kLeaveScreen[] = "\x1b[?25h\x1b[?1049l";  // cursor shown, main screen back
const char kClearHome[] = "\x1b[H\x1b[2J";

struct termios g_saved;
volatile sig_atomic_t g_active = 0;
volatile sig_atomic_t g_resized = 0;
struct sigaction g_previous_winch;

void note_resize(int) { g_resized = 1; }
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

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v) return fallback;
    char* end = nullptr;
    long x = std::strtol(v, &end, 10);
    return end != v && *end == '\0' && x > 0 && x < 10000 ? static_cast<int>(x) : fallback;
}

}  // namespace

ScreenSize terminal_size() {
    ScreenSize s;
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        s.rows = ws.ws_row;
        s.cols = ws.ws_col;
    } else {
        s.rows = env_int("LINES", 24);
        s.cols = env_int("COLUMNS", 80);
    }
    return s;
}

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
    // A resize interrupts read() (no SA_RESTART) so the pager redraws at once.
    struct sigaction winch;
    std::memset(&winch, 0, sizeof winch);
    winch.sa_handler = note_resize;
    sigemptyset(&winch.sa_mask);
    sigaction(SIGWINCH, &winch, &g_previous_winch);
    g_resized = 0;
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
    sigaction(SIGWINCH, &g_previous_winch, nullptr);
}

char RawTerminal::read_key() {
    char c = 0;
    ssize_t got;
    while (true) {
        if (g_resized) {
            g_resized = 0;
            return 0x0c;  // redraw at the new size
        }
        got = ::read(STDIN_FILENO, &c, 1);
        if (got < 0 && errno == EINTR) continue;
        break;
    }
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
        case 'C': return 'n';  // right: next page
        case 'D': return 'p';  // left: previous page
        case 'B': return 'j';  // down: scroll
        case 'A': return 'k';  // up: scroll back
        case 'H': return 'g';  // Home
        case 'F': return 'G';  // End
        case '1': case '4': case '5': case '6': {  // Home, End, PgUp, PgDn as "ESC [ n ~"
            char tilde = 0;
            next(tilde);
            return b == '5' ? 'b' : b == '6' ? ' ' : b == '1' ? 'g' : 'G';
        }
        default: return 1;  // an unknown sequence: Ctrl-A, which does nothing
    }
}

// ---------------------------------------------------------------- the pager

int run_pager(const Pages& pages) {
    if (pages.count <= 0) return -1;
    RawTerminal term;
    int index = 0, scroll = 0;
    bool redraw = true;
    ScreenSize size;
    while (true) {
        if (redraw) {
            size = terminal_size();
            scroll = std::max(0, std::min(scroll, max_scroll(pages, index, size)));
            std::string screen = kClearHome + frame(pages, index, size, scroll);
            write_all(screen.data(), screen.size());
            redraw = false;
        }
        auto scroll_by = [&](int delta) {
            int to = std::max(0, std::min(scroll + delta, max_scroll(pages, index, size)));
            redraw = to != scroll;
            scroll = to;
        };
        auto go_to = [&](int page) {
            redraw = page != index;
            if (redraw) scroll = 0;
            index = page;
        };
        // A screenful: the rows the body window has (the screen less header and footer).
        const int screenful =
            std::max(1, size.rows - kFooterLines - static_cast<int>(fold_lines(pages.render(index).header, usable_width(size)).size()));
        switch (key_action(term.read_key())) {
            case Action::Next:
                if (index + 1 >= pages.count) return index;
                go_to(index + 1);
                break;
            case Action::Previous:
                if (index > 0) go_to(index - 1);
                break;
            case Action::First: go_to(0); break;
            case Action::Last: go_to(pages.count - 1); break;
            case Action::Summary:
                if (pages.summary >= 0 && pages.summary < pages.count) go_to(pages.summary);
                break;
            case Action::ScrollDown: scroll_by(1); break;
            case Action::ScrollUp: scroll_by(-1); break;
            case Action::PageDown: scroll_by(screenful); break;
            case Action::PageUp: scroll_by(-screenful); break;
            case Action::Quit: return index;
            case Action::Redraw: redraw = true; break;
            case Action::None: break;
        }
    }
}

}  // namespace ittt::terminal
