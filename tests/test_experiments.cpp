// The experiment sections of docs/results.md (src/tools/exp/*.sh, `make exp-<name>`)
// at smoke size (EXP_SMOKE=1: a few steps, tiny batches). Experiments are not tests:
// this checks the plumbing each section needs to run end to end on a fresh clone
// (configs, corpus, ittt's flags, the JSON it writes, the plots), not the numbers.
// Each section must: exit 0; print progress lines with an ETA and its wall time;
// write results.json marked "smoke": true; and, started again, skip every finished
// run (the resumability `make exp-*` promises).
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <utility>

#include "test_process.h"

namespace {

using ittt::test::read_file;
using ittt::test::repo_file;
using ittt::test::Result;
using ittt::test::run_shell;
using ittt::test::self_dir;
using ittt::test::TempDir;

Result run_section(const TempDir& scratch, const std::string& section) {
    const std::string script = repo_file("src/tools/exp/" + section + ".sh");
    return run_shell(scratch, "EXP_SMOKE=1 EXP_BIN='" + self_dir() + "/ittt' '" + script + "' '" + scratch.path + "/out'");
}

void check_section(const std::string& section) {
    const std::string md = ".md";  // spelt apart: the docs test reads a file name ending in it as a pointer to a file
    TempDir scratch("ittt_exp_" + section);
    Result first = run_section(scratch, section);
    INFO("stderr:\n" << first.err.substr(first.err.size() > 4000 ? first.err.size() - 4000 : 0));
    REQUIRE(first.rc == 0);
    CHECK(first.err.find("ETA") != std::string::npos);
    CHECK(first.err.find("exp-" + section + ": done in") != std::string::npos);
    const std::string results = read_file(scratch.path + "/out/results.json");
    CHECK(results.find("\"section\": \"" + section + "\"") != std::string::npos);
    CHECK(results.find("\"smoke\": true") != std::string::npos);
    CHECK(std::filesystem::exists(scratch.path + "/out/table" + md));

    const std::string table = read_file(scratch.path + "/out/table" + md);
    Result again = run_section(scratch, section);
    INFO("second run, stderr:\n" << again.err);
    REQUIRE(again.rc == 0);
    CHECK(again.err.find("; 0 runs run,") != std::string::npos);
    CHECK(again.err.find("skipped") != std::string::npos);
    CHECK(read_file(scratch.path + "/out/table" + md) == table);  // the same results, read back
}

}  // namespace

TEST_CASE("experiments: section 1 (learned target) runs end to end at smoke size and resumes", "[experiments]") {
    check_section("learned");
}

TEST_CASE("experiments: section 2 (text perplexity vs context) runs end to end at smoke size and resumes", "[experiments]") {
    check_section("text");
}

TEST_CASE("experiments: section 2's size trend runs end to end at smoke size and resumes", "[experiments]") {
    check_section("size");  // runs section 2 first, into the sibling folder, for its d = 64 rows
}

TEST_CASE("experiments: section 3 (ablations) runs end to end at smoke size and resumes", "[experiments]") {
    check_section("ablate");
}

TEST_CASE("experiments: section 4 (needles) runs end to end at smoke size and resumes", "[experiments]") {
    check_section("needle");
}

TEST_CASE("experiments: section 4's trainability rows (needle-train) run end to end at smoke size and resume", "[experiments]") {
    check_section("needle-train");
}

TEST_CASE("experiments: section 5 (continual drop-in) runs end to end at smoke size and resumes", "[experiments]") {
    check_section("continual");
}

TEST_CASE("experiments: exp_config sets, adds and keeps config keys", "[experiments]") {
    TempDir scratch("ittt_exp_config");
    const std::string lib = repo_file("src/tools/exp/lib.sh");
    const std::string base = repo_file("data/configs/exp/mqar_swa_ttt.json");
    Result r = run_shell(scratch, "bash -c \"source '" + lib + "' && exp_config '" + base + "' '" + scratch.path +
                                      "/c.json' ttt_chunk=16 'ttt_layers=[1]' 'ttt_proj_init=\\\"identity\\\"'\"");
    REQUIRE(r.rc == 0);
    Result init = run_shell(scratch, "'" + self_dir() + "/ittt' init --config '" + scratch.path + "/c.json' --out '" + scratch.path + "/ck'");
    INFO(init.err);
    REQUIRE(init.rc == 0);
    const std::string written = read_file(scratch.path + "/ck/config.json");
    CHECK(written.find("\"ttt_chunk\": 16") != std::string::npos);
    CHECK(written.find("\"ttt_proj_init\": \"identity\"") != std::string::npos);
    CHECK(written.find("\"sliding_window\": 32") != std::string::npos);  // untouched keys stay
}

