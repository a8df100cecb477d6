// Tests of the step-through driver's model mode (src/driver/model_probe.*), its
// pages (src/driver/terminal.*) and the `ittt step` command line. The theory
// engine has its own file, test_theory.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <sys/stat.h>

#include "driver/model_probe.h"
#include "driver/terminal.h"
#include "io/json.h"
#include "model/model.h"
#include "model/model_io.h"
#include "test_process.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;

namespace {



probe::ProbeOptions theorem_options(int examples = 3) {
    probe::ProbeOptions o;
    o.task = parse_task_config("theorem", {{"chunk", "4"}, {"window", "3"}});
    o.seq_len = 16;
    o.seed = 5;
    o.examples = examples;
    o.step_example = 1;
    o.top = 3;
    return o;
}

std::vector<double> row(const std::vector<double>& logits, int r, int V) {
    return std::vector<double>(logits.begin() + static_cast<int64_t>(r) * V, logits.begin() + static_cast<int64_t>(r + 1) * V);
}

bool has_key(const Json& j, const char* key) { return j.find(key) != nullptr; }

// The token grid of a chunk page puts each marker ("k0", "?0") in the row above its
// token, right-aligned in the same column: the token under `tag`, or "" when absent.
std::string grid_token_under(const std::string& page, const std::string& tag) {
    std::vector<std::string> lines;
    std::istringstream in(page);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
        const std::string& row = lines[i];
        for (size_t at = row.find(tag); at != std::string::npos; at = row.find(tag, at + 1)) {
            const size_t end = at + tag.size();  // the cell's right edge
            if (end != row.size() && row[end] != ' ') continue;
            if (at > 0 && row[at - 1] != ' ') continue;
            const std::string& below = lines[i + 1];
            if (below.find("x_t") == std::string::npos || below.size() < end) continue;
            size_t start = below.find_last_of(' ', end - 1);
            return below.substr(start + 1, end - start - 1);
        }
    }
    return "";
}

}  // namespace

TEST_CASE("probe measurements by hand: update norms, direct readout, feature dots", "[driver]") {
    // One example of 4 positions, 2 chunks, d = f = 2, eta = 0.5.
    probe::LayerSnapshot s;
    s.B = 1, s.n = 4, s.T = 2, s.d = 2, s.f = 2, s.eta = 0.5;
    s.delta = {1, 2, 2, 4,    // dW_0 = [[1, 2], [2, 4]]: ||dW_0||_F = 5
               0, 1, -1, 0};  // dW_1 = [[0, 1], [-1, 0]]: sqrt(2)
    s.z = {1, 0, 0, 1, 1, 1, 3, -1};  // Z rows (4 x 2)
    std::vector<double> norms = probe::update_norms(s, 0);
    REQUIRE(norms.size() == 2);
    CHECK(norms[0] == Approx(2.5));
    CHECK(norms[1] == Approx(0.5 * std::sqrt(2.0)));

    // Readout at q = 3 (z = (3, -1)) with the head rows e_0 = (1, 0), e_1 = (1, 1):
    // dW_0 z = (3 - 2, 6 - 4) = (1, 2); eta * that = (0.5, 1); r = (0.5, 1.5).
    theory::Matrix head = theory::matrix_from_rows({{1, 0}, {1, 1}});
    std::vector<double> r = probe::direct_readout(s, head, 0, 3, 0, 1);
    CHECK(r[0] == Approx(0.5));
    CHECK(r[1] == Approx(1.5));
    // Both chunks: dW_1 z = (-1, -3), the sum (0, -1), eta * that (0, -0.5): r = (0, -0.5).
    r = probe::direct_readout(s, head, 0, 3, 0, 2);
    CHECK(r[0] == Approx(0.0).margin(1e-15));
    CHECK(r[1] == Approx(-0.5));
    // No chunk: nothing.
    r = probe::direct_readout(s, head, 0, 3, 1, 1);
    CHECK(r[0] == 0.0);
    CHECK(r[1] == 0.0);

    CHECK(probe::feature_dot(s, 2, 3) == Approx(2.0));  // (1, 1) . (3, -1)
    CHECK(probe::feature_dot(s, 0, 1) == 0.0);
    CHECK_THROWS_AS(probe::feature_dot(s, 0, 4), Error);
}

