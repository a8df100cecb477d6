// terminal.h: stepping through pages (one per chunk) on a terminal, or printing
// them all for scripts.
//
// Interactive use puts the terminal in raw mode (no line buffering, no echo),
// switches to the alternate screen, and redraws every page from the top-left
// corner with a fixed height, so the footer never moves:
//
//   Enter / n / space / j   next page (past the last page: done)
//   p / b / k / Backspace   previous page
//   g / G                   first / last page
//   q / Esc / Ctrl-D        quit
//
// The terminal is restored on every way out: a normal return, an exception
// (RawTerminal's destructor), and SIGINT / SIGTERM / SIGHUP (a handler restores
// it, then re-raises the signal with its default action).
//
//   terminal::Pages pages{count, [&](int i) { return render(i); }, "chunk"};
//   if (terminal::interactive_possible()) terminal::run_pager(pages);
//   else std::cout << terminal::all_pages(pages);
//
// The rendering functions (frame, all_pages, key_action) do no I/O and are what
// the tests check; run_pager is checked by hand in tmux (docs/theory.md).
#pragma once
#include <functional>
#include <string>

#include "driver/theory.h"

namespace ittt::terminal {

struct Pages {
    int count = 0;
    std::function<std::string(int)> render;  // the text of page i (lines end with '\n')
    std::string noun = "page";               // "chunk": the footer reads "chunk 2 of 4"
};

enum class Action { Next, Previous, First, Last, Quit, Redraw, None };
// What a key byte does (see the table above). '\x1b' alone is Quit; arrow keys
// are decoded by run_pager before they get here.
Action key_action(char c);

// The page on screen: the page text padded with blank lines to `height` lines
// (so the footer stays on the same row whatever the page), then the footer.
// No escape codes: run_pager adds clear + home in front.
std::string frame(const Pages& pages, int index, int height);
// The footer line alone: "chunk 2 of 4   [Enter/n] next  [p] previous  [q] quit".
std::string footer(const Pages& pages, int index);
// Number of lines of a text (a last line without '\n' counts).
int line_count(const std::string& text);
// Every page, one after another, each preceded by a rule naming it: --auto and pipes.
std::string all_pages(const Pages& pages);

// True when stdin and stdout are both terminals.
bool interactive_possible();

// Raw mode for the lifetime of the object; restores the saved settings (and
// leaves the alternate screen) when destroyed or on a fatal signal.
class RawTerminal {
public:
    RawTerminal();   // throws ittt::Error when stdin is not a terminal
    ~RawTerminal();
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;
    // One key press (escape sequences for the arrow keys decoded to n / p).
    // Returns 0 on end of input.
    char read_key();
};

// The theory mode's page for chunk i of one trial (i indexes s.chunks): the
// chunk's tokens with k* and v* marked, then both targets side by side.
std::string theory_chunk_page(const theory::StepResult& s, int chunk);

// Shows the pages one at a time until the user quits or steps past the last
// page. Returns the index of the page shown last.
int run_pager(const Pages& pages);

}  // namespace ittt::terminal
