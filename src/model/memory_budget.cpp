#include "model/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "runtime/error.h"

namespace ittt {

double available_memory_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024.0;
    long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 1e18;
}

std::string format_bytes(double bytes) {
    char buf[48];
    if (bytes >= 1024.0 * 1024 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.3g TiB", bytes / (1024.0 * 1024 * 1024 * 1024));
    else if (bytes >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.3g GiB", bytes / (1024.0 * 1024 * 1024));
    else std::snprintf(buf, sizeof buf, "%.3g MiB", bytes / (1024.0 * 1024));
    return buf;
}

void require_memory(double bytes, const std::string& what) {
    const double have = available_memory_bytes();
    ITTT_CHECK(bytes <= have, "needs about ", format_bytes(bytes), " for ", what, ", but this machine has ", format_bytes(have),
               " available");
}

double parameter_count(const ModelConfig& c) {
    const double d = c.hidden_size, f = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
    const double q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
    double per_layer = 2 * d + q * d + 2 * kv * d + d * q + 2 * hd + 3 * f * d;
    double total = V * d + d + (c.tie_word_embeddings ? 0 : V * d) + c.num_hidden_layers * per_layer;
    for (int l = 0; l < c.num_hidden_layers; ++l)
        if (c.is_ttt_layer(l)) total += d * c.conv_taps() + (c.ttt_proj ? d * d : 0);
    return total;
}

double forward_bytes(const ModelConfig& c, int64_t B, int64_t n, bool training, double ttt_floats_per_sequence) {
    const double d = c.hidden_size, f = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
    const double q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
    const double N = static_cast<double>(B) * static_cast<double>(n);
    // Per row and layer: x, xn1, h, xn2 (d); q, qn, qr, att (q); k, v, kn, kr (kv); g, u, z (f).
    double per_row = d;  // x0
    double per_sequence = 0;
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        per_row += 4 * d + 4 * q + 4 * kv + 3 * f + c.num_attention_heads;
        if (c.is_ttt_layer(l)) {
            per_row += 2 * d;  // U, V
            per_sequence += ttt_floats_per_sequence;
        }
    }
    per_row += 2 * d + 2 * V;  // final norm; logits and dlogits (training) or their host copy (inference)
    double bytes = 4 * N * per_row + 4 * static_cast<double>(B) * per_sequence + 8 * N;  // + token ids and targets
    return training ? 2 * bytes : bytes;  // the backward's gradient buffers are about as large again
}

double forward_bytes(const ModelConfig& c, int64_t B, int64_t n, bool training) {
    // The parallel form: the per-chunk deltas and prefix sums, 2 (d x f) per chunk of C rows.
    const double df = static_cast<double>(c.hidden_size) * c.intermediate_size;
    return forward_bytes(c, B, n, training, 2 * df * static_cast<double>(n) / std::max(1, c.ttt_chunk));
}

}  // namespace ittt
