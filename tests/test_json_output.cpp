// Every `--json` output of `ittt`, fed strings a hand-written JSON line would
// break on: quotes, backslashes, newlines, tabs and other control characters,
// non-ASCII text and bytes that are not UTF-8, in a checkpoint's path, a task's
// file, a --text / --prompt and a --plots directory. Each output must parse
// back with the project's strict parser (io/json.h) and give the strings back
// as they went in (bytes that are not UTF-8, which a file name may hold, as
// U+FFFD; the tokenizer refuses such a --text itself); 64-bit seeds print
// exactly, and a NaN prints as null. (The writer itself: tests/test_io.cpp.)
#include <cmath>
#include <filesystem>

#include "cli_util.h"
#include "io/json.h"
#include "model/model_io.h"
#include "test_process.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

// One shell word holding any bytes but NUL: single quotes, each ' as '\''.
std::string shell_word(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// What a hand-written JSON line gets wrong, in a name a file or directory may have.
const std::string kNasty = "q\"uote back\\slash new\nline tab\tctl\x01\x1f caf\xC3\xA9 \xE2\x82\xAC '";

}  // namespace

TEST_CASE("--json outputs: quotes, backslashes, control characters and non-ASCII in paths and text round-trip", "[json-output][cli]") {
    TempDir tmp("ittt_test_json");
    // A TTT model with the tokenizer fixture's vocabulary, at a path with every awkward character.
    const std::string ckpt = tmp / ("ckpt " + kNasty);
    ModelConfig c = tiny_config();
    c.vocab_size = 1210;
    Model model(c);
    model.init_random(3);
    save_model(ckpt, model);
    fs::copy_file(repo_file("tests/fixtures/tokenizer/tokenizer.json"), ckpt + "/tokenizer.json");
    const std::string text_file = tmp / ("text " + kNasty + ".txt");
    {
        std::string corpus;
        for (int i = 0; i < 400; ++i) corpus += "the quick brown fox jumps over the lazy dog; ";
        write_text(text_file, corpus);
    }

    SECTION("eval --json: a text task whose path needs escapes") {
        Result r = run_ittt(tmp, "eval --ckpt " + shell_word(ckpt) + " --task text --task-opt " + shell_word("path=" + text_file) +
                                     " --seed 1 --seq-len 16 --batch 2 --batches 1 --json");
        REQUIRE(r.rc == 0);
        Json ev = parse_json(r.out, "eval --json");
        CHECK_THAT(ev.at("task").as_string(), Contains("path=" + text_file));
        CHECK(std::isfinite(ev.at("loss").as_number()));
    }
    SECTION("eval --json: with a document list next to the text, the task says docs=bounded and how many documents") {
        write_text(text_file + ".docs", "0\ta.txt\n450\tb.txt\n9000\tc.txt\n");  // corpus.sh's sidecar
        Result r = run_ittt(tmp, "eval --ckpt " + shell_word(ckpt) + " --task text --task-opt " + shell_word("path=" + text_file) +
                                     " --seed 1 --seq-len 16 --batch 2 --batches 1 --json");
        REQUIRE(r.rc == 0);
        Json ev = parse_json(r.out, "eval --json");
        CHECK_THAT(ev.at("task").as_string(), Contains("docs=bounded (3 documents)"));
        CHECK(std::isfinite(ev.at("loss").as_number()));
        r = run_ittt(tmp, "eval --ckpt " + shell_word(ckpt) + " --task text --task-opt " + shell_word("path=" + text_file + ",docs=packed") +
                              " --seed 1 --seq-len 16 --batch 2 --batches 1 --json");
        REQUIRE(r.rc == 0);
        CHECK_THAT(parse_json(r.out, "eval --json").at("task").as_string(), Contains("docs=packed"));
    }
    SECTION("forward --json and generate --json: the text as given, the tokens' text, and the decode") {
        const std::string text = "say \"hi\" \\ then\nnew line\ttab \x01 caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD <|im_end|>";
        Result r = run_ittt(tmp, "forward --ckpt " + shell_word(ckpt) + " --text " + shell_word(text) + " --json");
        REQUIRE(r.rc == 0);
        Json fw = parse_json(r.out, "forward --text --json");
        CHECK(fw.at("text").as_string() == text);
        CHECK(fw.at("logits").size() == fw.at("tokens").size());
        // The text view quotes each token with the same escapes: every quoted token parses.
        r = run_ittt(tmp, "forward --ckpt " + shell_word(ckpt) + " --text " + shell_word(text) + " --top 2");
        REQUIRE(r.rc == 0);
        for (const std::string& line : lines_of(r.out)) {
            const size_t open = line.find(" \""), bar = line.find(" | top:");
            REQUIRE(open != std::string::npos);
            REQUIRE(bar != std::string::npos);
            CHECK_NOTHROW(Json::parse(line.substr(open + 1, bar - open - 1), "a token as text").as_string());
        }
        r = run_ittt(tmp, "generate --ckpt " + shell_word(ckpt) + " --prompt " + shell_word(text) + " --n 8 --json");
        REQUIRE(r.rc == 0);
        Json gen = parse_json(r.out, "generate --prompt --json");
        CHECK(gen.at("prompt_text").as_string() == text);
        CHECK(gen.at("generated").size() == 8);
        CHECK(gen.at("generated_text").is_string());
    }
    SECTION("step --json: a --plots directory whose name is not UTF-8 is shown with U+FFFD, not as broken JSON") {
        const std::string plots = tmp / "plots \xFF" "bytes \xC3";  // Linux names are bytes; JSON text is UTF-8
        Result r = run_ittt(tmp, "step --theory --trials 2 --json --no-steps --plots " + shell_word(plots));
        INFO(r.err);
        REQUIRE(r.rc == 0);
        std::vector<std::string> lines = lines_of(r.out);
        REQUIRE(!lines.empty());
        CHECK(parse_json(lines.back(), "step --json, the plots line").at("dir").as_string() ==
              tmp / "plots \xEF\xBF\xBD" "bytes \xEF\xBF\xBD");
    }
    SECTION("step --json: the checkpoint's path in the model summary, the --plots directory in the plots line") {
        Result r = run_ittt(tmp, "step --ckpt " + shell_word(ckpt) + " --examples 2 --json --no-steps --no-plots");
        REQUIRE(r.rc == 0);
        std::vector<std::string> lines = lines_of(r.out);
        REQUIRE(lines.size() == 2);
        for (const std::string& line : lines) {
            Json j = parse_json(line, "step --ckpt --json");
            CHECK(j.at("type").as_string() == "model_summary");
            CHECK(j.at("checkpoint").as_string() == ckpt);
        }
        const std::string plots = tmp / ("plots " + kNasty);
        r = run_ittt(tmp, "step --theory --trials 2 --json --no-steps --plots " + shell_word(plots));
        REQUIRE(r.rc == 0);
        lines = lines_of(r.out);
        REQUIRE(!lines.empty());
        Json j = parse_json(lines.back(), "step --json, the plots line");
        CHECK(j.at("type").as_string() == "plots");
        CHECK(j.at("dir").as_string() == plots);
        for (const Json& p : j.at("paths").as_array()) CHECK(p.as_string().rfind(plots + "/", 0) == 0);
    }
    SECTION("train --json: one line per step into a run directory with an awkward name") {
        Result r = run_ittt(tmp, "train --ckpt " + shell_word(ckpt) + " --out " + shell_word(tmp / ("run " + kNasty)) +
                                     " --task induction --seq-len 16 --batch 2 --steps 2 --warmup 1 --json");
        REQUIRE(r.rc == 0);
        std::vector<std::string> lines = lines_of(r.out);
        REQUIRE(lines.size() == 2);
        for (size_t i = 0; i < lines.size(); ++i) CHECK(parse_json(lines[i], "train --json").at("step").as_int() == static_cast<int>(i) + 1);
    }
}

