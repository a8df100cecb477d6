// Bad inputs and what each gets (issue 9): the table in docs/reliability.md is
// this test's output. Every row runs the real `ittt` binary and checks its exit
// code and message; the table is rewritten from the runs with
//
//   make reliability-table      (ITTT_RELIABILITY_DOC=docs/reliability.md build/ittt_tests "[reliability-table]")
//
// and, without that variable, the test checks that the doc lists every row
// with the exit code it has now (so the table cannot silently fall behind).
#include <signal.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>

#include "cli_util.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/writer_lock.h"
#include "model/model_io.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

struct Row {
    Row(const char* kind_, std::string args_, std::string env_, int rc_, std::string expect_, std::string then_ = "", int then_rc_ = 0,
        std::string then_expect_ = "", std::string redirect_ = "")
        : kind(kind_), args(std::move(args_)), env(std::move(env_)), rc(rc_), expect(std::move(expect_)), then(std::move(then_)),
          then_rc(then_rc_), then_expect(std::move(then_expect_)), redirect(std::move(redirect_)) {}
    const char* kind;      // CLI, config, checkpoint, disk, signal
    std::string args;      // after `ittt`; $TMP and $REPO are substituted
    std::string env;       // e.g. ITTT_FAULT=write:3:enospc
    int rc;                // the exit code it must get
    std::string expect;    // a part of the message it must get
    std::string then;      // optional: a second command, run after it (the state it left)
    int then_rc;
    std::string then_expect;
    std::string redirect;  // optional: where stdout goes instead ("> /dev/full", ">&-", "| head -n 1 > /dev/null")
};

std::string substitute(std::string s, const std::string& tmp, const std::string& repo) {
    for (auto [key, value] : {std::pair<std::string, std::string>{"$TMP", tmp}, {"$REPO", repo}})
        for (size_t at; (at = s.find(key)) != std::string::npos;) s.replace(at, key.size(), value);
    return s;
}

// What a user sees, made independent of this machine and run: temp and repo
// paths, process ids, memory sizes.
std::string normalise(std::string s, const std::string& tmp, const std::string& repo) {
    for (auto [from, to] : {std::pair<std::string, std::string>{tmp, "$TMP"}, {repo + "/", ""}})
        for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
    s = std::regex_replace(s, std::regex("\\.(staging|trash|tmp|write-test)\\.[0-9]+"), ".$1.PID");
    s = std::regex_replace(s, std::regex("this machine has [0-9.]+ [KMGT]iB available"), "this machine has N GiB available");
    s = std::regex_replace(s, std::regex("\\(pid [0-9]+, "), "(pid PID, ");
    s = std::regex_replace(s, std::regex("since [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC"), "since TIME");
    s = std::regex_replace(s, std::regex("cannot write to stdout \\(Broken pipe\\) after step [0-9]+"), "cannot write to stdout (Broken pipe) after step N");
    return s;
}

// The line that says what happened: the error (or usage error) line, else the
// last line of stdout, else the last note on stderr.
std::string message_of(const Result& r) {
    std::vector<std::string> err = r.err_lines(), out = lines_of(r.out);
    for (const std::string& l : err)
        if (l.find(": error: ") != std::string::npos) return l;
    if (r.rc == 2 && !err.empty()) return err.front();
    if ((r.rc == 128 + SIGTERM || r.rc == 128 + SIGINT) && !err.empty()) return err.back();  // the line of a graceful stop
    if (!out.empty()) return out.back();
    return err.empty() ? "" : err.back();
}

std::string cell(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
}

std::string exit_text(int rc) {
    return rc == 137 ? "137 (SIGKILL)" : rc == 143 ? "143 (SIGTERM)" : rc == 130 ? "130 (SIGINT)" : std::to_string(rc);
}

// A config.json: tiny.json with one key replaced (or added).
std::string config_with(const std::string& repo, const std::string& key, const std::string& value) {
    std::string text = read_text(repo + "/data/configs/tiny.json");
    std::smatch m;
    std::regex pattern("\"" + key + "\": [^,\n]+");
    if (std::regex_search(text, m, pattern)) return text.replace(static_cast<size_t>(m.position(0)), static_cast<size_t>(m.length(0)), "\"" + key + "\": " + value);
    return text.replace(text.find('{'), 1, "{\n  \"" + key + "\": " + value + ",");
}

// The fault point, counted over a traced run, of the first `op` inside the save of `step`.
int64_t point_in_save(const TempDir& tmp, const std::string& train, const std::string& op, int64_t step) {
    Result r = run_ittt(tmp, train, "ITTT_FAULT=trace");
    INFO("ittt " << train << "\n" << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0));
    REQUIRE(r.rc == 0);
    bool inside = false;
    int64_t of_kind = 0;
    for (const std::string& l : r.err_lines()) {
        if (l.rfind("ittt fault point ", 0) != 0) continue;
        if (l.find(cat(".", run_checkpoint_name(step), ".staging.")) != std::string::npos) inside = true;
        const bool match = op == "any" || l.find(": " + op + " ") != std::string::npos;
        if (match) ++of_kind;
        if (inside && match) return op == "any" ? std::stoll(l.substr(17)) : of_kind;
    }
    FAIL("no " << op << " point in the save of step " << step);
    return -1;
}

}  // namespace

