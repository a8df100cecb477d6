// Tests of the `ittt` command line, run as a user would: the built binary in a
// child process, stdout and stderr captured, the exit code checked.
//
// Contract: --help prints the usage and exits 0; a bad command line (unknown
// flag, bad number, missing flag, bad --device or task option) exits 2 with a
// one-line error, a blank line and the usage on stderr; a run-time failure (a
// damaged checkpoint) exits 1 with one line naming the file or tensor. A crash
// is never an answer: its exit code matches none of these. (Helpers: cli_util.h.)
#include <sys/stat.h>

#include <cmath>
#include <filesystem>

#include "cli_util.h"
#include "io/json.h"
#include "model/model_io.h"
#include "model/session.h"
#include "tasks/tasks.h"
#include "test_process.h"
#include "test_util.h"
#include "tiny_model.h"
#include "tokenizer/tokenizer.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;
using Catch::StartsWith;
namespace fs = std::filesystem;

namespace {

// "5,9,9" -> {5, 9, 9}
std::vector<int32_t> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');) ids.push_back(static_cast<int32_t>(std::stol(item)));
    return ids;
}

const char* const kTrainSmall = "--task induction --seq-len 40 --batch 4 --warmup 1 --lr 1e-2";

}  // namespace

TEST_CASE("cli: every subcommand's --help exits 0 and prints its usage", "[cli]") {
    TempDir tmp("ittt_test_cli");
    for (const char* cmd : {"init", "train", "eval", "forward", "generate", "step"}) {
        for (const char* flag : {"--help", "-h"}) {
            Result r = run_ittt(tmp, std::string(cmd) + " " + flag);
            INFO(cmd << " " << flag << "\nstderr:\n" << r.err);
            CHECK(r.rc == 0);
            CHECK_THAT(r.out, StartsWith(std::string("usage: ittt ") + cmd));
            CHECK(r.err.empty());
        }
    }
    // --help wins over everything else on the line, even flags that would be errors.
    Result r = run_ittt(tmp, "train --steps nope --help");
    CHECK(r.rc == 0);
    CHECK_THAT(r.out, StartsWith("usage: ittt train"));
    for (const char* args : {"--help", "help"}) {
        Result top = run_ittt(tmp, args);
        INFO("ittt " << args);
        CHECK(top.rc == 0);
        CHECK_THAT(top.out, StartsWith("usage: ittt <command>") && Contains("generate"));
    }
    // No command at all is a usage error (issue 9, defect 7): exit 2, the usage on stderr.
    Result none = run_ittt(tmp, "");
    CHECK(none.rc == 2);
    CHECK(none.out.empty());
    CHECK_THAT(none.err, StartsWith("ittt: missing command") && Contains("usage: ittt <command>"));
    Result info = run_ittt(tmp, "info");
    CHECK(info.rc == 0);
    CHECK_THAT(info.out, StartsWith("cpu: "));
}

