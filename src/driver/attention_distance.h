// attention_distance.h: how far back a model's attention reads (`ittt eval --attention-distance`).
//
// For query position i and key position j <= i of one sequence (one document, with
// boundaries), the attention kernel's probability is
//
//     p_ij = exp(q_i . k_j / sqrt(hd) - lse_i)        (q, k after the q/k norms and RoPE)
//
// with lse_i the log-sum-exp the forward keeps for the backward. The kernels never
// store p (flash attention never builds it), so this recomputes it from the last
// forward's activations (Model::activations: qr, kr, lse) and checks the recomputation
// twice: sum_j p_ij = 1, and sum_j p_ij v_j = the kernel's output at i. Per layer and
// query head, over the scored query positions of the batches it is given:
//
//     mean distance   sum p_ij (i - j) / #queries      (in tokens; 0: attends to itself)
//     share beyond W  sum of p_ij over i - j >= W / #queries, for each W asked for
//
// "Beyond 64" is what a sliding window of 64 cannot see: a full-attention model with a
// small share there uses little of the context it could read.
//
//   AttentionDistance stats({64, 256});
//   model.forward(tokens, opt);          // opt.document_starts = batch.document_starts
//   stats.add(model, batch);             // the scored positions of batch.targets
//   stats.layers[0].heads[1].mean_distance(), ...share_beyond(0)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"
#include "model/model.h"
#include "tasks/tasks.h"

namespace ittt {

class AttentionDistance {
public:
    struct Head {
        double queries = 0;              // scored query positions seen (= sum of p over them)
        double distance = 0;             // sum of p_ij (i - j)
        std::vector<double> beyond;      // per threshold W: sum of p_ij over i - j >= W
        double mean_distance() const { return queries > 0 ? distance / queries : 0.0; }
        double share_beyond(size_t w) const { return queries > 0 ? beyond[w] / queries : 0.0; }
    };
    struct Layer {
        int window = 0;  // the layer's sliding window (0: full attention)
        std::vector<Head> heads;
    };

    explicit AttentionDistance(std::vector<int> thresholds);

    // Adds the scored positions (targets != IGNORE_TARGET) of the model's last forward,
    // which ran batch's tokens with its document_starts, on one process (no context
    // parallelism, no state). Throws an Error naming the layer, head and position when the
    // recomputed probabilities disagree with the kernel's lse or output (tolerance 1e-3
    // relative to the largest |output|).
    void add(const Model& model, const Batch& batch);

    const std::vector<int>& thresholds() const { return thresholds_; }
    const std::vector<Layer>& layers() const { return layers_; }
    double max_sum_error() const { return max_sum_error_; }        // max |sum_j p_ij - 1|
    double max_output_error() const { return max_output_error_; }  // max |sum_j p_ij v_j - out_i| / max |out|

    void write_json(JsonWriter& j) const;  // the value of "attention_distance"
    std::string format_text() const;       // a table: layer, head, mean distance, shares

private:
    std::vector<int> thresholds_;
    std::vector<Layer> layers_;
    double max_sum_error_ = 0, max_output_error_ = 0;
};

}  // namespace ittt
