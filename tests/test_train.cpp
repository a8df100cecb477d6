// Trainer tests: the learning-rate schedule, that training learns, gradient
// accumulation, exact resume from a checkpoint, and the NaN/Inf guard.
//
// Data is a pure function of (step, micro) (trainer.h): a "counting" sequence
// start, start+1, ... (mod V) with a seeded start per example, so the next token
// is always learnable from the current one and a few dozen steps show it.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/model.h"
#include "ops/ops.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;

namespace {

// Small enough that a step takes well under a millisecond, but with every
// kind of layer: a sliding-window TTT layer (several chunks) and a full one.
ModelConfig train_config() {
    ModelConfig c;
    c.vocab_size = 16;
    c.hidden_size = 16;
    c.intermediate_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 8;
    c.rope_theta = 10000;
    c.layer_types = {AttentionType::Sliding, AttentionType::Full};
    c.sliding_window = 4;
    c.ttt_mode = true;
    c.ttt_layers = {0};
    c.ttt_chunk = 4;
    c.ttt_lr = 0.5;
    return c;
}

// Seeded init with nonzero TTT conv/projection: with the release's zero conv,
// the TTT path would carry nothing through the first step.
Model make_model(uint64_t seed) {
    Model m(train_config());
    m.init_random(seed);
    for (Parameter& p : m.parameters())
        if (p.name.find("ttt_") != std::string::npos) p.value.copy_from(random_tensor(p.value.shape(), seed + 1000, 0.3));
    return m;
}

// Example b of micro-batch `micro` at step `step`: (start + i) mod V, all scored.
// `row0` shifts the example index, so two micro-batches of B rows can hold
// exactly the rows of one batch of 2B.
void counting_batch(int64_t step, int micro_row0, int B, int n, int V, Tensor& tokens, Tensor& targets) {
    tokens = Tensor::empty({B, n}, DType::I32);
    targets = Tensor::empty({static_cast<int64_t>(B) * n}, DType::I32);
    for (int b = 0; b < B; ++b) {
        Rng rng(Rng(static_cast<uint64_t>(step)).fork(static_cast<uint64_t>(micro_row0 + b)).seed());
        int start = static_cast<int>(rng.randint(0, V));
        for (int i = 0; i < n; ++i) {
            tokens.data<int32_t>()[b * n + i] = (start + i) % V;
            targets.data<int32_t>()[b * n + i] = (start + i + 1) % V;
        }
    }
}

BatchFn counting_batches(int B, int n) {
    const int V = train_config().vocab_size;
    return [=](int64_t step, int micro, Tensor& tokens, Tensor& targets) { counting_batch(step, micro * B, B, n, V, tokens, targets); };
}

TrainConfig quick_train_config(int64_t steps) {
    TrainConfig tc;
    tc.steps = steps;
    tc.lr = 1e-2;
    tc.warmup = 3;
    tc.log = nullptr;  // no progress lines in the test output
    return tc;
}


// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/ittt_test_train_XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every file under a directory (path relative to it) and its bytes; directories as "/".
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        out[std::filesystem::relative(e.path(), dir).string()] = e.is_directory() ? "/" : read_bytes(e.path().string());
    return out;
}

bool same_weights(const Model& a, const Model& b) {
    bool ok = true;
    for (size_t i = 0; i < a.parameters().size(); ++i)
        if (!bitwise_equal(a.parameters()[i].value, b.parameters()[i].value)) {
            std::printf("parameter '%s' differs\n", a.parameters()[i].name.c_str());
            ok = false;
        }
    return ok;
}

}  // namespace