TEST_CASE("cli: bad command lines exit 2 with a one-line error and the usage", "[cli]") {
    TempDir tmp("ittt_test_cli");
    const std::string config = repo_file("data/configs/tiny.json"), ckpt = tmp / "m";
    REQUIRE(run_ittt(tmp, "init --config " + config + " --out " + ckpt).rc == 0);
    const std::string tr = " --config " + config + " --out " + (tmp / "run") + " ";
    const std::string ev = " --ckpt " + ckpt + " --task induction --seed 1 ";

    struct Case {
        std::string cmd, args, message;
    };
    const std::vector<Case> cases = {
        // unknown flags, stray words
        {"init", "--config " + config + " --out " + (tmp / "x") + " --bogus 1", "unknown flag --bogus"},
        {"init", "--config " + config + " --out " + (tmp / "x") + " --verbose", "unknown flag --verbose"},
        {"init", "stray", "unexpected argument 'stray'"},
        {"train", "--task induction" + tr + "--step 3", "unknown flag --step"},
        {"generate", "--ckpt " + ckpt + " --tokens 1 --json=1", "--json takes no value"},
        // bad numbers
        {"train", "--task induction" + tr + "--steps abc", "--steps expects an integer in [0, 1000000000], found 'abc'"},
        {"train", "--task induction" + tr + "--steps 3.5", "--steps expects an integer"},
        {"train", "--task induction" + tr + "--lr 1e-3x", "--lr expects a finite number, found '1e-3x'"},
        {"train", "--task induction" + tr + "--lr nan", "--lr expects a finite number"},
        {"train", "--task induction" + tr + "--lr 0", "--lr must be > 0"},
        {"train", "--task induction" + tr + "--batch 0", "--batch must be in [1, "},
        {"train", "--task induction" + tr + "--steps 99999999999999999999", "--steps must be in [0, 1000000000]"},
        {"train", "--task induction" + tr + "--min-lr-ratio 2", "--min-lr-ratio must be in [0, 1]"},
        {"init", "--config " + config + " --out " + (tmp / "x") + " --seed -1", "--seed must be in [0, "},
        {"eval", ev + "--batches x", "--batches expects an integer"},
        {"forward", "--ckpt " + ckpt + " --tokens 1,x,3", "--tokens item expects an integer in [0, 2147483647], found 'x'"},
        {"forward", "--ckpt " + ckpt + " --tokens 1,999", "id 999 at index 1 is outside the vocabulary [0, 68)"},
        {"forward", "--ckpt " + ckpt + " --tokens 1 --top 0", "--top must be in [1, "},
        {"generate", "--ckpt " + ckpt + " --tokens 1 --temperature -1", "--temperature must be >= 0"},
        {"generate", "--ckpt " + ckpt + " --tokens 1 --n many", "--n expects an integer"},
        // missing required flags
        {"init", "--out " + (tmp / "x"), "missing required flag --config"},
        {"init", "--config " + config, "missing required flag --out"},
        {"train", "--config " + config + " --out " + (tmp / "run"), "missing required flag --task"},
        {"train", "--task induction --out " + (tmp / "run"), "give exactly one of --config FILE or --ckpt DIR"},
        {"train", "--task induction" + tr + "--ckpt " + ckpt, "give exactly one of --config FILE or --ckpt DIR"},
        {"eval", "--ckpt " + ckpt + " --task induction", "missing required flag --seed"},
        {"eval", "--task induction --seed 1", "missing required flag --ckpt"},
        {"forward", "--ckpt " + ckpt, "missing required flag --tokens"},
        {"generate", "--tokens 1", "missing required flag --ckpt"},
        {"train", "--task induction" + tr + "--steps", "--steps expects a value"},
        // --device and the other runtime flags
        {"eval", ev + "--device tpu", "--device: expected cpu, cuda or auto, found 'tpu'"},
        {"train", "--task induction" + tr + "--device gpu", "--device: expected cpu, cuda or auto"},
        {"forward", "--ckpt " + ckpt + " --tokens 1 --threads -2", "--threads must be in [0, 1024]"},
        {"eval", ev + "--kernel gemm", "--kernel: expected op=version"},
        {"eval", ev + "--kernel gemm=99999999999", "--kernel: the version of gemm must be in [0, 1000]"},
        {"eval", ev + "--kernel frob=1", "unknown op 'frob'"},
        {"eval", ev + "--kernel gemm=7", "kernel version for gemm: expected 0 (best) to 5, found 7"},
        // tasks and their options
        {"train", "--task bogus" + tr, "unknown task 'bogus' (valid: induction, mqar"},
        {"train", "--task induction --task-opt bogus=3" + tr, "task induction: unknown option 'bogus' (valid: copy_length)"},
        {"train", "--task mqar --task-opt pairs=x" + tr, "pairs"},
        {"eval", ev + "--task-opt nokey", "expected key=value, found 'nokey'"},
        {"eval", "--ckpt " + ckpt + " --task mqar --task-opt pairs=4,pairs=5 --seed 1", "pairs"},
        // --override names recorded settings from the one table (train/run_settings.h)
        {"train", "--resume --out " + (tmp / "run") + " --override bogus",
         "--override: 'bogus' is not a setting that can be overridden (valid: task, batch, seq-len, grad-accum, lr, warmup, "
         "min-lr-ratio, weight-decay, grad-clip, ttt-lr-scale, seed, device, kernel)"},
        {"train", "--resume --out " + (tmp / "run") + " --override lr,config", "'config' is not a setting that can be overridden"},
        {"train", "--resume --out " + (tmp / "run") + " --override lr,", "--override: empty item"},
        {"train", "--task induction" + tr + "--override lr", "--override changes recorded settings of a run: it needs --resume"},
        {"train", "--task induction" + tr + "--ttt-lr-scale 0", "--ttt-lr-scale must be > 0, found 0"},
        {"train", "--task induction" + tr + "--weight-decay -0.5", "--weight-decay must be >= 0, found -0.5"},
        // step --theory: each flag parsed into its field; a bad kind is a usage error
        {"step", "--theory --embed sphere", "--embed: expected gaussian or orthogonal, found 'sphere'"},
        {"step", "--theory --features relu", "--features: expected swiglu or identity, found 'relu'"},
        {"step", "--theory --lr 1e-3x", "--lr expects a finite number, found '1e-3x'"},
        {"step", "--theory --sweep 16,,32", "--sweep: empty item"},
        {"step", "--theory --sweep 16,0", "--sweep: a width must be in [1, 1048576], found 0"},
        {"step", "--ckpt " + ckpt + " --d 8", "--d is a theory-mode option"},
        {"step", "--ckpt " + ckpt + " --examples 2 --step-example 2", "--step-example 2 must be below --examples 2"},
    };
    for (const Case& c : cases) {
        INFO("ittt " << c.cmd << " " << c.args);
        check_usage_error(run_ittt(tmp, c.cmd + " " + c.args), c.cmd, c.message);
    }
    Result unknown = run_ittt(tmp, "frobnicate --x 1");
    CHECK(unknown.rc == 2);
    CHECK_THAT(unknown.err, StartsWith("ittt: unknown command 'frobnicate'") && Contains("usage: ittt <command>"));
    // No flag was acted on: nothing was written for the refused init and train lines.
    CHECK(!fs::exists(tmp / "x"));
    CHECK(!fs::exists(tmp / "run"));
}