TEST_CASE("probe queries pair each query with its key and value markers", "[driver]") {
    Example e;
    e.tokens = {1, 5, 9, 12, 7, 7, 7, 7, 7, 9};
    e.targets.assign(10, IGNORE_TARGET);
    e.targets[9] = 12;
    e.markers = {{2, MarkerKind::Key, 0}, {3, MarkerKind::Value, 0}, {9, MarkerKind::Query, 0}};
    std::vector<probe::ProbeQuery> q = probe::probe_queries(e, 4);
    REQUIRE(q.size() == 1);
    CHECK(q[0].position == 9);
    CHECK(q[0].correct == 12);
    CHECK(q[0].key_position == 2);
    CHECK(q[0].value_position == 3);
    CHECK(q[0].chunk == 2);

    // MQAR: every query is scored, comes after its pair, and asks for its value.
    TaskConfig mqar = parse_task_config("mqar", {{"pairs", "3"}, {"gap", "8"}});
    Example m = make_example(mqar, 32, 32, 3, 0);
    std::vector<probe::ProbeQuery> mq = probe::probe_queries(m, 8);
    REQUIRE(mq.size() == 3);
    for (const probe::ProbeQuery& p : mq) {
        CHECK(p.key_position >= 0);
        CHECK(p.value_position == p.key_position + 1);
        CHECK(p.position - p.value_position >= 8);
        CHECK(m.tokens[static_cast<size_t>(p.position)] == m.tokens[static_cast<size_t>(p.key_position)]);
        CHECK(p.correct == m.tokens[static_cast<size_t>(p.value_position)]);
    }
}

TEST_CASE("the offset-0 variant keeps only the offset-0 tap and leaves the model alone", "[driver]") {
    Model m(probe_config());
    m.init_random(3);
    randomise_ttt(m, 100, 0.5);
    Model v = probe::offset0_variant(m);
    const int K = m.config().conv_taps(), keep = 2;  // offsets -2 -1 0 1 2
    REQUIRE(m.config().ttt_conv_offsets[keep] == 0);
    for (size_t i = 0; i < m.parameters().size(); ++i) {
        const Parameter& a = m.parameters()[i];
        const Parameter& b = v.parameters()[i];
        std::vector<double> x = a.value.to_f64_vector(), y = b.value.to_f64_vector();
        if (a.name.find("ttt_conv") == std::string::npos) {
            CHECK(x == y);
            continue;
        }
        for (size_t k = 0; k < x.size(); ++k) {
            if (static_cast<int>(k % static_cast<size_t>(K)) == keep) CHECK(y[k] == x[k]);
            else CHECK(y[k] == 0.0);
        }
        CHECK(x[0] != 0.0);  // the original keeps its taps
    }
}

TEST_CASE("dl from update limits equals the direct difference of two forwards", "[driver]") {
    Model m(probe_config());
    m.init_random(7);
    randomise_ttt(m, 200, 0.5);
    probe::ProbeOptions o = theorem_options();
    probe::ProbeRun run = probe::run_probe(m, o);
    const probe::ProbeStep& st = run.step;
    REQUIRE(st.queries.size() == 1);
    REQUIRE(st.chunks.size() == 4);
    const int V = m.config().vocab_size, q = st.queries[0].position, v = st.queries[0].correct;
    CHECK(q == 15);

    // The shown sequence alone (B = 1), forwarded at every limit here.
    Tensor tokens = Tensor::from_vector(st.tokens, {1, 16});
    std::vector<std::vector<double>> at(5);
    for (int limit = 0; limit <= 4; ++limit) at[static_cast<size_t>(limit)] = row(probe::logits_with_limit(m, tokens, limit), q, V);
    std::vector<double> all = row(probe::logits_with_limit(m, tokens, -1), q, V);
    // Batched (B = 3) against alone (B = 1): the same sums per row, F32 rounding only.
    const double tol = 2e-5;
    double sum_dl = 0;
    for (int i = 0; i < 3; ++i) {
        const probe::QueryChunkView& view = st.chunks[static_cast<size_t>(i)].view[0].queries.at(0);
        const std::vector<double>& before = at[static_cast<size_t>(i)];
        const std::vector<double>& after = at[static_cast<size_t>(i + 1)];
        CHECK(view.logit_before == Approx(before[static_cast<size_t>(v)]).margin(tol));
        CHECK(view.logit_after == Approx(after[static_cast<size_t>(v)]).margin(tol));
        CHECK(view.dl_correct == Approx(after[static_cast<size_t>(v)] - before[static_cast<size_t>(v)]).margin(tol));
        CHECK(view.dl_cumulative == Approx(after[static_cast<size_t>(v)] - at[0][static_cast<size_t>(v)]).margin(tol));
        sum_dl += view.dl_correct;
    }
    // The query's chunk (3) sees no update of its own: limit 4 = limit 3 = every update.
    CHECK(st.chunks[3].view[0].queries.empty());
    CHECK(check_close(at[4], at[3], 0, 0, "limit 4 vs limit 3 at the query"));
    CHECK(check_close(at[4], all, 0, 0, "limit 4 vs no limit"));
    // The per-chunk changes add up to the whole change, which is not 0 here.
    const double total = all[static_cast<size_t>(v)] - at[0][static_cast<size_t>(v)];
    CHECK(std::fabs(total) > 1e-2);
    CHECK(sum_dl == Approx(total).margin(tol));
    CHECK(st.final_dlogit[0][static_cast<size_t>(v)] == Approx(total).margin(tol));
    // Positions in chunk 0 see no update at all.
    for (int t = 0; t < 4; ++t)
        for (int w = 0; w < V; ++w) CHECK(st.position_dlogit[0][static_cast<size_t>(t * V + w)] == 0.0);
}