TEST_CASE("bad inputs: every row of the docs/reliability.md table gets its named answer", "[reliability][reliability-table][cli]") {
    TempDir tmp("ittt_test_bad");
    const std::string repo = fs::path(repo_file("data")).parent_path().string();
    const std::string T = tmp.path;
    const std::string tiny = "$REPO/data/configs/tiny.json";
    // ---- fixtures ----
    REQUIRE(run_ittt(tmp, "init --config " + repo + "/data/configs/tiny.json --out " + T + "/m").rc == 0);
    {
        Model m = load_model(T + "/m");
        m.parameter("model.layers.0.mlp.down_proj.weight").value.data<float>()[7] = std::nanf("");
        save_model(T + "/nan", m);
    }
    write_text(T + "/heads.json", config_with(repo, "num_attention_heads", "200000"));
    write_text(T + "/chunk.json", config_with(repo, "ttt_chunk", "2147483647"));
    write_text(T + "/vocab0.json", config_with(repo, "vocab_size", "0"));
    {
        std::string huge = config_with(repo, "hidden_size", "65536");
        write_text(T + "/huge.json", std::regex_replace(huge, std::regex("\"intermediate_size\": [0-9]+"), "\"intermediate_size\": 262144"));
    }
    write_text(T + "/theta.json", config_with(repo, "rope_theta", "\"1e6\""));
    write_text(T + "/layers.json", std::regex_replace(read_text(repo + "/data/configs/tiny.json"), std::regex("\"ttt_layers\": \\[\\s*0\\s*\\]"),
                                                      "\"ttt_layers\": [0, 0]"));
    write_text(T + "/notjson.json", "{\"vocab_size\": 68,,}");
    write_text(T + "/novocab.json", std::regex_replace(read_text(repo + "/data/configs/tiny.json"), std::regex("\"vocab_size\": [0-9]+,"), ""));
    // A checkpoint whose config says ttt_lr 1e300: finite weights, non-finite logits.
    write_text(T + "/hot.json", config_with(repo, "ttt_lr", "1e300"));
    {
        Model m = load_model(T + "/m");
        for (Parameter& p : m.parameters())  // a nonzero conv, so the TTT path carries the overflow
            if (p.name.find("ttt_conv") != std::string::npos) ops::fill(p.value, 0.5);
        ModelConfig cfg = m.config();
        cfg.ttt_lr = 1e300;
        Model hot(cfg);
        for (size_t i = 0; i < m.parameters().size(); ++i) hot.parameters()[i].value.copy_from(m.parameters()[i].value);
        save_model(T + "/hot", hot);
    }
    // A checkpoint directory whose config.json holds ttt_chunk 2147483647 (the weights are fine).
    fs::create_directories(T + "/chunkckpt");
    fs::copy_file(T + "/m/model.safetensors", T + "/chunkckpt/model.safetensors");
    write_text(T + "/chunkckpt/config.json", read_text(T + "/chunk.json"));
    {
        std::string w = read_text(T + "/m/model.safetensors");
        fs::create_directories(T + "/trunc");
        fs::copy_file(T + "/m/config.json", T + "/trunc/config.json");
        write_text(T + "/trunc/model.safetensors", w.substr(0, w.size() / 2));
        fs::create_directories(T + "/hdr");
        fs::copy_file(T + "/m/config.json", T + "/hdr/config.json");
        for (int i = 0; i < 8; ++i) w[static_cast<size_t>(i)] = '\xff';
        write_text(T + "/hdr/model.safetensors", w);
    }
    write_text(T + "/afile", "a file, not a directory\n");
    fs::create_directories(T + "/notes");
    write_text(T + "/notes/todo.txt", "mine\n");
    fs::create_directories(T + "/broken/.step-00000001.staging.4194305");
    const std::string small = "--task induction --seq-len 16 --batch 2 --log-every 0 --warmup 1 --lr 1e-2 --seed 3";
    const std::string train = "train " + small + " --config " + tiny + " --checkpoint-every 1";
    REQUIRE(run_ittt(tmp, substitute(train, T, repo) + " --out " + T + "/run --steps 2").rc == 0);
    fs::copy(T + "/run", T + "/run2", fs::copy_options::recursive);
    const std::string mqar = "--task mqar --task-opt pairs=4,gap=32 --seq-len 64 --config $REPO/data/demo/config.json --warmup 0";
    const std::string two_saves = substitute(train, T, repo) + " --steps 2 --out " + T + "/probe";
    auto point = [&](const std::string& op, int64_t step) {
        int64_t k = point_in_save(tmp, two_saves, op, step);
        fs::remove_all(T + "/probe");
        return k;
    };
    const int64_t write2 = point("write", 2), fsync2 = point("fsync", 2);
    const int64_t any1 = point("any", 1) + 3, any2 = point("any", 2) + 5;  // a few points into each save
    const std::string ev0 = "eval --task induction --seed 1 --seq-len 16", ev = ev0 + " --batch 2 --batches 1";

    // ---- fixtures of issue 19 (one writer per run, convert, resume, output, messages) ----
    // Locks this test holds while the rows run: a run directory and a convert OUT "being written".
    fs::create_directories(T + "/locked");
    WriterLock held_run(run_lock_path(T + "/locked"), "the test's run directory", "a writer held by this test");
    WriterLock held_out(checkpoint_lock_path(T + "/lockedck"), "the test's OUT", "a writer held by this test");
    REQUIRE(run_ittt(tmp, "init --config " + repo + "/data/configs/tiny.json --out " + T + "/m2 --seed 5").rc == 0);
    const int64_t term2 = point("any", 2), int1 = point("any", 1);  // the first point of each save
    // step-00000007 holding step 1 (a copy renamed by hand).
    fs::copy(T + "/run", T + "/renamed", fs::copy_options::recursive);
    fs::copy(T + "/run/step-00000001", T + "/renamed/step-00000007", fs::copy_options::recursive);
    {  // a 10 MB token in tokenizer.json
        fs::copy(T + "/m", T + "/tok10", fs::copy_options::recursive);
        Json tok = Json::parse(read_text(repo + "/tests/fixtures/tokenizer/tokenizer.json"), "tokenizer.json");
        Json model = tok.at("model");
        Json vocab = Json::object();
        vocab.set(std::string(10000000, 'a'), "x");
        model.set("vocab", vocab);
        tok.set("model", model);
        write_text(T + "/tok10/tokenizer.json", tok.dump());
    }
    {  // 2 GiB of text that take no disk, and a FIFO
        std::ofstream(T + "/sparse.txt").put('x');
        fs::resize_file(T + "/sparse.txt", int64_t{2} << 30);
        REQUIRE(::mkfifo((T + "/fifo").c_str(), 0644) == 0);
    }
    {  // tiny.json spelt differently (keys reversed, one line): the same model
        Json c = Json::parse(read_text(repo + "/data/configs/tiny.json"), "tiny.json");
        Json reversed = Json::object();
        for (auto it = c.as_object().rbegin(); it != c.as_object().rend(); ++it) reversed.set(it->first, it->second);
        write_text(T + "/tinycopy.json", reversed.dump());
    }
    // Broken copies of the sharded Hugging Face fixture: a shard that is a FIFO, a directory; an
    // index that is a directory; a shard holding a mis-shaped tensor, an Inf.
    const std::string hf = repo + "/tests/fixtures/hf_qwen3/tied_bf16_sharded", shard2 = "model-00002-of-00002.safetensors";
    for (const char* name : {"shardfifo", "sharddir", "indexdir", "shardshape", "shardinf"}) fs::copy(hf, T + "/" + name, fs::copy_options::recursive);
    fs::remove(T + "/shardfifo/" + shard2);
    REQUIRE(::mkfifo((T + "/shardfifo/" + shard2).c_str(), 0644) == 0);
    fs::remove(T + "/sharddir/" + shard2);
    fs::create_directory(T + "/sharddir/" + shard2);
    fs::remove(T + "/indexdir/model.safetensors.index.json");
    fs::create_directory(T + "/indexdir/model.safetensors.index.json");
    for (const char* name : {"shardshape", "shardinf"}) {
        SafetensorsFile f = load_safetensors(T + "/" + name + "/" + shard2);
        for (NamedTensor& nt : f.tensors)
            if (nt.name == "model.norm.weight") {
                nt.tensor = std::string(name) == "shardshape" ? Tensor::zeros({32}, DType::F32) : nt.tensor.to_dtype(DType::F32);
                if (std::string(name) == "shardinf") nt.tensor.data<float>()[3] = INFINITY;
            }
        save_safetensors(T + "/" + name + "/" + shard2, f.tensors, f.metadata);
    }
    fs::create_symlink(T + "/nowhere", T + "/dangling");
    // Negative eta and tau, in a config and in a checkpoint's config.json.
    write_text(T + "/negtau.json", config_with(repo, "ttt_clip_tau", "-1"));
    write_text(T + "/neglr.json", config_with(repo, "ttt_lr", "-1"));
    fs::copy(T + "/m", T + "/neglr", fs::copy_options::recursive);
    write_text(T + "/neglr/config.json", config_with(repo, "ttt_lr", "-1"));
    const std::string hf_in = "$REPO/tests/fixtures/hf_qwen3/tied_bf16_sharded";

    const std::vector<Row> rows = {
        // ---- command line ----
        {"CLI", "", "", 2, "ittt: missing command"},
        {"CLI", "forward --ckpt $TMP/m --tokens 1,2 --top 2147483648", "", 2, "--top must be in [1, 1048576], found 2147483648"},
        {"CLI", "forward --ckpt $TMP/m --tokens 1,2 --top 4294967296", "", 2, "--top must be in [1, 1048576]"},
        {"CLI", ev0 + " --ckpt $TMP/m --batch 4294967297", "", 2, "--batch must be in [1, 1073741824], found 4294967297"},
        {"CLI", ev0 + " --ckpt $TMP/m --batches 2147483648", "", 2, "--batches must be in [1, 1048576]"},
        {"CLI", "forward --ckpt $TMP/m --tokens 1,2,", "", 2, "empty item at position 3 in '1,2,'"},
        {"CLI", "forward --ckpt $TMP/m --tokens 1 --tokens 2", "", 2, "--tokens is given twice"},
        {"CLI", "forward --ckpt $TMP/m --tokens 1,99999", "", 2, "id 99999 at index 1 is outside the vocabulary [0, 68)"},
        {"CLI", train + " --out $TMP/gc --grad-clip -1", "", 2, "--grad-clip must be >= 0 (0 turns clipping off), found -1"},
        {"CLI", train + " --out $TMP/j --json --json", "", 2, "--json is given twice"},
        {"CLI", "train --task induction --config " + tiny + " --out $TMP/s --seed 18446744073709551616", "", 2, "--seed must be in [0, 9223372036854775807]"},
        {"CLI", "train --task induction --config " + tiny + " --out $TMP/lr --lr inf", "", 2, "--lr expects a finite number, found 'inf'"},
        {"CLI", ev + " --ckpt $TMP/m --kernel gemm=1,gemm=2", "", 2, "--kernel: 'gemm' is given twice"},
        {"CLI", ev + " --ckpt $TMP/m --task-opt copy_length=4,", "", 2, "--task-opt: empty item"},
        {"CLI", "generate --ckpt $TMP/m --tokens 1 --n 16777217", "", 2, "--n must be in [0, 16777216]"},
        {"CLI", train + " --out $TMP/zero --steps 0", "", 0, "--steps 0: no training; wrote the initial checkpoint $TMP/zero/step-00000000"},
        {"CLI", ev0 + " --ckpt $TMP/m --batch 100000000", "", 1, "needs about"},
        {"CLI", "step --theory --d 100000 --auto --no-plots", "", 1, "needs about"},
        // ---- config.json ----
        {"config", "init --config $TMP/heads.json --out $TMP/x", "", 1, "num_attention_heads must be in [1, 1024], found 200000"},
        {"config", "init --config $TMP/chunk.json --out $TMP/x", "", 1, "ttt_chunk must be in [1, 1048576], found 2147483647"},
        {"config", "forward --ckpt $TMP/chunkckpt --tokens 1,2", "", 1, "ttt_chunk must be in [1, 1048576], found 2147483647"},
        {"config", "init --config $TMP/vocab0.json --out $TMP/x", "", 1, "vocab_size must be in [1, 16777216], found 0"},
        {"config", "init --config $TMP/huge.json --out $TMP/x", "", 1, "needs about"},
        {"config", "init --config $TMP/notjson.json --out $TMP/x", "", 1, "notjson.json:1:19"},
        {"config", "init --config $TMP/novocab.json --out $TMP/x", "", 1, "vocab_size"},
        {"config", "init --config $TMP/theta.json --out $TMP/x", "", 1, "field 'rope_theta': expected a number"},
        {"config", "init --config $TMP/layers.json --out $TMP/x", "", 1, "ttt_layers lists layer 0 twice"},
        {"config", "forward --ckpt $TMP/hot --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18", "", 1, "the logits are not finite"},
        {"config", "generate --ckpt $TMP/hot --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18 --n 4", "", 1,
         "the logits are not finite"},
        // ---- checkpoints ----
        {"checkpoint", "forward --ckpt $TMP/nan --tokens 1,2", "", 1,
         "tensor 'model.layers.0.mlp.down_proj.weight' holds NaN at index 7 (element [0, 7])"},
        {"checkpoint", ev + " --ckpt $TMP/nan", "", 1, "holds NaN at index 7"},
        {"checkpoint", "step --ckpt $TMP/nan --auto --no-plots --examples 2", "", 1, "holds NaN at index 7"},
        {"checkpoint", "forward --ckpt $TMP/nan --tokens 1,2 --allow-nonfinite", "", 0, "pos   1"},
        {"checkpoint", ev + " --ckpt $TMP/trunc", "", 1, "past the end of the data buffer"},
        {"checkpoint", ev + " --ckpt $TMP/hdr", "", 1, "header length 18446744073709551615"},
        {"checkpoint", ev + " --ckpt $TMP/broken", "", 1, "an interrupted save left"},
        {"checkpoint", "train --resume --out $TMP/run --lr 0.02 --batch 4 --seed 9", "", 1,
         "(recorded vs given): --batch 2 vs 4; --lr 0.01 vs 0.02; --seed 3 vs 9"},
        {"checkpoint", "train --resume --out $TMP/run --task mqar", "", 1, "--task \"induction copy_length=0\" vs \"mqar pairs=8 gap=0 filler=random\""},
        {"checkpoint", "train --resume --out $TMP/run --config $REPO/data/demo/config.json", "", 1, "cannot change"},
        {"checkpoint", "train --resume --out $TMP/run2 --steps 4", "", 0, "wrote $TMP/run2/step-00000004"},
        {"checkpoint", "train --resume --out $TMP/run2 --steps 5 --lr 0.02 --override lr", "", 0, "wrote $TMP/run2/step-00000005"},
        {"checkpoint", "train " + mqar + " --out $TMP/hi --steps 1 --lr 1e39", "", 1,
         "refusing to write a checkpoint at step 1"},
        {"checkpoint", "train " + mqar + " --out $TMP/hi2 --steps 3 --lr 1e30", "", 1, "training stopped at step 2"},
        // ---- disk ----
        {"disk", train + " --steps 2 --out $TMP/nospc", cat("ITTT_FAULT=write:", write2, ":enospc"), 1,
         "No space left on device; the last checkpoint, $TMP/nospc/step-00000001 (step 1), is kept", ev + " --ckpt $TMP/nospc", 0, "accuracy"},
        {"disk", train + " --steps 2 --out $TMP/eio", cat("ITTT_FAULT=fsync:", fsync2, ":eio"), 1,
         "Input/output error; the last checkpoint, $TMP/eio/step-00000001 (step 1), is kept"},
        {"disk", train + " --steps 2 --out $TMP/rofs", "ITTT_FAULT=create:1:erofs", 1, "Read-only file system"},
        {"disk", train + " --steps 2 --out $TMP/afile/run", "", 1, "cannot take checkpoints (checked before training)"},
        {"disk", "init --config " + tiny + " --out $TMP/notes", "", 1, "is not a checkpoint (no config.json); not replacing it"},
        {"disk", train + " --steps 2 --out $TMP/run", "", 1, "already holds checkpoints"},
        {"disk", train + " --steps 2 --out $TMP/bad", "ITTT_FAULT=write:x:boom", 1, "ITTT_FAULT='write:x:boom': N must be an integer"},
        // ---- signals ----
        {"signal", train + " --steps 2 --out $TMP/kill2", cat("ITTT_FAULT=any:", any2, ":kill"), 137, "", ev + " --ckpt $TMP/kill2", 0,
         "accuracy"},
        {"signal", train + " --steps 2 --out $TMP/kill1", cat("ITTT_FAULT=any:", any1, ":kill"), 137, "", ev + " --ckpt $TMP/kill1", 1,
         "an interrupted save left"},
        {"signal", train + " --steps 2 --out $TMP/kill1", "", 0, "wrote $TMP/kill1/step-00000002"},
        {"signal", "train --resume --out $TMP/kill2", "", 0, "wrote $TMP/kill2/step-00000002"},
        // ---- issue 19: one writer per run ----
        {"writers", train + " --steps 2 --out $TMP/locked", "", 1,
         "--out $TMP/locked is being written by another process (pid PID, a writer held by this test, since TIME; lock file "
         "'$TMP/locked/.writer.lock'): one writer at a time"},
        {"writers", "convert $TMP/m $TMP/lockedck", "", 1, "OUT $TMP/lockedck is being written by another process (pid PID"},
        // ---- convert never destroys its input ----
        {"convert", "convert $TMP/m $TMP/m --dtype bf16", "", 1, "OUT $TMP/m is IN ($TMP/m): convert never rewrites its input in place"},
        {"convert", "convert $TMP/run $TMP/run/step-00000002 --dtype bf16", "", 1, "the checkpoint $TMP/run resolves to",
         "train --resume --out $TMP/run --steps 3 --log-every 0", 0, "wrote $TMP/run/step-00000003"},
        {"convert", "convert $TMP/m $TMP/run/step-00000002", "", 1, "names a step-N checkpoint of the training run $TMP/run"},
        {"convert", "convert $TMP/m $TMP/m/sub", "", 1, "lies inside IN"},
        {"convert", "convert $TMP/m $TMP/m2", "", 1, "OUT $TMP/m2 already holds a different checkpoint (its model.safetensors differs); give --overwrite"},
        {"convert", "convert $TMP/m $TMP/m2 --overwrite", "", 0, "wrote $TMP/m2"},
        {"convert", "convert " + hf_in + " $TMP/keys --add-ttt --ttt-layers 0", "", 0, "wrote $TMP/keys"},
        // ---- resume keeps every setting ----
        {"resume", train + " --keep 5 --steps 2 --out $TMP/ce", "", 0, "wrote $TMP/ce/step-00000002"},
        {"resume", "train --resume --out $TMP/ce --steps 6", "", 0, "wrote $TMP/ce/step-00000006", ev + " --ckpt $TMP/ce/step-00000003", 0,
         "accuracy"},
        {"resume", "train --resume --out $TMP/run/step-00000003 --steps 4", "", 1,
         "--out $TMP/run/step-00000003 is a checkpoint of the run directory $TMP/run, not a run directory: give --out $TMP/run"},
        {"resume", "train --resume --out $TMP/renamed --steps 9", "", 1, "its trainer_state.json says step 1, but the directory is named for step 7"},
        {"resume", "train --resume --out $TMP/run --steps 4 --config $TMP/tinycopy.json", "", 0, "wrote $TMP/run/step-00000004"},
        // ---- output failures ----
        {"output", ev + " --ckpt $TMP/m --json", "", 1, "cannot write to stdout: No space left on device", "", 0, "", "> /dev/full"},
        {"output", "forward --ckpt $TMP/m --tokens 1,2 --json", "", 1, "cannot write to stdout: No space left on device", "", 0, "", "> /dev/full"},
        {"output", ev + " --ckpt $TMP/m", "", 1, "cannot write to stdout: it is closed", "", 0, "", ">&-"},
        {"output", "train " + small + " --config " + tiny + " --steps 300 --out $TMP/pipe1", "", 0,
         "cannot write to stdout (Broken pipe) after step N: progress goes nowhere from here; the training and its checkpoints in $TMP/pipe1 are not affected", "", 0, "",
         "| head -n 1 > /dev/null"},
        {"signal", train + " --steps 3 --out $TMP/term", cat("ITTT_FAULT=any:", term2, ":term"), 143,
         "stopped by SIGTERM after step 2 of 3; the last checkpoint, $TMP/term/step-00000002 (step 2), is kept", "train --resume --out $TMP/term",
         0, "wrote $TMP/term/step-00000003"},
        {"signal", train + " --steps 3 --out $TMP/int", cat("ITTT_FAULT=any:", int1, ":int"), 130,
         "stopped by SIGINT after step 1 of 3; the last checkpoint, $TMP/int/step-00000001 (step 1), is kept"},
        // ---- inputs read whole: sizes first; quoted input cut ----
        {"input", "train --task text --task-opt path=/dev/zero --seq-len 16 --config " + tiny + " --out $TMP/text", "", 2,
         "path '/dev/zero' is a character device, not a regular file"},
        {"input", "train --task text --task-opt path=$TMP/sparse.txt --seq-len 16 --config " + tiny + " --out $TMP/text", "", 2,
         "is 2147483648 bytes (2 GiB); the text task reads a whole file into memory, at most 1073741824 bytes (1 GiB)"},
        {"input", "train --task text --task-opt path=$TMP/fifo --seq-len 16 --config " + tiny + " --out $TMP/text", "", 2, "is a FIFO, not a regular file"},
        {"input", "forward --ckpt $TMP/tok10 --text hi", "", 1, "(10000012 bytes in all, the first 300 shown)"},
        // ---- messages name the file that failed ----
        {"messages", "forward --ckpt $TMP/shardfifo --tokens 1,2", "", 1, "$TMP/shardfifo/model-00002-of-00002.safetensors: the shard of tensor"},
        {"messages", "forward --ckpt $TMP/sharddir --tokens 1,2", "", 1, "is a directory, not a file"},
        {"messages", "forward --ckpt $TMP/indexdir --tokens 1,2", "", 1, "'$TMP/indexdir/model.safetensors.index.json' is a directory, not a file"},
        {"messages", "forward --ckpt $TMP/shardshape --tokens 1,2", "", 1,
         "$TMP/shardshape/model-00002-of-00002.safetensors: tensor 'model.norm.weight' has shape (32), expected (64)"},
        {"messages", "forward --ckpt $TMP/shardinf --tokens 1,2", "", 1,
         "$TMP/shardinf/model-00002-of-00002.safetensors: tensor 'model.norm.weight' holds +Inf at index 3"},
        {"messages", train + " --steps 1 --out $TMP/dangling", "", 1, "'$TMP/dangling' is a symbolic link to '$TMP/nowhere', which does not exist"},
        // ---- eta and tau are >= 0 ----
        {"config", "init --config $TMP/negtau.json --out $TMP/x", "", 1, "ttt_clip_tau must be >= 0 (0: no clipping), found -1"},
        {"config", "init --config $TMP/neglr.json --out $TMP/x", "", 1, "ttt_lr must be >= 0"},
        {"config", "forward --ckpt $TMP/neglr --tokens 1,2", "", 1, "ttt_lr must be >= 0"},
        {"config", "convert " + hf_in + " $TMP/x --add-ttt --ttt-layers 0 --ttt-lr -0.5", "", 1, "--add-ttt: config: ttt_lr must be >= 0"},
    };
    REQUIRE(rows.size() >= 30);

    std::string table = "| # | kind | input (`ittt ...`) | exit | what it gets |\n|---|---|---|---|---|\n";
    int n = 0;
    for (const Row& row : rows) {
        ++n;
        const std::string args = substitute(row.args, T, repo);
        Result r = row.redirect.empty() ? run_ittt(tmp, args, row.env) : run_ittt_redirected(tmp, args, row.redirect, row.env);
        const std::string msg = normalise(message_of(r), T, repo);
        INFO("row " << n << ": " << row.env << " ittt " << args << "\nstdout:\n" << r.out.substr(0, 4000) << "stderr:\n" << r.err.substr(0, 4000));
        CHECK(r.rc == row.rc);
        if (r.rc != 137) CHECK_THAT(msg, Contains(row.expect));  // a killed process says nothing
        if (r.rc == 2 && !args.empty()) check_usage_error(r, args.substr(0, args.find(' ')), "");
        if (r.rc == 1) CHECK(r.err_lines().back().find(": error: ") != std::string::npos);  // errors are one named line, last
        std::string input = "`" + (row.env.empty() ? "" : row.env + " ") + (args.empty() ? "(no arguments)" : args) +
                            (row.redirect.empty() ? "" : " " + row.redirect) + "`";
        std::string got = r.rc == 137 ? "killed at that fault point" : msg;
        if (!row.then.empty()) {
            Result t = run_ittt(tmp, substitute(row.then, T, repo));
            const std::string then_msg = normalise(message_of(t), T, repo);
            INFO("then: ittt " << row.then << "\nstderr:\n" << t.err);
            CHECK(t.rc == row.then_rc);
            CHECK_THAT(then_msg, Contains(row.then_expect));
            std::string note;
            for (const std::string& l : t.err_lines())
                if (l.find(": using ") != std::string::npos) note = normalise(l, T, repo) + "; ";
            input += "; then `ittt " + substitute(row.then, T, repo) + "`";  // the state it left, read back
            got += " / then: exit " + std::to_string(t.rc) + ", " + note + then_msg;
        }
        table += cat("| ", n, " | ", row.kind, " | ", cell(normalise(input, T, repo)), " | ", exit_text(r.rc), " | ", cell(got), " |\n");
    }

    const std::string doc_path = repo + "/docs/reliability.md";
    const std::string begin = "<!-- bad-inputs table: begin (generated) -->\n", end = "<!-- bad-inputs table: end -->";
    if (const char* target = std::getenv("ITTT_RELIABILITY_DOC")) {
        std::string doc = read_text(target);
        size_t a = doc.find(begin), b = doc.find(end);
        REQUIRE(a != std::string::npos);
        REQUIRE(b != std::string::npos);
        doc.replace(a + begin.size(), b - a - begin.size(), table);
        write_file_atomic(target, doc);
    } else {
        // The doc lists every row with its exit code (messages may be reworded between regenerations).
        std::string doc = read_text(doc_path);
        INFO("docs/reliability.md is out of date: run `make reliability-table`");
        for (const std::string& line : lines_of(table)) {
            // "| n | kind | `input` | exit |": everything before the message
            size_t at = 0;
            for (int bar = 0; bar < 4 && at != std::string::npos; ++bar) at = line.find(" |", at + 1);
            CHECK_THAT(doc, Contains(line.substr(0, at)));
        }
    }
}