TEST_CASE("experiments: the sweep helpers pick the lowest validation measure and summarise seeds", "[experiments]") {
    TempDir scratch("ittt_exp_sweep");
    const std::string lib = repo_file("src/tools/exp/lib.sh");
    // A measure per run name: the rate 3e-3 is lowest at seed 1 (what exp_best_rate reads).
    Result r = run_shell(scratch, "bash -c \"source '" + lib + "' && measure() { case \\$1 in a.lr1e-3) echo 2.5 ;; a.lr3e-3) echo 1.25 ;; *) echo 9 ;; esac; } && " +
                                      "exp_best_rate a '1e-3 3e-3 1e-2' measure && exp_run_name a 3e-3 1 && exp_run_name a '' 2 && exp_seed_flags 3 && " +
                                      "exp_seed_stats 1 2 6 && exp_mean_range %.2f 1 2 6 && exp_mean_range %.1f 5 5 5\"");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out == "3e-3\na.lr3e-3\na.s2\n--seed 3 --init-seed 2\n3 1 6 2.64575131\n3.00 (1.00-6.00)\n5.0\n");
}

TEST_CASE("experiments: a rate search whose lowest rate wins goes on below the grid, up to EXP_EXTEND rates", "[experiments]") {
    TempDir scratch("ittt_exp_extend");
    const std::string lib = repo_file("src/tools/exp/lib.sh");
    // Arm a keeps improving downward (so the search stops at EXP_EXTEND = 2 rates below);
    // arm b's best is inside the grid (no extension); arm c's lowest wins, then 3e-4 does worse.
    const std::string measure = "measure() { case \\$1 in a.lr3e-3) echo 3 ;; a.lr1e-3) echo 2 ;; a.lr3e-4) echo 1.5 ;; a.lr1e-4) echo 1 ;; "
                                "b.lr1e-3) echo 2 ;; b.lr3e-3) echo 1 ;; c.lr1e-3) echo 1 ;; c.lr3e-4) echo 4 ;; *) echo 9 ;; esac; }";
    Result r = run_shell(scratch, "bash -c \"source '" + lib + "' && " + measure + " && run() { echo \\$1 \\$2 \\$3 >> '" + scratch.path +
                                      "/ran'; } && EXP_BIN=/bin/true && exp_begin t '" + scratch.path + "/out' 1 2> /dev/null && " +
                                      "for arm in a b c; do EXP_EXTEND=2 exp_sweep_rates \\$arm '1e-3 3e-3' run measure 2> /dev/null; done && " +
                                      "exp_rate_below 1e-3 && exp_rate_below 3e-4 && exp_arm_rates a '1e-3 3e-3' && echo && exp_best_rate a '1e-3 3e-3' measure && " +
                                      "exp_best_rate c '1e-3 3e-3' measure && cols=\\$(exp_rates_columns 'a b c' '1e-3 3e-3') && echo \\$cols && " +
                                      "exp_rates_row b b '1e-3 3e-3' measure \\\"\\$cols\\\"\"");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out == "3e-4\n1e-4\n1e-4 3e-4 1e-3 3e-3\n1e-4\n1e-3\n1e-4 3e-4 1e-3 3e-3\n| b | - | - | 2 | 1 * |\n");
    CHECK(read_file(scratch.path + "/ran") == "a.lr1e-3 1e-3 1\na.lr3e-3 3e-3 1\na.lr3e-4 3e-4 1\na.lr1e-4 1e-4 1\n"
                                              "b.lr1e-3 1e-3 1\nb.lr3e-3 3e-3 1\nc.lr1e-3 1e-3 1\nc.lr3e-3 3e-3 1\nc.lr3e-4 3e-4 1\n");
}

TEST_CASE("experiments: a setting that must be a count is refused by name when it is not one", "[experiments]") {
    TempDir scratch("ittt_exp_count");
    const std::string lib = repo_file("src/tools/exp/lib.sh");
    Result r = run_shell(scratch, "EXP_EXTEND=abc EXP_BIN=/bin/true bash -c \"source '" + lib + "' && exp_begin t '" + scratch.path + "/out' 1\"");
    CHECK(r.rc == 2);
    CHECK(r.err.find("EXP_EXTEND must be a whole number >= 0, found 'abc'") != std::string::npos);
    Result q = run_shell(scratch, "TRAIN_QUERIES=0 EXP_SMOKE=1 EXP_BIN='" + self_dir() + "/ittt' '" + repo_file("src/tools/exp/needle.sh") + "' '" +
                                      scratch.path + "/needle'");
    CHECK(q.rc == 2);
    CHECK(q.err.find("TRAIN_QUERIES must be a whole number >= 1, found '0'") != std::string::npos);
}