TEST_CASE("lr schedule: linear warm-up, then cosine down to min_lr_ratio * lr at the last step", "[train]") {
    Model m = make_model(1);
    TrainConfig tc;
    tc.steps = 110;
    tc.warmup = 10;
    tc.lr = 2e-3;
    tc.min_lr_ratio = 0.1;
    Trainer t(m, tc, counting_batches(1, 4));
    // Exact formulas in double: 1e-15 relative allows only the last bits of cos().
    for (int64_t s = 1; s <= 10; ++s) CHECK(t.lr_at(s) == Approx(2e-3 * static_cast<double>(s) / 10.0).epsilon(1e-15));
    CHECK(t.lr_at(10) == Approx(2e-3).epsilon(1e-15));  // the peak at the end of warm-up
    CHECK(t.lr_at(60) == Approx(2e-3 * (0.1 + 0.9 * 0.5)).epsilon(1e-12));  // half-way: cos(pi/2) = 0
    CHECK(t.lr_at(110) == Approx(2e-4).epsilon(1e-12));                    // the last step: the floor
    for (int64_t s = 11; s <= 110; ++s) {
        double p = static_cast<double>(s - 10) / 100.0;
        CHECK(t.lr_at(s) == Approx(2e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * p)))).epsilon(1e-12));
        CHECK(t.lr_at(s) <= t.lr_at(s - 1));  // monotone after the peak
    }

    TrainConfig no_warmup = tc;
    no_warmup.warmup = 0;
    Trainer t0(m, no_warmup, counting_batches(1, 4));
    CHECK(t0.lr_at(1) == Approx(2e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 110)))).epsilon(1e-12));
    CHECK(t0.lr_at(110) == Approx(2e-4).epsilon(1e-12));
}

TEST_CASE("training reduces the loss on a counting task", "[train]") {
    Model m = make_model(2);
    Trainer t(m, quick_train_config(40), counting_batches(4, 12));
    std::vector<StepStats> stats;
    for (int i = 0; i < 40; ++i) stats.push_back(t.step());
    REQUIRE(stats.size() == 40);
    CHECK(t.steps_done() == 40);
    double first = stats[0].loss, last = 0;
    for (size_t i = 35; i < 40; ++i) last += stats[i].loss / 5;
    INFO("loss at step 1: " << first << ", mean of the last 5 steps: " << last);
    // The start is ln(16) = 2.77 (uniform); the next token is a fixed function of
    // the current one, which 40 steps at lr 1e-2 learn to well below half of it.
    CHECK(first == Approx(std::log(16.0)).margin(0.2));
    CHECK(last < 0.5 * first);
    for (const StepStats& s : stats) {
        CHECK(std::isfinite(s.grad_norm));
        CHECK(s.scored == 4 * 12);
    }
}

TEST_CASE("gradient accumulation: 2 micro-batches of B equal one batch of 2B", "[train]") {
    const int B = 3, n = 10;
    const int V = train_config().vocab_size;
    Model one = make_model(3), two = make_model(3);
    TrainConfig tc = quick_train_config(1);
    tc.grad_clip = 0;  // the gradients themselves are compared, before any scaling
    Trainer big(one, tc, [&](int64_t step, int, Tensor& tok, Tensor& tgt) { counting_batch(step, 0, 2 * B, n, V, tok, tgt); });
    tc.grad_accum = 2;
    Trainer accum(two, tc, [&](int64_t step, int micro, Tensor& tok, Tensor& tgt) {
        counting_batch(step, micro * B, B, n, V, tok, tgt);  // rows 0..B-1, then B..2B-1
    });
    StepStats a = big.step(), b = accum.step();
    CHECK(a.scored == b.scored);
    CHECK(a.loss == Approx(b.loss).epsilon(1e-6));  // fp32 logits, sums in another order
    CHECK(a.grad_norm == Approx(b.grad_norm).epsilon(1e-5));
    for (size_t i = 0; i < one.parameters().size(); ++i) {
        const Parameter& p = one.parameters()[i];
        INFO(p.name);
        // fp32 sums of the same terms in another order: 1e-6 absolute on O(1e-2) gradients.
        CHECK(check_close(two.parameters()[i].grad, p.grad, 1e-6, 1e-4, p.name));
    }
}

