// Nothing lost, nothing silent, part 2 (issue 19): one writer per run, convert
// never destroys its input, resume keeps every setting, output failures are
// errors. One TEST_CASE per numbered defect of the issue ("issue 19 #N: ..."),
// each reproducing it with the real `ittt` binary, as the reproducers
// do; the concurrent writers are two real processes. The bad-input table in
// docs/reliability.md (tests/test_reliability.cpp) lists the same cases.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "cli_util.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/fault_injection.h"
#include "io/safetensors.h"
#include "io/writer_lock.h"
#include "model/model_io.h"

extern char** environ;

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;
using Catch::StartsWith;
namespace fs = std::filesystem;

namespace {

// The training run: tiny, one thread, a fixed data seed unless given.
std::string train_args() {
    return "train --task induction --seq-len 16 --batch 2 --warmup 1 --lr 1e-2 --log-every 0 --threads 1 --config " +
           repo_file("data/configs/tiny.json");
}

struct Child {
    pid_t pid = -1;
};

// Kills (SIGKILL) and reaps a child still running when the scope ends: a failed
// REQUIRE must not leave a training process behind.
struct Reaper {
    std::vector<pid_t> pids;
    ~Reaper() {
        for (pid_t p : pids)
            if (::waitpid(p, nullptr, WNOHANG) == 0) {
                ::kill(p, SIGKILL);
                ::waitpid(p, nullptr, 0);
            }
    }
};

// `ittt args...` started without a shell (so it can be signalled by pid), stdout and stderr into files.
Child spawn_ittt(const std::string& args, const std::string& out, const std::string& err, const std::vector<std::string>& env = {}) {
    std::vector<std::string> words = {ittt_binary()};
    std::stringstream ss(args);
    for (std::string w; ss >> w;) words.push_back(w);
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store = {"OMP_NUM_THREADS=1"};
    for (const std::string& e : env) env_store.push_back(e);
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0 && std::strncmp(*e, "ITTT_FAULT=", 11) != 0) env_store.push_back(*e);
    std::vector<char*> envp;
    for (std::string& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Child c;
    const int rc = posix_spawn(&c.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    return c;
}

int wait_child(const Child& c) {
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

// Polls `done` every 5 ms for up to `seconds`.
bool wait_until(const std::function<bool()>& done, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
}

// Every file under a directory (relative path) and its bytes; directories as "/".
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        out[fs::relative(e.path(), dir).string()] = e.is_directory() ? "/" : read_text(e.path().string());
    return out;
}

std::string state_bytes(const std::string& step_dir) {
    return read_text(step_dir + "/model.safetensors") + read_text(step_dir + "/optimizer.safetensors");
}

Json trainer_state(const std::string& step_dir) { return parse_json(read_text(step_dir + "/trainer_state.json"), step_dir); }

// The fault point (of any kind) where the save of `step` begins in this training run.
int64_t save_begins(const TempDir& tmp, const std::string& args, int64_t step) {
    Result r = run_ittt(tmp, args, "ITTT_FAULT=trace");
    REQUIRE(r.rc == 0);
    for (const std::string& l : r.err_lines())
        if (l.rfind("ittt fault point ", 0) == 0 && l.find("." + run_checkpoint_name(step) + ".staging.") != std::string::npos)
            return std::stoll(l.substr(17));
    FAIL("no fault point in the save of step " << step);
    return -1;
}

}  // namespace

TEST_CASE("issue 19 #1: two `ittt train` into one --out: the second is refused at once, naming the first; a killed holder never blocks",
          "[writers][cli]") {
    TempDir tmp("ittt_test_writers");
    const std::string run = tmp / "same";
    // The reproducer, made deterministic: the second run starts while the first is
    // training (it has printed its first step) and has saved nothing yet. Before: both
    // trained and both wrote, each pruning the other's steps, and both exited 0.
    Reaper reaper;
    Child first = spawn_ittt(train_args() + " --steps 1000000 --checkpoint-every 100000 --seed 1 --out " + run, tmp / ".1.out", tmp / ".1.err");
    reaper.pids.push_back(first.pid);
    REQUIRE(wait_until([&] { return !read_text(tmp / ".1.out").empty(); }, 30));
    Result second = run_ittt(tmp, train_args() + " --steps 30 --checkpoint-every 1 --seed 2 --weight-decay 0.2 --out " + run);
    check_runtime_error(second, "train", {"--out " + run + " is being written by another process (pid " + std::to_string(first.pid) +
                                              ", ittt train, since ",
                                          "lock file '" + run + "/.writer.lock'", "one writer at a time"});
    CHECK(second.seconds < 10);  // at once: it does not wait for the holder
    ::kill(first.pid, SIGTERM);
    CHECK(wait_child(first) == 128 + SIGTERM);
    CHECK(list_run_checkpoints(run).empty());  // the refused run wrote nothing (and the first had saved nothing)

    // Both started together, the second 50 ms later, as in the issue: exactly one trains (the
    // other is refused at the lock or, had the first already finished, by its checkpoints).
    const std::string both = tmp / "both";
    Child a = spawn_ittt(train_args() + " --steps 30 --checkpoint-every 1 --seed 1 --out " + both, tmp / ".a.out", tmp / ".a.err");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Child b = spawn_ittt(train_args() + " --steps 30 --checkpoint-every 1 --seed 2 --weight-decay 0.2 --out " + both, tmp / ".b.out", tmp / ".b.err");
    reaper.pids.push_back(a.pid), reaper.pids.push_back(b.pid);
    const int rc_a = wait_child(a), rc_b = wait_child(b);
    INFO("a: exit " << rc_a << "\n" << read_text(tmp / ".a.err") << "b: exit " << rc_b << "\n" << read_text(tmp / ".b.err"));
    CHECK(((rc_a == 0 && rc_b == 1) || (rc_a == 1 && rc_b == 0)));
    const std::string winner_seed = rc_a == 0 ? "1" : "2";
    CHECK_THAT(read_text(rc_a == 0 ? tmp / ".b.err" : tmp / ".a.err"),
               Contains("is being written by another process (pid ") || Contains("already holds checkpoints"));
    const std::vector<RunCheckpoint> cps = list_run_checkpoints(both);
    REQUIRE(cps.size() == 2);  // --keep 2 of one run: nobody pruned the other's
    for (const RunCheckpoint& cp : cps) CHECK(trainer_state(cp.dir).at("settings").at("seed").as_string() == winner_seed);
    CHECK(cps.back().step == 30);

    // While one writer runs, a second one is refused at once, naming the holder's pid, fresh or --resume.
    const std::string held = tmp / "held";
    Child holder = spawn_ittt(train_args() + " --steps 1000000 --checkpoint-every 1 --seed 1 --out " + held, tmp / ".h.out", tmp / ".h.err");
    reaper.pids.push_back(holder.pid);
    REQUIRE(wait_until([&] { return !list_run_checkpoints(held).empty(); }, 30));
    const int64_t now = list_run_checkpoints(held).back().step;
    for (const std::string& args : {train_args() + " --steps 5 --seed 2 --out " + held, cat("train --resume --out ", held, " --steps ", now + 3)}) {
        Result r = run_ittt(tmp, args, "timeout 60");
        INFO(args);
        check_runtime_error(r, "train", {"--out " + held + " is being written by another process (pid " + std::to_string(holder.pid) +
                                             ", ittt train, since ",
                                         "lock file '" + held + "/.writer.lock'", "one writer at a time"});
        CHECK(r.seconds < 10);  // at once: it does not wait for the holder
    }
    // SIGKILL of the holder leaves its lock file, but not its lock: the kernel drops it.
    ::kill(holder.pid, SIGKILL);
    CHECK(wait_child(holder) == 128 + SIGKILL);
    CHECK(fs::exists(held + "/.writer.lock"));
    const int64_t at = list_run_checkpoints(held).back().step;
    Result r = run_ittt(tmp, cat("train --resume --out ", held, " --steps ", at + 2));
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(list_run_checkpoints(held).back().step == at + 2);
    CHECK_FALSE(fs::exists(held + "/.writer.lock"));  // a writer that ends normally removes it

    // The same for convert's OUT: this test process holds the lock, a real `ittt convert` is refused.
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + (tmp / "m")).rc == 0);
    {
        WriterLock mine(checkpoint_lock_path(tmp / "conv"), "the test's OUT", "the test");
        Result c = run_ittt(tmp, "convert " + (tmp / "m") + " " + (tmp / "conv"));
        check_runtime_error(c, "convert", {"OUT " + (tmp / "conv") + " is being written by another process (pid " + std::to_string(::getpid()) +
                                               ", the test, since "});
        CHECK_FALSE(fs::exists(tmp / "conv"));
    }
    CHECK(run_ittt(tmp, "convert " + (tmp / "m") + " " + (tmp / "conv")).rc == 0);
}

