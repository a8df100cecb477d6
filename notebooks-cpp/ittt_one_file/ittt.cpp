// ittt.cpp: In-Place Test-Time Training in one file.
//
// A 2-layer Qwen3-style decoder whose MLPs are In-Place TTT layers, with its forward, its
// backward, AdamW and an MQAR training loop, in plain C++17 and the standard library only
// (OpenMP pragmas make it faster when -fopenmp is on; without it they are ignored).
// In the spirit of llm.c's train_gpt2.c and llama2.c's run.c: read it top to bottom.
// The math is docs/method.md; the names are docs/README.md's glossary:
//
//   x    = Embed[tokens]                                          (n, d)
//   per layer:
//     h  = x + Attention(RMSNorm(x))     GQA, q/k norms, RoPE, sliding window
//     x  = h + MLP(RMSNorm(h))           SwiGLU: Z = silu(H Wg^T) * (H Wu^T)      (n, f)
//   logits = RMSNorm(x) Embed^T                                   (n, vocab), tied head
//
// In a TTT layer the MLP's down projection Wd is only the start of a fast weight W that
// learns while the model reads, chunk by chunk (C tokens per chunk):
//   U     = DepthwiseConv1D(Embed[tokens])   taps at offsets -2..+2, inside each chunk
//   V     = U P                              the LM-aligned target (looks one token ahead)
//   O_[i] = Z_[i] W_i^T                      apply chunk i with the updates of chunks < i
//   W_i+1 = W_i + eta V_[i]^T Z_[i]          then fold chunk i in (W_0 = Wd)
//
// Build and run (the lab, notebooks-cpp/ittt_one_file/README.md, walks through it):
//   g++ -std=c++17 -O3 -march=native -fopenmp ittt.cpp -o ittt
//   ./ittt train                       the data/learned-mqar recipe from scratch, then held-out accuracy
//   ./ittt eval --ckpt data/learned-mqar   logits of one sequence, loss and accuracy of a checkpoint
//
// Defining ITTT_ONE_FILE_NO_MAIN before including this file leaves out main(), so a test
// can compile it in and compare it with the library (tests/test_one_file.cpp).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ittt_one_file {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

// ============================================================================ 1. configuration

struct Config {
    int vocab_size = 68;       // vocab
    int d = 64;                // hidden width
    int f = 192;               // MLP width
    int n_layers = 2;
    int n_heads = 4;           // Hq query heads
    int n_kv_heads = 2;        // Hkv key/value heads: every Hq/Hkv query heads share one
    int head_dim = 16;         // hd
    double rope_theta = 10000;
    double rms_eps = 1e-6;
    std::vector<int> window = {32, 32};        // per layer; 0 = full causal attention
    std::vector<bool> ttt_layer = {true, true};  // which MLPs are In-Place TTT layers
    int chunk = 32;            // C
    double eta = 0.3;          // ttt_lr, the fast weight's step size
    std::vector<int> conv_offsets = {-2, -1, 0, 1, 2};  // the target conv's taps (K of them)
    int taps() const { return static_cast<int>(conv_offsets.size()); }
};

// ============================================================================ 2. a tiny JSON reader
// Only what config.json and a safetensors header need: the raw text of one key's value.

// The text of `key`'s value inside the JSON object `json` (a number, string, array or
// object; brackets matched, strings skipped). Empty when the key is absent.
std::string json_value(const std::string& json, const std::string& key) {
    const size_t at = json.find("\"" + key + "\"");
    if (at == std::string::npos) return "";
    size_t i = json.find(':', at + key.size() + 2);
    if (i == std::string::npos) return "";
    ++i;
    while (i < json.size() && std::isspace(static_cast<unsigned char>(json[i]))) ++i;
    size_t j = i;
    int depth = 0;
    bool in_string = false;
    for (; j < json.size(); ++j) {
        const char c = json[j];
        if (in_string) {
            if (c == '\\') ++j;
            else if (c == '"') { in_string = false; if (depth == 0) { ++j; break; } }
        } else if (c == '"') in_string = true;
        else if (c == '[' || c == '{') ++depth;
        else if (c == ']' || c == '}') { if (depth == 0) break; if (--depth == 0) { ++j; break; } }
        else if (c == ',' && depth == 0) break;
    }
    std::string v = json.substr(i, j - i);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
    return v;
}

double json_number(const std::string& json, const std::string& key, const std::string& where) {
    const std::string v = json_value(json, key);
    if (v.empty()) fail(where + ": missing key \"" + key + "\"");
    if (v == "true") return 1;
    if (v == "false") return 0;
    try { return std::stod(v); } catch (...) { fail(where + ": \"" + key + "\" should be a number, found " + v); }
}