TEST_CASE("document boundaries: the trainer hands each micro-batch's starts to the forward", "[train][boundaries]") {
    const int B = 2, n = 10;
    const int V = train_config().vocab_size;
    const std::vector<std::vector<int>> starts = {{0, 5}, {0, 3, 7}};
    auto batch = [&](int64_t step, Tensor& tok, Tensor& tgt) {
        counting_batch(step, 0, B, n, V, tok, tgt);
        for (int b = 0; b < B; ++b)  // the target crossing into the next document is not scored
            for (size_t i = 1; i < starts[static_cast<size_t>(b)].size(); ++i) tgt.data<int32_t>()[b * n + starts[static_cast<size_t>(b)][i] - 1] = -1;
    };
    Model trained = make_model(4), reference = make_model(4), packed = make_model(4);
    TrainConfig tc = quick_train_config(1);
    tc.grad_clip = 0;  // the gradients themselves are compared
    Trainer t(trained, tc, DocumentBatchFn([&](int64_t step, int, Tensor& tok, Tensor& tgt, std::vector<std::vector<int>>& document_starts) {
                  batch(step, tok, tgt);
                  document_starts = starts;
              }));
    StepStats s = t.step();
    CHECK(s.scored == B * n - 3);

    // The same step by hand: a forward with the boundaries and the mean loss's gradient.
    Tensor tok, tgt;
    batch(1, tok, tgt);
    auto grads_of = [&](Model& m, const std::vector<std::vector<int>>& document_starts) {
        ForwardOptions opt;
        opt.document_starts = document_starts;
        const Tensor& logits = m.forward(tok, opt);
        Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype());
        ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, tgt, 1.0 / static_cast<double>(B * n - 3));
        m.backward(dlogits);
        return r.loss_sum / static_cast<double>(r.n_scored);
    };
    CHECK(s.loss == Approx(grads_of(reference, starts)).epsilon(1e-6));  // fp32, as for gradient accumulation
    grads_of(packed, {});
    double largest_packed_difference = 0;
    for (size_t i = 0; i < trained.parameters().size(); ++i) {
        const Parameter& p = reference.parameters()[i];
        INFO(p.name);
        CHECK(check_close(trained.parameters()[i].grad, p.grad, 1e-6, 1e-4, p.name));  // fp32 sums, as above
        std::vector<double> a = packed.parameters()[i].grad.to_f64_vector(), r = p.grad.to_f64_vector();
        for (size_t k = 0; k < a.size(); ++k) largest_packed_difference = std::max(largest_packed_difference, std::fabs(a[k] - r[k]));
    }
    CHECK(largest_packed_difference > 1e-3);  // not vacuous: without the starts the gradients differ
}

TEST_CASE("resume from a checkpoint equals the uninterrupted run, bit for bit", "[train]") {
    const int64_t N = 8, k = 3;
    TrainConfig tc = quick_train_config(N);
    tc.grad_accum = 2;  // the accumulated path too

    Model full = make_model(4);
    Trainer uninterrupted(full, tc, counting_batches(2, 9));
    while (uninterrupted.steps_done() < N) uninterrupted.step();

    TempDir dir;
    {
        Model first = make_model(4);
        Trainer t(first, tc, counting_batches(2, 9));
        for (int64_t s = 0; s < k; ++s) t.step();
        t.save(dir.path);
    }
    // A different init seed: everything the second half needs must come from the checkpoint.
    Model resumed = make_model(99);
    Trainer t(resumed, tc, counting_batches(2, 9));
    t.resume(dir.path);
    CHECK(t.steps_done() == k);
    std::vector<StepStats> rest = t.run();
    CHECK(rest.size() == static_cast<size_t>(N - k));
    CHECK(t.steps_done() == N);
    CHECK(same_weights(resumed, full));

#ifdef _OPENMP
    // The same with 1 thread before the checkpoint and 2 after: the kernels must not
    // make their sums depend on the thread count.
    TempDir dir2;
    Model a = make_model(4), b = make_model(98);
    with_threads(1, [&] {
        Trainer t1(a, tc, counting_batches(2, 9));
        for (int64_t s = 0; s < k; ++s) t1.step();
        t1.save(dir2.path);
    });
    with_threads(2, [&] {
        Trainer t2(b, tc, counting_batches(2, 9));
        t2.resume(dir2.path);
        t2.run();
    });
    CHECK(same_weights(b, full));
#endif
}