TEST_CASE("issue 19 #2: convert never destroys its input: OUT = IN, inside IN or a run's step directory refused; a different OUT needs "
          "--overwrite",
          "[writers][cli]") {
    TempDir tmp("ittt_test_convert_safe");
    const std::string m = tmp / "ck", run = tmp / "run";
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + m).rc == 0);
    REQUIRE(run_ittt(tmp, train_args() + " --steps 2 --checkpoint-every 1 --out " + run).rc == 0);
    const auto ck_before = snapshot(m), run_before = snapshot(run);
    struct Refusal {
        std::string in, out, message;
    };
    const Refusal refusals[] = {
        // Before: `convert ck ck --dtype bf16` rounded the F32 weights in place for good, exit 0.
        {m, m, "OUT " + m + " is IN"},
        {m + "/", m + "/./", "is IN"},
        // Before: replaced the training checkpoint by a weights-only one; --resume then failed.
        {run, run + "/step-00000002", "the checkpoint " + run + " resolves to"},
        {run + "/step-00000002", run + "/step-00000001", "names a step-N checkpoint of the training run " + run},
        {m, run + "/step-00000009", "names a step-N checkpoint of the training run " + run},
        {m, m + "/sub", "lies inside IN"},
        {run + "/step-00000002", run, "is a training run directory"},
        {m, tmp.path, "lies inside OUT"},
    };
    for (const Refusal& x : refusals) {
        Result r = run_ittt(tmp, "convert " + x.in + " " + x.out + " --dtype bf16");
        INFO("convert " << x.in << " " << x.out);
        check_runtime_error(r, "convert", {x.message});
    }
    CHECK(snapshot(m) == ck_before);
    CHECK(snapshot(run) == run_before);
    CHECK(run_ittt(tmp, "train --resume --out " + run + " --steps 3").rc == 0);  // the run goes on

    // An existing, different checkpoint at OUT (a typo in OUT) is refused, saying how it differs; --overwrite replaces it.
    const std::string other = tmp / "other";
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + other + " --seed 5").rc == 0);
    const auto other_before = snapshot(other);
    Result r = run_ittt(tmp, "convert " + m + " " + other);
    check_runtime_error(r, "convert", {"OUT " + other + " already holds a different checkpoint (its model.safetensors differs)", "--overwrite"});
    CHECK(snapshot(other) == other_before);
    r = run_ittt(tmp, "convert " + m + " " + other + " --overwrite");
    CHECK(r.rc == 0);
    CHECK_THAT(r.err, Contains("replacing the checkpoint at " + other + " (--overwrite; its model.safetensors differs)"));
    CHECK(read_text(other + "/model.safetensors") == read_text(m + "/model.safetensors"));
    // The same conversion again: OUT already holds exactly it, so it needs no --overwrite.
    REQUIRE(run_ittt(tmp, "convert " + m + " " + (tmp / "again") + " --dtype bf16").rc == 0);
    r = run_ittt(tmp, "convert " + m + " " + (tmp / "again") + " --dtype bf16");
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(r.err.empty());
    // No lock file is left beside a finished OUT.
    for (const auto& e : fs::directory_iterator(tmp.path)) CHECK(e.path().filename().string().find(".writer.lock") == std::string::npos);
}