TEST_CASE("cli: init, train, eval --json, forward --json, generate, train --resume", "[cli]") {
    TempDir tmp("ittt_test_cli");
    const std::string config = repo_file("data/configs/tiny.json"), init = tmp / "init", run = tmp / "run";

    Result r = run_ittt(tmp, "init --config " + config + " --out " + init + " --seed 3");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, StartsWith("wrote " + init) && Contains("parameters, seed 3"));
    CHECK(fs::exists(init + "/config.json"));
    CHECK(fs::exists(init + "/model.safetensors"));

    // train from the initial checkpoint, JSON lines, a checkpoint every 2 steps
    r = run_ittt(tmp, "train --ckpt " + init + " --out " + run + " " + kTrainSmall + " --steps 4 --checkpoint-every 2 --json");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    std::vector<std::string> lines = lines_of(r.out);
    REQUIRE(lines.size() == 4);  // one JSON line per step and nothing else
    for (size_t i = 0; i < lines.size(); ++i) {
        Json step = parse_json(lines[i], "train --json line");
        CHECK(step.at("step").as_int() == static_cast<int>(i) + 1);
        CHECK(std::isfinite(step.at("loss").as_number()));
        CHECK(step.at("loss").as_number() > 0);
        CHECK(step.at("lr").as_number() > 0);
    }
    // A run directory: one complete checkpoint per saved step, the newest 2 kept.
    const std::string step2 = run + "/step-00000002", step4 = run + "/step-00000004";
    for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"}) {
        CHECK(fs::exists(step2 + "/" + f));
        CHECK(fs::exists(step4 + "/" + f));
    }
    CHECK(parse_json(read_text(step4 + "/trainer_state.json"), "trainer_state.json").at("step").as_int() == 4);
    CHECK(read_text(step4 + "/model.safetensors") != read_text(init + "/model.safetensors"));  // it trained

    // the same run in text mode prints progress lines and where it wrote
    r = run_ittt(tmp, "train --ckpt " + init + " --out " + (tmp / "run_text") + " " + kTrainSmall + " --steps 4 --log-every 2");
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Contains("training ") && Contains("induction") && Contains("step 2/4") && Contains("step 4/4") &&
                          Contains("wrote " + (tmp / "run_text")));
    // same seeds, same data: the same weights as the JSON run
    CHECK(read_text(tmp / "run_text/step-00000004/model.safetensors") == read_text(step4 + "/model.safetensors"));

    // eval --json: one object, deterministic for a seed
    const std::string eval_args = "eval --ckpt " + run + " --task induction --seed 7 --seq-len 40 --batch 4 --batches 2 --json";
    r = run_ittt(tmp, eval_args);
    INFO(r.err);
    REQUIRE(r.rc == 0);
    Json ev = parse_json(r.out, "eval --json");
    CHECK(ev.at("task").as_string() == "induction copy_length=0");
    CHECK(ev.at("seed").as_int() == 7);
    CHECK(ev.at("examples").as_int() == 8);
    // induction with n = 40: m = 19, scored at positions of the second copy but its last
    CHECK(ev.at("scored").as_int() == 8 * 18);
    CHECK(ev.at("accuracy").as_number() >= 0);
    CHECK(ev.at("accuracy").as_number() <= 1);
    CHECK(ev.at("correct").as_int() <= ev.at("scored").as_int());
    CHECK(std::isfinite(ev.at("loss").as_number()));
    CHECK(run_ittt(tmp, eval_args).out == r.out);
    r = run_ittt(tmp, "eval --ckpt " + run + " --task induction --seed 7 --seq-len 40 --batch 4 --batches 2");
    CHECK(r.rc == 0);
    CHECK_THAT(r.out, Contains("seed 7: accuracy ") && Contains("loss "));

    // forward --json: every logit, equal to the library's own forward of the checkpoint
    const std::vector<int32_t> prompt = {1, 5, 9, 30, 5};
    r = run_ittt(tmp, "forward --ckpt " + run + " --tokens 1,5,9,30,5 --json");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    Json fw = parse_json(r.out, "forward --json");
    Model model = load_model(run);
    const int V = model.config().vocab_size;
    CHECK(fw.at("vocab_size").as_int() == V);
    REQUIRE(fw.at("tokens").size() == prompt.size());
    REQUIRE(fw.at("logits").size() == prompt.size());
    ForwardOptions inference;
    inference.inference = true;
    std::vector<double> ref = model.forward(Tensor::from_vector(prompt, {1, 5}), inference).to_f64_vector(), got;
    for (size_t t = 0; t < prompt.size(); ++t) {
        CHECK(fw.at("tokens").at(t).as_int() == prompt[t]);
        REQUIRE(fw.at("logits").at(t).size() == static_cast<size_t>(V));
        for (int v = 0; v < V; ++v) got.push_back(fw.at("logits").at(t).at(static_cast<size_t>(v)).as_number());
    }
    // printed with %.7g (relative 5e-7); the child ran on 1 thread (kernel sums may regroup)
    CHECK(check_close(got, ref, 1e-6, 2e-6, "forward --json vs Model::forward"));
    r = run_ittt(tmp, "forward --ckpt " + run + " --tokens 1,5,9,30,5 --top 3");
    REQUIRE(r.rc == 0);
    lines = lines_of(r.out);
    REQUIRE(lines.size() == prompt.size());
    CHECK_THAT(lines[3], StartsWith("pos   3 token    30 | top:"));

    // generate: greedy tokens, each the argmax of a fresh forward over everything before it
    r = run_ittt(tmp, "generate --ckpt " + run + " --tokens 1,5,9,30,5 --n 6");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    std::vector<int32_t> generated = parse_ids(r.out);
    REQUIRE(generated.size() == 6);
    std::vector<int32_t> seq = prompt;
    for (int32_t next : generated) {
        Tensor logits = model.forward(Tensor::from_vector(seq, {1, static_cast<int64_t>(seq.size())}), inference);
        std::vector<int32_t> argmax = argmax_last_dim(logits);
        CHECK(next == argmax.back());
        seq.push_back(next);
    }
    r = run_ittt(tmp, "generate --ckpt " + run + " --tokens 1,5,9,30,5 --n 6 --json");
    REQUIRE(r.rc == 0);
    Json gen = parse_json(r.out, "generate --json");
    REQUIRE(gen.at("generated").size() == 6);
    for (size_t i = 0; i < 6; ++i) CHECK(gen.at("generated").at(i).as_int() == generated[i]);
    // tiny.json: one TTT layer, d = 32, f = 64, C = 16: W + Z and S_src buffers, fp32
    CHECK(gen.at("ttt_state_bytes").as_int() == (32 * 64 + 16 * 64 + 16 * 32) * 4);
    r = run_ittt(tmp, "generate --ckpt " + run + " --tokens 1,5,9,30,5 --n 6 --temperature 1.0 --seed 4");
    REQUIRE(r.rc == 0);
    CHECK(parse_ids(r.out).size() == 6);
    CHECK(run_ittt(tmp, "generate --ckpt " + run + " --tokens 1,5,9,30,5 --n 6 --temperature 1.0 --seed 4").out == r.out);

    // train --resume continues at step 5 up to the new --steps
    r = run_ittt(tmp, "train --resume --out " + run + " " + kTrainSmall + " --steps 6 --json");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    lines = lines_of(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(parse_json(lines[0], "resumed step").at("step").as_int() == 5);
    CHECK(parse_json(lines[1], "resumed step").at("step").as_int() == 6);
    CHECK(parse_json(read_text(run + "/step-00000006/trainer_state.json"), "trainer_state.json").at("step").as_int() == 6);
    CHECK(!fs::exists(step2));  // --keep 2: step 4 and step 6 remain
    CHECK(fs::exists(step4));
    r = run_ittt(tmp, "train --resume --out " + run + " " + kTrainSmall + " --steps 6");
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Contains("resuming " + run + "/step-00000006 at step 6") && Contains("nothing to do"));

    // --resume needs the optimizer state `ittt init` does not write
    check_runtime_error(run_ittt(tmp, "train --resume --out " + init + " " + kTrainSmall + " --steps 6"), "train",
                        {"trainer_state.json", "ittt init"});
}