TEST_CASE("resume refuses a checkpoint without optimizer state or past --steps", "[train]") {
    TempDir dir;
    Model m = make_model(5);
    TrainConfig tc = quick_train_config(4);
    {
        Trainer t(m, tc, counting_batches(1, 8));
        while (t.steps_done() < tc.steps) t.step();
        t.save(dir.path);
    }
    TrainConfig shorter = tc;
    shorter.steps = 2;
    Trainer t(m, shorter, counting_batches(1, 8));
    CHECK_THROWS_WITH(t.resume(dir.path), Contains("step 4") && Contains("--steps is 2"));
    std::filesystem::remove(dir.path + "/step-00000004/optimizer.safetensors");
    Trainer t2(m, tc, counting_batches(1, 8));
    CHECK_THROWS_WITH(t2.resume(dir.path), Contains("optimizer.safetensors"));
}

TEST_CASE("NaN/Inf: the step that meets one stops with the step and the tensor, the checkpoint stays", "[train]") {
    TempDir dir;
    TrainConfig tc = quick_train_config(6);
    tc.checkpoint_every = 2;
    tc.out_dir = dir.path;

    SECTION("a NaN weight: the loss turns NaN, the weight is named") {
        Model m = make_model(6);
        TrainConfig first = tc;
        first.steps = 2;
        Trainer(m, first, counting_batches(2, 8)).run();  // writes the checkpoint at step 2
        std::map<std::string, std::string> before = snapshot(dir.path);
        REQUIRE(before.count("step-00000002/model.safetensors"));

        const std::string bad = "model.layers.1.mlp.up_proj.weight";
        Trainer t(m, tc, counting_batches(2, 8));
        t.resume(dir.path);
        m.parameter(bad).value.data<float>()[5] = std::nanf("");
        try {
            t.run();
            FAIL("step 3 should have been refused");
        } catch (const Error& e) {
            CHECK_THAT(e.what(), Contains("step 3") && Contains(bad) && Contains("NaN at index 5") &&
                                     Contains("the last checkpoint, " + dir.path + "/step-00000002 (step 2), is kept"));
        }
        CHECK(t.steps_done() == 2);
        CHECK(snapshot(dir.path) == before);  // files unchanged, none added
    }

    SECTION("a finite loss with a NaN gradient: the gradient's tensor is named") {
        // "Apply, then update": a chunk's own delta is never used in the forward, so
        // on sequences of exactly one chunk an Inf in the TTT conv leaves the loss
        // finite (U = Inf only feeds the unused delta), while the backward's
        // dP = U^T dV = Inf * 0 is NaN. Only the gradient guard can catch it.
        Model m = make_model(7);
        const int C = m.config().ttt_chunk;
        m.parameter("model.layers.0.mlp.ttt_conv.weight").value.data<float>()[0] = INFINITY;
        Trainer t(m, tc, counting_batches(2, C));
        try {
            t.step();
            FAIL("step 1 should have been refused");
        } catch (const Error& e) {
            // dP = U^T dV, and d S_src = conv^T dU (Inf * 0 too) reaching the embedding.
            CHECK_THAT(e.what(), Contains("step 1") && Contains("gradient") && Contains("'model.layers.0.mlp.ttt_proj.weight'") &&
                                     Contains("'model.embed_tokens.weight'") && Contains("no checkpoint of this run exists yet"));
        }
        CHECK(t.steps_done() == 0);
    }
}