TEST_CASE("issue 19 #3: --resume keeps --checkpoint-every and --keep (and --log-every); a flag given changes them, with a note",
          "[writers][cli]") {
    TempDir tmp("ittt_test_cadence");
    const std::string ce = tmp / "ce";
    REQUIRE(run_ittt(tmp, train_args() + " --checkpoint-every 1 --keep 5 --steps 2 --out " + ce).rc == 0);
    // Before: the resumed run wrote only step 6 (and kept 2): a crash after it lost everything since the resume.
    Result r = run_ittt(tmp, "train --resume --out " + ce + " --steps 6");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    std::vector<int64_t> steps;
    for (const RunCheckpoint& cp : list_run_checkpoints(ce)) steps.push_back(cp.step);
    CHECK(steps == std::vector<int64_t>{2, 3, 4, 5, 6});
    const Json settings = trainer_state(ce + "/step-00000006").at("settings");
    CHECK(settings.at("checkpoint-every").as_int64() == 1);
    CHECK(settings.at("keep").as_int64() == 5);
    // Given on --resume, they change what is saved from here on, and say so.
    r = run_ittt(tmp, "train --resume --out " + ce + " --steps 8 --keep 2");
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.err, Contains("ittt train: --keep 2 from here on (recorded 5)"));
    steps.clear();
    for (const RunCheckpoint& cp : list_run_checkpoints(ce)) steps.push_back(cp.step);
    CHECK(steps == std::vector<int64_t>{7, 8});
    CHECK(trainer_state(ce + "/step-00000008").at("settings").at("keep").as_int64() == 2);
}

