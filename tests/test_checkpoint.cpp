// Crash safety of checkpoints (issue 9, defect 1): a save either completes or
// leaves the previous checkpoint untouched and loadable, at every instant.
//
//   - run directories: step-N layout, --keep, resolve the newest, stale temporaries;
//   - an injected ENOSPC / EIO at every fault point of a save (in process, io/fault_injection.h);
//   - a SIGKILL at every fault point of a save, in a real `ittt train` child;
//   - SIGKILL of a real `ittt train` child at random moments, >= 20 of them
//     during saves; after each, the newest checkpoint loads, equals the
//     uninterrupted run's checkpoint of that step byte for byte, and --resume
//     ends at the uninterrupted run's final weights and optimizer state, bit for bit.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "cli_util.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/fault_injection.h"
#include "model/model_io.h"
#include "runtime/rng.h"
#include "tiny_model.h"
#include "train/trainer.h"

extern char** environ;

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

// Every file under a directory (relative path) and its bytes; directories as "/".
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> out;
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        out[fs::relative(e.path(), dir).string()] = e.is_directory() ? "/" : read_text(e.path().string());
    return out;
}

// Entries of a directory whose names contain `part`.
std::vector<std::string> entries_with(const std::string& dir, const std::string& part) {
    std::vector<std::string> out;
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(part) != std::string::npos) out.push_back(e.path().filename().string());
    return out;
}

void copy_tree(const std::string& from, const std::string& to) {
    fs::remove_all(to);
    fs::copy(from, to, fs::copy_options::recursive);
}

// (step + b + i) mod V: deterministic data for the in-process trainer.
BatchFn counting(int B, int n, int V) {
    return [=](int64_t step, int, Tensor& tokens, Tensor& targets) {
        tokens = Tensor::empty({B, n}, DType::I32);
        targets = Tensor::empty({static_cast<int64_t>(B) * n}, DType::I32);
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i) {
                tokens.data<int32_t>()[b * n + i] = static_cast<int32_t>((step + b + i) % V);
                targets.data<int32_t>()[b * n + i] = static_cast<int32_t>((step + b + i + 1) % V);
            }
    };
}

TrainConfig quiet_config(int64_t steps, const std::string& out, int64_t keep) {
    TrainConfig tc;
    tc.steps = steps;
    tc.lr = 1e-2;
    tc.warmup = 1;
    tc.keep = keep;
    tc.out_dir = out;
    tc.log = nullptr;
    return tc;
}

// Sends stderr to /dev/null for a scope: the warnings a save prints when a
// fault hits its pruning are expected here, and `make test` stays quiet.
struct QuietStderr {
    int saved = ::dup(2);
    QuietStderr() {
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 2);
        ::close(null);
    }
    ~QuietStderr() {
        ::dup2(saved, 2);
        ::close(saved);
    }
};

// Restores the fault plan to "none" however the test ends.
struct FaultScope {
    ~FaultScope() { fault::clear(); }
};

// ---- child processes ----

struct Child {
    pid_t pid = -1;
};

// Starts `env... ittt args...` with stdout and stderr into files (no shell, so it can be killed by pid).
Child spawn_ittt(const std::string& args, const std::vector<std::string>& env_extra, const std::string& out, const std::string& err) {
    std::vector<std::string> words = {ittt_binary()};
    std::stringstream ss(args);
    for (std::string w; ss >> w;) words.push_back(w);
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store = {"OMP_NUM_THREADS=1"};
    for (const std::string& e : env_extra) env_store.push_back(e);
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
    int rc = posix_spawn(&c.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    return c;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1; }

int wait_child(const Child& c) {
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    return exit_code(status);
}

// The training run of these tests: tiny, a checkpoint every step, data seed 3.
std::string train_args(const std::string& out, int64_t steps, int64_t keep) {
    return cat("train --task induction --seq-len 16 --batch 2 --config ", repo_file("data/configs/tiny.json"), " --out ", out,
               " --steps ", steps, " --checkpoint-every 1 --keep ", keep, " --log-every 0 --seed 3 --warmup 2 --lr 1e-2");
}

// The bytes that must match the uninterrupted run, bit for bit.
std::string state_bytes(const std::string& step_dir) {
    return read_text(step_dir + "/model.safetensors") + read_text(step_dir + "/optimizer.safetensors");
}

// After a crash: the newest checkpoint (if any) loads completely and equals
// the reference run's checkpoint of the same step; then the run is finished
// (--resume, or from the start when no checkpoint was published) and must
// end exactly where the reference ended. Returns the step it found.
int64_t check_recovers(const TempDir& tmp, const std::string& out, const std::string& ref, int64_t steps, int64_t keep,
                       const std::string& context) {
    INFO(context);
    int64_t found = -1;
    std::vector<RunCheckpoint> cps = list_run_checkpoints(out);
    if (!cps.empty()) {
        ResolvedCheckpoint r = resolve_checkpoint(out);
        CHECK(r.dir == cps.back().dir);
        Model m = load_model(r.dir);  // config, every tensor, finite
        (void)m;
        Json state = load_checkpoint_trainer_state(r.dir);
        found = state.at("step").as_int64();
        CHECK(load_checkpoint_optimizer_state(r.dir).tensors.size() == 2 * m.parameters().size());
        CHECK(state_bytes(r.dir) == state_bytes(ref + "/" + run_checkpoint_name(found)));
    }
    Result r = run_ittt(tmp, found >= 0 ? "train --resume --out " + out + " --log-every 0" : train_args(out, steps, keep));
    INFO("recovery run stderr:\n" << r.err);
    REQUIRE(r.rc == 0);
    const std::string last = out + "/" + run_checkpoint_name(steps);
    CHECK(state_bytes(last) == state_bytes(ref + "/" + run_checkpoint_name(steps)));
    CHECK(entries_with(out, ".staging.").empty());
    CHECK(entries_with(out, ".trash.").empty());
    return found;
}

}  // namespace