TEST_CASE("--json outputs: 64-bit seeds exactly, NaN as null", "[json-output][cli]") {
    TempDir tmp("ittt_test_json");
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + (tmp / "m")).rc == 0);
    const std::string eval = " --task induction --seq-len 16 --batch 2 --batches 1 --json";
    // 2^63 - 1 is no double: a writer that went through one would print ...5808.
    Result r = run_ittt(tmp, "eval --ckpt " + (tmp / "m") + eval + " --seed 9223372036854775807");
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Contains("\"seed\": 9223372036854775807,"));
    r = run_ittt(tmp, "step --theory --trials 2 --seed 9223372036854775807 --json --no-steps --no-plots");
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Contains("\"seed\":9223372036854775807,"));

    // A NaN weight, read with --allow-nonfinite: the loss is NaN, printed as null (the line still parses).
    {
        Model m = load_model(tmp / "m");
        m.parameter("model.layers.0.mlp.down_proj.weight").value.data<float>()[7] = std::nanf("");
        save_model(tmp / "nan", m);
    }
    r = run_ittt(tmp, "eval --ckpt " + (tmp / "nan") + eval + " --seed 1 --allow-nonfinite");
    REQUIRE(r.rc == 0);
    Json ev = parse_json(r.out, "eval --json of a NaN model");
    CHECK(ev.at("loss").is_null());
    r = run_ittt(tmp, "forward --ckpt " + (tmp / "nan") + " --tokens 1,2,3 --json --allow-nonfinite");
    REQUIRE(r.rc == 0);
    bool any_null = false;
    const Json fw = parse_json(r.out, "forward --json of a NaN model");
    for (const Json& row : fw.at("logits").as_array())
        for (const Json& x : row.as_array()) any_null = any_null || x.is_null();
    CHECK(any_null);
}