TEST_CASE("issue 19 #4: a failed write to stdout is an error: one line naming it, exit 1", "[writers][cli]") {
    TempDir tmp("ittt_test_stdout");
    const std::string m = tmp / "m";
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + m).rc == 0);
    const std::string eval = "eval --task induction --seq-len 16 --batch 2 --batches 1 --seed 1 --ckpt " + m;
    struct Case {
        std::string args, redirect, why;
    };
    // Before: each exited 0 (a 0-byte result file on a full disk).
    const Case cases[] = {
        {eval + " --json", "> /dev/full", "No space left on device"},
        {"forward --ckpt " + m + " --tokens 1,2 --json", "> /dev/full", "No space left on device"},
        {eval, ">&-", "it is closed"},
        {"train --help", "> /dev/full", "No space left on device"},
    };
    for (const Case& c : cases) {
        Result r = run_ittt_redirected(tmp, c.args, c.redirect);
        INFO("ittt " << c.args << " " << c.redirect << "\nstderr:\n" << r.err);
        CHECK(r.rc == 1);
        std::vector<std::string> lines = r.err_lines();
        REQUIRE(!lines.empty());
        CHECK_THAT(lines.back(), StartsWith("ittt ") && Contains(": error: cannot write to stdout: " + c.why + "; the output is incomplete"));
    }
    // The same commands with a working stdout exit 0.
    CHECK(run_ittt_redirected(tmp, eval + " --json", "> " + (tmp / "res.json")).rc == 0);
    CHECK(parse_json(read_text(tmp / "res.json"), "eval --json").at("scored").as_int64() > 0);
}