// "[1, 2, 3]" -> {1, 2, 3}; "[\"a\", \"b\"]" -> {"a", "b"} (quotes removed).
std::vector<std::string> json_list(const std::string& array) {
    std::vector<std::string> items;
    std::string item;
    for (char c : array) {
        if (c == '[' || c == ']' || c == '"' || std::isspace(static_cast<unsigned char>(c))) continue;
        if (c == ',') { items.push_back(item); item.clear(); } else item += c;
    }
    if (!item.empty()) items.push_back(item);
    return items;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open " + path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// config.json of an ittt checkpoint (Hugging Face Qwen3 keys plus the release's ttt_* keys).
// This file implements one setting of the method: the learned target from the token
// embeddings, with P. Anything else is refused by name rather than silently misread.
Config load_config(const std::string& path) {
    const std::string json = read_text(path);
    Config c;
    c.vocab_size = static_cast<int>(json_number(json, "vocab_size", path));
    c.d = static_cast<int>(json_number(json, "hidden_size", path));
    c.f = static_cast<int>(json_number(json, "intermediate_size", path));
    c.n_layers = static_cast<int>(json_number(json, "num_hidden_layers", path));
    c.n_heads = static_cast<int>(json_number(json, "num_attention_heads", path));
    c.n_kv_heads = static_cast<int>(json_number(json, "num_key_value_heads", path));
    c.head_dim = static_cast<int>(json_number(json, "head_dim", path));
    c.rope_theta = json_number(json, "rope_theta", path);
    c.rms_eps = json_number(json, "rms_norm_eps", path);
    if (json_number(json, "tie_word_embeddings", path) != 1) fail(path + ": tie_word_embeddings must be true here");
    const bool sliding = !json_value(json, "use_sliding_window").empty() && json_number(json, "use_sliding_window", path) == 1;
    const int window = sliding ? static_cast<int>(json_number(json, "sliding_window", path)) : 0;
    const std::vector<std::string> types = json_list(json_value(json, "layer_types"));
    c.window.assign(static_cast<size_t>(c.n_layers), 0);
    for (int l = 0; l < c.n_layers; ++l)
        c.window[static_cast<size_t>(l)] = (static_cast<size_t>(l) < types.size() && types[static_cast<size_t>(l)] == "sliding_attention") ? window : 0;
    c.ttt_layer.assign(static_cast<size_t>(c.n_layers), false);
    if (json_number(json, "ttt_mode", path) == 1) {
        for (const std::string& s : json_list(json_value(json, "ttt_layers"))) {
            const int l = std::stoi(s);
            if (l < 0 || l >= c.n_layers) fail(path + ": ttt_layers names layer " + s + ", outside 0.." + std::to_string(c.n_layers - 1));
            c.ttt_layer[static_cast<size_t>(l)] = true;
        }
        c.chunk = static_cast<int>(json_number(json, "ttt_chunk", path));
        c.eta = json_number(json, "ttt_lr", path);
        c.conv_offsets.clear();
        for (const std::string& s : json_list(json_value(json, "ttt_conv_offsets"))) c.conv_offsets.push_back(std::stoi(s));
        if (json_value(json, "ttt_target") != "\"input_embed\"") fail(path + ": ttt_target must be \"input_embed\" here, found " + json_value(json, "ttt_target"));
        if (json_value(json, "ttt_target_mode") != "\"learned\"") fail(path + ": ttt_target_mode must be \"learned\" here, found " + json_value(json, "ttt_target_mode"));
        if (json_number(json, "ttt_proj", path) != 1) fail(path + ": ttt_proj must be true here");
    }
    if (c.n_heads % c.n_kv_heads != 0 || c.head_dim % 2 != 0 || c.chunk < 1)
        fail(path + ": needs num_attention_heads a multiple of num_key_value_heads, an even head_dim and ttt_chunk >= 1");
    return c;
}

// ============================================================================ 3. parameters
// Every parameter lives in one flat buffer (as in llm.c), so AdamW and the gradient norm
// are single loops. Each has its Hugging Face name, so checkpoints load by name.

struct ParameterInfo {
    std::string name;
    std::vector<int> shape;
    size_t offset = 0, size = 0;
    bool decay = true;  // AdamW weight decay: matrices yes, norms and the TTT target no
    bool ttt = false;   // the target's conv and P: trained at a larger learning rate
};

struct LayerWeights {  // offsets into Model::params (and the same into Model::grads)
    size_t input_norm, q_proj, k_proj, v_proj, o_proj, q_norm, k_norm;
    size_t post_norm, gate_proj, up_proj, down_proj;
    size_t ttt_conv, ttt_proj;  // TTT layers only: conv (d, 1, K), P (d, d)
};

struct Model {
    Config cfg;
    std::vector<ParameterInfo> infos;
    std::vector<float> params, grads;
    size_t embed = 0, final_norm = 0;  // Embed (vocab, d), also the LM head; final RMSNorm (d)
    std::vector<LayerWeights> layers;

    float* p(size_t offset) { return params.data() + offset; }
    float* g(size_t offset) { return grads.data() + offset; }
};

size_t add_parameter(Model& m, const std::string& name, std::vector<int> shape, bool decay, bool ttt = false) {
    ParameterInfo info{name, shape, m.params.size(), 1, decay, ttt};
    for (int s : shape) info.size *= static_cast<size_t>(s);
    m.params.resize(m.params.size() + info.size, 0.0f);
    m.infos.push_back(info);
    return info.offset;
}

Model build_model(const Config& c) {
    Model m;
    m.cfg = c;
    const int d = c.d, f = c.f, hd = c.head_dim;
    m.embed = add_parameter(m, "model.embed_tokens.weight", {c.vocab_size, d}, true);
    for (int l = 0; l < c.n_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        LayerWeights w{};
        w.input_norm = add_parameter(m, p + "input_layernorm.weight", {d}, false);
        w.q_proj = add_parameter(m, p + "self_attn.q_proj.weight", {c.n_heads * hd, d}, true);
        w.k_proj = add_parameter(m, p + "self_attn.k_proj.weight", {c.n_kv_heads * hd, d}, true);
        w.v_proj = add_parameter(m, p + "self_attn.v_proj.weight", {c.n_kv_heads * hd, d}, true);
        w.o_proj = add_parameter(m, p + "self_attn.o_proj.weight", {d, c.n_heads * hd}, true);
        w.q_norm = add_parameter(m, p + "self_attn.q_norm.weight", {hd}, false);
        w.k_norm = add_parameter(m, p + "self_attn.k_norm.weight", {hd}, false);
        w.post_norm = add_parameter(m, p + "post_attention_layernorm.weight", {d}, false);
        w.gate_proj = add_parameter(m, p + "mlp.gate_proj.weight", {f, d}, true);
        w.up_proj = add_parameter(m, p + "mlp.up_proj.weight", {f, d}, true);
        w.down_proj = add_parameter(m, p + "mlp.down_proj.weight", {d, f}, true);
        if (c.ttt_layer[static_cast<size_t>(l)]) {
            w.ttt_conv = add_parameter(m, p + "mlp.ttt_conv.weight", {d, 1, c.taps()}, false, true);
            w.ttt_proj = add_parameter(m, p + "mlp.ttt_proj.weight", {d, d}, false, true);
        }
        m.layers.push_back(w);
    }
    m.final_norm = add_parameter(m, "model.norm.weight", {d}, false);
    m.grads.assign(m.params.size(), 0.0f);
    return m;
}

// A small seeded generator (splitmix64): the same numbers on every machine and compiler.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
    int randint(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo)); }  // [lo, hi)
    double normal() {  // Box-Muller
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

// The release's init: N(0, 0.02) matrices, ones for the norms, the conv at zero (so V = 0
// and the TTT layer starts as exactly the plain MLP), P = diag(N(0, 0.02^2)).
void init_random(Model& m, uint64_t seed) {
    Rng rng(seed);
    for (const ParameterInfo& info : m.infos) {
        float* w = m.p(info.offset);
        const bool norm = info.shape.size() == 1, conv = info.name.find("ttt_conv") != std::string::npos;
        const bool proj = info.name.find("ttt_proj") != std::string::npos;
        for (size_t i = 0; i < info.size; ++i) w[i] = norm ? 1.0f : (conv || proj) ? 0.0f : static_cast<float>(0.02 * rng.normal());
        if (proj)
            for (int a = 0; a < info.shape[0]; ++a) w[static_cast<size_t>(a) * static_cast<size_t>(info.shape[0] + 1)] = static_cast<float>(0.02 * rng.normal());
    }
}

// ============================================================================ 4. safetensors
// File layout: 8 bytes little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...},
// then the raw little-endian data. Every parameter must be there, F32, with its shape.

Model load_checkpoint(const std::string& dir) {
    Model m = build_model(load_config(dir + "/config.json"));
    const std::string path = dir + "/model.safetensors", bytes = read_text(path);
    if (bytes.size() < 8) fail(path + ": shorter than the 8-byte header length");
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
    if (header_size > bytes.size() - 8) fail(path + ": header length " + std::to_string(header_size) + " runs past the end of the file");
    const std::string header = bytes.substr(8, header_size);
    const size_t data = 8 + header_size;
    for (const ParameterInfo& info : m.infos) {
        const std::string entry = json_value(header, info.name), where = path + ": tensor " + info.name;
        if (entry.empty()) fail(where + " is missing");
        if (json_value(entry, "dtype") != "\"F32\"") fail(where + ": dtype must be F32, found " + json_value(entry, "dtype"));
        std::vector<int> shape;
        for (const std::string& s : json_list(json_value(entry, "shape"))) shape.push_back(std::stoi(s));
        if (shape != info.shape) fail(where + ": shape " + json_value(entry, "shape") + " does not match the config");
        const std::vector<std::string> range = json_list(json_value(entry, "data_offsets"));
        if (range.size() != 2) fail(where + ": data_offsets must hold two numbers");
        const size_t begin = std::stoull(range[0]), end = std::stoull(range[1]);
        if (end - begin != 4 * info.size || data + end > bytes.size()) fail(where + ": data_offsets [" + range[0] + ", " + range[1] + "] do not hold its " + std::to_string(info.size) + " floats inside the file");
        std::memcpy(m.p(info.offset), bytes.data() + data + begin, 4 * info.size);  // little-endian host assumed (x86, ARM)
    }
    return m;
}

// ============================================================================ 5. the ops
// Each op has a forward and a backward. Backwards *accumulate* into weight gradients
// (+=) and into input gradients where said, because one tensor feeds several ops.

// out (N, out_dim) = in (N, in_dim) W^T, with W (out_dim, in_dim) as a Linear stores it.
// accumulate: out += instead of out =.
// Threads only for the big ones: a parallel region costs more than a TTT chunk's product.
void matmul_forward(float* out, const float* in, const float* W, int N, int in_dim, int out_dim, bool accumulate = false) {
    const bool big = static_cast<double>(N) * in_dim * out_dim > 4e6;
    (void)big;  // unused when OpenMP is off
#pragma omp parallel for if (big)
    for (int i = 0; i < N; ++i)
        for (int o = 0; o < out_dim; ++o) {
            const float* a = in + static_cast<size_t>(i) * in_dim;
            const float* w = W + static_cast<size_t>(o) * in_dim;
            float sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int k = 0; k < in_dim; ++k) sum += a[k] * w[k];
            float& y = out[static_cast<size_t>(i) * out_dim + o];
            y = accumulate ? y + sum : sum;
        }
}