TEST_CASE("--ttt-lr-scale: the TTT parameters' first step is X times larger, every other parameter's unchanged", "[train]") {
    // Adam's first step is lr * g / (|g| + eps) per element: with the same gradients,
    // a scale X on the TTT parameters' lr makes exactly their step X times larger.
    Model base = make_model(5);
    auto step_once = [&](double scale) {
        Model m = base.converted(DType::F32, Device::CPU);
        TrainConfig tc = quick_train_config(1);
        tc.warmup = 0;
        tc.ttt_lr_scale = scale;
        Trainer t(m, tc, counting_batches(2, 8));
        t.step();
        return m;
    };
    Model one = step_once(1.0), ten = step_once(10.0);
    int ttt_checked = 0;
    for (size_t i = 0; i < base.parameters().size(); ++i) {
        const std::string& name = base.parameters()[i].name;
        std::vector<double> w0 = base.parameters()[i].value.to_f64_vector();
        std::vector<double> w1 = one.parameters()[i].value.to_f64_vector();
        std::vector<double> w10 = ten.parameters()[i].value.to_f64_vector();
        INFO(name);
        if (name.find(".ttt_") == std::string::npos) {
            CHECK(bitwise_equal(one.parameters()[i].value, ten.parameters()[i].value));
            continue;
        }
        for (size_t k = 0; k < w0.size(); ++k) {
            const double d1 = w1[k] - w0[k], d10 = w10[k] - w0[k];
            if (std::fabs(d1) < 1e-6) continue;  // too small to compare in F32
            CHECK(d10 / d1 == Approx(10.0).epsilon(2e-3));
            ++ttt_checked;
        }
    }
    CHECK(ttt_checked > 0);
}

TEST_CASE("TTT init options: ttt_conv_init_std draws every tap, ttt_proj_init identity sets P = I; the release's init otherwise", "[train]") {
    ModelConfig c = train_config();
    Model release(c);
    release.init_random(3);
    for (const Parameter& p : release.parameters())
        if (p.name.find("ttt_conv") != std::string::npos) CHECK(ops::sum_squares(p.value) == 0.0);  // the drop-in
    c.ttt_conv_init_std = 0.05;
    c.ttt_proj_init_identity = true;
    Model m(c);
    m.init_random(3);
    int seen = 0;
    for (const Parameter& p : m.parameters()) {
        std::vector<double> w = p.value.to_f64_vector();
        if (p.name.find("ttt_conv") != std::string::npos) {
            double ss = 0;
            int nonzero = 0;
            for (double x : w) ss += x * x, nonzero += x != 0;
            CHECK(nonzero == static_cast<int>(w.size()));
            CHECK(std::sqrt(ss / static_cast<double>(w.size())) == Approx(0.05).epsilon(0.3));
            ++seen;
        } else if (p.name.find("ttt_proj") != std::string::npos) {
            const int64_t d = c.hidden_size;
            for (int64_t r = 0; r < d; ++r)
                for (int64_t k = 0; k < d; ++k) CHECK(w[static_cast<size_t>(r * d + k)] == (r == k ? 1.0 : 0.0));
            ++seen;
        }
    }
    CHECK(seen == 2);
    c.ttt_conv_init_std = -1;
    CHECK_THROWS_WITH(c.validate(), Contains("ttt_conv_init_std must be >= 0"));
}