TEST_CASE("run directory: step-N checkpoints, --keep, the newest resolved, stale temporaries removed", "[checkpoint]") {
    TempDir tmp("ittt_test_ckpt");
    const std::string run = tmp / "run";
    make_directories(run);
    ModelConfig cfg = tiny_config();
    Model m(cfg);
    m.init_random(1);
    for (int64_t step = 1; step <= 3; ++step) {
        Json state = Json::object();
        state.set("step", step);
        std::string dir = save_run_checkpoint(run, step, cfg, model_weights(m), nullptr, &state, 2);
        CHECK(dir == run + "/" + run_checkpoint_name(step));
    }
    std::vector<RunCheckpoint> cps = list_run_checkpoints(run);
    REQUIRE(cps.size() == 2);  // --keep 2
    CHECK(cps[0].step == 2);
    CHECK(cps[1].step == 3);
    ResolvedCheckpoint r = resolve_checkpoint(run + "/");
    CHECK(r.dir == run + "/step-00000003");
    CHECK_THAT(r.note, Contains("newest complete checkpoint") && Contains("step-00000002"));
    // A Hugging Face tool opens the step directory itself: config.json + model.safetensors.
    CHECK(fs::exists(r.dir + "/config.json"));
    CHECK(load_safetensors(r.dir + "/model.safetensors").metadata.at("format") == "pt");
    // A plain checkpoint resolves to itself, silently.
    ResolvedCheckpoint demo = resolve_checkpoint(repo_file("data/demo"));
    CHECK(demo.dir == repo_file("data/demo"));
    CHECK(demo.note.empty());

    // Left by a dead process: removed. Left by a live one (our parent): kept.
    const long dead = 4194305;  // above Linux's largest pid_max: no process can have it
    const std::string stale = cat(run, "/.step-00000004.staging.", dead), live = cat(run, "/.step-00000005.staging.", ::getppid());
    fs::create_directories(stale + "/sub");
    fs::create_directories(live);
    CHECK(resolve_checkpoint(run).dir == run + "/step-00000003");  // temporaries are never checkpoints
    std::vector<std::string> removed = remove_stale_temporaries(run);
    CHECK(removed == std::vector<std::string>{stale});
    CHECK(!fs::exists(stale));
    CHECK(fs::exists(live));
    fs::remove_all(live);

    // A step directory missing its weights (not written by a save) is skipped, with a note.
    fs::create_directories(run + "/step-00000009");
    write_text(run + "/step-00000009/config.json", "{}");
    std::vector<std::string> skipped;
    CHECK(list_run_checkpoints(run, &skipped).back().step == 3);
    CHECK(skipped == std::vector<std::string>{run + "/step-00000009"});

    // Nothing complete, and an interrupted save: the error says both.
    const std::string empty = tmp / "empty";
    fs::create_directories(cat(empty, "/.step-00000001.staging.", dead));
    CHECK_THROWS_WITH(resolve_checkpoint(empty), Contains("is not a checkpoint") && Contains("no complete step-N") &&
                                                     Contains("an interrupted save left") && Contains(".staging."));
    CHECK_THROWS_WITH(resolve_checkpoint(tmp / "nowhere"), Contains("does not exist"));
}

