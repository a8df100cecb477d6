// bench_serve.cpp: ittt as a timing server, for comparators in other frameworks.
//
//   build/ittt_bench --save-model DIR [--chunk C] [--no-ttt]   writes the bench model (bench_models.h)
//   build/ittt_bench --serve DIR [--threads N]                 loads DIR, then answers on stdin/stdout
//
// src/bench/torch_compare.py starts the server once per thread count and alternates requests
// with its own PyTorch runs (A B A B), so that both see the same machine load. One request per
// line, one answer line each:
//   batch PATH B n      read B*n int32 tokens, then B*n int32 targets, from PATH   -> "ok"
//   train K             K training steps (Trainer::step: forward, backward, AdamW) -> "ms t1 .. tK"
//   prefill K           K inference forwards (logits only)                         -> "ms t1 .. tK"
//   logits PATH         write the inference logits (B*n, V) as float32 to PATH     -> "ok"
//   loss                mean cross-entropy of a training forward on the batch     -> "loss X"
//   form NAME           the TTT form (auto, parallel, loop, flat)                  -> "ok"
//   threads N           OpenMP threads from now on                                 -> "ok"
//   stream PATH P K [OUT]  a Session: prefill P int32 tokens read from PATH, then decode the
//                       K tokens that follow them there, one by one; OUT: the last logits
//                       (V float32) written there               -> "ms prefill d1 .. dK"
//   quit
// (stream needs no batch: src/bench/compare_llamacpp.py drives it on a Hugging Face checkpoint.)
// Errors answer "error: ..." and the server keeps going.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench/bench_models.h"
#include "model/model_io.h"
#include "model/session.h"
#include "ops/ops.h"
#include "train/trainer.h"

namespace ittt::bench {

namespace {
Tensor read_i32(std::ifstream& in, int64_t count, const std::string& path) {
    Tensor t = Tensor::empty({count}, DType::I32);
    in.read(reinterpret_cast<char*>(t.raw()), static_cast<std::streamsize>(t.bytes()));
    ITTT_CHECK(in.good(), "batch: ", path, " holds fewer than the ", count, " int32 values expected");
    return t;
}
}  // namespace

int serve(const std::string& dir) {
    Model model = load_model(dir);
    Tensor tokens, targets;
    TrainConfig tc;
    tc.steps = 1 << 30;  // only the cost of a step matters: no decay to the end of a schedule
    tc.warmup = 0;
    std::unique_ptr<Trainer> trainer;
    auto make_trainer = [&] {
        trainer = std::make_unique<Trainer>(model, tc, [&](int64_t, int, Tensor& tok, Tensor& tgt) {
            tok = tokens;
            tgt = targets;
        });
    };
    auto timed = [](int k, const std::function<void()>& fn) {
        std::string line = "ms";
        for (int i = 0; i < k; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            fn();
            line += " " + std::to_string(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        return line;
    };
    std::printf("ready %s\n", dir.c_str());
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream ss(line);
        std::string cmd;
        ss >> cmd;
        std::string answer;
        try {
            if (cmd == "quit") break;
            if (cmd == "batch") {
                std::string path;
                int64_t B = 0, n = 0;
                ss >> path >> B >> n;
                ITTT_CHECK(B > 0 && n > 0, "batch: expected 'batch PATH B n' with B, n > 0, found '", line, "'");
                std::ifstream in(path, std::ios::binary);
                ITTT_CHECK(in.good(), "batch: cannot open ", path);
                tokens = read_i32(in, B * n, path).view({B, n});
                targets = read_i32(in, B * n, path);
                make_trainer();
                answer = "ok";
            } else if (cmd == "threads") {
                int n = 0;
                ss >> n;
                ITTT_CHECK(n > 0, "threads: expected 'threads N' with N > 0, found '", line, "'");
#ifdef _OPENMP
                omp_set_num_threads(n);
#endif
                answer = "ok";
            } else if (cmd == "stream") {
                std::string path, out_path;
                int64_t P = 0, K = 0;
                ss >> path >> P >> K >> out_path;
                ITTT_CHECK(P > 0 && K >= 0, "stream: expected 'stream PATH P K [OUT]' with P > 0, K >= 0, found '", line, "'");
                std::ifstream in(path, std::ios::binary);
                ITTT_CHECK(in.good(), "stream: cannot open ", path);
                const std::vector<int32_t> ids = read_i32(in, P + K, path).to_i32_vector();
                Session session(model);
                answer = timed(1, [&] { session.prefill(std::vector<int32_t>(ids.begin(), ids.begin() + P)); });
                Tensor logits;
                for (int64_t k = 0; k < K; ++k)
                    answer += timed(1, [&] { logits = session.decode(ids[static_cast<size_t>(P + k)]); }).substr(2);
                if (!out_path.empty() && logits.defined()) {
                    std::ofstream out(out_path, std::ios::binary);
                    out.write(static_cast<const char*>(logits.raw()), static_cast<std::streamsize>(logits.bytes()));
                    ITTT_CHECK(out.good(), "stream: cannot write ", out_path);
                }
            } else if (cmd == "form") {
                std::string name;
                ss >> name;
                model.set_ttt_form(parse_ttt_form(name));
                answer = "ok";
            } else {
                ITTT_CHECK(tokens.defined(), cmd, ": send 'batch PATH B n' first");
                int k = 1;
                ForwardOptions inference;
                inference.inference = true;
                if (cmd == "train") {
                    ss >> k;
                    answer = timed(k, [&] { trainer->step(); });
                } else if (cmd == "prefill") {
                    ss >> k;
                    answer = timed(k, [&] { model.forward(tokens, inference); });
                } else if (cmd == "logits") {
                    std::string path;
                    ss >> path;
                    const Tensor& logits = model.forward(tokens, inference);
                    std::ofstream out(path, std::ios::binary);
                    out.write(static_cast<const char*>(logits.raw()), static_cast<std::streamsize>(logits.bytes()));
                    ITTT_CHECK(out.good(), "logits: cannot write ", path);
                    answer = "ok";
                } else if (cmd == "loss") {
                    const Tensor& logits = model.forward(tokens);
                    ops::CrossEntropyResult r = ops::cross_entropy(nullptr, logits, targets, 1.0);
                    answer = "loss " + std::to_string(r.loss_sum / static_cast<double>(r.n_scored));
                } else {
                    fail(cat("unknown request '", cmd, "' (batch, train, prefill, logits, loss, form, threads, stream, quit)"));
                }
            }
        } catch (const Error& e) {
            answer = std::string("error: ") + e.what();
        }
        std::printf("%s\n", answer.c_str());
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace ittt::bench