TEST_CASE("docs: every --help and every doc pointer names a file of the repository", "[reliability][docs][cli]") {
    const fs::path repo = fs::path(repo_file("data")).parent_path();
    const std::regex md_path(R"(([A-Za-z0-9_.\-]+/)*[A-Za-z0-9_\-]+\.md)");
    auto check_text = [&](const std::string& text, const fs::path& dir, const std::string& where) {
        for (auto it = std::sregex_iterator(text.begin(), text.end(), md_path); it != std::sregex_iterator(); ++it) {
            const std::string p = it->str();
            const size_t at = static_cast<size_t>(it->position());
            if (at >= 3 && text.compare(at - 3, 3, "://") == 0) continue;  // a URL's path
            if (at >= 1 && (text[at - 1] == '$' || text[at - 1] == '{')) continue;  // a shell variable's file: an output, not a pointer
            INFO(where << " names '" << p << "'");
            CHECK((fs::exists(dir / p) || fs::exists(repo / p) || fs::exists(repo / "docs" / p)));
        }
        INFO(where);
        CHECK(text.find(std::string("shared/") + "brief") == std::string::npos);  // the repository's docs stand alone
    };
    TempDir tmp("ittt_test_docs");
    for (const char* cmd : {"init", "train", "eval", "forward", "generate", "step"}) {
        Result r = run_ittt(tmp, std::string(cmd) + " --help");
        REQUIRE(r.rc == 0);
        check_text(r.out, repo, cat("ittt ", cmd, " --help"));
    }
    check_text(run_ittt(tmp, "--help").out, repo, "ittt --help");
    int files = 0;
    for (const char* top : {"README.md", "Makefile", "docs", "notebooks-cpp", "src", "kernels", "tests", "data/README.md", ".ci"}) {
        const fs::path root = repo / top;
        if (!fs::exists(root)) continue;
        auto visit = [&](const fs::path& f) {
            const std::string ext = f.extension().string();
            if (!(ext == ".md" || ext == ".cpp" || ext == ".h" || ext == ".cu" || ext == ".mk" || ext == ".sh" || f.filename() == "Makefile" ||
                  f.filename() == "run"))
                return;
            if (f.string().find("/fuzz/corpus/") != std::string::npos) return;
            ++files;
            check_text(read_text(f.string()), f.parent_path(), fs::relative(f, repo).string());
        };
        if (fs::is_regular_file(root)) visit(root);
        else
            for (const auto& e : fs::recursive_directory_iterator(root))
                if (e.is_regular_file()) visit(e.path());
    }
    CHECK(files > 100);
    for (const char* doc : {"docs/method.md", "docs/tasks.md", "docs/reliability.md"}) CHECK(fs::exists(repo / doc));
}