TEST_CASE("plain checkpoints are published whole: replaced atomically, non-checkpoints never overwritten", "[checkpoint]") {
    TempDir tmp("ittt_test_ckpt");
    ModelConfig cfg = tiny_config();
    Model a(cfg), b(cfg);
    a.init_random(1);
    b.init_random(2);
    const std::string dir = tmp / "sub/model";
    save_model(dir, a);  // creates the parent
    std::map<std::string, std::string> first = snapshot(dir);
    CHECK(first.size() == 2);
    save_model(dir, b);  // replaces: only the new files remain
    std::map<std::string, std::string> second = snapshot(dir);
    CHECK(second.size() == 2);
    CHECK(second != first);
    CHECK(entries_with(tmp / "sub", ".staging.").empty());
    CHECK(entries_with(tmp / "sub", ".trash.").empty());
    // A directory holding something else is not replaced.
    fs::create_directories(tmp / "notes");
    write_text(tmp / "notes/todo.txt", "mine");
    CHECK_THROWS_WITH(save_model(tmp / "notes", a), Contains("not a checkpoint") && Contains("not replacing"));
    CHECK(read_text(tmp / "notes/todo.txt") == "mine");
    CHECK(entries_with(tmp.path, ".staging.").empty());
}

TEST_CASE("fault injection: ENOSPC or EIO at every fault point of a save keeps the previous checkpoint loadable", "[checkpoint][fault]") {
    FaultScope restore;
    TempDir tmp("ittt_test_fault");
    const std::string pristine = tmp / "pristine", run = tmp / "run", expected = tmp / "expected";
    ModelConfig cfg = tiny_config();
    const int V = cfg.vocab_size;
    // The run as it stands before the save under test: step 1 saved (keep 1, so the save also prunes).
    {
        Model m(cfg);
        m.init_random(5);
        randomise_ttt(m, 6);
        Trainer t(m, quiet_config(2, pristine, 1), counting(2, 8, V));
        t.step();
        make_directories(pristine);
        t.save();
    }
    // One attempt: the run as it was, resumed, one more step, then a save of
    // step 2 with `plan` armed. Returns the save's error ("" if it completed).
    auto attempt = [&](const std::string& dir, const fault::Plan* plan) {
        copy_tree(pristine, dir);
        Model m(cfg);
        Trainer t(m, quiet_config(2, dir, 1), counting(2, 8, V));
        t.resume(dir);
        t.step();
        if (plan) fault::set_plan(*plan);
        else fault::clear();
        std::string error;
        try {
            QuietStderr quiet;
            t.save();
        } catch (const Error& e) {
            error = e.what();
        }
        return error;
    };
    REQUIRE(attempt(expected, nullptr).empty());  // what an undisturbed save of step 2 writes
    const int64_t points = fault::points_seen();
    fault::Plan eio;
    eio.any = false, eio.op = fault::Op::Fsync, eio.effect = fault::Effect::Errno, eio.error = EIO;
    int64_t fsyncs = 0;
    while (eio.n = fsyncs + 1, !attempt(run, &eio).empty()) ++fsyncs;  // the k-th fsync fails until there is none
    fault::clear();
    INFO("fault points in one save: " << points << ", of them fsync: " << fsyncs);
    REQUIRE(points > 20);
    REQUIRE(fsyncs >= 4);
    const std::string step1 = run + "/step-00000001", step2 = run + "/step-00000002";
    const std::map<std::string, std::string> before = snapshot(pristine);
    const std::string new_state = state_bytes(expected + "/step-00000002");

    struct Case {
        bool any;
        int error;
        int64_t count;
    };
    int failed_saves = 0, completed_saves = 0;
    for (const Case& c : {Case{true, ENOSPC, points}, Case{false, EIO, fsyncs}}) {
        for (int64_t k = 1; k <= c.count; ++k) {
            fault::Plan p;
            p.any = c.any, p.op = fault::Op::Fsync, p.n = k, p.effect = fault::Effect::Errno, p.error = c.error;
            std::string error = attempt(run, &p);
            fault::clear();
            INFO((c.any ? "point " : "fsync ") << k << " fails with " << std::strerror(c.error) << "; error: " << error);
            CHECK(entries_with(run, ".staging.").empty());  // a failed save removes what it wrote
            if (!error.empty()) {
                ++failed_saves;
                CHECK_THAT(error, Contains(std::strerror(c.error)) && Contains("cannot write the checkpoint of step 2"));
                std::vector<RunCheckpoint> cps = list_run_checkpoints(run);
                REQUIRE(!cps.empty());
                if (cps.back().step == 1) {
                    // Untouched: the same files, byte for byte, and the message names it as kept.
                    CHECK(snapshot(run) == before);
                    CHECK_THAT(error, Contains("the last checkpoint, " + step1 + " (step 1), is kept"));
                } else {
                    // Failed only after the rename (the parent's fsync): published and complete.
                    CHECK(state_bytes(step2) == new_state);
                }
            } else {
                ++completed_saves;  // the fault hit the pruning of step 1, after the publish
                CHECK(state_bytes(step2) == new_state);
            }
            load_model(run);  // whatever happened, the newest checkpoint loads
        }
    }
    INFO("saves refused: " << failed_saves << ", completed (fault in the pruning): " << completed_saves);
    CHECK(failed_saves > 0);
}

