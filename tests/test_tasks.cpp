// Tests of the toy task generators: determinism, the layout of every task, and
// the errors for options and settings that cannot work.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "tasks/tasks.h"
#include "test_util.h"

using namespace ittt;

namespace {

TaskConfig task(const std::string& name, const std::string& options = "") {
    return parse_task_config(name, parse_option_list(options));
}

// Every scored target is the next token, so a teacher-forced model sees the answer right after.
void check_targets_are_next_tokens(const Example& e) {
    for (size_t t = 0; t + 1 < e.tokens.size(); ++t)
        if (e.targets[t] != IGNORE_TARGET) CHECK(e.targets[t] == e.tokens[t + 1]);
}

bool in_lower_half(int32_t t, int V) {
    return t >= token::FIRST_ORDINARY && t < token::FIRST_ORDINARY + (V - token::FIRST_ORDINARY) / 2;
}
bool in_upper_half(int32_t t, int V) { return t >= token::FIRST_ORDINARY + (V - token::FIRST_ORDINARY) / 2 && t < V; }

// A file in the temp folder, removed at the end of the test.
struct TempFile {
    std::string path;
    explicit TempFile(const std::string& contents) {
        path = (std::filesystem::temp_directory_path() /
                ("ittt_test_tasks_" + std::to_string(reinterpret_cast<uintptr_t>(this)) + ".txt"))
                   .string();
        std::ofstream(path, std::ios::binary) << contents;
    }
    ~TempFile() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("task options: parsing, defaults and errors that name the option", "[tasks]") {
    auto opts = parse_option_list("gap=256, pairs=8,filler=pad,");
    CHECK(opts.size() == 3);
    CHECK(opts["gap"] == "256");
    CHECK(opts["filler"] == "pad");
    CHECK(parse_option_list("").empty());
    CHECK_THROWS_WITH(parse_option_list("gap"), Catch::Contains("expected key=value, found 'gap'"));
    CHECK_THROWS_WITH(parse_option_list("gap=1,gap=2"), Catch::Contains("'gap' is given twice"));

    TaskConfig m = parse_task_config("mqar", opts);
    CHECK(m.kind == TaskKind::Mqar);
    CHECK(m.pairs == 8);
    CHECK(m.gap == 256);
    CHECK(m.mqar_filler == Filler::Pad);
    CHECK(m.describe() == "mqar pairs=8 gap=256 filler=pad");
    CHECK(task("needle").describe() == "needle keys=1 values=1 queries=1 depth=50 filler=pattern pattern_length=8");
    CHECK(task("theorem", "pair_position=random").pair_position == -1);
    CHECK(task("needle", "depth=random").depth == -1);

    CHECK_THROWS_WITH(task("mqr"), Catch::Contains("unknown task 'mqr'") && Catch::Contains("mqar"));
    CHECK_THROWS_WITH(task("mqar", "gaps=3"), Catch::Contains("task mqar: unknown option 'gaps' (valid: pairs, gap, filler, spread)"));
    CHECK_THROWS_WITH(task("mqar", "gap=abc"), Catch::Contains("option gap: expected an integer, found 'abc'"));
    CHECK_THROWS_WITH(task("mqar", "gap=12x"), Catch::Contains("found '12x'"));
    CHECK_THROWS_WITH(task("mqar", "pairs=0"), Catch::Contains("pairs must be >= 1, found 0"));
    CHECK_THROWS_WITH(task("mqar", "filler=pattern"), Catch::Contains("filler: expected random or pad"));
    CHECK_THROWS_WITH(task("needle", "queries=3,keys=2"), Catch::Contains("queries (3) must be <= keys (2)"));
    CHECK_THROWS_WITH(task("needle", "depth=101"), Catch::Contains("depth must be 0..100"));
    CHECK_THROWS_WITH(task("induction", "copy_length=1"), Catch::Contains("copy_length must be 0 (automatic) or >= 2"));
    CHECK_THROWS_WITH(task("text"), Catch::Contains("option path is required"));
    CHECK_THROWS_WITH(task("text", "path=/nonexistent/ittt/file.txt"),
                      Catch::Contains("cannot open path '/nonexistent/ittt/file.txt'"));
    for (TaskKind k : {TaskKind::Induction, TaskKind::Mqar, TaskKind::TheoremProbe, TaskKind::Needle, TaskKind::Text})
        CHECK_FALSE(task_options(k).empty());
    CHECK(task_names().size() == 5);
}

TEST_CASE("tasks are deterministic: same seed same batch, example b independent of B", "[tasks]") {
    for (const char* name : {"induction", "mqar", "theorem", "needle"}) {
        INFO(name);
        TaskConfig c = task(name);
        Batch a = make_batch(c, 64, 3, 256, 7), b = make_batch(c, 64, 3, 256, 7), other = make_batch(c, 64, 3, 256, 8);
        CHECK(a.tokens == b.tokens);
        CHECK(a.targets == b.targets);
        CHECK(a.tokens != other.tokens);
        Batch wide = make_batch(c, 64, 5, 256, 7);
        CHECK(std::vector<int32_t>(wide.tokens.begin(), wide.tokens.begin() + 3 * 256) == a.tokens);
        CHECK(a.examples[0].tokens != a.examples[1].tokens);  // rows are independent draws
        CHECK(a.tokens.size() == 3u * 256u);
        CHECK(a.tokens_tensor().shape() == Shape{3, 256});
        CHECK(a.targets_tensor().dtype() == DType::I32);
        CHECK(a.targets_tensor().to_i32_vector() == a.targets);
    }
    // Pin one example so that a change to a generator is never silent.
    CHECK(make_example(task("induction", "copy_length=3"), 20, 8, 1, 0).tokens == std::vector<int32_t>{1, 5, 4, 11, 5, 4, 11, 0});
    Example m = make_example(task("mqar", "pairs=2"), 20, 10, 1, 0);
    CHECK(m.tokens == std::vector<int32_t>{5, 19, 10, 16, 10, 16, 5, 19, 12, 4});
    CHECK(m.targets == std::vector<int32_t>{-1, -1, -1, -1, 16, -1, 19, -1, -1, -1});
}

TEST_CASE("induction: [BOS] r r PAD.., scored on the second copy", "[tasks]") {
    const int V = 50, n = 17;
    Batch batch = make_batch(task("induction"), V, 4, n, 3);
    const int m = (n - 1) / 2;  // 8: 1 + 16 = 17 tokens
    for (const Example& e : batch.examples) {
        CHECK(e.tokens[0] == token::BOS);
        for (int i = 0; i < m; ++i) {
            CHECK(e.tokens[1 + i] == e.tokens[1 + m + i]);
            CHECK(e.tokens[1 + i] >= token::FIRST_ORDINARY);
            CHECK(e.tokens[1 + i] < V);
        }
        std::vector<int> expected_scored;
        for (int i = 0; i + 1 < m; ++i) expected_scored.push_back(1 + m + i);
        CHECK(e.scored_positions() == expected_scored);
        for (int p : expected_scored) CHECK(e.targets[p] == e.tokens[p - m + 1]);  // the token after the first copy
        check_targets_are_next_tokens(e);
        auto second = e.markers_of(MarkerKind::SecondCopy);
        REQUIRE(second.size() == static_cast<size_t>(m));
        CHECK(second[2].position == 1 + m + 2);
        CHECK(e.markers_of(MarkerKind::FirstCopy)[2].position == 3);
    }
    Example padded = make_example(task("induction", "copy_length=4"), V, 16, 3, 0);
    for (int t = 9; t < 16; ++t) CHECK(padded.tokens[t] == token::PAD);
    CHECK(padded.scored_positions() == std::vector<int>{5, 6, 7});
    CHECK_THROWS_WITH(make_batch(task("induction", "copy_length=8"), V, 1, 16, 0),
                      Catch::Contains("copy_length=8 does not fit n=16") && Catch::Contains("1 + 2*copy_length <= n"));
    CHECK_THROWS_WITH(make_batch(task("induction"), V, 1, 4, 0), Catch::Contains("(automatic) does not fit n=4"));
}

TEST_CASE("mqar: keys low, values high, distinct; each queried once, gap respected", "[tasks]") {
    const int V = 8192;
    struct Case {
        int n, pairs, gap;
    };
    for (Case s : {Case{64, 4, 0}, Case{128, 8, 0}, Case{256, 16, 100}, Case{512, 8, 480}, Case{33, 8, 0}, Case{40, 3, 33}}) {
        INFO("n=" << s.n << " pairs=" << s.pairs << " gap=" << s.gap);
        TaskConfig c = task("mqar", "pairs=" + std::to_string(s.pairs) + ",gap=" + std::to_string(s.gap));
        Batch batch = make_batch(c, V, 6, s.n, 11);
        for (const Example& e : batch.examples) {
            auto keys = e.markers_of(MarkerKind::Key), values = e.markers_of(MarkerKind::Value),
                 queries = e.markers_of(MarkerKind::Query);
            REQUIRE(keys.size() == static_cast<size_t>(s.pairs));
            REQUIRE(values.size() == static_cast<size_t>(s.pairs));
            REQUIRE(queries.size() == static_cast<size_t>(s.pairs));
            std::set<int32_t> key_set, value_set;
            std::vector<int32_t> key_of(static_cast<size_t>(s.pairs)), value_of(static_cast<size_t>(s.pairs));
            for (int j = 0; j < s.pairs; ++j) {
                CHECK(keys[j].position == 2 * j);
                CHECK(keys[j].index == j);
                CHECK(values[j].position == 2 * j + 1);
                int32_t k = e.tokens[2 * j], v = e.tokens[2 * j + 1];
                CHECK(in_lower_half(k, V));
                CHECK(in_upper_half(v, V));
                key_set.insert(k);
                value_set.insert(v);
                key_of[j] = k;
                value_of[j] = v;
            }
            CHECK(key_set.size() == static_cast<size_t>(s.pairs));  // drawn without replacement
            CHECK(value_set.size() == static_cast<size_t>(s.pairs));
            std::set<int> queried;
            for (const Marker& q : queries) {
                queried.insert(q.index);
                CHECK(e.tokens[q.position] == key_of[q.index]);
                CHECK(e.targets[q.position] == value_of[q.index]);
                CHECK(q.position - (2 * q.index + 1) >= s.gap);
                CHECK(q.position >= 2 * s.pairs);
                if (q.position + 1 < s.n) CHECK(e.tokens[q.position + 1] == value_of[q.index]);
            }
            CHECK(queried.size() == static_cast<size_t>(s.pairs));
            CHECK(e.scored_positions().size() == static_cast<size_t>(s.pairs));
            // The filler never repeats a key, so every occurrence of a key is its pair or its query.
            for (int t = 0; t < s.n; ++t)
                if (key_set.count(e.tokens[t]))
                    CHECK(std::any_of(e.markers.begin(), e.markers.end(), [&](const Marker& m) {
                        return m.position == t && (m.kind == MarkerKind::Key || m.kind == MarkerKind::Query);
                    }));
            check_targets_are_next_tokens(e);
        }
    }
    // Queries come in a random order, not pair order.
    Example e = make_example(task("mqar", "pairs=16"), V, 256, 5, 0);
    auto q = e.markers_of(MarkerKind::Query);
    CHECK_FALSE(std::is_sorted(q.begin(), q.end(), [](const Marker& a, const Marker& b) { return a.index < b.index; }));

    Example pad = make_example(task("mqar", "pairs=4,filler=pad"), V, 64, 5, 0);
    int pads = static_cast<int>(std::count(pad.tokens.begin(), pad.tokens.end(), token::PAD));
    CHECK(pads >= 64 - 4 * 4);  // everything but pairs, queries and their values
}

TEST_CASE("mqar: impossible settings name the parameters", "[tasks]") {
    CHECK_THROWS_WITH(make_batch(task("mqar", "pairs=8"), 8192, 1, 30, 0), Catch::Contains("pairs=8 does not fit n=30"));
    CHECK_THROWS_WITH(make_batch(task("mqar", "pairs=8,gap=300"), 8192, 1, 256, 0),
                      Catch::Contains("gap=300 with pairs=8 does not fit n=256"));
    CHECK_THROWS_WITH(make_batch(task("mqar", "pairs=8"), 16, 1, 256, 0),
                      Catch::Contains("pairs=8 needs 8 distinct keys") && Catch::Contains("vocab_size=16 gives only 6"));
    // The largest gap that fits: the query slots start at 2D = 2 in steps of 2, so the
    // last one starts at 510 = 1 + 509, its value being s_511.
    CHECK_NOTHROW(make_batch(task("mqar", "pairs=1,gap=509"), 64, 2, 512, 0));
    CHECK_THROWS_WITH(make_batch(task("mqar", "pairs=1,gap=510"), 64, 2, 512, 0), Catch::Contains("gap=510 with pairs=1"));
}

TEST_CASE("mqar spread: pair j inside its span of the first S positions, queries after S, gap respected", "[tasks]") {
    const int V = 68;
    struct Case {
        int n, pairs, gap, spread;
    };
    for (Case s : {Case{256, 8, 96, 128}, Case{256, 8, 0, 224}, Case{64, 4, 0, 8}, Case{100, 3, 10, 50}}) {
        INFO("n=" << s.n << " pairs=" << s.pairs << " gap=" << s.gap << " spread=" << s.spread);
        TaskConfig c = task("mqar", cat("pairs=", s.pairs, ",gap=", s.gap, ",spread=", s.spread));
        CHECK(c.describe() == cat("mqar pairs=", s.pairs, " gap=", s.gap, " filler=random spread=", s.spread));
        Batch batch = make_batch(c, V, 8, s.n, 3);
        std::set<int> key_positions;
        for (const Example& e : batch.examples) {
            auto keys = e.markers_of(MarkerKind::Key), values = e.markers_of(MarkerKind::Value),
                 queries = e.markers_of(MarkerKind::Query);
            REQUIRE(keys.size() == static_cast<size_t>(s.pairs));
            REQUIRE(values.size() == static_cast<size_t>(s.pairs));
            REQUIRE(queries.size() == static_cast<size_t>(s.pairs));
            std::vector<int> value_at(static_cast<size_t>(s.pairs));
            for (int j = 0; j < s.pairs; ++j) {
                const Marker& k = keys[static_cast<size_t>(j)];
                const Marker& v = values[static_cast<size_t>(j)];
                REQUIRE(k.index == j);  // markers sorted by position: spans keep the pairs in order
                CHECK(v.index == j);
                CHECK(v.position == k.position + 1);
                CHECK(k.position >= j * s.spread / s.pairs);         // inside its span
                CHECK(v.position < (j + 1) * s.spread / s.pairs);
                CHECK(in_lower_half(e.tokens[k.position], V));
                CHECK(in_upper_half(e.tokens[v.position], V));
                value_at[static_cast<size_t>(j)] = v.position;
                key_positions.insert(k.position);
            }
            for (const Marker& q : queries) {
                CHECK(q.position >= s.spread);
                CHECK((q.position - s.spread) % 2 == 0);  // the slot grid starts at S
                CHECK(q.position - value_at[static_cast<size_t>(q.index)] >= s.gap);
                CHECK(e.tokens[q.position] == e.tokens[keys[static_cast<size_t>(q.index)].position]);
                CHECK(e.targets[q.position] == e.tokens[values[static_cast<size_t>(q.index)].position]);
            }
            CHECK(e.scored_positions().size() == static_cast<size_t>(s.pairs));
            // Between the pairs is filler that never repeats a key.
            for (int t = 0; t < s.n; ++t) {
                const bool marked = std::any_of(e.markers.begin(), e.markers.end(), [&](const Marker& m) { return m.position == t; });
                if (marked) continue;
                for (const Marker& k : keys) CHECK(e.tokens[t] != e.tokens[k.position]);
            }
            check_targets_are_next_tokens(e);
        }
        if (s.spread > 2 * s.pairs) CHECK(key_positions.size() > static_cast<size_t>(s.pairs));  // places drawn, not fixed
        else CHECK(key_positions.size() == static_cast<size_t>(s.pairs));  // spans of 2: each pair fills its span
    }
    // With S/D dividing the chunk (128/8 = 16, chunk 32), chunks 0-3 hold two whole pairs each.
    Example e = make_example(task("mqar", "pairs=8,gap=96,spread=128"), V, 256, 1, 0);
    auto keys = e.markers_of(MarkerKind::Key);
    for (int j = 0; j < 8; ++j) CHECK(keys[static_cast<size_t>(j)].position / 32 == j / 2);
    for (const Marker& v : e.markers_of(MarkerKind::Value)) CHECK(v.position / 32 == v.index / 2);
}

TEST_CASE("mqar: the packed layout (no spread) draws the streams it always drew", "[tasks]") {
    // FNV-1a over tokens then targets of make_batch(mqar, V=68, B=4, n, seed 7), recorded
    // before the spread option existed: spread=0 must not consume a draw or move a token.
    struct Case {
        const char* options;
        int n;
        uint64_t hash;
    };
    for (Case c : {Case{"pairs=8,gap=96", 256, 13390823884292581936ULL}, Case{"pairs=4,gap=32", 64, 3947862206137698629ULL},
                   Case{"pairs=16", 256, 27905334559826470ULL}, Case{"pairs=4,filler=pad", 64, 12086843596454151944ULL}}) {
        INFO(c.options << " n=" << c.n);
        Batch b = make_batch(task("mqar", c.options), 68, 4, c.n, 7);
        uint64_t h = 1469598103934665603ULL;
        for (int32_t t : b.tokens) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ULL;
        for (int32_t t : b.targets) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ULL;
        CHECK(h == c.hash);
    }
}

TEST_CASE("mqar spread: impossible settings name the parameters", "[tasks]") {
    CHECK_THROWS_WITH(task("mqar", "pairs=8,spread=15"), Catch::Contains("spread must be 0") && Catch::Contains("found 15"));
    CHECK_THROWS_WITH(task("mqar", "pairs=8,spread=-1"), Catch::Contains("spread must be 0"));
    CHECK_THROWS_WITH(make_batch(task("mqar", "pairs=8,spread=250"), 68, 1, 256, 0),
                      Catch::Contains("spread=250 with pairs=8 does not fit n=256"));
    // spread 128: pair 7's value may sit at 127, so its query needs 127 + gap <= 254.
    CHECK_NOTHROW(make_batch(task("mqar", "pairs=8,gap=127,spread=128"), 68, 2, 256, 0));
    CHECK_THROWS_WITH(make_batch(task("mqar", "pairs=8,gap=129,spread=128"), 68, 1, 256, 0),
                      Catch::Contains("gap=129 with pairs=8 spread=128 does not fit n=256") && Catch::Contains("end of its span"));
}

TEST_CASE("theorem probe: k* v* in an earlier chunk, out of the window, queried last", "[tasks]") {
    const int V = 64, n = 256;
    TaskConfig c = task("theorem", "chunk=64,window=100");
    Batch batch = make_batch(c, V, 20, n, 2);
    std::set<int> positions;
    for (const Example& e : batch.examples) {
        REQUIRE(e.markers.size() == 3);
        int p = e.markers_of(MarkerKind::Key)[0].position;
        positions.insert(p);
        int32_t k = e.tokens[p], v = e.tokens[p + 1];
        CHECK(e.markers_of(MarkerKind::Value)[0].position == p + 1);
        CHECK(e.markers_of(MarkerKind::Query)[0].position == n - 1);
        CHECK(e.tokens[0] == token::BOS);
        CHECK(e.tokens[n - 1] == k);
        CHECK(e.scored_positions() == std::vector<int>{n - 1});
        CHECK(e.targets[n - 1] == v);
        CHECK(in_lower_half(k, V));
        CHECK(in_upper_half(v, V));
        CHECK((p + 1) / 64 < (n - 1) / 64);
        CHECK(n - 1 - (p + 2) > 100);  // filler between v* and the query
        for (int t = 1; t < n - 1; ++t)
            if (t != p && t != p + 1) {
                CHECK(e.tokens[t] != k);
                CHECK(e.tokens[t] != v);
                CHECK(e.tokens[t] >= token::FIRST_ORDINARY);
            }
    }
    CHECK(positions.size() > 1);  // pair_position=-1 draws the place
    Example fixed = make_example(task("theorem", "chunk=64,window=100,pair_position=10"), V, n, 2, 0);
    CHECK(fixed.markers_of(MarkerKind::Key)[0].position == 10);
    // The last valid place: v* at 63 is in chunk 0, the query at 127 in chunk 1, and the
    // 63 filler tokens 64..126 are more than window = 60.
    CHECK_NOTHROW(make_example(task("theorem", "chunk=64,window=60,pair_position=62"), V, 128, 2, 0));
    CHECK_THROWS_WITH(make_example(task("theorem", "chunk=64,window=60,pair_position=63"), V, 128, 2, 0),
                      Catch::Contains("pair_position=63 is outside the valid positions 1..62"));
    CHECK_THROWS_WITH(make_example(task("theorem", "chunk=32,window=63,pair_position=62"), V, 128, 2, 0),
                      Catch::Contains("pair_position=62 is outside the valid positions 1..61"));
    CHECK_THROWS_WITH(make_example(task("theorem", "chunk=64,window=200"), V, 128, 2, 0),
                      Catch::Contains("no place for k* v* with n=128, chunk=64, window=200"));
    CHECK_THROWS_WITH(make_example(task("theorem", "chunk=256"), V, 128, 2, 0), Catch::Contains("chunk=256"));
}

TEST_CASE("needle: depth places needle 0, queries at the end, values teacher-forced", "[tasks]") {
    const int V = 200, n = 100;
    // One needle of 4 tokens, one query of 4: F = 100 - 8 = 92 filler tokens after BOS.
    for (int depth : {0, 25, 50, 100}) {
        INFO("depth=" << depth);
        Example e = make_example(task("needle", "depth=" + std::to_string(depth)), V, n, 4, 0);
        int magic = e.markers_of(MarkerKind::Needle)[0].position;
        CHECK(magic == 1 + (depth * 92 + 50) / 100);
        CHECK(e.tokens[magic] == token::MAGIC);
        CHECK(e.tokens[magic + 2] == token::IS);
        int32_t k = e.tokens[magic + 1], v = e.tokens[magic + 3];
        CHECK(in_lower_half(k, V));
        CHECK(in_upper_half(v, V));
        // Query [MAGIC] k [IS] at the end; its value v is s_n, the target of the last position.
        CHECK(e.tokens[n - 3] == token::MAGIC);
        CHECK(e.tokens[n - 2] == k);
        CHECK(e.tokens[n - 1] == token::IS);
        CHECK(e.scored_positions() == std::vector<int>{n - 1});
        CHECK(e.targets[n - 1] == v);
    }
    // Pattern filler repeats with the pattern's period across the needle.
    Example e = make_example(task("needle", "pattern_length=5,depth=50"), V, n, 4, 1);
    std::vector<int32_t> filler;
    for (int t = 1; t < n - 3; ++t) {
        bool in_needle = std::any_of(e.markers.begin(), e.markers.end(), [&](const Marker& m) { return m.position == t; }) ||
                         e.tokens[t] == token::MAGIC || e.tokens[t] == token::IS;
        if (!in_needle) filler.push_back(e.tokens[t]);
    }
    REQUIRE(filler.size() == 92);
    for (size_t f = 5; f < filler.size(); ++f) CHECK(filler[f] == filler[f - 5]);
}

TEST_CASE("needle variants: several keys, several values, several queries", "[tasks]") {
    const int V = 300, n = 200;
    for (const std::string& options : {std::string("keys=4"), std::string("values=3"), std::string("keys=5,queries=3,values=2"),
                                       std::string("keys=3,queries=3,filler=random,depth=random")}) {
        INFO(options);
        TaskConfig c = task("needle", options);
        const int K = c.keys, L = c.values, Q = c.queries;
        Batch batch = make_batch(c, V, 4, n, 9);
        for (const Example& e : batch.examples) {
            auto needles = e.markers_of(MarkerKind::Needle), keys = e.markers_of(MarkerKind::Key);
            auto queries = e.markers_of(MarkerKind::Query), answers = e.markers_of(MarkerKind::Answer);
            REQUIRE(needles.size() == static_cast<size_t>(K));
            REQUIRE(queries.size() == static_cast<size_t>(Q));
            CHECK(answers.size() == static_cast<size_t>(Q * L - 1));  // the very last value is s_n
            std::map<int, int32_t> key_of;
            std::map<std::pair<int, int>, int32_t> value_of;
            std::set<int32_t> distinct;
            for (const Marker& k : keys) key_of[k.index] = e.tokens[k.position], distinct.insert(e.tokens[k.position]);
            for (const Marker& v : e.markers_of(MarkerKind::Value)) {
                value_of[{v.index, v.part}] = e.tokens[v.position];
                distinct.insert(e.tokens[v.position]);
                CHECK(in_upper_half(e.tokens[v.position], V));
            }
            CHECK(distinct.size() == static_cast<size_t>(K + K * L));
            // Queries occupy the last Q*(L+3) tokens of the stream, query i asking for needle index < Q.
            std::set<int> asked;
            for (size_t i = 0; i < queries.size(); ++i) {
                const Marker& q = queries[i];
                CHECK(q.position == n - Q * (L + 3) + static_cast<int>(i) * (L + 3) + 2);
                CHECK(q.index < Q);
                asked.insert(q.index);
                CHECK(e.tokens[q.position] == key_of[q.index]);
                CHECK(e.tokens[q.position - 1] == token::MAGIC);
                CHECK(e.tokens[q.position + 1] == token::IS);
                for (int part = 0; part < L; ++part) CHECK(e.targets[q.position + 1 + part] == value_of[{q.index, part}]);
            }
            CHECK(asked.size() == static_cast<size_t>(Q));
            CHECK(e.scored_positions().size() == static_cast<size_t>(Q * L));
            // Filler never shows a key or a value outside the needles and queries.
            for (int t = 1; t < n; ++t) {
                bool marked = std::any_of(e.markers.begin(), e.markers.end(), [&](const Marker& m) { return m.position == t; });
                if (!marked) CHECK(distinct.count(e.tokens[t]) == 0);
            }
            check_targets_are_next_tokens(e);
        }
    }
    CHECK_NOTHROW(make_batch(task("needle", "keys=10,values=5"), V, 1, 88, 0));
    CHECK_THROWS_WITH(make_batch(task("needle", "keys=10,values=5"), V, 1, 87, 0),
                      Catch::Contains("keys=10, queries=1, values=5 do not fit n=87") &&
                          Catch::Contains("need n >= (keys+queries)*(values+3) = 88"));
    CHECK_THROWS_WITH(make_batch(task("needle", "keys=2,values=20"), 40, 1, 200, 0),
                      Catch::Contains("distinct values from the upper half"));
}

TEST_CASE("text: windows of n+1 bytes at seeded offsets, all positions scored", "[tasks]") {
    std::string contents;
    for (int i = 0; i < 1000; ++i) contents += static_cast<char>((i * 7 + i / 13) % 256);
    TempFile file(contents);
    TaskConfig c = task("text", "path=" + file.path);
    const int n = 64;
    Batch batch = make_batch(c, token::TEXT_VOCAB_SIZE, 8, n, 21);
    std::set<int64_t> offsets;
    for (const Example& e : batch.examples) {
        REQUIRE(e.source_offset >= 0);
        REQUIRE(e.source_offset + n + 1 <= 1000);
        offsets.insert(e.source_offset);
        for (int t = 0; t < n; ++t) {
            CHECK(e.tokens[t] == token::from_byte(static_cast<uint8_t>(contents[e.source_offset + t])));
            CHECK(e.targets[t] == token::from_byte(static_cast<uint8_t>(contents[e.source_offset + t + 1])));
        }
    }
    CHECK(offsets.size() > 1);
    CHECK(batch.scored_count() == 8 * n);

    // max_length fixes the windows' ends, so a longer context only adds bytes in front.
    TaskConfig sweep = task("text", "path=" + file.path + ",max_length=256,score_last=16");
    Example short_ctx = make_example(sweep, 260, 32, 21, 3), long_ctx = make_example(sweep, 260, 256, 21, 3);
    CHECK(short_ctx.source_offset + 32 == long_ctx.source_offset + 256);
    CHECK(std::vector<int32_t>(short_ctx.targets.end() - 16, short_ctx.targets.end()) ==
          std::vector<int32_t>(long_ctx.targets.end() - 16, long_ctx.targets.end()));
    CHECK(short_ctx.scored_positions().size() == 16);
    CHECK(short_ctx.scored_positions().front() == 16);

    CHECK_THROWS_WITH(make_batch(c, 260, 1, 1000, 0), Catch::Contains("has 1000 bytes, need at least 1001"));
    CHECK_NOTHROW(make_batch(c, 260, 1, 999, 0));
    CHECK_THROWS_WITH(make_batch(c, 100, 1, 10, 0), Catch::Contains("vocab_size=100 is too small for bytes"));
    CHECK_THROWS_WITH(make_batch(sweep, 260, 1, 300, 0), Catch::Contains("max_length=256 is below n=300"));
}

TEST_CASE("accuracy counts only scored positions; logits go through argmax", "[tasks]") {
    Batch batch = make_batch(task("mqar", "pairs=4"), 64, 3, 32, 1);
    std::vector<int32_t> perfect = batch.targets;
    for (int32_t& p : perfect)
        if (p == IGNORE_TARGET) p = 5;  // unscored positions never count
    Accuracy a = count_correct(batch, perfect);
    CHECK(a.scored == 12);
    CHECK(a.correct == 12);
    CHECK(a.examples_all_correct == 3);
    CHECK(a.fraction() == 1.0);

    // Logits (B, n, V) with the target's logit highest except at one scored position of example 1.
    Tensor logits = Tensor::zeros({3, 32, 64});
    for (size_t i = 0; i < batch.targets.size(); ++i)
        if (batch.targets[i] != IGNORE_TARGET) logits.data<float>()[i * 64 + static_cast<size_t>(batch.targets[i])] = 1.0f;
    int wrong = batch.examples[1].scored_positions()[0];
    logits.data<float>()[(32 + static_cast<size_t>(wrong)) * 64 + 7] = 2.0f;
    Accuracy b = count_correct(batch, logits);
    CHECK(b.correct == 11);
    CHECK(b.examples_all_correct == 2);
    CHECK(count_correct(batch, Tensor::from_vector(perfect, {3, 32})).correct == 12);
    CHECK_THROWS_WITH(count_correct(batch, std::vector<int32_t>(5)), Catch::Contains("5 predictions, expected B*n = 3*32 = 96"));
    CHECK(argmax_last_dim(Tensor::from_vector(std::vector<double>{1, 3, 3, 0, 9, 2}, {2, 3})) == std::vector<int32_t>{1, 1});
}

namespace {
// The document list corpus.sh writes next to a corpus file: <path>.docs, removed at the end.
struct TempSidecar {
    std::string path;
    TempSidecar(const std::string& text_path, const std::string& contents) : path(text_path + ".docs") {
        std::ofstream(path, std::ios::binary) << contents;
    }
    ~TempSidecar() { std::remove(path.c_str()); }
};
}  // namespace

TEST_CASE("text: a document list bounds the windows (docs=bounded), or is ignored (docs=packed)", "[tasks][boundaries]") {
    std::string contents;
    for (int i = 0; i < 300; ++i) contents += static_cast<char>((i * 11 + i / 7) % 256);
    TempFile file(contents);
    // Five documents, one of a single byte (37) and one empty (90 twice: counted once).
    const std::vector<int64_t> offsets = {0, 37, 38, 90, 150, 260};
    TempSidecar docs(file.path, "0\ta.txt\n37\tb.txt\n38\tc.txt\n90\td.txt\n90\tempty.txt\n150\te.txt\n260\tf.txt\n");
    TaskConfig c = task("text", "path=" + file.path);
    REQUIRE(c.docs == TextDocs::Bounded);
    CHECK(*c.document_offsets == offsets);
    CHECK(c.describe() == cat("text path=", file.path, " score_last=0 max_length=0 docs=bounded (6 documents)"));

    const int n = 64, B = 12;
    Batch batch = make_batch(c, token::TEXT_VOCAB_SIZE, B, n, 5);
    REQUIRE(batch.document_starts.size() == static_cast<size_t>(B));
    int rows_with_boundaries = 0;
    for (int b = 0; b < B; ++b) {
        const Example& e = batch.examples[static_cast<size_t>(b)];
        const int64_t start = e.source_offset;
        std::vector<int> starts = {0};
        std::set<int> crossing;  // positions whose next byte opens a document
        for (int64_t o : offsets) {
            if (o > start && o < start + n) starts.push_back(static_cast<int>(o - start));
            if (o > start && o <= start + n) crossing.insert(static_cast<int>(o - start - 1));
        }
        INFO("window at byte " << start);
        CHECK(e.document_starts == starts);
        CHECK(batch.document_starts[static_cast<size_t>(b)] == starts);
        rows_with_boundaries += starts.size() > 1;
        for (int t = 0; t < n; ++t) {
            const int32_t next = token::from_byte(static_cast<uint8_t>(contents[static_cast<size_t>(start + t + 1)]));
            CHECK(e.targets[static_cast<size_t>(t)] == (crossing.count(t) ? IGNORE_TARGET : next));
        }
    }
    CHECK(rows_with_boundaries >= B / 2);  // not vacuous: most windows hold a boundary

    // docs=packed: the same windows as one stream, every position scored, no boundaries.
    TaskConfig packed = task("text", "path=" + file.path + ",docs=packed");
    CHECK(packed.describe() == cat("text path=", file.path, " score_last=0 max_length=0 docs=packed"));
    Batch one_stream = make_batch(packed, token::TEXT_VOCAB_SIZE, B, n, 5);
    CHECK(one_stream.document_starts.empty());
    CHECK(one_stream.tokens == batch.tokens);
    CHECK(one_stream.scored_count() == B * n);
    CHECK_THROWS_WITH(task("text", "path=" + file.path + ",docs=maybe"), Catch::Contains("option docs: expected bounded or packed, found 'maybe'"));
}

TEST_CASE("text: without a document list the task is packed; a malformed list is refused naming its line", "[tasks][boundaries]") {
    TempFile file(std::string(100, 'x'));
    TaskConfig plain = task("text", "path=" + file.path);
    CHECK(plain.docs == TextDocs::Packed);
    CHECK(make_batch(plain, token::TEXT_VOCAB_SIZE, 2, 16, 1).document_starts.empty());
    CHECK_THROWS_WITH(task("text", "path=" + file.path + ",docs=bounded"), Catch::Contains("docs=bounded needs the document list '" + file.path + ".docs'"));
    const std::string list = "document list '" + file.path + ".docs'";
    auto refused = [&](const std::string& sidecar, const std::string& what) {
        TempSidecar docs(file.path, sidecar);
        INFO(sidecar);
        CHECK_THROWS_WITH(task("text", "path=" + file.path), Catch::Contains(list) && Catch::Contains(what));
    };
    refused("0\ta\n50\tb\n20\tc\n", "line 3: offsets must be sorted: 20 comes after 50");
    refused("0\ta\n101\tb\n", "line 2: offset 101 is past the end of the text (100 bytes)");
    refused("0\ta\nfifty\tb\n", "line 2: expected '<byte offset><TAB><source path>' with a decimal offset, found 'fifty\tb'");
    refused("0 a\n", "line 1: expected '<byte offset><TAB><source path>'");
    refused("-5\ta\n", "line 1: expected '<byte offset><TAB><source path>'");
    refused("10\ta\n", "line 1: the first document must start at offset 0, found 10");
    refused("", "is empty");
    TempSidecar fine(file.path, "0\ta\n100\tb\n");  // a last empty document at the end is allowed
    CHECK(*task("text", "path=" + file.path).document_offsets == std::vector<int64_t>{0, 100});
}