TEST_CASE("every integer flag's range is in its --help line and enforced at both ends", "[reliability][cli]") {
    TempDir tmp("ittt_test_ranges");
    const std::string repo = fs::path(repo_file("data")).parent_path().string(), tiny = repo + "/data/configs/tiny.json";
    REQUIRE(run_ittt(tmp, "init --config " + tiny + " --out " + (tmp / "m")).rc == 0);
    // Enough of a valid command line that parsing reaches every flag.
    const std::map<std::string, std::map<std::string, std::string>> base = {
        {"init", {{"--config", tiny}, {"--out", tmp / "x"}}},
        {"train", {{"--task", "induction"}, {"--config", tiny}, {"--out", tmp / "x"}}},
        {"eval", {{"--ckpt", tmp / "m"}, {"--task", "induction"}, {"--seed", "1"}}},
        {"forward", {{"--ckpt", tmp / "m"}, {"--tokens", "1"}}},
        {"generate", {{"--ckpt", tmp / "m"}, {"--tokens", "1"}}},
        {"step theory", {{"--theory", ""}}},
        {"step model", {{"--ckpt", tmp / "m"}}},
    };
    const std::regex flag_line(R"(^  (--[a-z0-9-]+) [A-Za-z]+ +.*\(default -?[0-9]+, in \[(-?[0-9]+), (-?[0-9]+)\]\)$)");
    int checked = 0;
    for (const char* cmd : {"init", "train", "eval", "forward", "generate", "step"}) {
        Result help = run_ittt(tmp, std::string(cmd) + " --help");
        REQUIRE(help.rc == 0);
        std::string mode = cmd;
        for (const std::string& line : lines_of(help.out)) {
            if (line.rfind("theory mode", 0) == 0) mode = "step theory";
            if (line.rfind("model mode", 0) == 0) mode = "step model";
            std::smatch m;
            if (!std::regex_match(line, m, flag_line)) continue;
            const std::string flag = m[1], lo = m[2], hi = m[3];
            // One below and one above the stated range, written out exactly (no int64 arithmetic to overflow).
            auto beyond = [](const std::string& v, int dir) {
                if (v == "9223372036854775807" && dir > 0) return std::string("9223372036854775808");
                return std::to_string(std::stoll(v) + dir);
            };
            for (const std::string& bad : {beyond(lo, -1), beyond(hi, +1)}) {
                std::map<std::string, std::string> args = base.at(mode.rfind("step", 0) == 0 && mode == "step" ? "step theory" : mode);
                args[flag] = bad;
                std::string line_args = mode.rfind("step", 0) == 0 ? "step" : mode;
                for (const auto& [k, v] : args) line_args += " " + k + (v.empty() ? "" : " " + v);
                INFO("ittt " << line_args << "  (help line: " << line << ")");
                check_usage_error(run_ittt(tmp, line_args), line_args.substr(0, line_args.find(' ')),
                                  flag + " must be in [" + lo + ", " + hi + "], found " + bad);
                ++checked;
            }
        }
    }
    CHECK(checked >= 2 * 30);
}