TEST_CASE("direct readout equals the token form lr sum_t (e_w.V_t)(Z_t.z_q) (F64)", "[driver]") {
    ModelConfig c = probe_config();
    Model m(c, DType::F64);
    m.init_random(11);
    randomise_ttt(m, 300, 0.5);
    Tensor tokens = random_ints({2, 16}, 9, 0, c.vocab_size);
    probe::logits_with_limit(m, tokens, -1);
    theory::Matrix head = theory::matrix_from_tensor(m.lm_head());
    for (int layer : {0, 1}) {
        probe::LayerSnapshot s = probe::snapshot_layer(m, layer);
        REQUIRE(s.T == 4);
        for (int b : {0, 1})
            for (int q : {5, 14}) {
                const int end_chunk = q / 4;
                std::vector<double> direct = probe::direct_readout(s, head, b, q, 0, end_chunk);
                std::vector<double> token_form(static_cast<size_t>(c.vocab_size), 0.0);
                const int64_t rq = static_cast<int64_t>(b) * 16 + q;
                for (int t = 0; t < end_chunk * 4; ++t) {
                    const int64_t rt = static_cast<int64_t>(b) * 16 + t;
                    double align = s.eta * probe::feature_dot(s, rt, rq);
                    for (int w = 0; w < c.vocab_size; ++w)
                        token_form[static_cast<size_t>(w)] +=
                            theory::dot(head.row(w), s.v.data() + static_cast<size_t>(rt) * static_cast<size_t>(s.d), s.d) * align;
                }
                // Two summation orders in double: rounding only.
                CHECK(check_close(direct, token_form, 1e-12, 1e-10, cat("readout layer ", layer, " b ", b, " q ", q)));
            }
    }
}

TEST_CASE("a zero-conv (drop-in) model changes no logit: every dl is exactly 0", "[driver]") {
    Model m(probe_config());
    m.init_random(4);  // the release's init: conv = 0, so V = 0 and every dW = 0
    probe::ProbeRun run = probe::run_probe(m, theorem_options());
    for (const probe::ProbeTargetSummary& s : run.summary.targets) {
        CHECK(s.probes == 3);
        CHECK(s.dlogit_correct_mean == 0.0);
        CHECK(s.dlogit_other_maxabs == 0.0);
        CHECK(s.dlogit_other_meanabs == 0.0);
        CHECK(s.readout_correct_mean == 0.0);
        CHECK(s.accuracy_before == s.accuracy_after);
        for (double x : s.update_norm_layer) CHECK(x == 0.0);
    }
    for (const probe::ChunkView& cv : run.step.chunks)
        for (const probe::ChunkTargetView& view : cv.view) {
            for (double x : view.update_norm) CHECK(x == 0.0);
            for (const probe::QueryChunkView& q : view.queries) {
                CHECK(q.dl_correct == 0.0);
                CHECK(q.dl_other_maxabs == 0.0);
                CHECK(q.dl_cumulative == 0.0);
                CHECK(q.logit_before == q.logit_after);
            }
        }
    for (const std::vector<double>& d : run.step.position_dlogit)
        for (double x : d) CHECK(x == 0.0);
    CHECK(run.summary.conv_taps.at(0) == std::vector<double>(5, 0.0));
    CHECK(run.summary.targets[0].reason.find("all 0") != std::string::npos);
}