TEST_CASE("issue 19 #5: a training run whose stdout closes goes on; SIGTERM / SIGINT stop it gracefully, naming the last checkpoint",
          "[writers][cli]") {
    TempDir tmp("ittt_test_graceful");
    // `ittt train ... | head -n 1`: before, SIGPIPE ended the run after one line (exit 141), no message, no checkpoint.
    const std::string pipe = tmp / "pipe1";
    Result r = run_ittt_redirected(tmp, train_args() + " --steps 300 --out " + pipe, "| head -n 1 > /dev/null");
    INFO(r.err);
    CHECK(r.rc == 0);
    std::vector<std::string> lines = r.err_lines();
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], StartsWith("ittt train: cannot write to stdout (Broken pipe) after step ") &&
                             Contains("the training and its checkpoints in " + pipe + " are not affected"));
    CHECK(list_run_checkpoints(pipe).back().step == 300);

    // SIGTERM in the middle of a save (at its first fault point): the save finishes, the run stops after it,
    // exit 143, one line; --resume then ends exactly where the uninterrupted run ends.
    const std::string args = train_args() + " --steps 5 --checkpoint-every 1 --keep 10 --seed 3";
    REQUIRE(run_ittt(tmp, args + " --out " + (tmp / "ref")).rc == 0);
    const int64_t point = save_begins(tmp, args + " --out " + (tmp / "count"), 2);
    const std::string term = tmp / "term";
    r = run_ittt(tmp, args + " --out " + term, cat("ITTT_FAULT=any:", point, ":term"));
    INFO(r.err);
    CHECK(r.rc == 128 + SIGTERM);
    lines = r.err_lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "ittt train: stopped by SIGTERM after step 2 of 5; the last checkpoint, " + term +
                          "/step-00000002 (step 2), is kept; continue with: ittt train --resume --out " + term);
    CHECK(state_bytes(term + "/step-00000002") == state_bytes(tmp / "ref/step-00000002"));
    REQUIRE(run_ittt(tmp, "train --resume --out " + term).rc == 0);
    CHECK(state_bytes(term + "/step-00000005") == state_bytes(tmp / "ref/step-00000005"));

    // A real SIGINT from outside, without --checkpoint-every: nothing was saved, and the line says so; exit 130.
    const std::string sigint = tmp / "sigint";
    Child c = spawn_ittt(train_args() + " --steps 1000000 --out " + sigint, tmp / ".int.out", tmp / ".int.err");
    Reaper reaper{{c.pid}};
    REQUIRE(wait_until([&] { return !read_text(tmp / ".int.out").empty(); }, 30));  // training: past the start, handlers installed
    ::kill(c.pid, SIGINT);
    CHECK(wait_child(c) == 128 + SIGINT);
    CHECK_THAT(read_text(tmp / ".int.err"), StartsWith("ittt train: stopped by SIGINT after step ") &&
                                                Contains("no checkpoint of this run exists yet in " + sigint));
}

TEST_CASE("issue 19 #6: --resume --out RUN/step-N is refused with the run directory to use", "[writers][cli]") {
    TempDir tmp("ittt_test_stepout");
    const std::string run = tmp / "run";
    REQUIRE(run_ittt(tmp, train_args() + " --steps 2 --checkpoint-every 1 --out " + run).rc == 0);
    const auto before = snapshot(run);
    // Before: it nested a new run inside the checkpoint (run/step-00000002/step-00000003), which --ckpt run never saw.
    Result r = run_ittt(tmp, "train --resume --out " + run + "/step-00000002 --steps 3");
    check_runtime_error(r, "train", {"--out " + run + "/step-00000002 is a checkpoint of the run directory " + run +
                                     ", not a run directory: give --out " + run});
    CHECK(snapshot(run) == before);
    r = run_ittt(tmp, train_args() + " --steps 3 --out " + run + "/step-00000002");
    check_runtime_error(r, "train", {"is a checkpoint of the run directory " + run, "--resume"});
    CHECK(snapshot(run) == before);
}

TEST_CASE("issue 19 #7: text task files are checked before reading: regular files of at most 1 GiB", "[writers][cli][tasks]") {
    TempDir tmp("ittt_test_textsize");
    const std::string sparse = tmp / "sparse.txt", fifo = tmp / "fifo";
    {  // 2 GiB that take no disk: a sparse file
        std::ofstream(sparse).put('x');
        fs::resize_file(sparse, int64_t{2} << 30);
    }
    REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
    struct Case {
        std::string path, message;
    };
    // Before: /dev/zero grew to 3.7 GB in 4 s; the sparse file was read whole; a FIFO waited for a writer.
    const Case cases[] = {
        {"/dev/zero", "path '/dev/zero' is a character device, not a regular file"},
        {sparse, "path '" + sparse + "' is 2147483648 bytes (2 GiB); the text task reads a whole file into memory, at most 1073741824 bytes"},
        {fifo, "path '" + fifo + "' is a FIFO, not a regular file"},
        {tmp.path, "is a directory, not a regular file"},
    };
    for (const Case& c : cases) {
        Result r = run_ittt(tmp, "train --task text --task-opt path=" + c.path + " --seq-len 16 --config " + repo_file("data/configs/tiny.json") +
                                     " --out " + (tmp / "x"),
                            // bounded, should the check ever go: /dev/zero would fill memory, a FIFO wait for ever
                            "timeout 20 prlimit --data=2147483648");
        INFO(c.path << "\n" << r.err);
        CHECK(r.rc == 2);
        REQUIRE(!r.err_lines().empty());
        CHECK_THAT(r.err_lines().front(), Contains(c.message));
        CHECK(r.seconds < 5);
    }
}