TEST_CASE("cli: a damaged checkpoint is refused naming the file or the tensor", "[cli]") {
    TempDir tmp("ittt_test_cli");
    const std::string config = repo_file("data/configs/tiny.json"), good = tmp / "good";
    REQUIRE(run_ittt(tmp, "init --config " + config + " --out " + good).rc == 0);
    const std::string weights = read_text(good + "/model.safetensors");
    const std::string eval_args = " --task induction --seed 1 --seq-len 40 --batch 2 --batches 1";

    // A copy of the good checkpoint with one file replaced.
    auto variant = [&](const std::string& name, const std::string& file, const std::string& bytes) {
        std::string dir = tmp / name;
        fs::create_directories(dir);
        fs::copy_file(good + "/config.json", dir + "/config.json");
        fs::copy_file(good + "/model.safetensors", dir + "/model.safetensors");
        write_text(dir + "/" + file, bytes);
        return dir;
    };

    std::string truncated = variant("truncated", "model.safetensors", weights.substr(0, weights.size() / 2));
    check_runtime_error(run_ittt(tmp, "eval --ckpt " + truncated + eval_args), "eval", {truncated + "/model.safetensors"});
    check_runtime_error(run_ittt(tmp, "forward --ckpt " + truncated + " --tokens 1,2"), "forward", {"model.safetensors"});
    check_runtime_error(run_ittt(tmp, "generate --ckpt " + truncated + " --tokens 1,2"), "generate", {"model.safetensors"});
    check_runtime_error(run_ittt(tmp, "train --ckpt " + truncated + " --out " + (tmp / "o") + " " + kTrainSmall + " --steps 1"),
                        "train", {"model.safetensors"});

    std::string header = weights;
    for (int i = 0; i < 8; ++i) header[static_cast<size_t>(i)] = '\xff';  // header length 2^64 - 1
    check_runtime_error(run_ittt(tmp, "eval --ckpt " + variant("header", "model.safetensors", header) + eval_args), "eval",
                        {"model.safetensors", "header length"});
    check_runtime_error(run_ittt(tmp, "eval --ckpt " + variant("empty", "model.safetensors", "") + eval_args), "eval",
                        {"model.safetensors"});
    std::string json_garbage = weights;
    json_garbage[10] = '#';  // inside the JSON header
    check_runtime_error(run_ittt(tmp, "eval --ckpt " + variant("garbage", "model.safetensors", json_garbage) + eval_args), "eval",
                        {"model.safetensors"});

    // config.json says d = 48, the weights were made with d = 32: the first tensor that disagrees is named
    std::string cfg = read_text(good + "/config.json");
    size_t at = cfg.find("\"hidden_size\": 32");
    REQUIRE(at != std::string::npos);
    cfg.replace(at, 17, "\"hidden_size\": 48");
    check_runtime_error(run_ittt(tmp, "eval --ckpt " + variant("mismatch", "config.json", cfg) + eval_args), "eval",
                        {"model.safetensors", "model.embed_tokens.weight", "(68, 32)", "(68, 48)", "config.json"});

    check_runtime_error(run_ittt(tmp, "eval --ckpt " + (tmp / "nowhere") + eval_args), "eval", {tmp / "nowhere", "does not exist"});
    check_runtime_error(run_ittt(tmp, "init --config " + (tmp / "nowhere.json") + " --out " + (tmp / "x")), "init", {"nowhere.json"});
    // nothing was damaged further: the good checkpoint still loads
    CHECK(run_ittt(tmp, "eval --ckpt " + good + eval_args).rc == 0);
}