TEST_CASE("SIGKILL at every fault point of a save: the previous checkpoint survives, --resume is bit-exact", "[checkpoint][fault][cli]") {
    TempDir tmp("ittt_test_kill");
    const std::string ref = tmp / "ref";
    const int64_t steps = 2, keep = 1;
    // The uninterrupted run keeps every step, for byte comparisons at any step.
    Result r = run_ittt(tmp, train_args(ref, steps, 1000));
    INFO(r.err);
    REQUIRE(r.rc == 0);
    // Where the points are: a traced run of the run under test.
    r = run_ittt(tmp, train_args(tmp / "count", steps, keep), "ITTT_FAULT=trace");
    REQUIRE(r.rc == 0);
    std::vector<std::string> trace;
    for (const std::string& l : lines_of(r.err))
        if (l.rfind("ittt fault point ", 0) == 0) trace.push_back(l);
    // The second save begins where the staging directory of step 2 is created.
    int64_t second_save = -1;
    for (size_t i = 0; i < trace.size() && second_save < 0; ++i)
        if (trace[i].find("mkdir") != std::string::npos && trace[i].find(".step-00000002.staging.") != std::string::npos)
            second_save = static_cast<int64_t>(i) + 1;
    const int64_t total = static_cast<int64_t>(trace.size());
    INFO("fault points: " << total << ", the second save starts at " << second_save);
    REQUIRE(second_save > 10);
    // Every point of the second save (which has a checkpoint to protect and prunes it),
    // and every 5th point before it (the probe of --out and the first save).
    int kills = 0;
    for (int64_t k = 1; k <= total; k += k < second_save ? 5 : 1) {
        const std::string out = tmp / cat("out", k);
        Child c = spawn_ittt(train_args(out, steps, keep), {cat("ITTT_FAULT=any:", k, ":kill")}, tmp / ".kill.out", tmp / ".kill.err");
        const int rc = wait_child(c);
        REQUIRE(rc == 128 + SIGKILL);
        ++kills;
        int64_t found = check_recovers(tmp, out, ref, steps, keep, cat("killed at fault point ", k, ": ", trace[static_cast<size_t>(k - 1)]));
        if (k >= second_save) CHECK(found >= 1);  // the first checkpoint is never lost to the second save
        fs::remove_all(out);
    }
    CHECK(kills > 100);
}

TEST_CASE("SIGKILL of `ittt train` at random moments, >= 20 during saves: loadable every time, resume bit-exact", "[checkpoint][fault][cli]") {
    TempDir tmp("ittt_test_randkill");
    const std::string ref = tmp / "ref";
    const int64_t steps = 6, keep = 2;
    auto t0 = std::chrono::steady_clock::now();
    Result r = run_ittt(tmp, train_args(ref, steps, 1000));
    const double ref_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(r.err);
    REQUIRE(r.rc == 0);
    Rng rng(20260);  // seeded: a failure names its attempt and delay, and reproduces
    int during_saves = 0, attempts = 0, outside = 0;
    while (during_saves < 20 && attempts < 200) {
        ++attempts;
        const std::string out = tmp / cat("out", attempts), err = tmp / ".rand.err";
        const double delay = rng.uniform() * 1.2 * ref_seconds;
        Child c = spawn_ittt(train_args(out, steps, keep), {"ITTT_FAULT=trace"}, tmp / ".rand.out", err);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        ::kill(c.pid, SIGKILL);
        const int rc = wait_child(c);
        if (rc != 128 + SIGKILL) {  // it finished first: not a kill
            REQUIRE(rc == 0);
            fs::remove_all(out);
            continue;
        }
        // Inside a save when the last point it reached belongs to one (staging, publish, pruning).
        std::vector<std::string> lines = lines_of(read_text(err));
        std::string last = lines.empty() ? "" : lines.back();
        const bool in_save = last.find("step-") != std::string::npos;
        (in_save ? during_saves : outside) += 1;
        check_recovers(tmp, out, ref, steps, keep, cat("attempt ", attempts, ", killed after ", delay * 1e3, " ms; last point: ", last));
        fs::remove_all(out);
    }
    INFO("attempts " << attempts << ", kills during saves " << during_saves << ", kills elsewhere " << outside);
    CHECK(during_saves >= 20);
}