TEST_CASE("issue 19 #8: the step comes from trainer_state.json; a step directory named for another step is refused", "[writers][cli]") {
    TempDir tmp("ittt_test_stepname");
    const std::string run = tmp / "run";
    REQUIRE(run_ittt(tmp, train_args() + " --steps 5 --checkpoint-every 1 --keep 5 --out " + run).rc == 0);
    // step-00000007 holding step 3: before, --resume took it as the newest, resumed at 3 and pruned steps 4 and 5.
    fs::copy(run + "/step-00000003", run + "/step-00000007", fs::copy_options::recursive);
    const auto before = snapshot(run);
    Result r = run_ittt(tmp, "train --resume --out " + run + " --steps 9");
    check_runtime_error(r, "train", {"--resume " + run + "/step-00000007: its trainer_state.json says step 3, but the directory is named for step 7"});
    CHECK(snapshot(run) == before);
}

TEST_CASE("issue 19 #9: error messages quote at most 300 bytes of any input, with its size", "[writers][cli][tokenizer]") {
    TempDir tmp("ittt_test_msglen");
    const std::string m = tmp / "m";
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + m).rc == 0);
    // A 10 MB token in tokenizer.json (as a key of the vocabulary with a value of the wrong type).
    Json tok = Json::parse(read_text(repo_file("tests/fixtures/tokenizer/tokenizer.json")), "tokenizer.json");
    Json model = tok.at("model");
    Json vocab = Json::object();
    vocab.set(std::string(10000000, 'a'), "x");
    model.set("vocab", vocab);
    tok.set("model", model);
    write_text(m + "/tokenizer.json", tok.dump());
    Result r = run_ittt(tmp, "forward --ckpt " + m + " --text hi");
    const std::string head = r.err.substr(0, 2000);  // (Catch would take minutes to print 10 MB)
    INFO(head);
    CHECK(r.rc == 1);
    CHECK(r.err.size() < 1000);  // before: a 10 MB line
    CHECK_THAT(head, Contains("field 'model.vocab.aaaa") && Contains("(10000012 bytes in all, the first 300 shown)"));
}

TEST_CASE("issue 19 #10: --resume compares --config by what it says, not by how its path is spelt", "[writers][cli]") {
    TempDir tmp("ittt_test_configpath");
    fs::create_directories(tmp / "a/b");
    fs::copy_file(repo_file("data/configs/tiny.json"), tmp / "a/tiny.json");
    // The same model, spelt differently: keys in another order, no indentation.
    {
        Json c = parse_json(read_text(tmp / "a/tiny.json"), "tiny.json");
        Json reordered = Json::object();
        std::vector<Json::Member> members = c.as_object();
        for (auto it = members.rbegin(); it != members.rend(); ++it) reordered.set(it->first, it->second);
        write_text(tmp / "copy.json", reordered.dump());
    }
    const std::string train = "train --task induction --seq-len 16 --batch 2 --warmup 1 --lr 1e-2 --log-every 0 --threads 1";
    Result r = run_shell(tmp, "cd " + (tmp / "a") + " && OMP_NUM_THREADS=1 '" + ittt_binary() + "' " + train +
                                  " --config tiny.json --steps 2 --out ../run");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(trainer_state(tmp / "run/step-00000002").at("settings").at("config").as_string() == (tmp / "a/tiny.json"));  // absolute
    // Before: the same file from another working directory was refused as "differs".
    r = run_shell(tmp, "cd " + (tmp / "a/b") + " && OMP_NUM_THREADS=1 '" + ittt_binary() + "' train --resume --out ../../run --steps 3 --config ../tiny.json");
    INFO(r.err);
    CHECK(r.rc == 0);
    r = run_ittt(tmp, "train --resume --out " + (tmp / "run") + " --steps 4 --config " + (tmp / "copy.json"));
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(trainer_state(tmp / "run/step-00000004").at("settings").at("config").as_string() == (tmp / "a/tiny.json"));
    // Another model is still refused.
    r = run_ittt(tmp, "train --resume --out " + (tmp / "run") + " --steps 5 --config " + repo_file("data/demo/config.json"));
    check_runtime_error(r, "train", {"(they describe different models)", "cannot change"});
}