TEST_CASE("what each key retrieves and what V_t decodes to, by hand from the snapshots", "[driver]") {
    Model m(probe_config());
    m.init_random(8);
    randomise_ttt(m, 600, 0.5);
    probe::ProbeOptions o = theorem_options(3);
    o.task = parse_task_config("mqar", {{"pairs", "2"}, {"gap", "4"}, {"spread", "8"}});  // pairs in chunks 0 and 1
    probe::ProbeRun run = probe::run_probe(m, o);
    const probe::ProbeStep& st = run.step;
    REQUIRE(st.queries.size() == 2);

    // The learned model's snapshots, from a forward of the same sequences.
    Batch batch = make_batch(o.task, 16, o.examples, o.seq_len, o.seed);
    probe::logits_with_limit(m, batch.tokens_tensor(), -1);
    const theory::Matrix head = theory::matrix_from_tensor(m.lm_head());
    std::vector<probe::LayerSnapshot> snaps;
    for (int l : st.ttt_layers) snaps.push_back(probe::snapshot_layer(m, l));
    const int b = st.example;
    for (const probe::ChunkView& cv : st.chunks) {
        const std::vector<probe::KeyReadout>& keys = cv.view[0].keys;
        REQUIRE(keys.size() == 2);
        for (size_t k = 0; k < keys.size(); ++k) {
            const probe::KeyReadout& key = keys[k];
            INFO("chunk " << cv.chunk << ", pair " << key.pair);
            CHECK(key.pair == static_cast<int>(k));  // pair order
            const probe::ProbeQuery* q = st.query_of_pair(key.pair);
            REQUIRE(q != nullptr);
            CHECK(key.value == q->correct);
            CHECK(key.key == st.tokens[static_cast<size_t>(q->key_position)]);
            CHECK(key.stored_chunk == q->key_position / 4);  // spans of 4 inside chunks of 4: never split
            CHECK(key.stored == (key.stored_chunk <= cv.chunk));
            std::vector<double> r(16, 0.0);
            for (const probe::LayerSnapshot& snap : snaps) {
                std::vector<double> layer = probe::direct_readout(snap, head, b, q->position, 0, cv.chunk + 1);
                for (size_t w = 0; w < r.size(); ++w) r[w] += layer[w];
            }
            CHECK(key.top == theory::top_tokens(r, 1).front());
            CHECK(key.value_rank == theory::rank_of(r, key.value));
            CHECK(key.readout_value == Approx(r[static_cast<size_t>(key.value)]).epsilon(1e-9));
            CHECK(key.right() == (key.stored && key.top == key.value));
        }
    }
    // V_t through the head: the largest e_w.V_t, and the largest |e_w.V_t| with its sign.
    REQUIRE(st.decoded[0].size() == 2);
    for (size_t li = 0; li < snaps.size(); ++li)
        for (int t = 0; t < st.seq_len; ++t) {
            const double* v = snaps[li].v.data() + (static_cast<size_t>(b) * static_cast<size_t>(st.seq_len) + static_cast<size_t>(t)) * 8;
            std::vector<double> score(16);
            for (int w = 0; w < 16; ++w) score[static_cast<size_t>(w)] = theory::dot(head.row(w), v, 8);
            const probe::DecodedTarget& d = st.decoded[0][li][static_cast<size_t>(t)];
            CHECK(d.top.front() == theory::top_tokens(score, 1).front());
            int moved = 0;
            for (int w = 1; w < 16; ++w)
                if (std::fabs(score[static_cast<size_t>(w)]) > std::fabs(score[static_cast<size_t>(moved)])) moved = w;
            CHECK(d.moved == moved);
            CHECK(d.moved_score == Approx(score[static_cast<size_t>(moved)]).epsilon(1e-9));
        }
    // The staircase ends where the summary's before and after are.
    for (const probe::ProbeTargetSummary& t : run.summary.targets) {
        REQUIRE(t.accuracy_by_limit.size() == st.chunks.size() + 1);
        CHECK(t.accuracy_by_limit.front() == Approx(t.accuracy_before));
        CHECK(t.accuracy_by_limit.back() == Approx(t.accuracy_after));
        CHECK(t.dlogit_by_limit.front() == 0.0);
        CHECK(t.dlogit_by_limit.back() == Approx(t.dlogit_correct_mean).epsilon(1e-9));
    }
    // The query view names what it cannot show.
    CHECK_THROWS_WITH(probe::validate_page_options(st, {probe::PageView::Query, 5}),
                      Catch::Contains("--query 5: sequence 1 has no query ?5 (its queries: ?0, ?1)"));
}