// Of out = in W^T: din (N, in_dim) += dout W, dW (out_dim, in_dim) += dout^T in.
// Either may be null. The loops run over rows of what they write, so threads never collide.
void matmul_backward(float* din, float* dW, const float* dout, const float* in, const float* W, int N, int in_dim, int out_dim) {
    const bool big = static_cast<double>(N) * in_dim * out_dim > 4e6;
    (void)big;
    if (din) {
#pragma omp parallel for if (big)
        for (int i = 0; i < N; ++i)
            for (int o = 0; o < out_dim; ++o) {
                const float gout = dout[static_cast<size_t>(i) * out_dim + o];
                const float* w = W + static_cast<size_t>(o) * in_dim;
                float* dx = din + static_cast<size_t>(i) * in_dim;
#pragma omp simd
                for (int k = 0; k < in_dim; ++k) dx[k] += gout * w[k];
            }
    }
    if (dW) {
#pragma omp parallel for if (big)
        for (int o = 0; o < out_dim; ++o)
            for (int i = 0; i < N; ++i) {
                const float gout = dout[static_cast<size_t>(i) * out_dim + o];
                const float* a = in + static_cast<size_t>(i) * in_dim;
                float* dw = dW + static_cast<size_t>(o) * in_dim;
#pragma omp simd
                for (int k = 0; k < in_dim; ++k) dw[k] += gout * a[k];
            }
    }
}

// RMSNorm over rows of width D: out = x / rms(x) * weight, rms(x) = sqrt(mean(x^2) + eps).
// rstd (rows) keeps 1/rms for the backward. The q/k norms are this op on rows of hd.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int rows, int D, double eps) {
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + static_cast<size_t>(r) * D;
        double sum_squares = 0;
        for (int i = 0; i < D; ++i) sum_squares += static_cast<double>(xr[i]) * xr[i];
        const float s = static_cast<float>(1.0 / std::sqrt(sum_squares / D + eps));
        rstd[r] = s;
        for (int i = 0; i < D; ++i) out[static_cast<size_t>(r) * D + i] = xr[i] * s * weight[i];
    }
}

// dx (rows, D) = (written); dweight (D) +=. With y = x s w, s = (mean(x^2)+eps)^(-1/2):
// dx = s (dy w) - x s^3 / D * sum(dy w x).
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight, const float* rstd, int rows, int D) {
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + static_cast<size_t>(r) * D;
        const float* dy = dout + static_cast<size_t>(r) * D;
        const float s = rstd[r];
        double dot = 0;
        for (int i = 0; i < D; ++i) dot += static_cast<double>(dy[i]) * weight[i] * xr[i];
        const float c = static_cast<float>(dot * s * s * s / D);
        for (int i = 0; i < D; ++i) {
            dweight[i] += dy[i] * xr[i] * s;
            dx[static_cast<size_t>(r) * D + i] = s * dy[i] * weight[i] - xr[i] * c;
        }
    }
}

// RoPE, Hugging Face's "rotate half" layout: the pair (x[i], x[i + hd/2]) of each head turns
// by angle = position * theta^(-2i/hd). x (N tokens, H heads, hd), in place; sign = -1 turns
// back, which is the backward (a rotation's transpose is its inverse). Angles in double:
// in float a large position's angle is already off by more than the op's error budget.
void rope(float* x, int B, int n, int H, int hd, double theta, double sign) {
    const int half = hd / 2;
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < n; ++t)
            for (int i = 0; i < half; ++i) {
                const double angle = t * std::pow(theta, -2.0 * i / hd);
                const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(sign * std::sin(angle));
                for (int h = 0; h < H; ++h) {
                    float* v = x + ((static_cast<size_t>(b) * n + t) * H + h) * hd;
                    const float x1 = v[i], x2 = v[i + half];
                    v[i] = x1 * c - x2 * s;
                    v[i + half] = x2 * c + x1 * s;
                }
            }
}

// Causal grouped-query attention with a sliding window: query t of head h reads key/value
// head h / (Hq/Hkv) at positions s with t - window < s <= t (window 0: every s <= t).
// q, out (B, n, Hq, hd); k, v (B, n, Hkv, hd); lse (B, n, Hq) keeps log-sum-exp of each
// row's scores, so the backward recomputes the probabilities instead of storing n^2 of them.
struct AttentionShape {
    int B, n, Hq, Hkv, hd, window;
    size_t q_at(int b, int t, int h) const { return ((static_cast<size_t>(b) * n + t) * Hq + h) * hd; }
    size_t kv_at(int b, int s, int g) const { return ((static_cast<size_t>(b) * n + s) * Hkv + g) * hd; }
    int first_key(int t) const { return window > 0 ? std::max(0, t - window + 1) : 0; }
};

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttentionShape& a) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(a.hd));
#pragma omp parallel for collapse(2)
    for (int b = 0; b < a.B; ++b)
        for (int h = 0; h < a.Hq; ++h) {
            const int g = h / (a.Hq / a.Hkv);
            std::vector<float> score(static_cast<size_t>(a.n));
            for (int t = 0; t < a.n; ++t) {
                const float* qt = q + a.q_at(b, t, h);
                float best = -INFINITY;
                for (int s = a.first_key(t); s <= t; ++s) {
                    const float* ks = k + a.kv_at(b, s, g);
                    float dot = 0;
                    for (int c = 0; c < a.hd; ++c) dot += qt[c] * ks[c];
                    score[static_cast<size_t>(s)] = dot * scale;
                    best = std::max(best, score[static_cast<size_t>(s)]);
                }
                float total = 0;
                float* o = out + a.q_at(b, t, h);
                for (int c = 0; c < a.hd; ++c) o[c] = 0;
                for (int s = a.first_key(t); s <= t; ++s) {
                    const float prob = std::exp(score[static_cast<size_t>(s)] - best);
                    total += prob;
                    const float* vs = v + a.kv_at(b, s, g);
                    for (int c = 0; c < a.hd; ++c) o[c] += prob * vs[c];
                }
                for (int c = 0; c < a.hd; ++c) o[c] /= total;
                lse[(static_cast<size_t>(b) * a.n + t) * a.Hq + h] = best + std::log(total);
            }
        }
}

// With p_s = exp(score_s - lse): dv_s += p_s dout; dscore_s = p_s (dout.v_s - dout.out);
// dq += dscore_s k_s scale; dk_s += dscore_s q scale. dq, dk, dv are accumulated.
// One thread per (sequence, KV head): it alone writes that head's dk and dv.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const AttentionShape& a) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(a.hd));
    const int group = a.Hq / a.Hkv;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < a.B; ++b)
        for (int g = 0; g < a.Hkv; ++g)
            for (int h = g * group; h < (g + 1) * group; ++h)
                for (int t = 0; t < a.n; ++t) {
                    const float* qt = q + a.q_at(b, t, h);
                    const float* dot_t = dout + a.q_at(b, t, h);
                    const float* ot = out + a.q_at(b, t, h);
                    float* dqt = dq + a.q_at(b, t, h);
                    const float row_lse = lse[(static_cast<size_t>(b) * a.n + t) * a.Hq + h];
                    float dout_dot_out = 0;
                    for (int c = 0; c < a.hd; ++c) dout_dot_out += dot_t[c] * ot[c];
                    for (int s = a.first_key(t); s <= t; ++s) {
                        const float* ks = k + a.kv_at(b, s, g);
                        const float* vs = v + a.kv_at(b, s, g);
                        float score = 0, dout_dot_v = 0;
                        for (int c = 0; c < a.hd; ++c) { score += qt[c] * ks[c]; dout_dot_v += dot_t[c] * vs[c]; }
                        const float prob = std::exp(score * scale - row_lse);
                        const float dscore = prob * (dout_dot_v - dout_dot_out) * scale;
                        float* dks = dk + a.kv_at(b, s, g);
                        float* dvs = dv + a.kv_at(b, s, g);
                        for (int c = 0; c < a.hd; ++c) {
                            dqt[c] += dscore * ks[c];
                            dks[c] += dscore * qt[c];
                            dvs[c] += prob * dot_t[c];
                        }
                    }
                }
}

