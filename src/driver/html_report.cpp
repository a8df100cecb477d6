// html_report.cpp: the self-contained HTML step-through page. See html_report.h.
//
// The page is written as balanced markup (every element closed, attribute values
// quoted, & < > escaped) so that a plain parser can check it; figures are inline SVG
// drawn here from the probe's numbers, and the only script is the one at the end,
// which shows one chunk panel and one query panel at a time.
#include "driver/html_report.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include "driver/text_format.h"
#include "runtime/error.h"

namespace ittt::html {

using probe::ChunkView;
using probe::KeyReadout;
using probe::ProbeQuery;
using probe::ProbeResult;
using probe::ProbeRun;
using probe::ProbeStep;
using probe::ProbeTarget;
using probe::QueryChunkView;
using text::fmt;

std::string escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

namespace {

const char* kColor[2] = {"#1f77b4", "#d62728"};  // Learned, Offset-0: the colours of the gnuplot figures

std::string chunk_id(int chunk) { return cat("chunk-", chunk); }
std::string query_id(int pair) { return cat("query-", pair); }

// A number for an SVG coordinate: short, locale-free.
std::string coord(double x) { return fmt(x, "%.1f"); }

// A diverging colour for v in [-scale, scale]: blue below 0, white at 0, red above
// (the gnuplot heatmaps' palette).
std::string diverging(double v, double scale) {
    const double t = scale > 0 ? std::clamp(v / scale, -1.0, 1.0) : 0.0;
    const int white[3] = {247, 247, 247}, red[3] = {178, 24, 43}, blue[3] = {33, 102, 172};
    const int* to = t >= 0 ? red : blue;
    const double a = std::fabs(t);
    char buf[16];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(white[0] + a * (to[0] - white[0])),
                  static_cast<int>(white[1] + a * (to[1] - white[1])), static_cast<int>(white[2] + a * (to[2] - white[2])));
    return buf;
}

// The role of each position ("k3", "v3", "?3", "a3") and the pair it belongs to.
struct Role {
    std::string tag, css;  // "k3", "key"
    int pair = -1;
};
std::map<int, Role> roles(const ProbeStep& s) {
    const std::map<int, std::string> labels = probe::marker_labels(s);
    std::map<int, Role> out;
    for (const Marker& m : s.markers) {
        if (out.count(m.position)) continue;
        const char* css = m.kind == MarkerKind::Key      ? "key"
                          : m.kind == MarkerKind::Value  ? "value"
                          : m.kind == MarkerKind::Query  ? "query"
                          : m.kind == MarkerKind::Answer ? "answer"
                                                         : nullptr;
        if (css) out[m.position] = Role{labels.at(m.position), css, m.index};
    }
    return out;
}

// data-query="query-J" when pair J has a query on this sequence (a link to its panel).
std::string query_link(const ProbeStep& s, int pair) {
    return pair >= 0 && s.query_of_pair(pair) ? cat(" data-query=\"", query_id(pair), "\"") : std::string();
}

// ---------------------------------------------------------------- figures (inline SVG)

struct Axes {
    double width = 420, height = 230, left = 46, right = 46, top = 14, bottom = 36;
    double x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // data ranges
    double px(double x) const { return left + (x - x0) / (x1 - x0) * (width - left - right); }
    double py(double y) const { return top + (y1 - y) / (y1 - y0) * (height - top - bottom); }
};

std::string polyline(const Axes& a, const std::vector<double>& ys, const std::function<double(double)>& scale_y,
                     const std::string& color, bool dashed) {
    std::string pts;
    for (size_t k = 0; k < ys.size(); ++k) pts += cat(k ? " " : "", coord(a.px(static_cast<double>(k))), ",", coord(scale_y(ys[k])));
    std::string out = cat("<polyline fill=\"none\" stroke=\"", color, "\" stroke-width=\"2\"", dashed ? " stroke-dasharray=\"5,4\"" : "",
                          " points=\"", pts, "\"/>");
    for (size_t k = 0; k < ys.size(); ++k)
        out += cat("<circle cx=\"", coord(a.px(static_cast<double>(k))), "\" cy=\"", coord(scale_y(ys[k])), "\" r=\"2.5\" fill=\"",
                   color, "\"/>");
    return out;
}

// Accuracy (right axis) and mean dl(v*) (left axis) as chunk updates are applied,
// both targets; a band per chunk that selects it (chunk i's update is the step
// from x = i to x = i + 1).
std::string staircase_svg(const ProbeResult& r) {
    const probe::ProbeTargetSummary& lm = r.target(ProbeTarget::Learned);
    const probe::ProbeTargetSummary& rc = r.target(ProbeTarget::Offset0);
    const size_t K = lm.dlogit_by_limit.size();
    if (K < 2) return "<p>one chunk: no update to step through</p>";
    Axes a;
    a.x1 = static_cast<double>(K - 1);
    double lo = 0, hi = 0;
    for (const auto* v : {&lm.dlogit_by_limit, &rc.dlogit_by_limit})
        for (double x : *v) lo = std::min(lo, x), hi = std::max(hi, x);
    if (hi - lo < 1e-12) hi = lo + 1;
    a.y0 = lo - 0.05 * (hi - lo);
    a.y1 = hi + 0.05 * (hi - lo);
    auto dl_y = [&](double y) { return a.py(y); };
    auto acc_y = [&](double f) { return a.top + (1 - f) * (a.height - a.top - a.bottom); };
    std::ostringstream o;
    o << "<svg class=\"chart\" viewBox=\"0 0 " << a.width << " " << a.height << "\" role=\"img\" aria-label=\"the staircase\">";
    for (size_t k = 0; k + 1 < K; ++k)
        o << "<rect class=\"band\" data-chunk=\"" << chunk_id(static_cast<int>(k)) << "\" x=\"" << coord(a.px(static_cast<double>(k)))
          << "\" y=\"" << a.top << "\" width=\"" << coord(a.px(1) - a.px(0)) << "\" height=\"" << a.height - a.top - a.bottom
          << "\"><title>chunk " << k << "'s update: x " << k << " to " << k + 1 << "</title></rect>";
    o << "<line class=\"axis\" x1=\"" << a.left << "\" y1=\"" << coord(dl_y(0)) << "\" x2=\"" << a.width - a.right << "\" y2=\""
      << coord(dl_y(0)) << "\"/>";
    for (size_t k = 0; k < K; ++k)
        if (K <= 17 || k % ((K + 15) / 16) == 0)
            o << "<text class=\"tick\" x=\"" << coord(a.px(static_cast<double>(k))) << "\" y=\"" << a.height - a.bottom + 14
              << "\" text-anchor=\"middle\">" << k << "</text>";
    o << "<text class=\"tick\" x=\"" << (a.width) / 2 << "\" y=\"" << a.height - 4
      << "\" text-anchor=\"middle\">chunk updates applied (0 = none, k = chunks 0..k-1)</text>";
    for (double f : {0.0, 0.5, 1.0})
        o << "<text class=\"tick\" x=\"" << a.width - a.right + 4 << "\" y=\"" << coord(acc_y(f) + 4) << "\">" << fmt(100 * f, "%.0f")
          << "%</text>";
    for (double y : {lo, hi, 0.0})
        o << "<text class=\"tick\" x=\"" << a.left - 4 << "\" y=\"" << coord(dl_y(y) + 4) << "\" text-anchor=\"end\">"
          << escape(fmt(y, "%.3g")) << "</text>";
    o << polyline(a, lm.dlogit_by_limit, dl_y, kColor[0], false) << polyline(a, rc.dlogit_by_limit, dl_y, kColor[1], false);
    o << polyline(a, lm.accuracy_by_limit, acc_y, kColor[0], true) << polyline(a, rc.accuracy_by_limit, acc_y, kColor[1], true);
    o << "</svg>";
    o << "<p class=\"legend\"><span class=\"sw lm\"></span>Learned <span class=\"sw rc\"></span>Offset-0: solid = mean dl(v*) "
         "(left axis), dashed = accuracy, v* on top (right axis); over "
      << lm.probes << " queries of " << r.options.examples << " sequences. Click a band to open that chunk.</p>";
    return o.str();
}

// The conv taps of each TTT layer: bars of the signed weight per offset (through
// P's diagonal), dots of the gain.
std::string taps_svg(const ProbeResult& r) {
    if (r.conv_offsets.empty() || r.conv_taps_effective.empty()) return "<p>no conv taps</p>";
    const size_t K = r.conv_offsets.size(), L = r.conv_taps_effective.size();
    double hi = 0.1;
    for (size_t li = 0; li < L; ++li)
        for (size_t k = 0; k < K; ++k)
            hi = std::max({hi, std::fabs(r.conv_taps_effective[li][k]), r.conv_taps_gain[li][k]});
    Axes a;
    a.width = 360;
    a.right = 10;
    a.x0 = -0.5;
    a.x1 = static_cast<double>(K) - 0.5;
    a.y0 = -hi * 1.1;
    a.y1 = hi * 1.1;
    std::ostringstream o;
    o << "<svg class=\"chart\" viewBox=\"0 0 " << a.width << " " << a.height << "\" role=\"img\" aria-label=\"conv taps\">";
    o << "<line class=\"axis\" x1=\"" << a.left << "\" y1=\"" << coord(a.py(0)) << "\" x2=\"" << a.width - a.right << "\" y2=\""
      << coord(a.py(0)) << "\"/>";
    const double slot = (a.px(1) - a.px(0)) * 0.8 / static_cast<double>(L);
    const char* layer_colors[4] = {"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"};
    for (size_t k = 0; k < K; ++k) {
        const int off = r.conv_offsets[k];
        o << "<text class=\"tick\" x=\"" << coord(a.px(static_cast<double>(k))) << "\" y=\"" << a.height - a.bottom + 14
          << "\" text-anchor=\"middle\">" << (off > 0 ? "+" : "") << off << "</text>";
        for (size_t li = 0; li < L; ++li) {
            const double w = r.conv_taps_effective[li][k], g = r.conv_taps_gain[li][k];
            const double x = a.px(static_cast<double>(k)) - 0.4 * (a.px(1) - a.px(0)) + slot * static_cast<double>(li);
            const double y = std::min(a.py(w), a.py(0)), h = std::fabs(a.py(w) - a.py(0));
            o << "<rect x=\"" << coord(x) << "\" y=\"" << coord(y) << "\" width=\"" << coord(slot * 0.9) << "\" height=\"" << coord(h)
              << "\" fill=\"" << layer_colors[li % 4] << "\"><title>layer " << r.ttt_layers[li] << ", offset " << off
              << ": mean signed w x P[c,c] " << escape(fmt(w, "%+.3g")) << ", gain " << escape(fmt(g, "%.3g")) << "</title></rect>";
            o << "<circle cx=\"" << coord(x + slot * 0.45) << "\" cy=\"" << coord(a.py(g)) << "\" r=\"3\" fill=\"none\" stroke=\""
              << layer_colors[li % 4] << "\"/>";
        }
    }
    for (double y : {-hi, 0.0, hi})
        o << "<text class=\"tick\" x=\"" << a.left - 4 << "\" y=\"" << coord(a.py(y) + 4) << "\" text-anchor=\"end\">"
          << escape(fmt(y, "%.2g")) << "</text>";
    o << "<text class=\"tick\" x=\"" << a.width / 2 << "\" y=\"" << a.height - 4
      << "\" text-anchor=\"middle\">tap offset (+1 = the next token)</text></svg>";
    o << "<p class=\"legend\">bars: mean signed tap weight" << (r.learned_proj ? " x P[c,c]" : "") << "; circles: gain ||diag(w_k)"
      << (r.learned_proj ? " P" : "") << "||_F/sqrt(d); one colour per TTT layer (";
    for (size_t li = 0; li < L; ++li) o << (li ? ", " : "") << "<span style=\"color:" << layer_colors[li % 4] << "\">layer " << r.ttt_layers[li] << "</span>";
    o << "). The fixed next-token target is 1 at +1 and 0 elsewhere.</p>";
    return o.str();
}

// dl_i(v*) of one query per chunk, both targets, as bars.
std::string query_bars_svg(const ProbeStep& s, const ProbeQuery& q) {
    const int T = static_cast<int>(s.chunks.size());
    std::vector<double> dl[2];
    double hi = 1e-12;
    for (int ti = 0; ti < 2; ++ti)
        for (const ChunkView& cv : s.chunks) {
            double v = 0;
            for (const QueryChunkView& x : cv.view[ti].queries)
                if (x.position == q.position) v = x.dl_correct;
            dl[ti].push_back(v);
            hi = std::max(hi, std::fabs(v));
        }
    Axes a;
    a.width = 420;
    a.height = 170;
    a.right = 10;
    a.x0 = -0.5;
    a.x1 = T - 0.5;
    a.y0 = -hi * 1.1;
    a.y1 = hi * 1.1;
    std::ostringstream o;
    o << "<svg class=\"chart\" viewBox=\"0 0 " << a.width << " " << a.height << "\" role=\"img\" aria-label=\"dl per chunk\">";
    o << "<line class=\"axis\" x1=\"" << a.left << "\" y1=\"" << coord(a.py(0)) << "\" x2=\"" << a.width - a.right << "\" y2=\""
      << coord(a.py(0)) << "\"/>";
    const double slot = (a.px(1) - a.px(0)) * 0.4;
    for (int i = 0; i < T; ++i) {
        for (int ti = 0; ti < 2; ++ti) {
            const double v = dl[ti][static_cast<size_t>(i)];
            const double x = a.px(i) - slot + slot * ti;
            o << "<rect x=\"" << coord(x) << "\" y=\"" << coord(std::min(a.py(v), a.py(0))) << "\" width=\"" << coord(slot * 0.95)
              << "\" height=\"" << coord(std::fabs(a.py(v) - a.py(0))) << "\" fill=\"" << kColor[ti] << "\"><title>chunk " << i << ", "
              << probe::probe_target_title(probe::kProbeTargets[ti]) << ": dl(v*) " << escape(fmt(v, "%+.4g")) << "</title></rect>";
        }
        if (T <= 24 || i % ((T + 23) / 24) == 0)
            o << "<text class=\"tick\" x=\"" << coord(a.px(i)) << "\" y=\"" << a.height - a.bottom + 14 << "\" text-anchor=\"middle\">" << i
              << "</text>";
    }
    for (double y : {-hi, 0.0, hi})
        o << "<text class=\"tick\" x=\"" << a.left - 4 << "\" y=\"" << coord(a.py(y) + 4) << "\" text-anchor=\"end\">"
          << escape(fmt(y, "%.3g")) << "</text>";
    o << "<text class=\"tick\" x=\"" << a.width / 2 << "\" y=\"" << a.height - 4
      << "\" text-anchor=\"middle\">chunk whose update it is</text></svg>";
    return o.str();
}

// ---------------------------------------------------------------- page parts

std::string token_strip(const ProbeStep& s) {
    const std::map<int, Role> role = roles(s);
    std::ostringstream o;
    o << "<div class=\"strip\">";
    for (const ChunkView& cv : s.chunks) {
        o << "<div class=\"group\" data-chunk=\"" << chunk_id(cv.chunk) << "\"><span class=\"gl\">" << cv.chunk << "</span>";
        for (int t = cv.begin; t < cv.end; ++t) {
            const int tok = s.tokens[static_cast<size_t>(t)];
            auto it = role.find(t);
            if (it == role.end()) {
                o << "<span class=\"tok\" title=\"t=" << t << "\">" << tok << "</span> ";
                continue;
            }
            const Role& r = it->second;
            o << "<span class=\"tok " << r.css << " p" << r.pair << "\"" << query_link(s, r.pair) << " title=\"t=" << t << ", "
              << escape(r.tag) << " (" << r.css << " of pair " << r.pair << "), token " << tok << "\">" << escape(r.tag) << ":" << tok
              << "</span> ";
        }
        o << "</div> ";
    }
    o << "</div>";
    return o.str();
}

std::string verdict_list(const ProbeResult& r) {
    std::ostringstream o;
    o << "<ul class=\"verdicts\">";
    std::istringstream lines(probe::format_verdicts_text(r));
    std::string line, item;
    auto flush = [&]() {
        if (item.empty()) return;
        const bool fails = item.find(": FAILS") != std::string::npos;
        const size_t why = item.find(" why: ");
        std::string head = escape(item.substr(0, why)), rest = why == std::string::npos ? "" : escape(item.substr(why + 1));
        o << "<li class=\"" << (fails ? "fails" : "holds") << "\">" << head;
        if (!rest.empty()) o << "<details><summary>why</summary><span class=\"why\">" << rest << "</span></details>";
        o << "</li>";
        item.clear();
    };
    while (std::getline(lines, line)) {
        const size_t text = line.find_first_not_of(' ');
        if (text == 0) flush();  // a verdict starts at the margin; its why and continuations are indented
        item += (item.empty() ? "" : " ") + (text == std::string::npos ? std::string() : line.substr(text));
    }
    flush();
    o << "</ul>";
    return o.str();
}

// The chunk's tokens as a table: position, role, x_t, and V_t decoded for both targets.
std::string token_table(const ProbeStep& s, const ChunkView& cv) {
    const std::map<int, Role> role = roles(s);
    const bool decoded = !s.decoded[0].empty();
    const size_t li = decoded ? static_cast<size_t>(probe::decoded_layer(s)) : 0;
    std::ostringstream o;
    o << "<table class=\"tokens\"><tr><th>t</th>";
    for (int t = cv.begin; t < cv.end; ++t) o << "<td>" << t << "</td>";
    o << "</tr><tr><th>role</th>";
    for (int t = cv.begin; t < cv.end; ++t) {
        auto it = role.find(t);
        if (it == role.end()) o << "<td></td>";
        else o << "<td class=\"" << it->second.css << " p" << it->second.pair << "\"" << query_link(s, it->second.pair) << ">"
               << escape(it->second.tag) << "</td>";
    }
    o << "</tr><tr><th>x_t</th>";
    for (int t = cv.begin; t < cv.end; ++t) o << "<td>" << s.tokens[static_cast<size_t>(t)] << "</td>";
    o << "</tr>";
    if (decoded) {
        const char* names[2] = {"V_t", "V0_t"};
        for (int ti = 0; ti < 2; ++ti) {
            o << "<tr><th title=\"" << (ti == 0 ? "Learned" : "Offset-0") << ": the token whose logit V_t of layer " << s.ttt_layers[li]
              << " moves most (-: lowers it)\">" << names[ti] << "</th>";
            for (int t = cv.begin; t < cv.end; ++t) {
                const probe::DecodedTarget& d = s.decoded[ti][li][static_cast<size_t>(t)];
                // Green: the learned target raises the next token; orange: a target moves the token itself.
                const bool ahead = ti == 0 && t + 1 < cv.end && d.moved == s.tokens[static_cast<size_t>(t + 1)] && d.moved_score > 0;
                const bool self = d.moved == s.tokens[static_cast<size_t>(t)];
                std::string tip;
                for (size_t k = 0; k < d.top.size(); ++k) tip += cat(k ? ", " : "", d.top[k], " (", fmt(d.score[k], "%.3g"), ")");
                o << "<td class=\"" << (ahead ? "ahead" : self ? "self" : "") << "\" title=\"moves " << d.moved << " by "
                  << escape(fmt(d.moved_score, "%+.3g")) << "; raises most: " << escape(tip) << "; ||V_t|| " << escape(fmt(d.norm, "%.3g"))
                  << "\">" << (d.moved_score < 0 ? "-" : "") << d.moved << "</td>";
            }
            o << "</tr>";
        }
    }
    o << "</table>";
    return o.str();
}

std::string key_cell(const KeyReadout& k) {
    if (k.stored_chunk < 0) return "<td class=\"dim\">never stored (a chunk edge splits the pair)</td>";
    if (!k.stored) return cat("<td class=\"dim\">stored by chunk ", k.stored_chunk, "</td>");
    if (k.right()) return cat("<td class=\"ok\">", k.top, " right (", escape(fmt(k.readout_value, "%+.3g")), ")</td>");
    return cat("<td class=\"wrong\">", k.top, " wrong (v", k.pair, " ranks ", k.value_rank, ")</td>");
}

std::string keys_table(const ProbeStep& s, const ChunkView& cv) {
    if (cv.view[0].keys.empty()) return "";
    std::ostringstream o;
    o << "<h3>What each key retrieves after chunks 0.." << cv.chunk << "</h3><p class=\"note\">the top token of e_w.(eta S_"
      << cv.chunk + 1 << ") z_q summed over the TTT layers: what the fast weight answers when the query's features ask it</p>";
    o << "<table class=\"keys\"><tr><th>key</th><th>stored in</th><th>Learned</th><th>Offset-0</th></tr>";
    for (size_t i = 0; i < cv.view[0].keys.size(); ++i) {
        const KeyReadout& k = cv.view[0].keys[i];
        o << "<tr class=\"p" << k.pair << "\"" << query_link(s, k.pair) << "><td>k" << k.pair << ":" << k.key << " &#8594; v" << k.pair
          << ":" << k.value << "</td><td>" << (k.stored_chunk < 0 ? std::string("-") : cat("chunk ", k.stored_chunk)) << "</td>"
          << key_cell(k) << key_cell(cv.view[1].keys[i]) << "</tr>";
    }
    o << "</table>";
    return o.str();
}

std::string queries_table(const ProbeStep& s, const ChunkView& cv) {
    const std::vector<QueryChunkView>& a = cv.view[0].queries;
    if (a.empty()) return "<p>No query after this chunk: its update reaches only tokens past the sequence.</p>";
    std::ostringstream o;
    o << "<h3>The queries after chunk " << cv.chunk << ", with chunks 0.." << cv.chunk << " applied</h3>";
    o << "<table class=\"queries\"><tr><th>query</th><th>answer</th><th>Learned rank</th><th>dl(v*)</th><th></th>"
         "<th>Offset-0 rank</th><th>dl(v*)</th><th></th></tr>";
    for (size_t k = 0; k < a.size(); ++k) {
        const ProbeQuery* pq = nullptr;
        for (const ProbeQuery& q : s.queries)
            if (q.position == a[k].position) pq = &q;
        const int pair = pq ? pq->pair : -1;
        o << "<tr class=\"p" << pair << "\"" << query_link(s, pair) << "><td>?" << pair << " q=" << a[k].position << "</td><td>v" << pair
          << ":" << a[k].correct << "</td>";
        for (int ti = 0; ti < 2; ++ti) {
            const QueryChunkView& q = cv.view[ti].queries[k];
            o << "<td>" << q.rank_before << " &#8594; " << q.rank_after << "</td><td>" << escape(fmt(q.dl_correct, "%+.3g")) << "</td><td class=\""
              << (q.right() ? "ok\">right" : "wrong\">wrong") << "</td>";
        }
        o << "</tr>";
    }
    o << "</table>";
    return o.str();
}

// Columns of a chunk's heatmap: every answer (pair order), then the tokens this
// chunk's update moved most at its queries.
std::vector<int> heatmap_columns(const ProbeStep& s, const ChunkView& cv, int extra) {
    std::vector<const ProbeQuery*> by_pair;
    for (const ProbeQuery& q : s.queries) by_pair.push_back(&q);
    std::stable_sort(by_pair.begin(), by_pair.end(), [](const ProbeQuery* a, const ProbeQuery* b) { return a->pair < b->pair; });
    std::vector<int> cols;
    for (const ProbeQuery* q : by_pair)
        if (std::find(cols.begin(), cols.end(), q->correct) == cols.end()) cols.push_back(q->correct);
    std::vector<std::pair<double, int>> moved;
    for (int w = 0; w < s.vocab; ++w) {
        if (std::find(cols.begin(), cols.end(), w) != cols.end()) continue;
        double m = 0;
        for (int ti = 0; ti < 2; ++ti)
            for (const QueryChunkView& q : cv.view[ti].queries) m = std::max(m, std::fabs(q.dl[static_cast<size_t>(w)]));
        moved.push_back({-m, w});
    }
    std::sort(moved.begin(), moved.end());
    for (int i = 0; i < extra && i < static_cast<int>(moved.size()); ++i) cols.push_back(moved[static_cast<size_t>(i)].second);
    return cols;
}

std::string heatmap(const ProbeStep& s, const ChunkView& cv, int ti, const std::vector<int>& cols, double scale) {
    std::ostringstream o;
    o << "<table class=\"heat\"><tr><th>" << probe::probe_target_title(probe::kProbeTargets[ti]) << "</th>";
    for (int w : cols) {
        int pair = -1;
        for (const ProbeQuery& q : s.queries)
            if (q.correct == w) pair = q.pair;
        o << "<th" << (pair >= 0 ? cat(" class=\"p", pair, "\"") : std::string()) << ">"
          << (pair >= 0 ? cat("v", pair, ":", w) : std::to_string(w)) << "</th>";
    }
    o << "</tr>";
    for (const QueryChunkView& q : cv.view[ti].queries) {
        const ProbeQuery* pq = nullptr;
        for (const ProbeQuery& x : s.queries)
            if (x.position == q.position) pq = &x;
        const int pair = pq ? pq->pair : -1;
        o << "<tr class=\"p" << pair << "\"" << query_link(s, pair) << "><th>?" << pair << "</th>";
        for (int w : cols) {
            const double v = q.dl[static_cast<size_t>(w)];
            o << "<td style=\"background:" << diverging(v, scale) << "\" title=\"?" << pair << " q=" << q.position << ", token " << w
              << ": dl " << escape(fmt(v, "%+.4g")) << "\">" << escape(fmt(v, std::fabs(v) >= 9.95 ? "%.0f" : "%.1f")) << "</td>";
        }
        o << "</tr>";
    }
    o << "</table>";
    return o.str();
}

std::string chunk_panel(const ProbeStep& s, const ChunkView& cv, double scale) {
    std::ostringstream o;
    o << "<section class=\"panel chunk-panel\" id=\"" << chunk_id(cv.chunk) << "\">";
    o << "<h2>Chunk " << cv.chunk << " of " << s.chunks.size() << ": positions " << cv.begin << "-" << cv.end - 1 << "</h2>";
    o << "<p class=\"note\">||eta dW_" << cv.chunk << "||_F:";
    for (int ti = 0; ti < 2; ++ti) {
        o << " " << probe::probe_target_title(probe::kProbeTargets[ti]) << " ";
        for (size_t li = 0; li < s.ttt_layers.size(); ++li)
            o << (li ? ", " : "") << "layer " << s.ttt_layers[li] << " " << escape(fmt(cv.view[ti].update_norm[li], "%.3g"))
              << (cv.view[ti].clipped[li] ? cat(" (clipped from ", escape(fmt(cv.view[ti].update_norm_unclipped[li], "%.3g")), ")") : "");
        o << (ti == 0 ? ";" : "");
    }
    o << ". V_t: the token each target vector moves most through the output head (largest |e_w.V_t|, - when it lowers it); "
         "green: the learned target raises the next token x_{t+1}, orange: a target moves the token x_t itself.</p>";
    o << "<div class=\"scroll\">" << token_table(s, cv) << "</div>";
    o << "<div class=\"cols\"><div>" << keys_table(s, cv) << queries_table(s, cv) << "</div>";
    if (!cv.view[0].queries.empty()) {
        const std::vector<int> cols = heatmap_columns(s, cv, 6);
        o << "<div><h3>Logit changes from chunk " << cv.chunk << "'s update alone</h3><p class=\"note\">dl_" << cv.chunk
          << "(w) at every query after it: the answers v_j, then the tokens it moved most (one colour scale for every chunk, "
             "|dl| up to "
          << escape(fmt(scale, "%.3g")) << ")</p>" << heatmap(s, cv, 0, cols, scale) << heatmap(s, cv, 1, cols, scale) << "</div>";
    }
    o << "</div></section>";
    return o.str();
}

std::string query_panel(const ProbeStep& s, const ProbeQuery& q) {
    std::ostringstream o;
    o << "<section class=\"panel query-panel\" id=\"" << query_id(q.pair) << "\">";
    o << "<h2>Query ?" << q.pair << "</h2><p>q=" << q.position << " (chunk " << q.chunk << "), answer v" << q.pair << ":" << q.correct;
    if (q.key_position >= 0) o << "; its key k" << q.pair << " at t*=" << q.key_position << " (chunk " << q.key_position / s.chunk << ")";
    if (q.value_position >= 0) o << ", its value at " << q.value_position << " (chunk " << q.value_position / s.chunk << ")";
    o << ".";
    int became_right = -1;
    for (const ChunkView& cv : s.chunks)
        for (const QueryChunkView& x : cv.view[0].queries)
            if (x.position == q.position && x.right() && x.rank_before != 1 && became_right < 0) became_right = cv.chunk;
    if (became_right >= 0)
        o << " With the learned target it is answered right from chunk <a href=\"#" << chunk_id(became_right)
          << "\" data-chunk=\"" << chunk_id(became_right) << "\">" << became_right << "</a>'s update on.";
    o << "</p><p class=\"note\">dl(v*) from each chunk's update alone (blue Learned, red Offset-0):</p>" << query_bars_svg(s, q);
    o << "</section>";
    return o.str();
}

const char* kStyle = R"(
body { font: 13px/1.35 sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #20384f; color: #fff; padding: 6px 14px; }
header h1 { font-size: 17px; margin: 0; }
header p { margin: 2px 0 0; font-size: 11.5px; color: #d8e2ec; }
main { display: grid; grid-template-columns: 360px minmax(0, 1fr); gap: 10px; padding: 8px 12px; align-items: start; }
aside { display: grid; gap: 8px; }
.steps { display: grid; gap: 8px; min-width: 0; }
h2 { font-size: 14px; margin: 2px 0 4px; }
h3 { font-size: 12.5px; margin: 6px 0 2px; }
.card, .panel { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 5px 9px; }
.chart { width: 100%; height: auto; display: block; }
.chart text { font-size: 10px; fill: #444; }
.axis { stroke: #999; stroke-width: 1; }
.band { fill: #000; fill-opacity: 0; cursor: pointer; }
.band:hover { fill-opacity: 0.05; }
.band.on { fill: #f5b041; fill-opacity: 0.3; }
.legend, .note { font-size: 11px; color: #555; margin: 2px 0; }
.sw { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin: 0 3px 0 8px; }
.sw.lm { background: #1f77b4; } .sw.rc { background: #d62728; }
.verdicts { font: 10.5px/1.3 monospace; margin: 0; padding-left: 14px; }
.verdicts li { margin-bottom: 3px; }
.verdicts .holds { color: #1b6e20; } .verdicts .fails { color: #a11; }
.verdicts .why { color: #555; } .verdicts summary { cursor: pointer; color: #555; }
.strip { font: 10.5px monospace; line-height: 1.85; margin: 2px 0; }
.group { padding: 2px 1px; border-left: 2px solid #aaa; cursor: pointer; }
.group.on { background: #fbd9a5; }
.gl { font-size: 9px; color: #888; vertical-align: super; margin: 0 2px; }
.tok { padding: 0 1px; border-radius: 2px; }
.key { background: #a5d6a7; } .value { background: #c8e6c9; } .query { background: #ffcc80; } .answer { background: #ffe0b2; }
.key, .value, .query, .answer { cursor: pointer; }
.qsel { outline: 2px solid #c0392b; }
nav { margin: 0; }
nav button { font: 11.5px monospace; margin: 1px; padding: 1px 5px; border: 1px solid #bbb; background: #fff; border-radius: 3px; cursor: pointer; }
nav button.on { background: #20384f; color: #fff; }
.chunk-panel, .query-panel { display: none; }
.chunk-panel.on, .query-panel.on { display: block; }
.cols { display: grid; grid-template-columns: minmax(0, 0.9fr) minmax(0, 1.1fr); gap: 10px; }
.cols > div { min-width: 0; overflow-x: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font: 10.5px monospace; }
th, td { border: 1px solid #e2e2e2; padding: 0 3px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; }
.tokens td { padding: 0 2px; }
.tokens td.ahead { background: #a5d6a7; } .tokens td.self { background: #ffcc80; }
.ok { color: #1b6e20; } .wrong { color: #a11; font-weight: bold; } .dim { color: #999; }
.heat { margin-bottom: 5px; } .heat td { min-width: 26px; }
tr.qsel { outline: 2px solid #c0392b; }
)";

// Shows one chunk panel and one query panel: a click on anything with
// data-chunk / data-query (or an href="#id") chooses it; arrow keys step chunks.
const char* kScript = R"(
(function () {
  var chunks = Array.prototype.slice.call(document.querySelectorAll('.chunk-panel'));
  var chunk = null, query = null;
  function mark(attr, id) {
    document.querySelectorAll('[' + attr + ']').forEach(function (e) {
      e.classList.toggle(attr === 'data-chunk' ? 'on' : 'qsel', e.getAttribute(attr) === id);
    });
  }
  function showChunk(id) {
    if (!document.getElementById(id)) return;
    chunk = id;
    chunks.forEach(function (p) { p.classList.toggle('on', p.id === id); });
    mark('data-chunk', id);
  }
  function showQuery(id) {
    if (!document.getElementById(id)) return;
    query = id;
    document.querySelectorAll('.query-panel').forEach(function (p) { p.classList.toggle('on', p.id === id); });
    mark('data-query', id);
  }
  function step(by) {
    var i = chunks.findIndex(function (p) { return p.id === chunk; });
    var next = chunks[Math.min(chunks.length - 1, Math.max(0, i + by))];
    if (next) showChunk(next.id);
  }
  document.addEventListener('click', function (e) {
    var q = e.target.closest('[data-query]');
    var c = e.target.closest('[data-chunk]');
    if (q) showQuery(q.getAttribute('data-query'));
    if (c) showChunk(c.getAttribute('data-chunk'));
    if (q || c) e.preventDefault();
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowRight' || e.key === 'n') step(1);
    if (e.key === 'ArrowLeft' || e.key === 'p') step(-1);
  });
  // report.html?chunk-3&query-5 opens on that chunk and query (a #fragment would scroll to the panel).
  var asked = (location.search || '').slice(1).split('&');
  function start(prefix, fallback) {
    var id = asked.filter(function (a) { return a.indexOf(prefix) === 0; })[0];
    return id && document.getElementById(id) ? id : document.body.getAttribute(fallback);
  }
  showChunk(start('chunk-', 'data-first-chunk'));
  showQuery(start('query-', 'data-first-query'));
})();
)";

}  // namespace

std::string format_report(const ProbeRun& run) {
    const ProbeResult& r = run.summary;
    const ProbeStep& s = run.step;
    ITTT_CHECK(!s.chunks.empty(), "html report: the run has no chunk");
    // One colour scale for every chunk's heatmap, so chunks compare by eye.
    double scale = 1e-12;
    for (const ChunkView& cv : s.chunks)
        for (int ti = 0; ti < 2; ++ti)
            for (const QueryChunkView& q : cv.view[ti].queries)
                for (int w : heatmap_columns(s, cv, 6)) scale = std::max(scale, std::fabs(q.dl[static_cast<size_t>(w)]));
    // Open on the chunk that stores the first pair, and on that pair's query.
    std::vector<const ProbeQuery*> by_pair;
    for (const ProbeQuery& q : s.queries) by_pair.push_back(&q);
    std::stable_sort(by_pair.begin(), by_pair.end(), [](const ProbeQuery* a, const ProbeQuery* b) { return a->pair < b->pair; });
    const int first_chunk = !by_pair.empty() && by_pair.front()->key_position >= 0 ? by_pair.front()->key_position / s.chunk : 0;
    const probe::ProbeTargetSummary& lm = r.target(ProbeTarget::Learned);
    const probe::ProbeTargetSummary& rc = r.target(ProbeTarget::Offset0);

    std::ostringstream o;
    o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>";
    o << "<title>ittt step: " << escape(r.checkpoint.empty() ? std::string("model") : r.checkpoint) << ", "
      << escape(r.options.task.describe()) << "</title><style>" << kStyle << "</style></head>";
    o << "<body data-first-chunk=\"" << chunk_id(first_chunk) << "\" data-first-query=\""
      << (by_pair.empty() ? std::string() : query_id(by_pair.front()->pair)) << "\">";
    o << "<header><h1>ittt step: what the fast weight holds, chunk by chunk</h1><p>"
      << escape(cat(r.checkpoint.empty() ? std::string("model") : r.checkpoint, ": vocab ", r.vocab, ", TTT layers "))
      << escape([&] {
             std::string l;
             for (size_t i = 0; i < r.ttt_layers.size(); ++i) l += (i ? "," : "") + std::to_string(r.ttt_layers[i]);
             return l;
         }())
      << escape(cat(", chunk C = ", r.chunk, ", eta = ", fmt(r.eta), ". Task ", r.options.task.describe(), ", n = ", r.options.seq_len,
                    " (", r.chunks, " chunks), sequence ", s.example, " shown; ", r.options.examples,
                    " sequences in the summary. Accuracy without -> with the updates: Learned ", fmt(100 * lm.accuracy_before, "%.0f"),
                    "% -> ", fmt(100 * lm.accuracy_after, "%.0f"), "%, Offset-0 ", fmt(100 * rc.accuracy_before, "%.0f"), "% -> ",
                    fmt(100 * rc.accuracy_after, "%.0f"), "%."))
      << "</p></header><main>";
    o << "<aside><div class=\"card\"><h2>The staircase</h2>" << staircase_svg(r) << "</div>";
    o << "<div class=\"card\"><h2>Conv taps of the target V = Conv1D(S) P</h2>" << taps_svg(r) << "</div>";
    o << "<div class=\"card\"><h2>Verdicts (a heuristic on a trained model)</h2>" << verdict_list(r)
      << "<p class=\"note\">Why a bound fails on a trained model: docs/theory.md section 7.3.</p></div></aside><div class=\"steps\">";
    o << "<section class=\"card\"><h2>Sequence " << s.example
      << ": click a chunk, or a marked token (k key, v value, ? query, a answer; the number is the pair)</h2>" << token_strip(s)
      << "</section>";
    o << "<nav class=\"chunks\">chunk:";
    for (const ChunkView& cv : s.chunks) o << " <button type=\"button\" data-chunk=\"" << chunk_id(cv.chunk) << "\">" << cv.chunk << "</button>";
    o << " <span class=\"note\">(or the arrow keys)</span></nav>";
    if (!by_pair.empty()) {
        o << "<nav class=\"queries\">query:";
        for (const ProbeQuery* q : by_pair)
            o << " <button type=\"button\" data-query=\"" << query_id(q->pair) << "\">?" << q->pair << " &#8594; v" << q->pair << ":" << q->correct
              << "</button>";
        o << "</nav>";
    }
    for (const ChunkView& cv : s.chunks) o << chunk_panel(s, cv, scale);
    for (const ProbeQuery* q : by_pair) o << query_panel(s, *q);
    o << "</div></main><script>" << kScript << "</script></body></html>\n";
    return o.str();
}

}  // namespace ittt::html
