#include "model/finite.h"

#include <cmath>
#include <cstdio>

#include "ops/ops.h"

namespace ittt {

namespace {

template <class T>
int64_t first_bad(const T* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) return i;
    return -1;
}

std::string value_text(double v) { return std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf"; }

// "[r, c]" for a flat index of a tensor of this shape.
std::string element_text(const Shape& shape, int64_t index) {
    std::string s = "[";
    std::vector<int64_t> coord(shape.size());
    for (size_t k = shape.size(); k-- > 0;) {
        coord[k] = shape[k] > 0 ? index % shape[k] : 0;
        index = shape[k] > 0 ? index / shape[k] : 0;
    }
    for (size_t k = 0; k < coord.size(); ++k) s += cat(k ? ", " : "", coord[k]);
    return s + "]";
}

// "<label> holds NaN at index 5 (element [0, 5])", or "" when t is finite.
std::string named(const std::string& label, const Tensor& t) {
    int64_t i = first_nonfinite(t);
    return i < 0 ? std::string() : cat(label, " holds ", describe_nonfinite(t, i));
}

}  // namespace

int64_t first_nonfinite(const Tensor& t) {
    if (!t.defined() || t.numel() == 0 || t.dtype() == DType::I32) return -1;
    if (ops::all_finite(t)) return -1;  // the fast path, on the tensor's own device
    Tensor h = t.device() == Device::CPU ? t : t.to(Device::CPU);
    return h.dtype() == DType::F64 ? first_bad(h.data<double>(), h.numel()) : first_bad(h.data<float>(), h.numel());
}

std::string describe_nonfinite(const Tensor& t, int64_t index) {
    Tensor h = t.device() == Device::CPU ? t : t.to(Device::CPU);
    double v = h.dtype() == DType::F64 ? h.data<double>()[index] : static_cast<double>(h.data<float>()[index]);
    std::string where = cat(value_text(v), " at index ", index);
    if (t.ndim() > 1) where += " (element " + element_text(t.shape(), index) + ")";
    return where;
}

std::string first_nonfinite_parameter(const Model& m) {
    for (const Parameter& p : m.parameters())
        if (std::string s = named("'" + p.name + "'", p.value); !s.empty()) return s;
    return "";
}

std::string first_nonfinite_gradient(const Model& m) {
    for (const Parameter& p : m.parameters())
        if (p.trainable)
            if (std::string s = named("the gradient of '" + p.name + "'", p.grad); !s.empty()) return s;
    return "";
}

std::string first_nonfinite_activation(const Model& m, const Tensor& logits) {
    if (std::string s = named("the token embeddings", m.embedded()); !s.empty()) return s;
    for (int l = 0; l < m.config().num_hidden_layers; ++l) {
        const LayerActivations& a = m.activations(l);
        const std::string input = l == 0 ? "x (its input, the embeddings)" : cat("x (its input, the output of layer ", l - 1, ")");
        const std::pair<std::string, const Tensor*> order[] = {
            {input, &a.x}, {"q (query projection)", &a.q},   {"k (key projection)", &a.k},     {"v (value projection)", &a.v},
            {"attention output", &a.att},     {"h (after attention)", &a.h},    {"z (MLP intermediate)", &a.z},
            {"ttt_u (TTT conv output)", &a.ttt_u}, {"ttt_v (TTT target V)", &a.ttt_v}, {"ttt_s (fast-weight prefix sums)", &a.ttt_s},
        };
        for (const auto& [what, t] : order)
            if (std::string s = named(cat("layer ", l, " ", what), *t); !s.empty()) return s;
    }
    return named("the logits", logits);
}

std::string largest_parameter(const Model& m) {
    double best = -1;
    std::string name;
    for (const Parameter& p : m.parameters()) {
        if (first_nonfinite(p.value) >= 0) continue;
        Tensor h = p.value.device() == Device::CPU ? p.value : p.value.to(Device::CPU);
        std::vector<double> v = h.to_f64_vector();
        for (double x : v)
            if (std::fabs(x) > best) best = std::fabs(x), name = p.name;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", best);
    return cat("'", name, "' (", buf, ")");
}

void require_finite_logits(const Model* model, const Tensor& logits, const std::string& what) {
    int64_t i = first_nonfinite(logits);
    if (i < 0) return;
    const int64_t V = logits.dim(-1);
    Tensor h = logits.to(Device::CPU);
    double v = h.dtype() == DType::F64 ? h.data<double>()[i] : static_cast<double>(h.data<float>()[i]);
    std::string msg = cat(what, ": the logits are not finite: ", value_text(v), " at position ", i / V, " (vocabulary entry ",
                          i % V, ")");
    if (model) {
        std::string w = first_nonfinite_parameter(*model);
        if (!w.empty()) msg += "; the weight " + w;
        else msg += "; every weight is finite, the first non-finite activation: " + first_nonfinite_activation(*model, logits);
        msg += cat(" (config: ttt_lr ", model->config().ttt_lr, ", ttt_chunk ", model->config().ttt_chunk, ")");
    }
    fail(msg);
}

}  // namespace ittt