// SwiGLU's gate: z = silu(gate) * up, silu(x) = x sigmoid(x).
void swiglu_forward(float* z, const float* gate, const float* up, size_t count) {
    for (size_t i = 0; i < count; ++i) z[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// dgate = dz up silu'(gate), silu'(x) = sigmoid(x) (1 + x (1 - sigmoid(x))); dup = dz silu(gate).
void swiglu_backward(float* dgate, float* dup, const float* dz, const float* gate, const float* up, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        const float sig = 1.0f / (1.0f + std::exp(-gate[i]));
        dgate[i] = dz[i] * up[i] * sig * (1.0f + gate[i] * (1.0f - sig));
        dup[i] = dz[i] * gate[i] * sig;
    }
}

// ---------------------------------------------------------------- the TTT target
// U[t, c] = sum_k conv[c, k] * S[t + offset_k, c], with a zero wherever t + offset_k leaves
// t's chunk. Never crossing a chunk edge is what keeps the layer causal with look-ahead
// taps: chunk i's targets only see chunk i, and only later chunks use its update.
// S, U (B, n, d); conv (d, K).
void conv_forward(float* U, const float* S, const float* conv, const Config& c, int B, int n) {
    const int d = c.d, K = c.taps();
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < n; ++t) {
            const int chunk_begin = t / c.chunk * c.chunk, chunk_end = std::min(chunk_begin + c.chunk, n);
            float* u = U + (static_cast<size_t>(b) * n + t) * d;
            for (int ch = 0; ch < d; ++ch) u[ch] = 0;
            for (int k = 0; k < K; ++k) {
                const int s = t + c.conv_offsets[static_cast<size_t>(k)];
                if (s < chunk_begin || s >= chunk_end) continue;
                const float* src = S + (static_cast<size_t>(b) * n + s) * d;
                for (int ch = 0; ch < d; ++ch) u[ch] += conv[ch * K + k] * src[ch];
            }
        }
}

// dS (B, n, d) +=, dconv (d, K) +=, from dU.
void conv_backward(float* dS, float* dconv, const float* dU, const float* S, const float* conv, const Config& c, int B, int n) {
    const int d = c.d, K = c.taps();
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < n; ++t) {
            const int chunk_begin = t / c.chunk * c.chunk, chunk_end = std::min(chunk_begin + c.chunk, n);
            const float* du = dU + (static_cast<size_t>(b) * n + t) * d;
            for (int k = 0; k < K; ++k) {
                const int s = t + c.conv_offsets[static_cast<size_t>(k)];
                if (s < chunk_begin || s >= chunk_end) continue;
                const float* src = S + (static_cast<size_t>(b) * n + s) * d;
                float* ds = dS + (static_cast<size_t>(b) * n + s) * d;
                for (int ch = 0; ch < d; ++ch) {
                    dconv[ch * K + k] += du[ch] * src[ch];
                    ds[ch] += du[ch] * conv[ch * K + k];
                }
            }
        }
}

// V = U P (rows times P, not P^T: the release's convention). U, V (N, d); P (d, d).
void project_forward(float* V, const float* U, const float* P, int N, int d) {
#pragma omp parallel for
    for (int t = 0; t < N; ++t) {
        float* v = V + static_cast<size_t>(t) * d;
        for (int j = 0; j < d; ++j) v[j] = 0;
        for (int a = 0; a < d; ++a) {
            const float ua = U[static_cast<size_t>(t) * d + a];
            for (int j = 0; j < d; ++j) v[j] += ua * P[a * d + j];
        }
    }
}

// dU (N, d) = dV P^T (written); dP (d, d) += U^T dV. (V = U P is a Linear with weight P^T.)
void project_backward(float* dU, float* dP, const float* dV, const float* U, const float* P, int N, int d) {
    matmul_forward(dU, dV, P, N, d, d);                    // dU[t, a] = sum_j dV[t, j] P[a, j]
    matmul_backward(nullptr, dP, U, dV, nullptr, N, d, d);  // dP[a, j] += sum_t U[t, a] dV[t, j]
}

// ---------------------------------------------------------------- the In-Place TTT MLP
// One sequence, chunk by chunk (docs/ttt.md "One chunk step"):
//   O_[i] = Z_[i] W^T          apply: chunk i reads the weight of chunks 0..i-1
//   W    += eta V_[i]^T Z_[i]  then update: chunk i's delta dW_i, for the chunks after it
// Z (n, f), V (n, d), Wd (d, f), O (n, d) written; W_all (T, d, f) keeps every W_i for the
// backward (the "Loop" form of the library: T d f numbers per sequence).
void ttt_forward(float* O, float* W_all, const float* Z, const float* V, const float* Wd, const Config& c, int n) {
    const int d = c.d, f = c.f, T = (n + c.chunk - 1) / c.chunk;
    const size_t df = static_cast<size_t>(d) * f;
    std::vector<float> W(Wd, Wd + df);
    for (int i = 0; i < T; ++i) {
        const int t0 = i * c.chunk, rows = std::min(c.chunk, n - t0);
        std::copy(W.begin(), W.end(), W_all + i * df);
        matmul_forward(O + static_cast<size_t>(t0) * d, Z + static_cast<size_t>(t0) * f, W.data(), rows, f, d);
        if (i == T - 1) break;  // the last chunk's update is never read by this sequence
        // W[a, :] += eta sum_t V[t, a] Z[t, :]
        for (int a = 0; a < d; ++a)
            for (int t = t0; t < t0 + rows; ++t) {
                const float scaled = static_cast<float>(c.eta) * V[static_cast<size_t>(t) * d + a];
                const float* z = Z + static_cast<size_t>(t) * f;
                float* w = W.data() + static_cast<size_t>(a) * f;
#pragma omp simd
                for (int k = 0; k < f; ++k) w[k] += scaled * z[k];
            }
    }
}

// The chunks in reverse, with Wbar_i = dO_[i]^T Z_[i] (the gradient of the weight chunk i
// read) and G = sum_{j>i} Wbar_j (what the later chunks, whose weights hold eta dW_i, send back):
//   dWd    += Wbar_i                       (every W_i starts from Wd)
//   dZ_[i]  = dO_[i] W_i + eta V_[i] G     (written)
//   dV_[i]  = eta Z_[i] G^T                (written)
void ttt_backward(float* dZ, float* dV, float* dWd, const float* dO, const float* Z, const float* V, const float* W_all,
                  const Config& c, int n) {
    const int d = c.d, f = c.f, T = (n + c.chunk - 1) / c.chunk;
    const size_t df = static_cast<size_t>(d) * f;
    std::vector<float> G(df, 0.0f), Wbar(df), eta_V(static_cast<size_t>(c.chunk) * d);
    const float eta = static_cast<float>(c.eta);
    for (int i = T - 1; i >= 0; --i) {
        const int t0 = i * c.chunk, rows = std::min(c.chunk, n - t0);
        const float* dOi = dO + static_cast<size_t>(t0) * d;
        const float* Zi = Z + static_cast<size_t>(t0) * f;
        const float* Vi = V + static_cast<size_t>(t0) * d;
        float* dZi = dZ + static_cast<size_t>(t0) * f;
        float* dVi = dV + static_cast<size_t>(t0) * d;
        std::fill(dZi, dZi + static_cast<size_t>(rows) * f, 0.0f);
        matmul_backward(dZi, nullptr, dOi, Zi, W_all + i * df, rows, f, d);   // dZ_[i] = dO_[i] W_i
        for (size_t e = 0; e < static_cast<size_t>(rows) * d; ++e) eta_V[e] = eta * Vi[e];
        matmul_backward(dZi, nullptr, eta_V.data(), Zi, G.data(), rows, f, d);  // += eta V_[i] G
        matmul_forward(dVi, Zi, G.data(), rows, f, d);                        // dV_[i] = Z_[i] G^T
        for (size_t e = 0; e < static_cast<size_t>(rows) * d; ++e) dVi[e] *= eta;
        std::fill(Wbar.begin(), Wbar.end(), 0.0f);
        matmul_backward(nullptr, Wbar.data(), dOi, Zi, nullptr, rows, f, d);  // Wbar_i = dO_[i]^T Z_[i]
        for (size_t e = 0; e < df; ++e) { dWd[e] += Wbar[e]; G[e] += Wbar[e]; }
    }
}