TEST_CASE("cli: --prompt / --text use the checkpoint's tokenizer.json; generate --json reports every TTT update", "[cli]") {
    TempDir tmp;
    const std::string ckpt = tmp / "m", bare = tmp / "bare";
    // A tiny TTT model with the tokenizer fixture's vocabulary, sizeable TTT weights and a
    // clipping threshold that some updates exceed.
    ModelConfig c = tiny_config();
    c.vocab_size = 1210;
    c.ttt_layers = {0, 1};
    auto make = [](const ModelConfig& cfg) {
        Model m(cfg);
        m.init_random(3);
        randomise_ttt(m, 900);
        return m;
    };
    {  // tau between the smallest and the largest unclipped update norm of a long prompt
        Model plain = make(c);
        Session s(plain);
        s.prefill(random_ints({40}, 5, 0, c.vocab_size).to_i32_vector());
        std::vector<double> norms;
        for (const TttUpdate& u : s.updates()) norms.push_back(u.norm);
        std::sort(norms.begin(), norms.end());
        c.ttt_clip_tau = norms[norms.size() / 2];
    }
    Model model = make(c);
    save_model(ckpt, model);
    save_model(bare, model);
    const std::string tok_path = repo_file("tests/fixtures/tokenizer/tokenizer.json");
    fs::copy_file(tok_path, ckpt + "/tokenizer.json");
    Tokenizer tok = Tokenizer::load(tok_path);
    const std::string text = "Hello, world! 你好 <|im_end|>";
    const std::vector<int32_t> ids = tok.encode(text);
    std::string id_list;
    for (int32_t id : ids) id_list += cat(id_list.empty() ? "" : ",", id);

    // forward --text feeds exactly the tokenizer's ids, and shows tokens as text
    Result r = run_ittt(tmp, "forward --ckpt " + ckpt + " --text '" + text + "' --json");
    REQUIRE(r.rc == 0);
    Json fw = parse_json(r.out, "forward --text --json");
    std::vector<int32_t> fed;
    for (const Json& x : fw.at("tokens").as_array()) fed.push_back(x.as_int());
    CHECK(fed == ids);
    CHECK(fw.at("text").as_string() == text);
    CHECK(fw.at("logits").size() == ids.size());
    r = run_ittt(tmp, "forward --ckpt " + ckpt + " --text '" + text + "' --top 1");
    CHECK_THAT(r.out, Contains("\"<|im_end|>\""));

    // generate --prompt: the same tokens as --tokens with those ids; the text is their decode
    r = run_ittt(tmp, "generate --ckpt " + ckpt + " --prompt '" + text + "' --n 12 --json");
    REQUIRE(r.rc == 0);
    Json gen = parse_json(r.out, "generate --prompt --json");
    Result by_ids = run_ittt(tmp, "generate --ckpt " + bare + " --tokens " + id_list + " --n 12 --json");
    REQUIRE(by_ids.rc == 0);
    Json gen_ids = parse_json(by_ids.out, "generate --tokens --json");
    CHECK(gen.at("generated") == gen_ids.at("generated"));
    std::vector<int32_t> out;
    for (const Json& x : gen.at("generated").as_array()) out.push_back(x.as_int());
    std::vector<int32_t> shown;
    for (int32_t id : out)
        if (tok.has_id(id)) shown.push_back(id);
    CHECK(gen.at("prompt_text").as_string() == text);
    CHECK(gen.at("generated_text").as_string() == tok.decode(shown));
    CHECK(run_ittt(tmp, "generate --ckpt " + ckpt + " --prompt '" + text + "' --n 12").out == tok.decode(shown) + "\n");

    // The clipping report: every chunk update of the stream, as the library's Session makes them
    Session s(model);
    s.prefill(ids);
    for (size_t i = 0; i + 1 < out.size(); ++i) s.decode(out[i]);
    const Json& ups = gen.at("ttt_updates");
    REQUIRE(ups.size() == s.updates().size());
    CHECK(ups.size() == 2 * ((ids.size() + out.size() - 1) / static_cast<size_t>(c.ttt_chunk)));
    int clipped = 0;
    for (size_t i = 0; i < ups.size(); ++i) {
        const TttUpdate& u = s.updates()[i];
        INFO("update " << i);
        CHECK(ups.at(i).at("layer").as_int() == u.layer);
        CHECK(ups.at(i).at("chunk").as_int() == u.chunk);
        CHECK(std::fabs(ups.at(i).at("norm").as_number() - u.norm) <= 1e-6 * u.norm);
        CHECK(std::fabs(ups.at(i).at("applied").as_number() - u.applied) <= 1e-6 * u.norm);
        CHECK(ups.at(i).at("clipped").as_bool() == u.clipped);
        clipped += u.clipped;
    }
    CHECK(gen.at("ttt_clipped_updates").as_int() == clipped);
    CHECK(clipped > 0);
    CHECK(clipped < static_cast<int>(ups.size()));
    CHECK(gen.at("ttt_clip_tau").as_number() == c.ttt_clip_tau);

    // No tokenizer, or both inputs: refused by name
    check_runtime_error(run_ittt(tmp, "generate --ckpt " + bare + " --prompt hi --n 2"), "generate",
                        {bare + "/tokenizer.json", "--prompt needs the checkpoint's tokenizer.json"});
    check_usage_error(run_ittt(tmp, "generate --ckpt " + ckpt + " --prompt hi --tokens 1 --n 2"), "generate",
                      "give --tokens or --prompt, not both");
    check_usage_error(run_ittt(tmp, "forward --ckpt " + ckpt), "forward", "missing required flag --tokens");
}