TEST_CASE("issue 19 #11: each message names the file that failed, as what it is", "[writers][cli]") {
    TempDir tmp("ittt_test_names");
    const std::string fixture = repo_file("tests/fixtures/hf_qwen3/tied_bf16_sharded");
    const std::string shard = "model-00002-of-00002.safetensors";
    auto copy = [&](const std::string& name) {
        fs::copy(fixture, tmp / name, fs::copy_options::recursive);
        return tmp / name;
    };
    auto forward = [&](const std::string& dir) { return run_ittt(tmp, "forward --ckpt " + dir + " --tokens 1,2", "timeout 20"); };
    // Before: "shard ... is not in DIR" for a FIFO or a directory; "no model.safetensors" for an index that is a directory.
    const std::string fifo = copy("fifo");
    fs::remove(fifo + "/" + shard);
    REQUIRE(::mkfifo((fifo + "/" + shard).c_str(), 0644) == 0);
    Result r = forward(fifo);
    check_runtime_error(r, "forward", {fifo + "/" + shard + ": the shard of tensor '", "is a FIFO, not a file"});
    CHECK(r.seconds < 10);  // and nothing waits on it
    const std::string dir = copy("dir");
    fs::remove(dir + "/" + shard);
    fs::create_directory(dir + "/" + shard);
    check_runtime_error(forward(dir), "forward", {dir + "/" + shard + ": the shard of tensor '", "is a directory, not a file"});
    const std::string index = copy("index");
    fs::remove(index + "/model.safetensors.index.json");
    fs::create_directory(index + "/model.safetensors.index.json");
    check_runtime_error(forward(index), "forward", {"'" + index + "/model.safetensors.index.json' is a directory, not a file"});
    // Before: a bad shape or an Inf inside a shard was blamed on model.safetensors.index.json.
    auto rewrite_shard = [&](const std::string& ckpt, const std::function<void(std::vector<NamedTensor>&)>& edit) {
        SafetensorsFile f = load_safetensors(ckpt + "/" + shard);
        edit(f.tensors);
        save_safetensors(ckpt + "/" + shard, f.tensors, f.metadata);
    };
    const std::string shape = copy("shape");
    rewrite_shard(shape, [](std::vector<NamedTensor>& t) {
        for (NamedTensor& nt : t)
            if (nt.name == "model.norm.weight") nt.tensor = Tensor::zeros({nt.tensor.numel() / 2}, DType::F32);
    });
    r = forward(shape);
    check_runtime_error(r, "forward", {shape + "/" + shard + ": tensor 'model.norm.weight' has shape (32), expected (64)"});
    CHECK_THAT(r.err, !Contains("index.json:"));
    const std::string inf = copy("inf");
    rewrite_shard(inf, [](std::vector<NamedTensor>& t) {
        for (NamedTensor& nt : t)
            if (nt.name == "model.norm.weight") {
                nt.tensor = nt.tensor.to_dtype(DType::F32);
                nt.tensor.data<float>()[3] = INFINITY;
            }
    });
    r = forward(inf);
    check_runtime_error(r, "forward", {inf + "/" + shard + ": tensor 'model.norm.weight' holds +Inf at index 3"});
    // Before: a dangling symlink as --out "exists and is not a directory".
    fs::create_symlink(tmp / "nowhere", tmp / "dangling");
    r = run_ittt(tmp, train_args() + " --steps 1 --out " + (tmp / "dangling"));
    check_runtime_error(r, "train", {"'" + (tmp / "dangling") + "' is a symbolic link to '" + (tmp / "nowhere") + "', which does not exist"});
}

