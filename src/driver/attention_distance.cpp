// attention_distance.cpp: recomputes the attention probabilities of the last forward and
// measures how far back they reach (attention_distance.h).
#include "driver/attention_distance.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "runtime/error.h"

namespace ittt {

AttentionDistance::AttentionDistance(std::vector<int> thresholds) : thresholds_(std::move(thresholds)) {
    for (int w : thresholds_) ITTT_CHECK(w > 0, "attention distance: a threshold must be at least 1 token, found ", w);
}

namespace {
// One sequence the kernel attended over by itself: rows [row0, row0 + length) of the
// (N, ...) activations, and its lse.
struct Span {
    int64_t row0 = 0, length = 0;
    std::vector<double> lse;  // (Hq, length)
};

// The spans of the last forward, in the model's document order (Model::plan_documents):
// each document when the forward had boundaries, else each row.
std::vector<Span> spans_of(const LayerActivations& a, const Batch& batch, int Hq) {
    std::vector<Span> spans;
    if (a.documents.empty()) {
        const std::vector<double> lse = a.lse.to_f64_vector();  // (B, Hq, n)
        for (int b = 0; b < batch.B; ++b) {
            const auto first = lse.begin() + static_cast<int64_t>(b) * Hq * batch.n;
            spans.push_back(Span{static_cast<int64_t>(b) * batch.n, batch.n, std::vector<double>(first, first + static_cast<int64_t>(Hq) * batch.n)});
        }
        return spans;
    }
    ITTT_CHECK(batch.document_starts.size() == static_cast<size_t>(batch.B), "attention distance: the last forward ran ",
               a.documents.size(), " documents but the batch lists none: was it run with this batch's document_starts?");
    for (int b = 0; b < batch.B; ++b) {
        std::vector<int> starts = batch.document_starts[static_cast<size_t>(b)];
        if (starts.empty()) starts = {0};
        for (size_t i = 0; i < starts.size(); ++i) {
            const int end = i + 1 < starts.size() ? starts[i + 1] : batch.n;
            spans.push_back(Span{static_cast<int64_t>(b) * batch.n + starts[i], end - starts[i], {}});
        }
    }
    ITTT_CHECK(spans.size() == a.documents.size(), "attention distance: the batch has ", spans.size(),
               " documents but the last forward ran ", a.documents.size(), ": was it run with this batch's document_starts?");
    for (size_t i = 0; i < spans.size(); ++i) spans[i].lse = a.documents[i].lse.to_f64_vector();  // (1, Hq, length)
    return spans;
}
}  // namespace

void AttentionDistance::add(const Model& model, const Batch& batch) {
    const ModelConfig& cfg = model.config();
    const int L = cfg.num_hidden_layers, Hq = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, hd = cfg.head_dim;
    ITTT_CHECK(!model.context_parallel(), "attention distance: not under context parallelism (each rank holds a slice)");
    if (layers_.empty()) {
        layers_.resize(static_cast<size_t>(L));
        for (int l = 0; l < L; ++l) {
            layers_[static_cast<size_t>(l)].window = cfg.window_for_layer(l);
            layers_[static_cast<size_t>(l)].heads.assign(static_cast<size_t>(Hq), Head{0, 0, std::vector<double>(thresholds_.size(), 0.0)});
        }
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (int l = 0; l < L; ++l) {
        const LayerActivations& a = model.activations(l);
        const int window = layers_[static_cast<size_t>(l)].window;
        // Host copies, rows of (N, H*hd).
        const std::vector<double> q = a.qr.to_f64_vector(), k = a.kr.to_f64_vector(), v = a.v.to_f64_vector(), out = a.att.to_f64_vector();
        ITTT_CHECK(static_cast<int64_t>(q.size()) == static_cast<int64_t>(batch.B) * batch.n * Hq * hd,
                   "attention distance: layer ", l, "'s activations are not those of a ", batch.B, " x ", batch.n, " batch");
        double out_max = 1e-30;
        for (double x : out) out_max = std::max(out_max, std::fabs(x));
        std::vector<double> p, o(static_cast<size_t>(hd));
        for (const Span& s : spans_of(a, batch, Hq)) {
            for (int64_t i = 0; i < s.length; ++i) {
                const int64_t row = s.row0 + i;
                if (batch.targets[static_cast<size_t>(row)] == IGNORE_TARGET) continue;
                const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;  // the kernel's visible keys
                for (int h = 0; h < Hq; ++h) {
                    const double* qi = &q[static_cast<size_t>((row * Hq + h) * hd)];
                    const int kh = h / (Hq / Hkv);
                    const double lse = s.lse[static_cast<size_t>(h * s.length + i)];
                    p.assign(static_cast<size_t>(i - j0 + 1), 0.0);
                    double sum = 0;
                    std::fill(o.begin(), o.end(), 0.0);
                    for (int64_t j = j0; j <= i; ++j) {
                        const double* kj = &k[static_cast<size_t>(((s.row0 + j) * Hkv + kh) * hd)];
                        const double* vj = &v[static_cast<size_t>(((s.row0 + j) * Hkv + kh) * hd)];
                        double dot = 0;
                        for (int c = 0; c < hd; ++c) dot += qi[c] * kj[c];
                        const double pij = std::exp(dot * scale - lse);
                        p[static_cast<size_t>(j - j0)] = pij;
                        sum += pij;
                        for (int c = 0; c < hd; ++c) o[static_cast<size_t>(c)] += pij * vj[c];
                    }
                    double out_err = 0;
                    for (int c = 0; c < hd; ++c) out_err = std::max(out_err, std::fabs(o[static_cast<size_t>(c)] - out[static_cast<size_t>((row * Hq + h) * hd + c)]));
                    max_sum_error_ = std::max(max_sum_error_, std::fabs(sum - 1));
                    max_output_error_ = std::max(max_output_error_, out_err / out_max);
                    ITTT_CHECK(std::fabs(sum - 1) <= 1e-3 && out_err <= 1e-3 * out_max, "attention distance: layer ", l, ", head ", h,
                               ", row ", row, ": the recomputed probabilities sum to ", sum, " and reproduce the kernel's output to ",
                               out_err, " (largest |output| ", out_max, "); expected 1 and 0 within 1e-3");
                    Head& head = layers_[static_cast<size_t>(l)].heads[static_cast<size_t>(h)];
                    head.queries += 1;
                    for (int64_t j = j0; j <= i; ++j) {
                        const double pij = p[static_cast<size_t>(j - j0)];
                        head.distance += pij * static_cast<double>(i - j);
                        for (size_t w = 0; w < thresholds_.size(); ++w)
                            if (i - j >= thresholds_[w]) head.beyond[w] += pij;
                    }
                }
            }
        }
    }
}

void AttentionDistance::write_json(JsonWriter& j) const {
    j.begin_object().array("thresholds", thresholds_).field("max_sum_error", max_sum_error_).field("max_output_error", max_output_error_);
    j.key("layers").begin_array();
    for (size_t l = 0; l < layers_.size(); ++l) {
        j.begin_object().field("layer", static_cast<int64_t>(l)).field("window", layers_[l].window).key("heads").begin_array();
        for (const Head& h : layers_[l].heads) {
            std::vector<double> shares;
            for (size_t w = 0; w < thresholds_.size(); ++w) shares.push_back(h.share_beyond(w));
            j.begin_object().field("queries", h.queries).field("mean_distance", h.mean_distance()).array("share_beyond", shares).end_object();
        }
        j.end_array().end_object();
    }
    j.end_array().end_object();
}

namespace {
template <class... A>
std::string printf_string(const char* format, A... args) {
    char buf[256];
    std::snprintf(buf, sizeof buf, format, args...);
    return buf;
}
}  // namespace

std::string AttentionDistance::format_text() const {
    std::string s = "attention distance (over the scored queries; share: of the attention at distance >= W tokens)\n";
    s += "  layer  window  head  queries  mean distance";
    for (int w : thresholds_) s += printf_string("  share >= %-5d", w);
    s += "\n";
    for (size_t l = 0; l < layers_.size(); ++l)
        for (size_t h = 0; h < layers_[l].heads.size(); ++h) {
            const Head& head = layers_[l].heads[h];
            s += printf_string("  %5zu  %6s  %4zu  %7.0f  %13.1f", l, layers_[l].window > 0 ? std::to_string(layers_[l].window).c_str() : "full", h,
                     head.queries, head.mean_distance());
            for (size_t w = 0; w < thresholds_.size(); ++w) s += printf_string("  %14.4f", head.share_beyond(w));
            s += "\n";
        }
    s += printf_string("  (recomputed from q, k and lse: probabilities sum to 1 within %.1e, reproduce the output within %.1e)\n",
             max_sum_error_, max_output_error_);
    return s;
}

}  // namespace ittt