TEST_CASE("cli: step --theory parses each flag into the engine's options once", "[cli][theory]") {
    TempDir tmp("ittt_test_cli");
    Result r = run_ittt(tmp, "step --theory --trials 3 --d 8 --vocab 8 --f 0 --embed orthogonal --features identity --mlp-input rmsnorm "
                             "--chunk 4 --chunks 3 --key-chunk 1 --step-trial 2 --lr 0.5 --seed 9223372036854775807 --json --no-plots");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    int summaries = 0, chunks = 0;
    for (const std::string& line : lines_of(r.out)) {
        Json j = parse_json(line, "step --theory --json");
        if (j.at("type").as_string() == "theory_chunk") {
            CHECK(j.at("trial").as_int() == 2);
            ++chunks;
        }
        if (j.at("type").as_string() != "theory_summary") continue;
        ++summaries;
        CHECK(j.at("trials").as_int() == 3);
        CHECK(j.at("d").as_int() == 8);
        CHECK(j.at("vocab").as_int() == 8);
        CHECK(j.at("f").as_int() == 8);  // identity features: f = d
        CHECK(j.at("chunk").as_int() == 4);
        CHECK(j.at("chunks").as_int() == 3);
        CHECK(j.at("lr").as_number() == 0.5);
        CHECK(j.at("embed").as_string() == "orthogonal");
        CHECK(j.at("features").as_string() == "identity");
        CHECK(j.at("mlp_input").as_string() == "rmsnorm");
    }
    CHECK(summaries == 2);
    CHECK(chunks == 2);  // the chunks before the query's: 0 and 1
    CHECK_THAT(r.out, Contains("\"seed\":9223372036854775807,"));
    // The cross-checks no single flag makes stay the engine's (a run-time error naming the flag).
    check_runtime_error(run_ittt(tmp, "step --theory --chunks 3 --key-chunk 2 --no-plots"), "step", {"--key-chunk"});
}