// ============================================================================ 6. the model
// Forward keeps what the backward needs (clarity over memory: the model is small).
// N = B n rows; row b n + t is token t of sequence b.

struct LayerActivations {
    std::vector<float> x;                 // (N, d) the layer's input
    std::vector<float> xn1, rstd1;        // (N, d), (N) RMSNorm before attention
    std::vector<float> q, k, v;           // (N, Hq hd), (N, Hkv hd), (N, Hkv hd) projections
    std::vector<float> rstd_q, rstd_k;    // (N Hq), (N Hkv) the q/k norms
    std::vector<float> qr, kr;            // normed, then rotated by RoPE
    std::vector<float> att, lse;          // (N, Hq hd), (N, Hq)
    std::vector<float> h;                 // (N, d) after the attention residual
    std::vector<float> xn2, rstd2;        // (N, d), (N) RMSNorm before the MLP
    std::vector<float> gate, up, z;       // (N, f)
    std::vector<float> ttt_u, ttt_v;      // (N, d) TTT layers: U = conv(S), V = U P
    std::vector<float> ttt_w;             // (B, T, d, f) TTT layers: every W_i
};

struct Activations {
    int B = 0, n = 0;
    std::vector<int> tokens;              // (N)
    std::vector<float> x0;                // (N, d) token embeddings: the TTT target's source S
    std::vector<LayerActivations> layers;
    std::vector<float> x_final, xf, rstd_f;  // (N, d), (N, d), (N)
    std::vector<float> logits;            // (N, vocab)
};

std::vector<float> zeros(size_t count) { return std::vector<float>(count, 0.0f); }

void layer_forward(Model& m, int l, std::vector<float>& x, Activations& acts) {
    const Config& c = m.cfg;
    const LayerWeights& w = m.layers[static_cast<size_t>(l)];
    LayerActivations& a = acts.layers[static_cast<size_t>(l)];
    const int B = acts.B, n = acts.n, N = B * n, d = c.d, f = c.f, hd = c.head_dim, Hq = c.n_heads, Hkv = c.n_kv_heads;
    const size_t rows = static_cast<size_t>(N);
    a.x = x;

    // ---- attention: h = x + o_proj(Attention(RMSNorm(x)))
    a.xn1 = zeros(rows * d);
    a.rstd1 = zeros(rows);
    rmsnorm_forward(a.xn1.data(), a.rstd1.data(), a.x.data(), m.p(w.input_norm), N, d, c.rms_eps);
    a.q = zeros(rows * Hq * hd);
    a.k = zeros(rows * Hkv * hd);
    a.v = zeros(rows * Hkv * hd);
    matmul_forward(a.q.data(), a.xn1.data(), m.p(w.q_proj), N, d, Hq * hd);
    matmul_forward(a.k.data(), a.xn1.data(), m.p(w.k_proj), N, d, Hkv * hd);
    matmul_forward(a.v.data(), a.xn1.data(), m.p(w.v_proj), N, d, Hkv * hd);
    // Qwen3's q/k norms: an RMSNorm on every head's hd numbers, before RoPE.
    a.qr = zeros(rows * Hq * hd);
    a.kr = zeros(rows * Hkv * hd);
    a.rstd_q = zeros(rows * Hq);
    a.rstd_k = zeros(rows * Hkv);
    rmsnorm_forward(a.qr.data(), a.rstd_q.data(), a.q.data(), m.p(w.q_norm), N * Hq, hd, c.rms_eps);
    rmsnorm_forward(a.kr.data(), a.rstd_k.data(), a.k.data(), m.p(w.k_norm), N * Hkv, hd, c.rms_eps);
    rope(a.qr.data(), B, n, Hq, hd, c.rope_theta, +1);
    rope(a.kr.data(), B, n, Hkv, hd, c.rope_theta, +1);
    const AttentionShape shape{B, n, Hq, Hkv, hd, c.window[static_cast<size_t>(l)]};
    a.att = zeros(rows * Hq * hd);
    a.lse = zeros(rows * Hq);
    attention_forward(a.att.data(), a.lse.data(), a.qr.data(), a.kr.data(), a.v.data(), shape);
    a.h = a.x;
    matmul_forward(a.h.data(), a.att.data(), m.p(w.o_proj), N, Hq * hd, d, /*accumulate=*/true);

    // ---- MLP: x = h + MLP(RMSNorm(h)), the down projection a fast weight in TTT layers
    a.xn2 = zeros(rows * d);
    a.rstd2 = zeros(rows);
    rmsnorm_forward(a.xn2.data(), a.rstd2.data(), a.h.data(), m.p(w.post_norm), N, d, c.rms_eps);
    a.gate = zeros(rows * f);
    a.up = zeros(rows * f);
    a.z = zeros(rows * f);
    matmul_forward(a.gate.data(), a.xn2.data(), m.p(w.gate_proj), N, d, f);
    matmul_forward(a.up.data(), a.xn2.data(), m.p(w.up_proj), N, d, f);
    swiglu_forward(a.z.data(), a.gate.data(), a.up.data(), rows * f);
    std::vector<float> mlp_out = zeros(rows * d);
    if (c.ttt_layer[static_cast<size_t>(l)]) {
        const int T = (n + c.chunk - 1) / c.chunk;
        const size_t df = static_cast<size_t>(d) * f;
        a.ttt_u = zeros(rows * d);
        a.ttt_v = zeros(rows * d);
        a.ttt_w = zeros(static_cast<size_t>(B) * T * df);
        conv_forward(a.ttt_u.data(), acts.x0.data(), m.p(w.ttt_conv), c, B, n);
        project_forward(a.ttt_v.data(), a.ttt_u.data(), m.p(w.ttt_proj), N, d);
#pragma omp parallel for
        for (int b = 0; b < B; ++b) {  // every sequence has its own fast weight, starting at Wd
            const size_t row0 = static_cast<size_t>(b) * n;
            ttt_forward(mlp_out.data() + row0 * d, a.ttt_w.data() + static_cast<size_t>(b) * T * df, a.z.data() + row0 * f,
                        a.ttt_v.data() + row0 * d, m.p(w.down_proj), c, n);
        }
    } else {
        matmul_forward(mlp_out.data(), a.z.data(), m.p(w.down_proj), N, f, d);
    }
    x = a.h;
    for (size_t i = 0; i < rows * d; ++i) x[i] += mlp_out[i];
}