TEST_CASE("data/learned-mqar with spread pairs: a staircase, and one 80x24 screen per compact chunk page", "[driver]") {
    // The demo's setting (make demo), on 2 sequences: 8 pairs, one per chunk in chunks 0-7.
    Model m = load_model(repo_file("data/learned-mqar"));
    probe::ProbeOptions o;
    o.task = parse_task_config("mqar", {{"pairs", "8"}, {"gap", "96"}, {"spread", "256"}});
    o.seq_len = 384;
    o.examples = 2;
    probe::ProbeRun run = probe::run_probe(m, o);
    const probe::ProbeTargetSummary& lm = run.summary.target(probe::ProbeTarget::Learned);
    REQUIRE(lm.accuracy_by_limit.size() == 13);
    for (size_t k = 0; k < lm.accuracy_by_limit.size(); ++k) {
        INFO("updates of chunks 0.." << static_cast<int>(k) - 1);
        CHECK(lm.accuracy_by_limit[k] == Approx(std::min<double>(k, 8) / 8.0));  // one more pair answered per chunk
        if (k > 0 && k <= 8) CHECK(lm.dlogit_by_limit[k] > lm.dlogit_by_limit[k - 1] + 1.0);
    }
    CHECK(run.summary.target(probe::ProbeTarget::Offset0).accuracy_after <= 0.25);
    // Each chunk's update stores its pair: after chunk i, keys 0..i come back right.
    for (const probe::ChunkView& cv : run.step.chunks)
        for (const probe::KeyReadout& k : cv.view[0].keys) {
            INFO("chunk " << cv.chunk << ", key k" << k.pair);
            CHECK(k.stored_chunk == k.pair);
            CHECK(k.right() == (k.pair <= cv.chunk));
        }

    const probe::PageOptions compact{probe::PageView::Compact, -1};
    terminal::Pages pages{static_cast<int>(run.step.chunks.size()),
                          [&](int i) {
                              return terminal::Page{probe::format_chunk_header(run.step, i, compact),
                                                    probe::format_chunk_body(run.step, i, compact)};
                          },
                          "chunk", {}, -1};
    const terminal::ScreenSize screen{24, 80};
    for (int i = 0; i < pages.count; ++i) {
        INFO("chunk " << i << ":\n" << pages.render(i).text());
        CHECK(terminal::line_count(pages.render(i).text()) <= 24 - terminal::kFooterLines);
        CHECK(terminal::max_scroll(pages, i, screen) == 0);  // nothing below the screen
        for (const std::string& line : terminal::fold_lines(pages.render(i).text(), 1000)) CHECK(terminal::display_width(line) <= 79);
    }
    for (const std::string& line : terminal::fold_lines(probe::format_summary_text(run.summary), 1000)) {
        INFO(line);
        CHECK(terminal::display_width(line) <= 79);
    }
}

TEST_CASE("model summary and chunk JSON: valid lines with the required keys", "[driver]") {
    Model m(probe_config());
    m.init_random(8);
    randomise_ttt(m, 400, 0.5);
    probe::ProbeRun run = probe::run_probe(m, theorem_options(2));
    run.summary.checkpoint = "test \"model\"";  // needs escaping
    std::string summary = probe::format_summary_json(run.summary);
    std::istringstream lines(summary);
    std::string line;
    std::vector<std::string> targets;
    while (std::getline(lines, line)) {
        Json j = Json::parse(line, "summary line");
        CHECK(j.at("type").as_string() == "model_summary");
        for (const char* key : {"target", "dlogit_correct_mean", "bound_correct", "dlogit_other_maxabs", "bound_other", "holds",
                                "eps", "c_norm", "c_align", "readout_correct_mean", "accuracy_before", "accuracy_after", "reason"})
            CHECK(has_key(j, key));
        targets.push_back(j.at("target").as_string());
    }
    CHECK(targets == std::vector<std::string>{"learned", "offset0"});

    std::istringstream chunk_lines(probe::format_step_json(run.step));
    int chunks = 0;
    while (std::getline(chunk_lines, line)) {
        Json j = Json::parse(line, "chunk line");
        CHECK(j.at("type").as_string() == "model_chunk");
        CHECK(j.at("chunk").as_int() == chunks);
        CHECK(j.at("learned").at("update_norm").size() == 2);  // two TTT layers
        CHECK(has_key(j.at("offset0"), "queries"));
        ++chunks;
    }
    CHECK(chunks == 4);
}