TEST_CASE("issue 19 #12: negative ttt_clip_tau and ttt_lr are refused in init, load and convert; 0 means off", "[writers][cli][config]") {
    TempDir tmp("ittt_test_signs");
    const std::string tiny = read_text(repo_file("data/configs/tiny.json"));
    auto config_with = [&](const std::string& key, const std::string& value) {
        std::string text = std::regex_replace(tiny, std::regex("\"" + key + "\": [^,\n]+"), "\"" + key + "\": " + value);
        if (text == tiny) text.replace(text.find('{'), 1, "{\n  \"" + key + "\": " + value + ",");
        return text;
    };
    REQUIRE(run_ittt(tmp, "init --config " + repo_file("data/configs/tiny.json") + " --out " + (tmp / "m")).rc == 0);
    for (const auto& [key, message] : {std::pair<std::string, std::string>{"ttt_clip_tau", "ttt_clip_tau must be >= 0 (0: no clipping), found -1"},
                                       {"ttt_lr", "ttt_lr must be >= 0 (eta, the fast weight's step size; 0: no update), found -1"}}) {
        INFO(key);
        write_text(tmp / (key + ".json"), config_with(key, "-1"));
        check_runtime_error(run_ittt(tmp, "init --config " + (tmp / (key + ".json")) + " --out " + (tmp / "x")), "init", {message});
        // A checkpoint whose config.json says so: refused at load, by forward and by convert.
        fs::copy(tmp / "m", tmp / key, fs::copy_options::recursive);
        write_text(tmp / key + "/config.json", config_with(key, "-1"));
        check_runtime_error(run_ittt(tmp, "forward --ckpt " + (tmp / key) + " --tokens 1,2"), "forward", {message});
        check_runtime_error(run_ittt(tmp, "convert " + (tmp / key) + " " + (tmp / "y")), "convert", {message});
        write_text(tmp / (key + "0.json"), config_with(key, "0"));
        CHECK(run_ittt(tmp, "init --config " + (tmp / (key + "0.json")) + " --out " + (tmp / (key + "0"))).rc == 0);
    }
    check_runtime_error(run_ittt(tmp, "convert " + repo_file("tests/fixtures/hf_qwen3/tied_bf16_sharded") + " " + (tmp / "z") +
                                          " --add-ttt --ttt-layers 0 --ttt-lr -0.5"),
                        "convert", {"--add-ttt: config: ttt_lr must be >= 0", "found -0.5"});
}

TEST_CASE("issue 19 #13: convert carries config keys ittt does not use into OUT unchanged", "[writers][cli][hf]") {
    TempDir tmp("ittt_test_keys");
    const std::string in = repo_file("tests/fixtures/hf_qwen3/tied_bf16_sharded");
    Result r = run_ittt(tmp, "convert " + in + " " + (tmp / "ttt") + " --add-ttt --ttt-layers 0 --ttt-chunk 8");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    const Json before = parse_json(read_text(in + "/config.json"), "in"), after = parse_json(read_text(tmp / "ttt/config.json"), "out");
    // Before: dropped, so transformers' generation defaults changed for the converted checkpoint.
    for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id", "max_position_embeddings", "attention_dropout", "use_cache",
                            "transformers_version", "rope_parameters", "max_window_layers"}) {
        INFO(key);
        REQUIRE(after.contains(key));
        CHECK(after.at(key) == before.at(key));
    }
    CHECK(after.at("dtype").as_string() == "float32");  // the dtype keys follow the weights written (F32 by default)
    CHECK(after.at("ttt_mode").as_bool());
    r = run_ittt(tmp, "convert " + (tmp / "ttt") + " " + (tmp / "bf16") + " --strip-ttt --dtype bf16");
    REQUIRE(r.rc == 0);
    const Json stripped = parse_json(read_text(tmp / "bf16/config.json"), "bf16");
    CHECK(stripped.at("dtype").as_string() == "bfloat16");
    CHECK(stripped.at("eos_token_id") == before.at("eos_token_id"));
    CHECK(load_model(tmp / "bf16").config().vocab_size == 1280);
}
