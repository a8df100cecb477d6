// Lab 06's reference solutions. Try the exercises in lab.cpp before you read this.
#include <vector>

#include "model/model.h"
#include "runtime/rng.h"
#include "tasks/tasks.h"

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

using namespace ittt;

// One forward per held-out batch; count_correct scores the positions the task marks.
bool evaluate(Model& model, const TaskConfig& task, int batch, int seq_len, const std::vector<uint64_t>& seeds, Accuracy& out) {
    const int V = model.config().vocab_size;
    out = Accuracy{};
    for (uint64_t seed : seeds) {
        Batch b = make_batch(task, V, batch, seq_len, seed);
        Accuracy a = count_correct(b, model.forward(b.tokens_tensor()).view({batch, seq_len, V}));
        out.correct += a.correct, out.scored += a.scored;
        out.examples_all_correct += a.examples_all_correct, out.examples += a.examples;
    }
    return true;
}

}  // namespace solution
