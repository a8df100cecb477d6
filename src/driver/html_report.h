// html_report.h: `ittt step --ckpt DIR --html FILE`, one self-contained page to
// step through a probe run in a browser.
//
// The page needs nothing outside itself: its CSS, JavaScript and figures (SVG) are
// inline, it names no font, loads no script and links nowhere off the page. It shows
// the staircase (accuracy and dl(v*) as chunk updates are applied), the sequence as a
// strip of tokens, the conv taps, and per chunk: the tokens with V_t decoded, what
// each key retrieves from the fast weight, a right/wrong mark per query and a heatmap
// of the logit changes this chunk's update made at every query (queries x the
// answers and the tokens that moved most). Chunks and queries are chosen by clicking
// (or with the arrow keys); the choice of query highlights its key, value and query
// in the strip and its row everywhere.
//
// Every cross-reference is an id on the page: a chunk button names its panel by
// data-chunk="chunk-N", a query link by data-query="query-J", and the test
// (tests/test_html_report.cpp) checks that each one exists, that the page parses as
// balanced markup, and that it holds no http(s) reference.
//
//   std::string page = html::format_report(probe::run_probe(model, options));
#pragma once
#include <string>

#include "driver/model_probe.h"

namespace ittt::html {

std::string format_report(const probe::ProbeRun& run);
// Text with &, <, >, " and ' escaped for an HTML text node or attribute value.
std::string escape(const std::string& text);

}  // namespace ittt::html