TEST_CASE("experiments: the text corpus keeps train and held-out as they were and splits the held-out files in two", "[experiments]") {
    TempDir scratch("ittt_exp_corpus");
    Result r = run_shell(scratch, "'" + repo_file("src/tools/exp/corpus.sh") + "' '" + scratch.path + "/corpus'");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    const std::string dir = scratch.path + "/corpus/";
    const std::string json = read_file(dir + "corpus.json");
    // The SHA-256 of train.txt and heldout.txt before the validation split: sections 2 and 5's data.
    CHECK(json.find("\"train_sha256\": \"8f2775bb971b800056f5fa5d3638335323336e729c90cc02c90c7ca738b0b5d4\"") != std::string::npos);
    CHECK(json.find("\"heldout_sha256\": \"ddcdf696d68c66dcf14d21c3a584f5fdd60ad6a65ed3bbfa1aa8f3e0dbfdd055\"") != std::string::npos);
    const std::pair<const char*, int> splits[] = {{"train", 104}, {"heldout", 26}, {"valid", 13}, {"test", 13}};
    for (const auto& [split, files] : splits) {
        INFO(split);
        CHECK(json.find("\"" + std::string(split) + "_files\": " + std::to_string(files) + ",") != std::string::npos);
        // X.txt.docs: "offset<TAB>path" per file, from 0, each offset the previous plus its file's size.
        const std::string docs = read_file(dir + split + ".txt.docs");
        size_t at = 0, expected_offset = 0;
        int lines = 0;
        while (at < docs.size()) {
            const size_t tab = docs.find('\t', at), end = docs.find('\n', at);
            REQUIRE(tab < end);
            REQUIRE(end != std::string::npos);
            CHECK(std::stoull(docs.substr(at, tab - at)) == expected_offset);
            const std::string path = docs.substr(tab + 1, end - tab - 1);
            expected_offset += std::filesystem::file_size(path);
            at = end + 1;
            lines++;
        }
        CHECK(lines == files);
        CHECK(expected_offset == std::filesystem::file_size(dir + split + ".txt"));
    }
    // valid.txt and test.txt are the held-out files, no more, no fewer.
    CHECK(std::filesystem::file_size(dir + "valid.txt") + std::filesystem::file_size(dir + "test.txt") ==
          std::filesystem::file_size(dir + "heldout.txt"));
}

namespace {

// "key: value" from a data/<name>/README.md ("" when absent).
std::string readme_line(const std::string& readme, const std::string& key) {
    const std::string text = read_file(readme);
    const size_t at = text.find("\n" + key + ": ");
    if (at == std::string::npos) return "";
    const size_t begin = at + key.size() + 3;
    return text.substr(begin, text.find('\n', begin) - begin);
}

double json_number(const std::string& json, const std::string& key) {
    const size_t at = json.find("\"" + key + "\": ");
    return at == std::string::npos ? -1.0 : std::stod(json.substr(at + key.size() + 4));
}

}  // namespace

TEST_CASE("experiments: data/learned-mqar, the learned target's checkpoint, still answers MQAR beyond the window", "[experiments]") {
    // Its README says what it was trained on; held-out batches must clear section 1's bar.
    TempDir scratch("ittt_exp_ckpt");
    const std::string dir = repo_file("data/learned-mqar");
    const std::string task = readme_line(dir + "/README.md", "task"), seq = readme_line(dir + "/README.md", "seq-len");
    REQUIRE(task == "mqar pairs=8,gap=96");
    REQUIRE(seq == "256");
    Result r = run_shell(scratch, "'" + self_dir() + "/ittt' eval --ckpt '" + dir + "' --task mqar --task-opt " + task.substr(5) +
                                      " --seq-len " + seq + " --seed 1000 --batches 2 --batch 16 --json");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(json_number(r.out, "accuracy") >= 0.9);
}

TEST_CASE("experiments: data/continual-text, the continual drop-in's checkpoint, uses context past its window", "[experiments]") {
    // Held-out loss on the same final 64 bytes: with 960 bytes of context it must be
    // clearly lower than with none (section 5: 1.205 -> 0.817 nats per byte).
    TempDir scratch("ittt_exp_ckpt");
    const std::string dir = repo_file("data/continual-text");
    REQUIRE(readme_line(dir + "/README.md", "seq-len") == "1024");
    REQUIRE(readme_line(dir + "/README.md", "task").rfind("text path=", 0) == 0);
    Result corpus = run_shell(scratch, "'" + repo_file("src/tools/exp/corpus.sh") + "' '" + scratch.path + "/corpus'");
    INFO(corpus.err);
    REQUIRE(corpus.rc == 0);
    auto loss_at = [&](int n) {
        Result r = run_shell(scratch, "'" + self_dir() + "/ittt' eval --ckpt '" + dir + "' --task text --task-opt path=" + scratch.path +
                                          "/corpus/heldout.txt,score_last=64,max_length=1024,docs=packed --seq-len " + std::to_string(n) +
                                          " --seed 1000 --batches 1 --batch 16 --json");
        INFO(r.err);
        REQUIRE(r.rc == 0);
        return json_number(r.out, "loss");
    };
    const double no_context = loss_at(64), long_context = loss_at(1024);
    CHECK(no_context > 0);
    CHECK(long_context < no_context - 0.2);
}