TEST_CASE("run settings: one table names every recorded setting; the record round-trips, seeds exactly", "[train][settings]") {
    std::set<std::string> names;
    for (const RunSetting& e : run_settings_table()) {
        INFO(e.name);
        CHECK(names.insert(e.name).second);  // each name once
        CHECK(find_run_setting(e.name) == &e);
        if (e.meta != nullptr) CHECK(e.help != nullptr);
    }
    CHECK(find_run_setting("nope") == nullptr);
    std::set<std::string> later;
    for (const RunSetting& e : run_settings_table())
        if (e.added_later) later.insert(e.name);
    // What trainer_state.json gained after its first version: an older record may lack these (and only these).
    CHECK(later == std::set<std::string>{"ttt-lr-scale", "checkpoint-every", "keep", "log-every", "train-only", "save-dtype", "shard-size"});
    CHECK(overridable_settings() ==
          "task, batch, seq-len, grad-accum, lr, warmup, min-lr-ratio, weight-decay, grad-clip, ttt-lr-scale, seed, device, kernel");

    RunSettings s;
    s.task = "mqar pairs=8 gap=0 filler=random";
    s.task_name = "mqar";
    s.task_opt = "pairs=8";
    s.steps = 1234;
    s.batch = 3;
    s.lr = 0.0123;
    s.seed = 18446744073709551615ull;  // beyond a double's 2^53: recorded as text
    s.init_seed = 9007199254740993ull;
    s.config = "/abs/config.json";
    s.save_dtype = "bf16";
    s.shard_size = 5000000;
    s.kernel = "gemm=1";
    const Json record = settings_to_json(s);
    CHECK(record.at("seed").as_string() == "18446744073709551615");
    CHECK(record.at("init-seed").as_string() == "9007199254740993");
    CHECK(record.at("ckpt").is_null());        // absent: the run started from --config
    CHECK(record.at("train-only").is_null());  // absent: everything trains
    CHECK(record.at("lr").as_number() == 0.0123);
    const Json reread = Json::parse(record.dump(2), "trainer_state.json settings");
    RunSettings back;
    for (const RunSetting& e : run_settings_table()) set_setting(e, back, reread.at(e.name));
    CHECK(settings_to_json(back) == record);
    CHECK(back.seed == s.seed);
    CHECK(back.init_seed == s.init_seed);
    CHECK(back.weights_format().bf16);
    CHECK(back.weights_format().shard_size == 5000000);
    // A record that lacks a setting (written before it existed) leaves its default.
    RunSettings old;
    set_setting(*find_run_setting("ttt-lr-scale"), old, Json());
    CHECK(old.ttt_lr_scale == 1.0);
    // A wrong type or a seed that is not one is refused, naming the field.
    Json bad = reread;
    bad.set("seed", "12x");
    bad.set_source("trainer_state.json", "settings");
    CHECK_THROWS_WITH(set_setting(*find_run_setting("seed"), back, bad.at("seed")), Contains("settings.seed") && Contains("12x"));
    bad.set("batch", "four");
    bad.set_source("trainer_state.json", "settings");
    CHECK_THROWS_WITH(set_setting(*find_run_setting("batch"), back, bad.at("batch")), Contains("settings.batch") && Contains("expected an integer"));
    // Messages show a seed as its number, a string quoted, null as (none).
    CHECK(setting_text(*find_run_setting("seed"), record.at("seed")) == "18446744073709551615");
    CHECK(setting_text(*find_run_setting("task"), record.at("task")) == "\"mqar pairs=8 gap=0 filler=random\"");
    CHECK(setting_text(*find_run_setting("ckpt"), record.at("ckpt")) == "(none)");
}

TEST_CASE("run settings: the ranges of the real-valued settings, and a library run records no command-line settings", "[train][settings]") {
    RunSettings s;
    for (const RunSetting& e : run_settings_table()) CHECK(setting_range_problem(e, s).empty());  // the defaults are valid
    s.lr = 0;
    CHECK(setting_range_problem(*find_run_setting("lr"), s) == "--lr must be > 0, found 0");
    s.min_lr_ratio = 2;
    CHECK(setting_range_problem(*find_run_setting("min-lr-ratio"), s) == "--min-lr-ratio must be in [0, 1], found 2");
    s.grad_clip = -1;
    CHECK(setting_range_problem(*find_run_setting("grad-clip"), s) == "--grad-clip must be >= 0 (0 turns clipping off), found -1");
    s.weight_decay = std::nan("");
    CHECK_THAT(setting_range_problem(*find_run_setting("weight-decay"), s), Contains("--weight-decay must be >= 0"));
    s.save_dtype = "f16";
    CHECK_THROWS_WITH(s.weights_format(), Contains("save-dtype: expected f32 or bf16, found 'f16'"));

    // The Trainer's record for a run made through the library (no task): its own settings only.
    const Json lib = settings_to_json(RunSettings());
    for (const char* key : {"steps", "lr", "grad-accum", "adam-eps", "keep", "save-dtype"}) CHECK(lib.contains(key));
    for (const char* key : {"task", "batch", "seq-len", "seed", "init-seed", "config", "ckpt", "device", "kernel", "task-name"})
        CHECK_FALSE(lib.contains(key));
}