TEST_CASE("probe: updates clipped by ttt_clip_tau are reported with their norm before clipping", "[driver]") {
    ModelConfig c = probe_config();
    Model plain(c);
    plain.init_random(8);
    randomise_ttt(plain, 450, 0.5);
    // tau at the median of the unclipped norms of the shown sequence: some chunks clip, some not.
    probe::ProbeRun unclipped = probe::run_probe(plain, theorem_options(2));
    std::vector<double> all;
    for (const probe::ChunkView& cv : unclipped.step.chunks)
        for (size_t li = 0; li < 2; ++li) {
            CHECK(cv.view[0].clipped[li] == 0);  // tau 0: nothing clips
            CHECK(cv.view[0].update_norm_unclipped[li] == Approx(cv.view[0].update_norm[li]).epsilon(1e-5));
            all.push_back(cv.view[0].update_norm[li]);
        }
    std::sort(all.begin(), all.end());
    c.ttt_clip_tau = 0.5 * (all[all.size() / 2 - 1] + all[all.size() / 2]);
    Model m(c);
    for (size_t i = 0; i < m.parameters().size(); ++i) m.parameters()[i].value.copy_from(plain.parameters()[i].value);
    probe::ProbeRun run = probe::run_probe(m, theorem_options(2));
    int clipped = 0, kept = 0;
    for (const probe::ChunkView& cv : run.step.chunks)
        for (const probe::ChunkTargetView& v : cv.view)
            for (size_t li = 0; li < 2; ++li) {
                INFO("chunk " << cv.chunk << ", layer " << li);
                const double before = v.update_norm_unclipped[li], after = v.update_norm[li];
                CHECK(v.clipped[li] == (before > c.ttt_clip_tau ? 1 : 0));
                // F32 deltas, norms summed in double: 1e-5 relative covers the rounding.
                if (v.clipped[li]) CHECK(after == Approx(c.ttt_clip_tau).epsilon(1e-5));
                else CHECK(after == Approx(before).epsilon(1e-5));
                (v.clipped[li] ? clipped : kept) += 1;
            }
    CHECK(clipped > 0);
    CHECK(kept > 0);
    int counted = 0;
    for (int x : run.summary.target(probe::ProbeTarget::Learned).clipped_layer) counted += x;
    CHECK(counted > 0);
    CHECK(run.summary.target(probe::ProbeTarget::Learned).updates_per_layer == 2 * 4);  // 2 sequences x 4 chunks

    CHECK_THAT(probe::format_step_text(run.step), Catch::Contains("(was ") && Catch::Contains("ttt_clip_tau = "));
    CHECK_THAT(probe::format_summary_text(run.summary), Catch::Contains("clipped (tau "));
    std::istringstream chunk_lines(probe::format_step_json(run.step));
    std::string line;
    while (std::getline(chunk_lines, line)) {
        Json j = Json::parse(line, "chunk line");
        CHECK(j.at("learned").at("clipped").size() == 2);
        CHECK(j.at("learned").at("update_norm_unclipped").size() == 2);
    }
    Json summary = Json::parse(probe::format_summary_json(run.summary).substr(0, probe::format_summary_json(run.summary).find('\n')), "s");
    CHECK(summary.at("ttt_clip_tau").as_number() == c.ttt_clip_tau);
    CHECK(summary.at("clipped_updates_layers").size() == 2);
}

