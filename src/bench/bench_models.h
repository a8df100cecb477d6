// bench_models.h: the model shape `make bench` measures (bench_models.cpp), shared by the model
// benchmark (bench_model.cpp), the timing server the PyTorch comparator drives (bench_serve.cpp)
// and the context-parallel benchmark (bench_context_parallel.cpp, with layer 2 full attention).
//
// d = 128, f = 384, 4 sliding-window layers (w = 64), 4 query / 2 KV heads of 32, vocab 260;
// with TTT: layers 1 and 3, chunk C, conv weights N(0, 0.02^2) (the release's zero init would
// make every update exactly 0 and the timings those of a model that does no TTT work).
#pragma once
#include "model/model.h"

namespace ittt::bench {

constexpr int kBenchVocab = 260;
ModelConfig bench_config(bool ttt, int chunk);
// init_random(1), then the TTT conv weights N(0, 0.02^2) (any config with TTT layers).
void init_bench_weights(Model& m);
Model bench_model(bool ttt, int chunk);

// `ittt_bench --serve DIR`: loads the checkpoint DIR and answers timing requests on stdin
// (see bench_serve.cpp). Returns the exit code.
int serve(const std::string& dir);

}  // namespace ittt::bench
