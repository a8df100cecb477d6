// terminal.h: stepping through pages (one per chunk) on a terminal, or printing
// them all for scripts.
//
// A page has a header (the chunk's title, its token row, the update norm),
// pinned to the top of the screen, and a body that scrolls under it. The
// pager fits whatever terminal it is on: it reads the size (and again on
// every resize, SIGWINCH), folds every line wider than the screen at a space
// (continuation lines indented under the first, so a token row stays a token
// row) and never prints a line the terminal would wrap itself, nor more lines
// than the screen has: the header and the footer never move.
//
//   n / Enter / Right     next page (past the last page: done)
//   p / Backspace / Left  previous page
//   j / Down, k / Up      scroll the body one line
//   Space / PgDn, b / PgUp  scroll the body one screen
//   g / Home, G / End     first / last page
//   s                     the summary page (when the pages have one)
//   r / Ctrl-L            redraw;  q / Esc / Ctrl-D  quit
//
// The footer is two lines: where you are (page, lines shown), then every key.
//
// The terminal is restored on every way out: a normal return, an exception
// (RawTerminal's destructor), and SIGINT / SIGTERM / SIGHUP / SIGQUIT (a
// handler restores it, then re-raises the signal with its default action).
//
//   terminal::Pages pages{count, [&](int i) { return terminal::Page{header(i), body(i)}; }, "chunk"};
//   if (terminal::interactive_possible()) terminal::run_pager(pages);
//   else std::cout << terminal::all_pages(pages);
//
// The rendering functions (fold_lines, frame, all_pages, key_action) do no
// I/O; tests check them directly and run_pager itself in a pseudo-terminal at
// 80x24 (tests/test_pager.cpp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "driver/theory.h"

namespace ittt::terminal {

struct Page {
    std::string header;  // pinned: lines end with '\n'
    std::string body;    // scrolls
    std::string text() const { return header + body; }
};

struct Pages {
    int count = 0;
    std::function<Page(int)> render;
    std::string noun = "page";  // "chunk": the footer reads "chunk 2 [3/4]"
    // Page i's name in the footer and in all_pages' rules ("summary", "chunk 0");
    // empty: "<noun> i".
    std::function<std::string(int)> name;
    int summary = -1;  // the page `s` goes to (-1: none)
    std::string page_name(int i) const { return name ? name(i) : noun + " " + std::to_string(i); }
};

struct ScreenSize {
    int rows = 24, cols = 80;
};

enum class Action { Next, Previous, First, Last, Summary, Quit, Redraw, ScrollDown, ScrollUp, PageDown, PageUp, None };
// What a key byte does (see the table above). '\x1b' alone is Quit; arrow and
// paging keys are decoded by RawTerminal::read_key before they get here.
Action key_action(char c);

// Columns a line takes (UTF-8 code points; the pages hold no wide characters).
int display_width(const std::string& line);
// The lines of `text`, each at most `width` columns: a longer line breaks at
// the last space that fits (hard at the width when there is none), and its
// continuation lines are indented to where its text starts (after a "| "
// gutter, or its leading spaces + 2).
std::vector<std::string> fold_lines(const std::string& text, int width);

// Lines that fit on one screen: the widest is screen.cols - 1 (a character in
// the last column makes some terminals wrap), and there are exactly
// screen.rows lines, the last without '\n' (a newline on the bottom row
// would scroll the screen).
int usable_width(const ScreenSize& screen);
// How far the body of page `index` can scroll on this screen (0: it fits).
int max_scroll(const Pages& pages, int index, const ScreenSize& screen);
// The screen for page `index` with the body scrolled by `scroll` lines (clamped):
// header, body window, blank lines to fill, then the footer. No escape codes:
// run_pager adds clear + home in front.
std::string frame(const Pages& pages, int index, const ScreenSize& screen, int scroll = 0);
// The footer's two lines: "chunk 2 [3/4]  lines 1-9/14", then
// "n next  p prev  j/k line  space/b screen  g/G first/last  s summary  q quit".
std::string footer(const Pages& pages, int index, int first_line, int last_line, int body_lines);
constexpr int kFooterLines = 2;
// Number of lines of a text (a last line without '\n' counts).
int line_count(const std::string& text);
// Every page, one after another, each preceded by a rule naming it: --auto and pipes.
std::string all_pages(const Pages& pages);

// True when stdin and stdout are both terminals.
bool interactive_possible();
// The size of the terminal on stdout (TIOCGWINSZ; else $LINES/$COLUMNS; else 24x80).
ScreenSize terminal_size();

// Raw mode for the lifetime of the object; restores the saved settings (and
// leaves the alternate screen) when destroyed or on a fatal signal.
class RawTerminal {
public:
    RawTerminal();   // throws ittt::Error when stdin is not a terminal
    ~RawTerminal();
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;
    // One key press: escape sequences decoded to the keys of the table above
    // (Down 'j', Up 'k', Right 'n', Left 'p', PgDn ' ', PgUp 'b', Home 'g',
    // End 'G'); a resize returns Ctrl-L (redraw). Returns 0 on end of input.
    char read_key();
};

// The theory mode's page for chunk i of one trial (i indexes s.chunks): the
// chunk's tokens with k* and v* marked and the update norms (header), then
// both targets side by side (body).
Page theory_chunk_page(const theory::StepResult& s, int chunk);

// Shows the pages one at a time until the user quits or steps past the last
// page. Returns the index of the page shown last.
int run_pager(const Pages& pages);

}  // namespace ittt::terminal
