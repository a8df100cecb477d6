// probe_text.cpp: the model mode's text: the summary and the chunk pages (full,
// compact, one query). Every line is written to fit an 80-column terminal (79
// columns: the pager keeps the last one free); see model_probe.h.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "driver/model_probe.h"
#include "driver/text_format.h"
#include "runtime/error.h"

namespace ittt::probe {

using text::fmt;
using text::pad;
using text::wrap;

namespace {

constexpr size_t kWidth = 79;  // the widest line of a page

const ChunkView& chunk_at(const ProbeStep& s, int chunk) {
    ITTT_CHECK(chunk >= 0 && chunk < static_cast<int>(s.chunks.size()), "chunk page: chunk ", chunk, " outside [0, ",
               s.chunks.size(), ")");
    return s.chunks[static_cast<size_t>(chunk)];
}

// "v0:38" for token 38 when it is pair 0's value, else "38".
std::string value_name(const ProbeStep& s, int pair, int token) {
    return pair >= 0 && s.query_of_pair(pair) ? cat("v", pair, ":", token) : std::to_string(token);
}

// The pair whose value a token is, among the shown sequence's queries (-1: none).
int pair_of_value(const ProbeStep& s, int token) {
    for (const ProbeQuery& q : s.queries)
        if (q.correct == token) return q.pair;
    return -1;
}

// A token as the pages name it: "v3:45" when it is a stored value, else its id.
std::string token_name(const ProbeStep& s, int token) { return value_name(s, pair_of_value(s, token), token); }

std::string layer_list(const ProbeStep& s, const std::vector<double>& norms, const std::vector<double>& unclipped,
                       const std::vector<int>& clipped) {
    std::string out;
    for (size_t li = 0; li < s.ttt_layers.size(); ++li) {
        out += cat(li ? ", " : "", "L", s.ttt_layers[li], " ", fmt(norms[li], "%.3g"));
        if (clipped[li]) out += cat(" (was ", fmt(unclipped[li], "%.3g"), ")");
    }
    return out;
}

// How many positions of [begin, end) have a V_t that moves the token `shift` ahead
// most (1: x_{t+1}, the look-ahead; 0: x_t itself), raising it (sign +1) or
// lowering it (-1), and how many positions could.
std::pair<int, int> decoded_matches(const ProbeStep& s, int ti, int begin, int end, int shift, int sign) {
    const std::vector<std::vector<DecodedTarget>>& d = s.decoded[ti];
    if (d.empty()) return {0, 0};
    const std::vector<DecodedTarget>& layer = d[static_cast<size_t>(decoded_layer(s))];
    int hits = 0, count = 0;
    for (int t = begin; t + shift < end; ++t) {  // the conv stops at the chunk's edge
        const DecodedTarget& x = layer[static_cast<size_t>(t)];
        ++count;
        hits += x.moved == s.tokens[static_cast<size_t>(t + shift)] && x.moved_score * sign > 0;
    }
    return {hits, count};
}

std::string title_line(const ProbeStep& s, const ChunkView& cv) {
    return cat("chunk ", cv.chunk, " of ", s.chunks.size(), " (positions ", cv.begin, "-", cv.end - 1, "), sequence ", s.example,
               ": ", s.task.describe());
}

// The header every view shares: title, token grid, what V_t decodes to, the update
// norms. The compact one leaves out the task (the summary has it) and the legend.
std::string header_text(const ProbeStep& s, int chunk, bool legend) {
    const ChunkView& cv = chunk_at(s, chunk);
    std::string o = legend ? wrap(title_line(s, cv), kWidth)
                           : cat("chunk ", cv.chunk, " of ", s.chunks.size(), " (positions ", cv.begin, "-", cv.end - 1, "), sequence ",
                                 s.example, "\n");
    if (legend) {
        o += wrap(cat("k key, v value, ? query, a answer (of pair j); V_t: the token whose logit the Learned target V_t of ",
                      "layer ", s.ttt_layers.empty() ? 0 : s.ttt_layers[static_cast<size_t>(decoded_layer(s))],
                      " moves most (largest |e_w.V_t|; -: lowers it); V0_t: the same for Offset-0"),
                  kWidth);
    }
    o += format_token_grid(s, cv.begin, cv.end);
    if (!s.decoded[0].empty()) {
        const std::pair<int, int> ahead = decoded_matches(s, 0, cv.begin, cv.end, 1, +1);
        const std::pair<int, int> raise = decoded_matches(s, 1, cv.begin, cv.end, 0, +1);
        const std::pair<int, int> lower = decoded_matches(s, 1, cv.begin, cv.end, 0, -1);
        o += wrap(cat("V_t raises x_{t+1} at ", ahead.first, " of ", ahead.second, "; V0_t lowers x_t at ", lower.first, " of ",
                      lower.second, " (raises it at ", raise.first, ")"),
                  kWidth);
    }
    const ChunkTargetView& a = cv.view[0];
    const ChunkTargetView& b = cv.view[1];
    o += wrap(cat("||eta dW_", cv.chunk, "||_F  Learned: ", layer_list(s, a.update_norm, a.update_norm_unclipped, a.clipped),
                  "  Offset-0: ", layer_list(s, b.update_norm, b.update_norm_unclipped, b.clipped)),
              kWidth, "", "    ");
    bool any_clipped = false;
    for (size_t li = 0; li < s.ttt_layers.size(); ++li) any_clipped |= a.clipped[li] || b.clipped[li];
    if (any_clipped) o += cat("  (was X: ttt_clip_tau = ", fmt(s.clip_tau), " clipped this update down from ||eta dW||_F = X)\n");
    return o;
}

int right_count(const std::vector<QueryChunkView>& queries) {
    int n = 0;
    for (const QueryChunkView& q : queries) n += q.right();
    return n;
}

int stored_right(const std::vector<KeyReadout>& keys, int& stored) {
    int n = 0;
    stored = 0;
    for (const KeyReadout& k : keys) {
        stored += k.stored;
        n += k.right();
    }
    return n;
}

// One key's readout in a table cell: "38 right +10.6", "61 wrong, v0 #40", "(chunk 4)".
std::string key_cell(const ProbeStep& s, const KeyReadout& k) {
    if (k.stored_chunk < 0) return "never stored (chunk edge)";
    if (!k.stored) return cat("(stored by chunk ", k.stored_chunk, ")");
    if (k.right()) return cat(token_name(s, k.top), " right ", fmt(k.readout_value, "%+.3g"));
    return cat(token_name(s, k.top), " wrong, v", k.pair, " #", k.value_rank);
}

std::string key_label(const KeyReadout& k) { return cat("k", k.pair, ":", k.key); }

std::string query_label(const QueryChunkView& q, const ProbeQuery* pq) {
    return pq ? cat("?", pq->pair, " q=", q.position) : cat("q=", q.position);
}

const ProbeQuery* probe_query_at(const ProbeStep& s, int position) {
    for (const ProbeQuery& q : s.queries)
        if (q.position == position) return &q;
    return nullptr;
}

std::string mark(bool right) { return right ? "right" : "WRONG"; }

// What every key retrieves after chunks 0..i, both targets (the full view).
std::string keys_table(const ProbeStep& s, const ChunkView& cv) {
    const std::vector<KeyReadout>& a = cv.view[0].keys;
    const std::vector<KeyReadout>& b = cv.view[1].keys;
    if (a.empty()) return "";
    int stored_a = 0, stored_b = 0;
    const int right_a = stored_right(a, stored_a), right_b = stored_right(b, stored_b);
    std::string o = "\n" + wrap(cat("what each key retrieves from the fast weight after chunks 0..", cv.chunk,
                                    ": the top token of e_w.(eta S_", cv.chunk + 1, ") z_q, summed over the TTT layers (",
                                    right_a, " of ", stored_a, " stored keys right; Offset-0 ", right_b, " of ", stored_b, ")"),
                               kWidth);
    o += pad("  key", 12) + pad("stored in", 11) + pad("Learned", 28) + "Offset-0\n";
    for (size_t i = 0; i < a.size(); ++i)
        o += pad("  " + key_label(a[i]), 12) + pad(a[i].stored_chunk < 0 ? "-" : cat("chunk ", a[i].stored_chunk), 11) +
             pad(key_cell(s, a[i]), 28) + key_cell(s, b[i]) + "\n";
    return o;
}

// Every query after the chunk with its right/wrong mark, both targets (the full view).
std::string queries_table(const ProbeStep& s, const ChunkView& cv) {
    const std::vector<QueryChunkView>& a = cv.view[0].queries;
    const std::vector<QueryChunkView>& b = cv.view[1].queries;
    std::string o = "\n" + wrap(cat("the queries after chunk ", cv.chunk, ", with chunks 0..", cv.chunk, " applied: Learned ",
                                    right_count(a), " of ", a.size(), " right, Offset-0 ", right_count(b), " of ", b.size(),
                                    " (rank of v* before -> after this chunk's update, dl(v*) from it)"),
                               kWidth);
    o += pad("  query", 13) + pad("answer", 9) + pad("Learned", 28) + "Offset-0\n";
    auto cell = [](const QueryChunkView& q) {
        return pad(cat(q.rank_before, "->", q.rank_after), 8) + pad(fmt(q.dl_correct, "%+.3g"), 10) + mark(q.right());
    };
    for (size_t i = 0; i < a.size(); ++i) {
        const ProbeQuery* pq = probe_query_at(s, a[i].position);
        o += pad("  " + query_label(a[i], pq), 13) + pad(value_name(s, pq ? pq->pair : -1, a[i].correct), 9) +
             pad(cell(a[i]), 28) + cell(b[i]) + "\n";
    }
    return o;
}

// Pairs of entries side by side in two columns of 38.
std::string two_columns(const std::vector<std::string>& cells) {
    std::string o;
    for (size_t i = 0; i < cells.size(); i += 2)
        o += "  " + (i + 1 < cells.size() ? pad(cells[i], 39) + cells[i + 1] : cells[i]) + "\n";
    return o;
}

// The compact view's body: keys and query marks for the learned target in two
// columns, the offset-0 target's counts in the captions.
std::string compact_body(const ProbeStep& s, const ChunkView& cv) {
    std::string o;
    const std::vector<KeyReadout>& keys = cv.view[0].keys;
    if (!keys.empty()) {
        int stored = 0, stored0 = 0;
        const int right = stored_right(keys, stored), right0 = stored_right(cv.view[1].keys, stored0);
        o += cat("keys -> what the fast weight returns: ", right, "/", stored, " stored right (Offset-0 ", right0, "/", stored0,
                 ")\n");
        std::vector<std::string> cells;
        for (const KeyReadout& k : keys) cells.push_back(pad(key_label(k), 8) + " " + key_cell(s, k));
        o += two_columns(cells);
    }
    const std::vector<QueryChunkView>& q = cv.view[0].queries;
    if (q.empty()) return o + "no query after this chunk: its update reaches only tokens past the sequence\n";
    o += cat("queries: ", right_count(q), "/", q.size(), " right (Offset-0 ", right_count(cv.view[1].queries), "/",
             cv.view[1].queries.size(), "); rank of v* after, dl(v*) from chunk ", cv.chunk, "\n");
    std::vector<std::string> cells;
    for (const QueryChunkView& v : q) {
        const ProbeQuery* pq = probe_query_at(s, v.position);
        cells.push_back(pad(query_label(v, pq), 10) + pad(value_name(s, pq ? pq->pair : -1, v.correct), 7) +
                        pad(cat("#", v.rank_after), 4) + pad(fmt(v.dl_correct, "%+.1f"), 7, true) + " " + mark(v.right()));
    }
    return o + two_columns(cells);
}

// One query in detail, both targets side by side.
std::string query_block(const ProbeStep& s, const ChunkView& cv, size_t k) {
    const QueryChunkView* v[2] = {&cv.view[0].queries[k], &cv.view[1].queries[k]};
    const ProbeQuery* pq = probe_query_at(s, v[0]->position);
    std::ostringstream o;
    std::string caption = cat("query ", pq ? cat("?", pq->pair, " ") : std::string(), "q=", v[0]->position);
    if (pq) {
        caption += cat(" (chunk ", pq->chunk, "), answer ", value_name(s, pq->pair, pq->correct));
        if (pq->key_position >= 0) caption += cat(", key k", pq->pair, " at t*=", pq->key_position);
        if (pq->value_position >= 0) caption += cat(", value at ", pq->value_position, " (chunk ", pq->value_position / s.chunk, ")");
    }
    o << "\n" << wrap(caption, kWidth);
    const size_t wl = 30, wc = 24;  // 78 columns
    auto row = [&](const std::string& label, const std::string& a, const std::string& b) {
        o << pad("  " + label, wl) << pad(" " + a, wc, true) << pad(" " + b, wc, true) << "\n";
    };
    auto both = [&](auto get) { return std::make_pair(get(*v[0]), get(*v[1])); };
    row("", probe_target_title(ProbeTarget::Learned), probe_target_title(ProbeTarget::Offset0));
    auto p = both([](const QueryChunkView& x) { return fmt(x.logit_before) + " -> " + fmt(x.logit_after); });
    row("logit(v*) before -> after", p.first, p.second);
    p = both([](const QueryChunkView& x) { return cat(x.rank_before, " -> ", x.rank_after); });
    row("rank(v*) before -> after", p.first, p.second);
    p = both([](const QueryChunkView& x) { return mark(x.right()); });
    row("v* on top after", p.first, p.second);
    p = both([](const QueryChunkView& x) { return fmt(x.dl_correct, "%+.4g"); });
    row(cat("dl(v*) from chunk ", cv.chunk), p.first, p.second);
    p = both([](const QueryChunkView& x) { return fmt(x.dl_other_maxabs); });
    row("max |dl(w)|, w != v*", p.first, p.second);
    p = both([](const QueryChunkView& x) { return fmt(x.dl_other_meanabs); });
    row("mean |dl(w)|, w != v*", p.first, p.second);
    p = both([](const QueryChunkView& x) { return fmt(x.dl_cumulative, "%+.4g"); });
    row(cat("dl(v*) from chunks 0..", cv.chunk), p.first, p.second);
    for (size_t li = 0; li < s.ttt_layers.size(); ++li) {
        p = both([&](const QueryChunkView& x) { return fmt(x.readout_correct[li], "%+.4g"); });
        row(cat("readout(v*), layer ", s.ttt_layers[li]), p.first, p.second);
    }
    p = both([&](const QueryChunkView& x) {
        std::string t;
        for (size_t i = 0; i < x.top.size(); ++i) t += (i ? " " : "") + (x.top[i] == x.correct ? cat(x.top[i], "*") : std::to_string(x.top[i]));
        return t;
    });
    row("top tokens (* = v*)", p.first, p.second);
    return o.str();
}

std::string full_body(const ProbeStep& s, const ChunkView& cv) {
    std::string o = keys_table(s, cv);
    if (cv.view[0].queries.empty()) return o + "\nno query after this chunk: its update reaches only tokens past the sequence\n";
    o += queries_table(s, cv);
    for (size_t k = 0; k < cv.view[0].queries.size(); ++k) o += query_block(s, cv, k);
    if (!s.ttt_layers.empty())
        o += "\n" + wrap("(readout(v*) = e_v*.(eta dW_i) z_q: the update's direct effect on v*'s logit, before later layers "
                         "and the final norm)",
                         kWidth, "", " ");
    return o;
}

std::string query_body(const ProbeStep& s, const ChunkView& cv, int pair) {
    const ProbeQuery* pq = s.query_of_pair(pair);
    std::string o;
    for (size_t i = 0; i < cv.view[0].keys.size(); ++i) {
        const KeyReadout& k = cv.view[0].keys[i];
        if (k.pair != pair) continue;
        o += "\n" + wrap(cat("key ", key_label(k), " at t*=", k.key_position,
                             k.stored_chunk >= 0 ? cat(", stored by chunk ", k.stored_chunk) : std::string(", split by a chunk edge"),
                             ": after chunks 0..", cv.chunk, " the fast weight returns ", key_cell(s, k), " (Offset-0: ",
                             key_cell(s, cv.view[1].keys[i]), ")"),
                         kWidth);
    }
    for (size_t k = 0; k < cv.view[0].queries.size(); ++k)
        if (cv.view[0].queries[k].position == pq->position) return o + query_block(s, cv, k);
    return o + "\n" + wrap(cat("chunk ", cv.chunk, "'s update cannot reach ?", pair, " (q=", pq->position, ", chunk ", pq->chunk,
                               "): a chunk's update is read only by later chunks"),
                           kWidth);
}

}  // namespace

int decoded_layer(const ProbeStep& s) {
    int best = 0;
    double most = -1;
    for (size_t li = 0; li < s.ttt_layers.size(); ++li) {
        double total = 0;
        for (const ChunkView& cv : s.chunks)
            if (li < cv.view[0].update_norm.size()) total += cv.view[0].update_norm[li];
        if (total > most) most = total, best = static_cast<int>(li);
    }
    return best;
}

std::string format_token_grid(const ProbeStep& s, int begin, int end) {
    const std::map<int, std::string> marks = marker_labels(s);
    const bool decoded = !s.decoded[0].empty();
    const size_t li = decoded ? static_cast<size_t>(decoded_layer(s)) : 0;
    // A target too small to store anything (the chunk's last position under a
    // +1-only conv) prints as "."; small means under 2% of the sequence's largest.
    double largest[2] = {0, 0};
    for (int ti = 0; decoded && ti < 2; ++ti)
        for (const DecodedTarget& d : s.decoded[ti][li]) largest[ti] = std::max(largest[ti], d.norm);
    auto decoded_cell = [&](int ti, int t) {
        const DecodedTarget& d = s.decoded[ti][li][static_cast<size_t>(t)];
        if (d.moved < 0 || d.norm <= 0.02 * largest[ti]) return std::string(".");
        return cat(d.moved_score < 0 ? "-" : "", d.moved);
    };
    size_t cell = 4;
    for (int t = begin; t < end; ++t) {
        cell = std::max(cell, 2 + std::to_string(s.tokens[static_cast<size_t>(t)]).size());  // room for "-"
        if (marks.count(t)) cell = std::max(cell, 1 + marks.at(t).size());
    }
    const size_t label = 11;  // "t=1234 V0_t"
    const int per_row = static_cast<int>(std::min<size_t>(16, (kWidth - label) / cell));
    std::string o;
    for (int row = begin; row < end; row += per_row) {
        const int stop = std::min(end, row + per_row);
        std::string roles, tokens, lm, rc;
        bool any_role = false;
        for (int t = row; t < stop; ++t) {
            const bool marked = marks.count(t) > 0;
            any_role |= marked;
            roles += pad(marked ? marks.at(t) : std::string(), cell, true);
            tokens += pad(std::to_string(s.tokens[static_cast<size_t>(t)]), cell, true);
            if (decoded) {
                lm += pad(decoded_cell(0, t), cell, true);
                rc += pad(decoded_cell(1, t), cell, true);
            }
        }
        const std::string at = pad(cat("t=", row), 6);
        if (any_role) o += at + pad("", label - 6) + roles + "\n";
        o += (any_role ? pad("", 6) : at) + pad("x_t", label - 6) + tokens + "\n";
        if (decoded) {
            o += pad("", 6) + pad("V_t", label - 6) + lm + "\n";
            o += pad("", 6) + pad("V0_t", label - 6) + rc + "\n";
        }
    }
    return o;
}

void validate_page_options(const ProbeStep& s, const PageOptions& o) {
    if (o.view != PageView::Query) return;
    if (s.query_of_pair(o.pair)) return;
    std::string have;
    for (const ProbeQuery& q : s.queries) have += cat(have.empty() ? "" : ", ", "?", q.pair);
    fail(cat("--query ", o.pair, ": sequence ", s.example, " has no query ?", o.pair, " (its queries: ",
             have.empty() ? std::string("none") : have, ")"));
}

std::string format_chunk_header(const ProbeStep& s, int chunk, const PageOptions& o) {
    return header_text(s, chunk, o.view != PageView::Compact);
}

std::string format_chunk_body(const ProbeStep& s, int chunk, const PageOptions& o) {
    const ChunkView& cv = chunk_at(s, chunk);
    switch (o.view) {
        case PageView::Compact: return compact_body(s, cv);
        case PageView::Query: validate_page_options(s, o); return query_body(s, cv, o.pair);
        case PageView::Full: break;
    }
    return full_body(s, cv);
}

std::string format_chunk_text(const ProbeStep& s, int chunk, const PageOptions& o) {
    return format_chunk_header(s, chunk, o) + format_chunk_body(s, chunk, o);
}

std::string format_step_text(const ProbeStep& s, const PageOptions& o) {
    std::string out;
    for (size_t i = 0; i < s.chunks.size(); ++i) out += (i ? "\n" : "") + format_chunk_text(s, static_cast<int>(i), o);
    return out;
}

// ---------------------------------------------------------------- the summary

namespace {

// Token w named for a reader: "0 (PAD)", "37 (upper half: values)".
std::string token_role(int w, int V) {
    const char* special[] = {"PAD", "BOS", "MAGIC", "IS"};
    if (w >= 0 && w < token::FIRST_ORDINARY) return cat(w, " (", special[w], ")");
    const int middle = token::FIRST_ORDINARY + (V - token::FIRST_ORDINARY) / 2;
    return cat(w, w < middle ? " (lower half: keys)" : " (upper half: values)");
}

const char* kWhere = "(docs/theory.md section 7.3)";

// Why a claim failed, from the measured numbers: one short paragraph per case.
std::string why_failed(const ProbeResult& r, ProbeTarget t, const char* claim) {
    const ProbeTargetSummary& s = r.target(t);
    const std::string claim_name = claim;
    if (t == ProbeTarget::Learned && claim_name == "correct")
        return cat("the bound is in the units of the direct readout; the real logit sees the update only through later ",
                   "layers and the final RMSNorm. In readout units: ", fmt(s.readout_correct_mean), " against ",
                   fmt(s.readout_correct.bound), " (", s.readout_correct.holds ? "holds" : "fails", ")");
    if (t == ProbeTarget::Learned && claim_name == "other")
        return cat("token ", token_role(s.dlogit_other_argmax, r.vocab), " moves by ", fmt(s.dlogit_other_argmax_mean, "%+.4g"),
                   " on average: the update shifts whole groups of logits through later layers and the final RMSNorm (mean |dl(w)| ",
                   fmt(s.dlogit_other_meanabs), " over w != v*), which a one-block bound in readout units leaves out; v* still ends ",
                   "on top at ", fmt(100 * s.accuracy_after, "%.0f"), "% of the queries");
    if (t == ProbeTarget::Learned && claim_name == "readout_correct")
        return cat("the theorem's assumptions are far off here: eps = ", fmt(r.eps), " and the other positions' features align ",
                   "with the query");
    if (t == ProbeTarget::Learned && claim_name == "readout_other")
        return cat("eps = ", fmt(r.eps), ": the output head's rows are far from orthogonal (the bound eta*eps*c_align is ",
                   "small only when every |e_a.e_b| is), so a stored value also moves the tokens whose rows are not orthogonal to ",
                   "it; the largest mean is token ", token_role(s.readout_other_argmax, r.vocab), ", ",
                   s.readout_other_argmax_mean < 0 ? "lowered" : "raised", " by ", fmt(std::fabs(s.readout_other_argmax_mean)), ", ",
                   fmt(s.readout_correct_mean / std::max(1e-300, s.readout_other_maxabs), "%.3g"), "x less than v*'s ",
                   fmt(s.readout_correct_mean, "%+.4g"));
    if (t == ProbeTarget::Offset0 && claim_name == "correct")
        return cat("|E[dl(v*)]| = ", fmt(s.correct.measured), " is below the typical change of any logit (mean |dl(w)| = ",
                   fmt(s.dlogit_other_meanabs), ", w != v*): the update moves every logit through later layers and the final ",
                   "RMSNorm, v* no more than the rest, so it does not help the answer (accuracy ", fmt(100 * s.accuracy_before, "%.0f"),
                   "% -> ", fmt(100 * s.accuracy_after, "%.0f"), "%), which is the theorem's point; in readout units: ",
                   fmt(std::fabs(s.readout_correct_mean)), " <= ", fmt(s.readout_correct.bound), " (",
                   s.readout_correct.holds ? "holds" : "fails", ")");
    return cat("the offset-0 target is (w_0 * e_{x_t})", r.learned_proj ? " P with a learned P" : " with learned w_0",
               ", not the theorem's e_{x_t}, and eps = ", fmt(r.eps), " is large");
}

std::string verdict_line(ProbeTarget t, const std::string& quantity, const theory::BoundCheck& c) {
    return cat(probe_target_title(t), ": ", quantity, " = ", fmt(c.measured), c.lower ? " >= " : " <= ", "bound ", fmt(c.bound), ": ",
               c.holds ? "holds" : "FAILS", " (margin ", fmt(c.margin, "%+.4g"), ", ratio ", fmt(c.ratio, "%.3g"), ")");
}

// The staircase as rows of at most 11 update limits, both targets.
std::string staircase_text(const ProbeResult& r) {
    const ProbeTargetSummary& a = r.target(ProbeTarget::Learned);
    const ProbeTargetSummary& b = r.target(ProbeTarget::Offset0);
    if (a.accuracy_by_limit.empty()) return "";
    std::string o = wrap(cat("the staircase, over all ", a.probes, " queries: x = chunk updates applied (0 = none, k = chunks ",
                             "0..k-1); accuracy = v* on top, dl = mean change of logit(v*)"),
                         kWidth);
    const size_t label = 13, cell = 7, per = (kWidth - label) / cell;
    auto short_number = [](double x) { return fmt(x, std::fabs(x) >= 10 ? "%.0f" : std::fabs(x) >= 1 ? "%.1f" : "%.2g"); };
    const size_t count = a.accuracy_by_limit.size();
    for (size_t start = 0; start < count; start += per) {
        const size_t stop = std::min(count, start + per);
        std::string x = pad("  x", label), acc = pad("  Learned  %", label), dl = pad("           dl", label),
                    acc0 = pad("  Offset-0 %", label), dl0 = pad("           dl", label);
        for (size_t k = start; k < stop; ++k) {
            x += pad(std::to_string(k), cell, true);
            acc += pad(fmt(100 * a.accuracy_by_limit[k], "%.0f"), cell, true);
            dl += pad(short_number(a.dlogit_by_limit[k]), cell, true);
            acc0 += pad(fmt(100 * b.accuracy_by_limit[k], "%.0f"), cell, true);
            dl0 += pad(short_number(b.dlogit_by_limit[k]), cell, true);
        }
        o += x + "\n" + acc + "\n" + dl + "\n" + acc0 + "\n" + dl0 + "\n";
    }
    return o;
}

std::string taps_text(const ProbeResult& r, size_t i) {
    if (i >= r.conv_taps.size()) return "";
    const size_t label = 21, cell = 10;
    std::string o = pad(cat("  conv taps, layer ", r.ttt_layers[i]), label);
    for (int off : r.conv_offsets) o += pad(cat(off > 0 ? "+" : "", off), cell, true);
    o += "\n";
    auto line = [&](const std::string& name, const std::vector<double>& v, const char* spec) {
        o += pad("    " + name, label);
        for (double x : v) o += pad(fmt(x, spec), cell, true);
        o += "\n";
    };
    line("mean |w|", r.conv_taps[i], "%.3g");
    line(r.learned_proj ? "mean w x P[c,c]" : "mean w", r.conv_taps_effective[i], "%+.2g");
    line(r.learned_proj ? "gain |diag(w)P|/vd" : "gain rms(w)", r.conv_taps_gain[i], "%.3g");
    return o;
}

}  // namespace

std::string format_verdicts_text(const ProbeResult& r) {
    const ProbeTargetSummary& lm = r.target(ProbeTarget::Learned);
    const ProbeTargetSummary& rc = r.target(ProbeTarget::Offset0);
    std::string o;
    auto verdict = [&](ProbeTarget t, const std::string& quantity, const theory::BoundCheck& c, const char* claim) {
        o += wrap(verdict_line(t, quantity, c), kWidth);
        if (!c.holds) o += wrap(why_failed(r, t, claim) + " " + kWhere, kWidth, "  why: ", "       ");
    };
    verdict(ProbeTarget::Learned, "E[dl(v*)]", lm.correct, "correct");
    verdict(ProbeTarget::Learned, "max_{w!=v*} |E[dl(w)]|", lm.other, "other");
    verdict(ProbeTarget::Learned, "E[readout(v*)]", lm.readout_correct, "readout_correct");
    verdict(ProbeTarget::Learned, "max_{w!=v*} |E[readout(w)]|", lm.readout_other, "readout_other");
    verdict(ProbeTarget::Offset0, "|E[dl(v*)]|", rc.correct, "correct");
    verdict(ProbeTarget::Offset0, "|E[readout(v*)]|", rc.readout_correct, "readout_correct");
    return o;
}

std::string format_summary_text(const ProbeResult& r) {
    const ProbeOptions& o = r.options;
    std::ostringstream s;
    std::string layers;
    for (size_t i = 0; i < r.ttt_layers.size(); ++i) layers += (i ? "," : "") + std::to_string(r.ttt_layers[i]);
    s << wrap(cat("model probe: ", r.checkpoint.empty() ? std::string("model") : r.checkpoint, " (vocab ", r.vocab, ", TTT layers ",
                  layers, ", chunk ", r.chunk, ", eta ", fmt(r.eta), ")"),
              kWidth);
    s << wrap(cat("task ", o.task.describe(), ", n=", o.seq_len, " (", r.chunks, " chunks), ", o.examples, " sequences, seed ", o.seed,
                  ", ", r.targets[0].probes, " probe queries"),
              kWidth);
    s << wrap("targets: Learned = the checkpoint as trained; Offset-0 = the same weights with every conv tap zeroed but "
              "offset 0 (a reconstruction-style target)",
              kWidth);
    s << wrap("dl = logits with every chunk's update minus logits with none (ttt_update_limit = 0), at each probe query", kWidth)
      << "\n";
    s << staircase_text(r) << "\n";

    s << "measured on the model\n";
    s << "  eps       " << pad(fmt(r.eps), 10) << " max |e_a.e_b| over the output head's ordinary rows\n";
    s << "  c_norm^2  " << pad(fmt(r.c_norm_sq), 10) << " min ||e_a||^2 over the same rows\n";
    for (size_t i = 0; i < r.ttt_layers.size(); ++i) {
        s << wrap(cat("layer ", r.ttt_layers[i], ": c_align ", fmt(r.c_align_layer[i]), " (mean Z_t*.z_q, the key's MLP features ",
                      "against the query's); other ", fmt(r.c_align_other_layer[i]),
                      " (mean Z_t.z_q over the other earlier-chunk positions, assumed 0)"),
                  kWidth, "  ", "    ");
        s << taps_text(r, i);
    }
    s << wrap(cat("bounds: eta*c_norm^2*c_align = ", fmt(r.bound_lower), ", eta*eps*c_align = ", fmt(r.bound_cross),
                  " (c_align summed over the TTT layers)"),
              kWidth, "  ", "    ");
    s << wrap(cat("(a heuristic here: the theorem is about one block read out through the embedding; this model has attention, ",
                  "norms", r.learned_proj ? ", a learned P" : "",
                  " and learned conv taps, so a verdict below is an observation, not a proof)"),
              kWidth, "  ", "   ")
      << "\n";

    const size_t w_target = 9, w_claim = 24, w_num = 9;
    s << pad("target", w_target) << pad("claim (real logits)", w_claim) << pad("measured", w_num, true) << pad("bound", w_num, true)
      << pad("margin", w_num, true) << pad("ratio", w_num, true) << "  verdict\n";
    auto row = [&](ProbeTarget t, const std::string& claim, const theory::BoundCheck& c, bool claimed) {
        s << pad(probe_target_title(t), w_target) << pad(claim, w_claim) << pad(fmt(c.measured, "%.4g"), w_num, true)
          << pad(fmt(c.bound, "%.4g"), w_num, true) << pad(fmt(c.margin, "%+.3g"), w_num, true) << pad(fmt(c.ratio, "%.3g"), w_num, true)
          << "  " << (claimed ? (c.holds ? "holds" : "FAILS") : "no claim") << "\n";
    };
    const ProbeTargetSummary& lm = r.target(ProbeTarget::Learned);
    const ProbeTargetSummary& rc = r.target(ProbeTarget::Offset0);
    row(ProbeTarget::Learned, "E[dl(v*)] >=", lm.correct, true);
    row(ProbeTarget::Learned, "max|E[dl(w)]| <=", lm.other, true);
    row(ProbeTarget::Offset0, "|E[dl(v*)]| <=", rc.correct, true);
    row(ProbeTarget::Offset0, "max|E[dl(w)]| <=", rc.other, false);
    s << pad("", w_target) << "direct readout e_w.(eta dW) z_q, summed over TTT layers:\n";
    row(ProbeTarget::Learned, "E[readout(v*)] >=", lm.readout_correct, true);
    row(ProbeTarget::Learned, "max|E[readout(w)]| <=", lm.readout_other, true);
    row(ProbeTarget::Offset0, "|E[readout(v*)]| <=", rc.readout_correct, true);

    const size_t wl = 37, wc = 21;
    s << "\n" << pad("at the probe queries (means)", wl) << pad("Learned", wc, true) << pad("Offset-0", wc, true) << "\n";
    auto line = [&](const std::string& label, const std::string& a, const std::string& b) {
        s << pad("  " + label, wl) << pad(" " + a, wc, true) << pad(" " + b, wc, true) << "\n";
    };
    line("logit(v*) without -> with updates", fmt(lm.logit_correct_before) + " -> " + fmt(lm.logit_correct_after),
         fmt(rc.logit_correct_before) + " -> " + fmt(rc.logit_correct_after));
    line("rank(v*) without -> with", fmt(lm.rank_before, "%.3g") + " -> " + fmt(lm.rank_after, "%.3g"),
         fmt(rc.rank_before, "%.3g") + " -> " + fmt(rc.rank_after, "%.3g"));
    line("accuracy without -> with updates", fmt(100 * lm.accuracy_before, "%.0f") + "% -> " + fmt(100 * lm.accuracy_after, "%.0f") + "%",
         fmt(100 * rc.accuracy_before, "%.0f") + "% -> " + fmt(100 * rc.accuracy_after, "%.0f") + "%");
    line("E[dl(v*)] (se)", fmt(lm.dlogit_correct_mean) + " (" + fmt(lm.dlogit_correct_se, "%.2g") + ")",
         fmt(rc.dlogit_correct_mean) + " (" + fmt(rc.dlogit_correct_se, "%.2g") + ")");
    line("mean |dl(w)|, w != v*", fmt(lm.dlogit_other_meanabs), fmt(rc.dlogit_other_meanabs));
    for (size_t i = 0; i < r.ttt_layers.size(); ++i) {
        line(cat("E[readout(v*)], layer ", r.ttt_layers[i]), fmt(lm.readout_correct_layer[i]), fmt(rc.readout_correct_layer[i]));
        line(cat("mean ||eta dW_i||_F, layer ", r.ttt_layers[i]), fmt(lm.update_norm_layer[i]), fmt(rc.update_norm_layer[i]));
        if (r.clip_tau > 0)
            line(cat("clipped (tau ", fmt(r.clip_tau), "), layer ", r.ttt_layers[i]),
                 cat(lm.clipped_layer[i], " of ", lm.updates_per_layer), cat(rc.clipped_layer[i], " of ", rc.updates_per_layer));
    }
    s << "\nverdicts (a FAILS line is followed by why, and where the docs explain it):\n" << format_verdicts_text(r) << "\n";
    s << "in words:\n" << wrap(lm.reason, kWidth, "  Learned: ", "    ") << wrap(rc.reason, kWidth, "  Offset-0: ", "    ");
    return s.str();
}

}  // namespace ittt::probe