TEST_CASE("pages: the chunk views mark keys, values and queries; frames fit the screen, header pinned", "[driver]") {
    Model m(probe_config());
    m.init_random(8);
    randomise_ttt(m, 500, 0.5);
    probe::ProbeOptions o = theorem_options(2);
    o.step_example = 0;
    probe::ProbeRun run = probe::run_probe(m, o);
    const probe::ProbeQuery& q = run.step.queries.at(0);
    const int pair_chunk = q.key_position / 4;
    std::string pair_page = probe::format_chunk_text(run.step, pair_chunk);
    std::string query_page = probe::format_chunk_text(run.step, 3);
    // The token grid: each marker sits above its token, in the same column.
    CHECK(grid_token_under(pair_page, "k0") == cat(run.step.tokens[static_cast<size_t>(q.key_position)]));
    CHECK(grid_token_under(pair_page, "v0") == cat(q.correct));
    CHECK(pair_page.find("Learned") != std::string::npos);
    CHECK(pair_page.find("Offset-0") != std::string::npos);
    CHECK(pair_page.find("rank(v*) before -> after") != std::string::npos);
    CHECK(grid_token_under(query_page, "?0") == cat(run.step.tokens[static_cast<size_t>(q.position)]));
    CHECK(query_page.find("no query after this chunk") != std::string::npos);
    std::string summary = probe::format_summary_text(run.summary);
    CHECK(summary.find("heuristic") != std::string::npos);
    CHECK(summary.find("Learned: E[dl(v*)]") != std::string::npos);

    // The probe page's header (pinned by the pager) holds the title, the tokens and the update norms.
    std::string header = probe::format_chunk_header(run.step, pair_chunk);
    CHECK(header.find("chunk ") != std::string::npos);
    CHECK(grid_token_under(header, "k0") == cat(run.step.tokens[static_cast<size_t>(q.key_position)]));
    CHECK(header.find("||eta dW_") != std::string::npos);
    CHECK(pair_page == header + probe::format_chunk_body(run.step, pair_chunk));
    for (probe::PageView view : {probe::PageView::Compact, probe::PageView::Query}) {
        const probe::PageOptions o{view, 0};
        CHECK(probe::format_chunk_text(run.step, pair_chunk, o) ==
              probe::format_chunk_header(run.step, pair_chunk, o) + probe::format_chunk_body(run.step, pair_chunk, o));
        CHECK(grid_token_under(probe::format_chunk_header(run.step, pair_chunk, o), "k0") ==
              cat(run.step.tokens[static_cast<size_t>(q.key_position)]));
    }

    // Theory pages: k* and v* marked in the pair's chunk, the update norm in the header.
    theory::TheoryOptions t;
    t.trials = 2;
    theory::StepResult s = theory::run_step(t);
    terminal::Page page = terminal::theory_chunk_page(s, t.key_chunk);
    CHECK(page.header.find(cat("[k*:", s.sequence.key, "]")) != std::string::npos);
    CHECK(page.header.find(cat("[v*:", s.sequence.value, "]")) != std::string::npos);
    CHECK(page.header.find("||eta dW_") != std::string::npos);
    CHECK(page.text().find("LM-aligned") != std::string::npos);
    CHECK(page.text().find("Reconstruction") != std::string::npos);
    for (const std::string& text : {page.text(), pair_page, query_page, summary, probe::format_step_text(run.step, {probe::PageView::Compact, -1}),
                                    probe::format_step_text(run.step, {probe::PageView::Query, 0})})
        for (const std::string& line : terminal::fold_lines(text, 1000)) {
            INFO(line);
            CHECK(terminal::display_width(line) <= 79);  // written for an 80-column terminal
        }

    // Folding: at a space, continuation lines under the text after "| ", nothing wider than asked.
    std::vector<std::string> folded = terminal::fold_lines("   0 | 11 22 33 44 55 66 77\nshort\n", 14);
    CHECK(folded == std::vector<std::string>{"   0 | 11 22", "       33 44", "       55 66", "       77", "short"});
    CHECK(terminal::fold_lines("abcdefghijklmnopqrstuvwxyz", 10) ==
          std::vector<std::string>{"abcdefghij", "  klmnopqr", "  stuvwxyz"});  // no space: hard breaks

    // Frames: exactly `rows` lines, none wider than cols - 1, the header on top,
    // the two footer lines last, the body scrolled under the header.
    terminal::Pages pages{3,
                          [](int i) {
                              std::string body;
                              for (int r = 0; r < 10 * i; ++r) body += cat("body line ", r, "\n");
                              return terminal::Page{cat("title of page ", i, "\n"), body};
                          },
                          "chunk", {}, -1};
    const terminal::ScreenSize small{6, 30};
    for (int i = 0; i < 3; ++i) {
        std::string f = terminal::frame(pages, i, small);
        std::vector<std::string> lines = terminal::fold_lines(f, 1000);
        CHECK(terminal::line_count(f) == 6);
        CHECK(f.back() != '\n');  // a newline on the last row would scroll the screen
        CHECK(lines.front() == cat("title of page ", i));
        CHECK_THAT(lines[lines.size() - 2], Catch::StartsWith(cat("chunk ", i, " [", i + 1, "/3]")));
        CHECK_THAT(lines.back(), Catch::StartsWith(i == 2 ? "n finish  p prev" : "n next  p prev"));
        for (const std::string& l : lines) CHECK(terminal::display_width(l) <= 29);
    }
    CHECK(terminal::max_scroll(pages, 0, small) == 0);
    CHECK(terminal::max_scroll(pages, 2, small) == 20 - 3);  // 20 body lines, 6 - 1 - 2 rows for them
    std::string scrolled = terminal::frame(pages, 2, small, 3);
    CHECK(terminal::fold_lines(scrolled, 1000)[0] == "title of page 2");
    CHECK(terminal::fold_lines(scrolled, 1000)[1] == "body line 3");
    CHECK(terminal::frame(pages, 2, small, 99) == terminal::frame(pages, 2, small, 17));  // clamped
    CHECK(terminal::footer(pages, 2, 1, 4, 20).find("finish") != std::string::npos);
    CHECK(terminal::footer(pages, 0, 1, 4, 20).find("next") != std::string::npos);
    // The footer names every key, on its own line; `s` only when there is a summary page.
    const std::string keys = terminal::footer(pages, 0, 1, 4, 20).substr(terminal::footer(pages, 0, 1, 4, 20).find('\n') + 1);
    CHECK(keys == "n next  p prev  j/k line  space/b screen  g/G first/last  q quit");
    terminal::Pages named = pages;
    named.name = [](int i) { return i == 0 ? std::string("summary") : cat("chunk ", i - 1); };
    named.summary = 0;
    CHECK_THAT(terminal::footer(named, 0, 1, 4, 20), Catch::StartsWith("summary [1/3]"));
    CHECK_THAT(terminal::footer(named, 1, 1, 4, 20), Catch::StartsWith("chunk 0 [2/3]") && Catch::Contains("  s summary  q quit"));
    CHECK(terminal::display_width(terminal::footer(named, 2, 1, 4, 20).substr(terminal::footer(named, 2, 1, 4, 20).find('\n') + 1)) <= 79);
    CHECK(terminal::all_pages(named).find("---- summary [1/3]") != std::string::npos);
    CHECK(terminal::key_action('s') == terminal::Action::Summary);
    std::string all = terminal::all_pages(pages);
    CHECK(all.find("---- chunk 0 [1/3]") != std::string::npos);
    CHECK(all.find("---- chunk 2 [3/3]") != std::string::npos);
    CHECK(all.find("title of page 2\nbody line 0\n") != std::string::npos);

    CHECK(terminal::key_action('\n') == terminal::Action::Next);
    CHECK(terminal::key_action('\r') == terminal::Action::Next);
    CHECK(terminal::key_action('n') == terminal::Action::Next);
    CHECK(terminal::key_action('p') == terminal::Action::Previous);
    CHECK(terminal::key_action('j') == terminal::Action::ScrollDown);
    CHECK(terminal::key_action('k') == terminal::Action::ScrollUp);
    CHECK(terminal::key_action(' ') == terminal::Action::PageDown);
    CHECK(terminal::key_action('q') == terminal::Action::Quit);
    CHECK(terminal::key_action(0) == terminal::Action::Quit);  // end of input
    CHECK(terminal::key_action('x') == terminal::Action::None);
}

TEST_CASE("ittt step --theory --auto --json: one valid object per line", "[driver]") {
    const char* env = std::getenv("ITTT_BIN");
    std::string bin = env ? env : "build/ittt";
    struct stat st;
    if (stat(bin.c_str(), &st) != 0) {
        WARN("skipped: no binary at " << bin << " (build it, or set ITTT_BIN)");
        return;
    }
    std::string cmd = bin + " step --theory --auto --trials 20 --json --no-plots 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, pipe)) out += buf;
    const int rc = pclose(pipe);
    INFO(out.substr(0, 2000));
    REQUIRE(rc == 0);
    std::istringstream lines(out);
    std::string line;
    int chunks = 0, summaries = 0;
    while (std::getline(lines, line)) {
        Json j = Json::parse(line, "ittt step output");
        const std::string type = j.at("type").as_string();
        if (type == "theory_chunk") ++chunks;
        if (type == "theory_summary") {
            ++summaries;
            for (const char* key : {"target", "dlogit_correct_mean", "bound_correct", "dlogit_other_maxabs", "bound_other", "holds"})
                CHECK(has_key(j, key));
        }
    }
    CHECK(chunks == 3);
    CHECK(summaries == 2);
}