// tokens (B, n) -> logits (B n, vocab), kept in acts for the backward.
const std::vector<float>& forward(Model& m, const std::vector<int>& tokens, int B, int n, Activations& acts) {
    const Config& c = m.cfg;
    const int N = B * n, d = c.d;
    if (static_cast<int>(tokens.size()) != N) fail("forward: " + std::to_string(tokens.size()) + " tokens for B n = " + std::to_string(N));
    acts.B = B;
    acts.n = n;
    acts.tokens = tokens;
    acts.x0 = zeros(static_cast<size_t>(N) * d);
    for (int i = 0; i < N; ++i) {
        const int tok = tokens[static_cast<size_t>(i)];
        if (tok < 0 || tok >= c.vocab_size) fail("forward: token id " + std::to_string(tok) + " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
        std::copy(m.p(m.embed) + static_cast<size_t>(tok) * d, m.p(m.embed) + static_cast<size_t>(tok + 1) * d, acts.x0.data() + static_cast<size_t>(i) * d);
    }
    std::vector<float> x = acts.x0;
    acts.layers.assign(static_cast<size_t>(c.n_layers), LayerActivations{});
    for (int l = 0; l < c.n_layers; ++l) layer_forward(m, l, x, acts);
    acts.x_final = x;
    acts.xf = zeros(static_cast<size_t>(N) * d);
    acts.rstd_f = zeros(static_cast<size_t>(N));
    rmsnorm_forward(acts.xf.data(), acts.rstd_f.data(), acts.x_final.data(), m.p(m.final_norm), N, d, c.rms_eps);
    acts.logits = zeros(static_cast<size_t>(N) * c.vocab_size);
    matmul_forward(acts.logits.data(), acts.xf.data(), m.p(m.embed), N, d, c.vocab_size);  // tied head: logits = xf Embed^T
    return acts.logits;
}

// dx: the gradient of the layer's output on entry, of its input on exit.
// dx0 (N, d) collects what the TTT targets send back into the token embeddings.
void layer_backward(Model& m, int l, std::vector<float>& dx, std::vector<float>& dx0, const Activations& acts) {
    const Config& c = m.cfg;
    const LayerWeights& w = m.layers[static_cast<size_t>(l)];
    const LayerActivations& a = acts.layers[static_cast<size_t>(l)];
    const int B = acts.B, n = acts.n, N = B * n, d = c.d, f = c.f, hd = c.head_dim, Hq = c.n_heads, Hkv = c.n_kv_heads;
    const size_t rows = static_cast<size_t>(N);

    // ---- MLP (dx is dO, the gradient of the MLP's output, and of h through the residual)
    std::vector<float> dz = zeros(rows * f);
    if (c.ttt_layer[static_cast<size_t>(l)]) {
        const int T = (n + c.chunk - 1) / c.chunk;
        const size_t df = static_cast<size_t>(d) * f;
        std::vector<float> dv = zeros(rows * d), du = zeros(rows * d);
        std::vector<float> dWd = zeros(static_cast<size_t>(B) * df);  // one per sequence, so threads never share one
#pragma omp parallel for
        for (int b = 0; b < B; ++b) {
            const size_t row0 = static_cast<size_t>(b) * n;
            ttt_backward(dz.data() + row0 * f, dv.data() + row0 * d, dWd.data() + static_cast<size_t>(b) * df, dx.data() + row0 * d,
                         a.z.data() + row0 * f, a.ttt_v.data() + row0 * d, a.ttt_w.data() + static_cast<size_t>(b) * T * df, c, n);
        }
        for (int b = 0; b < B; ++b)
            for (size_t e = 0; e < df; ++e) m.g(w.down_proj)[e] += dWd[static_cast<size_t>(b) * df + e];
        project_backward(du.data(), m.g(w.ttt_proj), dv.data(), a.ttt_u.data(), m.p(w.ttt_proj), N, d);
        conv_backward(dx0.data(), m.g(w.ttt_conv), du.data(), acts.x0.data(), m.p(w.ttt_conv), c, B, n);
    } else {
        matmul_backward(dz.data(), m.g(w.down_proj), dx.data(), a.z.data(), m.p(w.down_proj), N, f, d);
    }
    std::vector<float> dgate = zeros(rows * f), dup = zeros(rows * f), dxn2 = zeros(rows * d), dh = zeros(rows * d);
    swiglu_backward(dgate.data(), dup.data(), dz.data(), a.gate.data(), a.up.data(), rows * f);
    matmul_backward(dxn2.data(), m.g(w.gate_proj), dgate.data(), a.xn2.data(), m.p(w.gate_proj), N, d, f);
    matmul_backward(dxn2.data(), m.g(w.up_proj), dup.data(), a.xn2.data(), m.p(w.up_proj), N, d, f);
    rmsnorm_backward(dh.data(), m.g(w.post_norm), dxn2.data(), a.h.data(), m.p(w.post_norm), a.rstd2.data(), N, d);
    for (size_t i = 0; i < rows * d; ++i) dh[i] += dx[i];  // the residual

    // ---- attention
    std::vector<float> datt = zeros(rows * Hq * hd);
    matmul_backward(datt.data(), m.g(w.o_proj), dh.data(), a.att.data(), m.p(w.o_proj), N, Hq * hd, d);
    std::vector<float> dqr = zeros(rows * Hq * hd), dkr = zeros(rows * Hkv * hd), dv = zeros(rows * Hkv * hd);
    const AttentionShape shape{B, n, Hq, Hkv, hd, c.window[static_cast<size_t>(l)]};
    attention_backward(dqr.data(), dkr.data(), dv.data(), datt.data(), a.qr.data(), a.kr.data(), a.v.data(), a.att.data(), a.lse.data(), shape);
    rope(dqr.data(), B, n, Hq, hd, c.rope_theta, -1);  // rotate the gradients back
    rope(dkr.data(), B, n, Hkv, hd, c.rope_theta, -1);
    std::vector<float> dq = zeros(rows * Hq * hd), dk = zeros(rows * Hkv * hd), dxn1 = zeros(rows * d);
    rmsnorm_backward(dq.data(), m.g(w.q_norm), dqr.data(), a.q.data(), m.p(w.q_norm), a.rstd_q.data(), N * Hq, hd);
    rmsnorm_backward(dk.data(), m.g(w.k_norm), dkr.data(), a.k.data(), m.p(w.k_norm), a.rstd_k.data(), N * Hkv, hd);
    matmul_backward(dxn1.data(), m.g(w.q_proj), dq.data(), a.xn1.data(), m.p(w.q_proj), N, d, Hq * hd);
    matmul_backward(dxn1.data(), m.g(w.k_proj), dk.data(), a.xn1.data(), m.p(w.k_proj), N, d, Hkv * hd);
    matmul_backward(dxn1.data(), m.g(w.v_proj), dv.data(), a.xn1.data(), m.p(w.v_proj), N, d, Hkv * hd);
    std::vector<float> dx_in = zeros(rows * d);
    rmsnorm_backward(dx_in.data(), m.g(w.input_norm), dxn1.data(), a.x.data(), m.p(w.input_norm), a.rstd1.data(), N, d);
    for (size_t i = 0; i < rows * d; ++i) dx_in[i] += dh[i];  // the residual
    dx = std::move(dx_in);
}

// dlogits (B n, vocab) -> gradients accumulated into m.grads.
void backward(Model& m, const std::vector<float>& dlogits, const Activations& acts) {
    const Config& c = m.cfg;
    const int N = acts.B * acts.n, d = c.d;
    std::vector<float> dxf = zeros(static_cast<size_t>(N) * d), dx = zeros(static_cast<size_t>(N) * d);
    matmul_backward(dxf.data(), m.g(m.embed), dlogits.data(), acts.xf.data(), m.p(m.embed), N, d, c.vocab_size);
    rmsnorm_backward(dx.data(), m.g(m.final_norm), dxf.data(), acts.x_final.data(), m.p(m.final_norm), acts.rstd_f.data(), N, d);
    std::vector<float> dx0 = zeros(static_cast<size_t>(N) * d);  // from the TTT targets, built from the embeddings
    for (int l = c.n_layers - 1; l >= 0; --l) layer_backward(m, l, dx, dx0, acts);
    for (int i = 0; i < N; ++i) {  // the embedding lookup: each row's gradient goes to its token's row
        float* grad_row = m.g(m.embed) + static_cast<size_t>(acts.tokens[static_cast<size_t>(i)]) * d;
        for (int j = 0; j < d; ++j) grad_row[j] += dx[static_cast<size_t>(i) * d + j] + dx0[static_cast<size_t>(i) * d + j];
    }
}

// ============================================================================ 7. the loss
// Mean cross-entropy over the scored rows (target >= 0; -1 = not scored). Fills
// dlogits = (softmax - onehot) / scored, zero on unscored rows. Also counts the scored rows
// whose argmax is the target. Sums in double: a sum of thousands of floats drifts.
struct LossResult {
    double loss = 0;
    int scored = 0, correct = 0;
};

LossResult cross_entropy(std::vector<float>* dlogits, const std::vector<float>& logits, const std::vector<int>& targets, int vocab) {
    LossResult r;
    for (int target : targets) r.scored += target >= 0;
    if (r.scored == 0) fail("cross_entropy: no scored position (every target is -1)");
    if (dlogits) dlogits->assign(logits.size(), 0.0f);
    double loss_sum = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
        const int target = targets[i];
        if (target < 0) continue;
        const float* row = logits.data() + i * vocab;
        const int best = static_cast<int>(std::max_element(row, row + vocab) - row);
        double total = 0;
        for (int j = 0; j < vocab; ++j) total += std::exp(static_cast<double>(row[j]) - row[best]);
        loss_sum += std::log(total) + row[best] - row[target];
        r.correct += best == target;
        if (dlogits)
            for (int j = 0; j < vocab; ++j) {
                const double prob = std::exp(static_cast<double>(row[j]) - row[best]) / total;
                (*dlogits)[i * vocab + j] = static_cast<float>((prob - (j == target)) / r.scored);
            }
    }
    r.loss = loss_sum / r.scored;
    return r;
}