TEST_CASE("cli: --resume reads the record through the settings table: a setting added later may be absent, any other may not", "[cli]") {
    TempDir tmp("ittt_test_cli");
    const std::string run = tmp / "run";
    REQUIRE(run_ittt(tmp, "train --config " + repo_file("data/configs/tiny.json") + " --out " + run + " " + kTrainSmall + " --steps 2").rc == 0);
    const std::string state_path = run + "/step-00000002/trainer_state.json";
    const Json state = parse_json(read_text(state_path), "trainer_state.json");
    auto without = [&](const std::string& key) {
        Json s = state, settings = state.at("settings");
        REQUIRE(settings.erase(key));
        s.set("settings", settings);
        write_text(state_path, s.dump(2) + "\n");
    };
    // A run recorded before --ttt-lr-scale, --keep and --save-dtype existed had their defaults.
    for (const char* key : {"ttt-lr-scale", "keep", "save-dtype"}) without(key);
    Result r = run_ittt(tmp, "train --resume --out " + run + " --steps 3");
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(parse_json(read_text(run + "/step-00000003/trainer_state.json"), "trainer_state.json").at("settings").at("ttt-lr-scale").as_number() == 1);
    // Every run records its batch: a record without it is refused, not read as the default.
    write_text(state_path, state.dump(2) + "\n");
    fs::remove_all(run + "/step-00000003");
    without("batch");
    check_runtime_error(run_ittt(tmp, "train --resume --out " + run + " --steps 3"), "train",
                        {"trainer_state.json records no 'batch' setting", "cannot be resumed strictly"});
}