// ============================================================================ 8. AdamW
// Adam with decoupled weight decay and bias correction, after clipping the gradient's
// global L2 norm. The TTT target (conv, P) starts at (near) zero and takes a larger step.
struct TrainSettings {
    int steps = 1000, batch = 16, seq_len = 256, warmup = 30;
    double lr = 1e-3, min_lr_ratio = 0.1, ttt_lr_scale = 30, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
    double grad_clip = 1.0;
    uint64_t seed = 1, init_seed = 1;
};

// Linear warm-up, then cosine down to lr * min_lr_ratio at the last step.
double learning_rate(const TrainSettings& s, int step) {
    if (s.warmup > 0 && step <= s.warmup) return s.lr * step / s.warmup;
    const double progress = std::min(1.0, static_cast<double>(step - s.warmup) / std::max(1, s.steps - s.warmup));
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + std::cos(3.14159265358979323846 * progress)));
}

struct AdamState {
    std::vector<float> m, v;  // first and second moments, like params
};

// step counts from 1. Returns the gradient norm before clipping.
double adamw_step(Model& model, AdamState& state, const TrainSettings& s, int step) {
    if (state.m.empty()) { state.m.assign(model.params.size(), 0.0f); state.v.assign(model.params.size(), 0.0f); }
    double sum_squares = 0;
    for (float gr : model.grads) sum_squares += static_cast<double>(gr) * gr;
    const double norm = std::sqrt(sum_squares);
    const float clip = s.grad_clip > 0 && norm > s.grad_clip ? static_cast<float>(s.grad_clip / norm) : 1.0f;
    const double lr = learning_rate(s, step);
    const double correction1 = 1 - std::pow(s.beta1, step), correction2 = 1 - std::pow(s.beta2, step);
    for (const ParameterInfo& info : model.infos) {
        const float rate = static_cast<float>(info.ttt ? lr * s.ttt_lr_scale : lr);
        const float decay = info.decay ? static_cast<float>(s.weight_decay) : 0.0f;
        for (size_t i = info.offset; i < info.offset + info.size; ++i) {
            const float gr = model.grads[i] * clip;
            state.m[i] = static_cast<float>(s.beta1) * state.m[i] + static_cast<float>(1 - s.beta1) * gr;
            state.v[i] = static_cast<float>(s.beta2) * state.v[i] + static_cast<float>(1 - s.beta2) * gr * gr;
            const float m_hat = state.m[i] / static_cast<float>(correction1), v_hat = state.v[i] / static_cast<float>(correction2);
            model.params[i] -= rate * (m_hat / (std::sqrt(v_hat) + static_cast<float>(s.eps)) + decay * model.params[i]);
        }
    }
    return norm;
}

// ============================================================================ 9. MQAR
// Multi-query associative recall (src/tasks, Zoology): D key-value pairs k_1 v_1 .. k_D v_D
// at the start, then each key again as a query, followed by its value, every query at least
// `gap` tokens after its pair's value (beyond the attention window: only the fast weight can
// carry the pair that far). Filler: random ordinary tokens, never a key. Vocabulary:
// 0 PAD, 1 BOS, 2 MAGIC, 3 IS (unused here), then keys from the lower half of the ordinary
// tokens and values from the upper half. The model reads s_0 .. s_{n-1}; at each query the
// target is its value (the next token), elsewhere -1. Queries sit in 2-token slots from 2D.
struct Batch {
    std::vector<int> tokens, targets;  // (B, n) each
};

void make_mqar_example(int* tokens, int* targets, int n, int vocab, int pairs, int gap, Rng& rng) {
    const int first = 4, middle = first + (vocab - first) / 2;  // keys in [first, middle), values in [middle, vocab)
    const int start = 2 * pairs, slots = (n + 1 - start) / 2;
    auto first_slot_after = [&](int value_position) { return (std::max(start, value_position + gap) - start + 1) / 2; };
    if (pairs > middle - first || slots - first_slot_after(2 * pairs - 1) < 1 || slots < pairs)
        fail("mqar: pairs=" + std::to_string(pairs) + " gap=" + std::to_string(gap) + " do not fit n=" + std::to_string(n));
    // D distinct keys and values: a partial Fisher-Yates shuffle of each half.
    auto distinct = [&](int begin, int end) {
        std::vector<int> pool;
        for (int t = begin; t < end; ++t) pool.push_back(t);
        for (int i = 0; i < pairs; ++i) std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(rng.randint(i, end - begin))]);
        pool.resize(static_cast<size_t>(pairs));
        return pool;
    };
    const std::vector<int> keys = distinct(first, middle), values = distinct(middle, vocab);
    // Query slots from the last pair (the most constrained) to the first, each uniform among
    // the free slots at least `gap` after its value: this never gets stuck.
    std::vector<int> stream(static_cast<size_t>(n) + 1, -1), query(static_cast<size_t>(pairs));
    std::vector<char> used(static_cast<size_t>(slots), 0);
    for (int j = pairs - 1; j >= 0; --j) {
        std::vector<int> free_slots;
        for (int s = first_slot_after(2 * j + 1); s < slots; ++s)
            if (!used[static_cast<size_t>(s)]) free_slots.push_back(s);
        if (free_slots.empty()) fail("mqar: no free query slot for pair " + std::to_string(j) + "; lower gap or pairs, or raise n");
        const int s = free_slots[static_cast<size_t>(rng.randint(0, static_cast<int>(free_slots.size())))];
        used[static_cast<size_t>(s)] = 1;
        query[static_cast<size_t>(j)] = start + 2 * s;
    }
    std::fill(targets, targets + n, -1);
    for (int j = 0; j < pairs; ++j) {
        const int q = query[static_cast<size_t>(j)];
        stream[static_cast<size_t>(2 * j)] = stream[static_cast<size_t>(q)] = keys[static_cast<size_t>(j)];
        stream[static_cast<size_t>(2 * j + 1)] = stream[static_cast<size_t>(q + 1)] = values[static_cast<size_t>(j)];
        targets[q] = values[static_cast<size_t>(j)];  // scored at the query: the next token is its value
    }
    for (int& t : stream)
        while (t < 0) {  // filler: any ordinary token but a key (a key would make a second "pair")
            const int candidate = rng.randint(first, vocab);
            if (std::find(keys.begin(), keys.end(), candidate) == keys.end()) t = candidate;
        }
    std::copy(stream.begin(), stream.begin() + n, tokens);
}

Batch make_mqar_batch(int B, int n, int vocab, int pairs, int gap, uint64_t seed) {
    Batch batch;
    batch.tokens.resize(static_cast<size_t>(B) * n);
    batch.targets.resize(static_cast<size_t>(B) * n);
    for (int b = 0; b < B; ++b) {  // example b from its own stream: it does not depend on B
        Rng rng(seed * 1000003ull + static_cast<uint64_t>(b));
        make_mqar_example(batch.tokens.data() + static_cast<size_t>(b) * n, batch.targets.data() + static_cast<size_t>(b) * n, n, vocab, pairs, gap, rng);
    }
    return batch;
}

// ============================================================================ 10. training and evaluation

// Held-out accuracy: batches from seeds the training never draws (training uses seed*1e6 + step).
LossResult evaluate(Model& m, int batches, int B, int n, int pairs, int gap, uint64_t seed) {
    LossResult total;
    double loss_sum = 0;
    Activations acts;
    for (int i = 0; i < batches; ++i) {
        const Batch batch = make_mqar_batch(B, n, m.cfg.vocab_size, pairs, gap, seed + static_cast<uint64_t>(i));
        const LossResult r = cross_entropy(nullptr, forward(m, batch.tokens, B, n, acts), batch.targets, m.cfg.vocab_size);
        loss_sum += r.loss * r.scored;
        total.scored += r.scored;
        total.correct += r.correct;
    }
    total.loss = loss_sum / total.scored;
    return total;
}

void train(Model& m, const TrainSettings& s, int pairs, int gap) {
    AdamState adam;
    Activations acts;
    std::vector<float> dlogits;
    const auto begin = std::chrono::steady_clock::now();
    for (int step = 1; step <= s.steps; ++step) {
        const Batch batch = make_mqar_batch(s.batch, s.seq_len, m.cfg.vocab_size, pairs, gap, s.seed * 1000000ull + static_cast<uint64_t>(step));
        std::fill(m.grads.begin(), m.grads.end(), 0.0f);
        const LossResult r = cross_entropy(&dlogits, forward(m, batch.tokens, s.batch, s.seq_len, acts), batch.targets, m.cfg.vocab_size);
        backward(m, dlogits, acts);
        const double norm = adamw_step(m, adam, s, step);
        if (step % 50 == 0 || step == 1 || step == s.steps) {
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
            std::printf("step %4d/%d  loss %.4f  acc %.3f  lr %.2e  gnorm %.3f  %.1f s\n", step, s.steps, r.loss,
                        static_cast<double>(r.correct) / r.scored, learning_rate(s, step), norm, seconds);
            std::fflush(stdout);
        }
    }
}

}  // namespace ittt_one_file

// ============================================================================ 11. main
#ifndef ITTT_ONE_FILE_NO_MAIN
using namespace ittt_one_file;

// The value after `--name` in argv, or `fallback`.
std::string option(int argc, char** argv, const std::string& name, const std::string& fallback) {
    for (int i = 2; i + 1 < argc; ++i)
        if (argv[i] == "--" + name) return argv[i + 1];
    return fallback;
}

// What the learned target looks at: each tap's share of sum |conv| over the channels.
// An LM-aligned target puts its weight on offset +1, the next token (docs/results.md).
void print_conv_taps(Model& m) {
    for (int l = 0; l < m.cfg.n_layers; ++l) {
        if (!m.cfg.ttt_layer[static_cast<size_t>(l)]) continue;
        const int K = m.cfg.taps();
        std::vector<double> weight(static_cast<size_t>(K), 0.0);
        double total = 0;
        for (int c = 0; c < m.cfg.d; ++c)
            for (int k = 0; k < K; ++k) {
                const double w = std::abs(m.p(m.layers[static_cast<size_t>(l)].ttt_conv)[c * K + k]);
                weight[static_cast<size_t>(k)] += w;
                total += w;
            }
        std::printf("layer %d conv taps (share of |weight|):", l);
        for (int k = 0; k < K; ++k) std::printf("  %+d: %.2f", m.cfg.conv_offsets[static_cast<size_t>(k)], weight[static_cast<size_t>(k)] / total);
        std::printf("\n");
    }
}

int usage() {
    std::fprintf(stderr,
                 "usage: ittt train [--steps 1000] [--batch 16] [--seq-len 256] [--seed 1] [--eval-batches 8]\n"
                 "       ittt eval --ckpt DIR [--seq-len 256] [--batches 8]\n"
                 "train: data/learned-mqar's recipe from scratch (MQAR pairs=8 gap=96), then held-out accuracy.\n"
                 "eval:  a checkpoint (config.json + model.safetensors, F32): logits of one sequence, loss, accuracy.\n");
    return 2;
}

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string command = argv[1];
    const int pairs = 8, gap = 96;
    try {
        if (command == "train") {
            TrainSettings s;
            s.steps = std::stoi(option(argc, argv, "steps", "1000"));
            s.batch = std::stoi(option(argc, argv, "batch", "16"));
            s.seq_len = std::stoi(option(argc, argv, "seq-len", "256"));
            s.seed = std::stoull(option(argc, argv, "seed", "1"));
            const int eval_batches = std::stoi(option(argc, argv, "eval-batches", "8"));
            Model m = build_model(Config{});  // the recipe's model: data/learned-mqar/config.json
            init_random(m, s.seed);
            std::printf("model: %zu parameters; MQAR pairs=%d gap=%d, %d steps of %d x %d tokens\n", m.params.size(), pairs, gap, s.steps, s.batch, s.seq_len);
            const auto begin = std::chrono::steady_clock::now();
            train(m, s, pairs, gap);
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
            const LossResult r = evaluate(m, eval_batches, 16, s.seq_len, pairs, gap, 1000);
            std::printf("trained in %.1f s; held-out: loss %.4f  accuracy %.4f (%d of %d queries)\n", seconds, r.loss,
                        static_cast<double>(r.correct) / r.scored, r.correct, r.scored);
            print_conv_taps(m);
            return 0;
        }
        if (command == "eval") {
            const std::string dir = option(argc, argv, "ckpt", "");
            if (dir.empty()) return usage();
            Model m = load_checkpoint(dir);
            const int n = std::stoi(option(argc, argv, "seq-len", "256")), batches = std::stoi(option(argc, argv, "batches", "8"));
            const Batch one = make_mqar_batch(1, n, m.cfg.vocab_size, pairs, gap, 1000);
            Activations acts;
            const std::vector<float>& logits = forward(m, one.tokens, 1, n, acts);
            for (int t = 0; t < n; ++t)  // the first query's logits: the answer should stand out
                if (one.targets[static_cast<size_t>(t)] >= 0) {
                    std::printf("position %d (token %d, answer %d): logits", t, one.tokens[static_cast<size_t>(t)], one.targets[static_cast<size_t>(t)]);
                    for (int j = 0; j < m.cfg.vocab_size; ++j) std::printf(" %.2f", logits[static_cast<size_t>(t) * m.cfg.vocab_size + j]);
                    std::printf("\n");
                    break;
                }
            const LossResult r = evaluate(m, batches, 16, n, pairs, gap, 1000);
            print_conv_taps(m);
            std::printf("held-out: loss %.4f  accuracy %.4f (%d of %d queries)\n", r.loss, static_cast<double>(r.correct) / r.scored, r.correct, r.scored);
            return 0;
        }
        return usage();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ittt: %s\n", e.what());
        return 1;
    }
}
#endif  // ITTT_ONE_FILE_NO_MAIN
