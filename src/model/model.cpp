// model.cpp: parameters, forward and backward of the decoder.
// The TTT MLP's forward/backward is in ttt_layer.cpp.
#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "model/memory_budget.h"
#include "model/model_ranks.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"
#include "runtime/rng.h"

namespace ittt {

namespace {
// A per-parameter stream: the init of a tensor does not depend on the order
// parameters are created in, so adding a tensor never changes the others.
uint64_t name_seed(uint64_t seed, const std::string& name) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    return splitmix64(seed ^ h);
}

void fill_normal(Tensor& t, uint64_t seed, double std) {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = std * normal_at(seed, i);
    Tensor host = t.dtype() == DType::F64 ? Tensor::from_vector(v, t.shape()) : Tensor::from_vector(v, t.shape()).to_dtype(DType::F32);
    t.copy_from(host.to(t.device()));
}

void fill_host(Tensor& t, const std::vector<double>& v) {
    Tensor host = Tensor::from_vector(v, t.shape());
    if (t.dtype() == DType::F32) host = host.to_dtype(DType::F32);
    t.copy_from(host.to(t.device()));
}
}  // namespace

Model::Model(const ModelConfig& cfg, DType dtype, Device device) : cfg_(cfg), dtype_(dtype), device_(device) {
    cfg_.validate();
    ITTT_CHECK(dtype == DType::F32 || dtype == DType::F64, "Model: dtype must be F32 or F64, found ", dtype_name(dtype));
    ITTT_CHECK(device == Device::CPU || dtype == DType::F32, "Model: CUDA models are F32");
    // Values and gradients: refused up front rather than std::bad_alloc half-way.
    const double params = ittt::parameter_count(cfg_);
    require_memory(2 * params * static_cast<double>(dtype_size(dtype)), cat("the ", params, " parameters of this config and their gradients"));
    build_parameters();
}

Tensor Model::new_tensor(const Shape& s) const { return Tensor::empty(s, dtype_, device_); }

void Model::build_parameters() {
    const int64_t d = cfg_.hidden_size, f = cfg_.intermediate_size, V = cfg_.vocab_size, hd = cfg_.head_dim;
    const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, K = cfg_.conv_taps();
    auto add = [&](const std::string& name, const Shape& shape, bool decay, bool trainable = true) {
        Parameter p;
        p.name = name;
        p.value = Tensor::zeros(shape, dtype_, device_);
        p.grad = Tensor::zeros(shape, dtype_, device_);
        p.weight_decay = decay;
        p.trainable = trainable;
        params_.push_back(p);
        return p.value;
    };
    embed_ = add("model.embed_tokens.weight", {V, d}, true);
    layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
    for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
        LayerWeights& w = layers_[static_cast<size_t>(l)];
        std::string p = cat("model.layers.", l, ".");
        w.input_norm = add(p + "input_layernorm.weight", {d}, false);
        w.q_proj = add(p + "self_attn.q_proj.weight", {Hq * hd, d}, true);
        w.k_proj = add(p + "self_attn.k_proj.weight", {Hkv * hd, d}, true);
        w.v_proj = add(p + "self_attn.v_proj.weight", {Hkv * hd, d}, true);
        w.o_proj = add(p + "self_attn.o_proj.weight", {d, Hq * hd}, true);
        w.q_norm = add(p + "self_attn.q_norm.weight", {hd}, false);
        w.k_norm = add(p + "self_attn.k_norm.weight", {hd}, false);
        w.post_norm = add(p + "post_attention_layernorm.weight", {d}, false);
        w.gate_proj = add(p + "mlp.gate_proj.weight", {f, d}, true);
        w.up_proj = add(p + "mlp.up_proj.weight", {f, d}, true);
        w.down_proj = add(p + "mlp.down_proj.weight", {d, f}, true);
        if (cfg_.is_ttt_layer(l)) {
            bool learned = cfg_.ttt_target_mode == TttTargetMode::Learned;
            w.ttt_conv = add(p + "mlp.ttt_conv.weight", {d, 1, K}, false, learned);
            if (cfg_.ttt_proj) w.ttt_proj = add(p + "mlp.ttt_proj.weight", {d, d}, false, learned);
        }
    }
    final_norm_ = add("model.norm.weight", {d}, false);
    if (!cfg_.tie_word_embeddings) lm_head_ = add("lm_head.weight", {V, d}, true);
}

int Model::fixed_target_tap() const {
    int want = cfg_.ttt_target_mode == TttTargetMode::NextToken ? 1 : 0;
    auto it = std::find(cfg_.ttt_conv_offsets.begin(), cfg_.ttt_conv_offsets.end(), want);
    return static_cast<int>(it - cfg_.ttt_conv_offsets.begin());
}

bool Model::init_ttt_parameter(Parameter& p, uint64_t seed, double p_std) {
    const int64_t d = cfg_.hidden_size, K = cfg_.conv_taps();
    const bool learned = cfg_.ttt_target_mode == TttTargetMode::Learned;
    const uint64_t s = name_seed(seed, p.name);
    if (p.name.find("ttt_conv") != std::string::npos) {
        std::vector<double> w(static_cast<size_t>(d * K), 0.0);
        if (!learned)
            for (int64_t c = 0; c < d; ++c) w[static_cast<size_t>(c * K + fixed_target_tap())] = 1.0;
        else if (cfg_.ttt_conv_init_std > 0)  // every tap equally likely: the look-ahead must be found, not given
            for (size_t i = 0; i < w.size(); ++i) w[i] = cfg_.ttt_conv_init_std * normal_at(s, static_cast<uint64_t>(i));
        fill_host(p.value, w);
    } else if (p.name.find("ttt_proj") != std::string::npos) {
        std::vector<double> w(static_cast<size_t>(d * d), 0.0);
        for (int64_t c = 0; c < d; ++c) w[static_cast<size_t>(c * d + c)] =
            learned && !cfg_.ttt_proj_init_identity ? p_std * normal_at(s, static_cast<uint64_t>(c)) : 1.0;
        fill_host(p.value, w);
    } else {
        return false;
    }
    p.grad.zero_();
    return true;
}

void Model::init_random(uint64_t seed) {
    for (Parameter& p : params_) {
        const std::string& n = p.name;
        if (init_ttt_parameter(p, seed, 0.02)) continue;
        if (n.find("norm.weight") != std::string::npos) ops::fill(p.value, 1.0);
        else fill_normal(p.value, name_seed(seed, n), cfg_.initializer_range);
        p.grad.zero_();
    }
}

void Model::init_ttt(uint64_t seed) {
    for (Parameter& p : params_) init_ttt_parameter(p, seed, cfg_.initializer_range);
}

Parameter& Model::parameter(const std::string& name) {
    for (Parameter& p : params_)
        if (p.name == name) return p;
    fail(cat("model has no parameter named '", name, "'"));
}

Tensor& Model::grad_of(const Tensor& value) {
    for (Parameter& p : params_)
        if (p.value.raw() == value.raw()) return p.grad;
    fail("grad_of: tensor is not a parameter of this model");
}

int64_t Model::parameter_count() const {
    int64_t n = 0;
    for (const Parameter& p : params_) n += p.value.numel();
    return n;
}

void Model::zero_grad() {
    for (Parameter& p : params_) p.grad.zero_();
}

void Model::set_context_parallel(parallel::Context* ctx) {
    cp_ = ctx;
    plan_ = parallel::SlicePlan();
    if (!ctx) return;
    ctx->prepare_device(device_);
    parallel::require_same_model(*ctx, *this);
}

Model Model::converted(DType dtype, Device device) const {
    Model m(cfg_, dtype, device);
    for (size_t i = 0; i < params_.size(); ++i) {
        Tensor host = params_[i].value.to(Device::CPU);
        if (host.dtype() != dtype) host = host.to_dtype(dtype);
        m.params_[i].value.copy_from(host.to(device));
    }
    return m;
}

// ---------------------------------------------------------------- forward

const Tensor& Model::forward(const Tensor& tokens, const ForwardOptions& opt, ForwardState* state) {
    ITTT_NVTX_RANGE("model_forward");
    ITTT_CHECK(tokens.ndim() == 2 && tokens.dtype() == DType::I32, "forward: tokens must be I32 (B, n), found ", tokens.describe());
    B_ = static_cast<int>(tokens.dim(0));
    n_ = static_cast<int>(tokens.dim(1));
    const int64_t d = cfg_.hidden_size, V = cfg_.vocab_size;
    ITTT_CHECK(static_cast<int64_t>(B_) * n_ > 0, "forward: empty batch ", tokens.describe());
    // The ids are checked here, on the host, and the ops are given this host copy for their
    // own checks: on CUDA nothing is copied back to check it (a wait for the GPU).
    const Tensor host_tokens = tokens.device() == Device::CPU ? tokens : tokens.to(Device::CPU);
    for (int32_t t : host_tokens.to_i32_vector())
        ITTT_CHECK(t >= 0 && t < V, "forward: token id ", t, " is outside the vocabulary [0, ", V, ")");
    streamed_ = state != nullptr;

    int64_t pos0 = 0;  // absolute position of this process's first token of each sequence
    Tensor local = host_tokens;
    if (state) {
        ITTT_CHECK(B_ == 1 && !cp_ && opt.inference && opt.ttt_update_limit < 0 && opt.ttt_form != TttForm::Parallel,
                   "forward with a state: streaming inference of one sequence (B = 1, found ", B_,
                   ", inference, no context parallelism, no ttt_update_limit, TTT in its chunk loop, not the parallel form)");
        ITTT_CHECK(state->layers.size() == static_cast<size_t>(cfg_.num_hidden_layers), "forward: the state has ",
                   state->layers.size(), " layers, the model ", cfg_.num_hidden_layers, " (make it with Model::start_state)");
        pos0 = state->position;
        reserve_cache(*state, state->position + n_);
    } else if (cp_) {
        // Context parallel: this rank computes only its slice of every sequence.
        ITTT_CHECK(opt.ttt_update_limit < 0, "forward: context parallelism runs the parallel TTT form only (no ttt_update_limit)");
        parallel::require_same_input(*cp_, tokens, cat("inference ", opt.inference));
        plan_ = parallel::SlicePlan::make(n_, cfg_.ttt_chunk, cp_->size());
        local = parallel::local_slice(tokens, plan_, cp_->rank());
        n_ = static_cast<int>(plan_.length(cp_->rank()));
        pos0 = plan_.begin(cp_->rank());
    }
    plan_documents(opt);
    const int64_t N = static_cast<int64_t>(B_) * n_;
    host_tokens_ = local.view({N}).clone();
    tokens_ = host_tokens_.to(device_);
    std::vector<int32_t> pos(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(pos0 + i % n_);
    for (const Document& doc : documents_)  // RoPE positions restart at 0 in every document
        for (int64_t t = 0; t < doc.length; ++t) pos[static_cast<size_t>(doc.row0 + t)] = static_cast<int32_t>(t);
    host_positions_ = Tensor::from_vector(pos, {N});
    positions_ = host_positions_.to(device_);

    x0_ = new_tensor({N, d});
    ops::embedding_forward(x0_, embed_, tokens_, &host_tokens_);
    Tensor x = x0_.clone();
    acts_.assign(static_cast<size_t>(cfg_.num_hidden_layers), LayerActivations{});
    for (int l = 0; l < cfg_.num_hidden_layers; ++l) layer_forward(l, x, opt, state);
    if (state) state->position += n_;

    x_final_ = x;
    xf_ = new_tensor({N, d});
    rstd_f_ = new_tensor({N});
    ops::rmsnorm_forward(xf_, rstd_f_, x_final_, final_norm_, cfg_.rms_norm_eps);
    logits_ = new_tensor({N, V});
    {
        ITTT_NVTX_RANGE("lm_head");
        ops::linear(logits_, xf_, lm_head());
    }
    return logits_;
}

void Model::plan_documents(const ForwardOptions& opt) {
    documents_.clear();
    const std::vector<std::vector<int>>& starts = opt.document_starts;
    if (starts.empty()) return;
    ITTT_CHECK(starts.size() == static_cast<size_t>(B_), "forward: document_starts has ", starts.size(), " lists, expected one per row (B = ", B_, ")");
    ITTT_CHECK(!cp_, "forward: document boundaries are not supported under context parallelism (for the text task: docs=packed)");
    bool any_boundary = false;
    for (int b = 0; b < B_; ++b) {
        const std::vector<int>& row = starts[static_cast<size_t>(b)];
        for (size_t i = 0; i < row.size(); ++i) {
            ITTT_CHECK(i > 0 || row[i] == 0, "forward: document_starts[", b, "] must begin with 0, found ", row[i]);
            ITTT_CHECK(i == 0 || (row[i] > row[i - 1] && row[i] < n_), "forward: document_starts[", b, "][", i, "] = ", row[i],
                       ": expected strictly ascending starts below n = ", n_);
        }
        any_boundary = any_boundary || row.size() > 1;
    }
    if (!any_boundary) return;  // one document per row: the path without boundaries, bit for bit
    ITTT_CHECK(!streamed_, "forward: document boundaries are not supported with a state (streaming); call Session::reset() at each boundary");
    for (int b = 0; b < B_; ++b) {
        std::vector<int> row = starts[static_cast<size_t>(b)];
        if (row.empty()) row = {0};
        for (size_t i = 0; i < row.size(); ++i) {
            const int end = i + 1 < row.size() ? row[i + 1] : n_;
            documents_.push_back(Document{static_cast<int64_t>(b) * n_ + row[i], end - row[i]});
        }
    }
}

Tensor Model::document_rows(const Tensor& t, size_t i, const Shape& shape) const {
    const int64_t N = static_cast<int64_t>(B_) * n_;
    const Document& doc = documents_[i];
    return t.view({N, t.numel() / N}).rows(doc.row0, doc.row0 + doc.length).view(shape);
}

ForwardState Model::start_state() const {
    ForwardState s;
    s.layers.resize(static_cast<size_t>(cfg_.num_hidden_layers));
    for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
        if (!cfg_.is_ttt_layer(l)) continue;
        ForwardState::Layer& t = s.layers[static_cast<size_t>(l)];
        t.w = layers_[static_cast<size_t>(l)].down_proj.clone();  // every stream starts from the slow weight
        t.z_chunk = new_tensor({cfg_.ttt_chunk, cfg_.intermediate_size});
        t.src_chunk = new_tensor({cfg_.ttt_chunk, cfg_.hidden_size});
    }
    reserve_cache(s, 64);
    return s;
}

// Doubling, so that appending a position is amortised O(1).
void Model::reserve_cache(ForwardState& state, int positions) const {
    if (positions <= state.capacity) return;
    const int cap = std::max(positions, 2 * state.capacity);
    const int64_t row = static_cast<int64_t>(cfg_.num_key_value_heads) * cfg_.head_dim;
    for (ForwardState::Layer& s : state.layers)
        for (Tensor* cache : {&s.k_cache, &s.v_cache}) {
            Tensor grown = Tensor::zeros({1, cap, cfg_.num_key_value_heads, cfg_.head_dim}, dtype_, device_);
            const int64_t kept = state.position;
            if (kept > 0) grown.view({cap, row}).rows(0, kept).copy_from(cache->view({state.capacity, row}).rows(0, kept));
            *cache = grown;
        }
    state.capacity = cap;
}

void Model::layer_forward(int l, Tensor& x, const ForwardOptions& opt, ForwardState* state) {
    ITTT_NVTX_RANGE(cat("layer", l).c_str());
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    LayerActivations& a = acts_[static_cast<size_t>(l)];
    const int64_t N = static_cast<int64_t>(B_) * n_, d = cfg_.hidden_size, f = cfg_.intermediate_size, hd = cfg_.head_dim;
    const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;
    const double eps = cfg_.rms_norm_eps;

    a.x = x;  // x is replaced (not modified) below, so keeping the handle is enough
    {
        ITTT_NVTX_RANGE("attention_block");
        a.xn1 = new_tensor({N, d});
        a.rstd1 = new_tensor({N});
        ops::rmsnorm_forward(a.xn1, a.rstd1, a.x, w.input_norm, eps);
        // keys and values first (q/k norms are per head: rmsnorm views (N, H*hd) as rows of hd)
        a.k = new_tensor({N, Hkv * hd});
        a.v = new_tensor({N, Hkv * hd});
        ops::linear(a.k, a.xn1, w.k_proj);
        ops::linear(a.v, a.xn1, w.v_proj);
        a.kn = new_tensor({N, Hkv, hd});
        a.rstd_k = new_tensor({N * Hkv});
        ops::rmsnorm_forward(a.kn, a.rstd_k, a.k.view({N, Hkv, hd}), w.k_norm, eps);
        a.kr = new_tensor({N, Hkv, hd});
        ops::rope_forward(a.kr, a.kn, positions_, cfg_.rope_theta, &host_positions_);
        const int window = cfg_.window_for_layer(l);
        const Tensor k4 = a.kr.view({B_, n_, Hkv, hd}), v4 = a.v.view({B_, n_, Hkv, hd});
        // Context parallel: post this slice's keys/values to the ranks that need them
        // (halo or ring) now, so that the transfer overlaps the queries' projection.
        if (cp_) parallel::attention_forward_start(*cp_, plan_, l, window, a.cp_attention, k4, v4);
        a.q = new_tensor({N, Hq * hd});
        ops::linear(a.q, a.xn1, w.q_proj);
        a.qn = new_tensor({N, Hq, hd});
        a.rstd_q = new_tensor({N * Hq});
        ops::rmsnorm_forward(a.qn, a.rstd_q, a.q.view({N, Hq, hd}), w.q_norm, eps);
        a.qr = new_tensor({N, Hq, hd});
        ops::rope_forward(a.qr, a.qn, positions_, cfg_.rope_theta, &host_positions_);
        a.att = new_tensor({N, Hq * hd});
        a.lse = new_tensor({B_, Hq, n_});
        Tensor att4 = a.att.view({B_, n_, Hq, hd});
        const Tensor q4 = a.qr.view({B_, n_, Hq, hd});
        if (cp_) {
            parallel::attention_forward_finish(*cp_, plan_, l, window, a.cp_attention, att4, a.lse, q4, k4, v4);
        } else if (state) {  // streaming: this call's keys and values join the cache; the queries attend over it
            ForwardState::Layer& s = state->layers[static_cast<size_t>(l)];
            const int64_t row = Hkv * hd, pos = state->position;
            s.k_cache.view({state->capacity, row}).rows(pos, pos + n_).copy_from(a.kr.view({N, row}));
            s.v_cache.view({state->capacity, row}).rows(pos, pos + n_).copy_from(a.v.view({N, row}));
            ops::attention_forward(att4, a.lse, q4, s.k_cache, s.v_cache, state->position, window);
        } else if (!documents_.empty()) {  // each document attends over its own keys only
            a.documents.assign(documents_.size(), LayerActivations{});
            a.lse = Tensor();
            for (size_t i = 0; i < documents_.size(); ++i) {
                const int64_t len = documents_[i].length;
                Tensor& lse = a.documents[i].lse = new_tensor({1, Hq, len});
                Tensor att_doc = document_rows(a.att, i, {1, len, Hq, hd});
                ops::attention_forward(att_doc, lse, document_rows(a.qr, i, {1, len, Hq, hd}), document_rows(a.kr, i, {1, len, Hkv, hd}),
                                       document_rows(a.v, i, {1, len, Hkv, hd}), 0, window);
            }
        } else {
            ops::attention_forward(att4, a.lse, q4, k4, v4, 0, window);
        }
        // h = x + o_proj(att): copy x, then accumulate the projection with beta = 1.
        a.h = a.x.clone();
        ops::linear(a.h, a.att, w.o_proj, 1.0);
    }
    ITTT_NVTX_RANGE("mlp_block");
    a.xn2 = new_tensor({N, d});
    a.rstd2 = new_tensor({N});
    ops::rmsnorm_forward(a.xn2, a.rstd2, a.h, w.post_norm, eps);
    a.g = new_tensor({N, f});
    a.u = new_tensor({N, f});
    a.z = new_tensor({N, f});
    ops::linear(a.g, a.xn2, w.gate_proj);
    ops::linear(a.u, a.xn2, w.up_proj);
    ops::swiglu_forward(a.z, a.g, a.u);
    Tensor mlp_out = new_tensor({N, d});
    if (cfg_.is_ttt_layer(l)) {
        a.ttt_src = cfg_.ttt_target == TttTargetSource::InputEmbed ? x0_ : a.xn2;
        ttt_forward(l, a, mlp_out, opt, state);
    } else {
        ops::linear(mlp_out, a.z, w.down_proj);
    }
    x = a.h.clone();
    ops::add_inplace(x, mlp_out);
}

// ---------------------------------------------------------------- backward

void Model::backward(const Tensor& dlogits) {
    ITTT_NVTX_RANGE("model_backward");
    const int64_t N = static_cast<int64_t>(B_) * n_, d = cfg_.hidden_size, V = cfg_.vocab_size;
    ITTT_CHECK(logits_.defined(), "backward: call forward first");
    ITTT_CHECK(!streamed_, "backward: the last forward continued a state (streaming inference), which keeps nothing for a backward");
    ITTT_CHECK(dlogits.shape() == Shape({N, V}), "backward: dlogits is ", dlogits.describe(), ", expected (", N, ", ", V, ")");
    // lm head: logits = xf @ W^T  =>  dxf = dlogits @ W, dW += dlogits^T @ xf
    Tensor dxf = new_tensor({N, d});
    ops::matmul(dxf, dlogits, false, lm_head(), false);
    Tensor& g_head = grad_of(lm_head());
    ops::matmul(g_head, dlogits, true, xf_, false, 1.0, 1.0);
    Tensor dx = new_tensor({N, d});
    ops::rmsnorm_backward(dx, grad_of(final_norm_), dxf, x_final_, final_norm_, rstd_f_);

    dx0_ttt_ = Tensor::zeros({N, d}, dtype_, device_);
    for (int l = cfg_.num_hidden_layers - 1; l >= 0; --l) layer_backward(l, dx);
    ops::add_inplace(dx, dx0_ttt_);  // TTT targets built from token embeddings feed back into them
    ops::embedding_backward(grad_of(embed_), dx, tokens_, &host_tokens_);
}

// dx: gradient w.r.t. this layer's output on entry, w.r.t. its input on exit.
void Model::layer_backward(int l, Tensor& dx) {
    ITTT_NVTX_RANGE(cat("layer", l, "_backward").c_str());
    const LayerWeights& w = layers_[static_cast<size_t>(l)];
    LayerActivations& a = acts_[static_cast<size_t>(l)];
    const int64_t N = static_cast<int64_t>(B_) * n_, d = cfg_.hidden_size, f = cfg_.intermediate_size, hd = cfg_.head_dim;
    const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;

    // ---- MLP: x_out = h + mlp(xn2) ----
    Tensor dz = new_tensor({N, f});
    Tensor dxn2 = Tensor::zeros({N, d}, dtype_, device_);
    if (cfg_.is_ttt_layer(l)) {
        Tensor dsrc = cfg_.ttt_target == TttTargetSource::HiddenStates ? dxn2 : dx0_ttt_;
        ttt_backward(l, dx, dz, dsrc);
    } else {
        ops::matmul(dz, dx, false, w.down_proj, false);                     // dz = dout @ Wd
        ops::matmul(grad_of(w.down_proj), dx, true, a.z, false, 1.0, 1.0);  // dWd += dout^T z
    }
    Tensor dg = new_tensor({N, f}), du = new_tensor({N, f});
    ops::swiglu_backward(dg, du, dz, a.g, a.u);
    ops::matmul(grad_of(w.gate_proj), dg, true, a.xn2, false, 1.0, 1.0);
    ops::matmul(grad_of(w.up_proj), du, true, a.xn2, false, 1.0, 1.0);
    ops::matmul(dxn2, dg, false, w.gate_proj, false, 1.0, 1.0);
    ops::matmul(dxn2, du, false, w.up_proj, false, 1.0, 1.0);
    Tensor dh = new_tensor({N, d});
    ops::rmsnorm_backward(dh, grad_of(w.post_norm), dxn2, a.h, w.post_norm, a.rstd2);
    ops::add_inplace(dh, dx);  // residual

    // ---- attention: h = x + o_proj(att) ----
    Tensor datt = new_tensor({N, Hq * hd});
    ops::matmul(datt, dh, false, w.o_proj, false);
    ops::matmul(grad_of(w.o_proj), dh, true, a.att, false, 1.0, 1.0);
    Tensor dqr = new_tensor({B_, n_, Hq, hd}), dkr = new_tensor({B_, n_, Hkv, hd}), dv = new_tensor({B_, n_, Hkv, hd});
    const int window = cfg_.window_for_layer(l);
    const Tensor datt4 = datt.view({B_, n_, Hq, hd}), q4 = a.qr.view({B_, n_, Hq, hd}), k4 = a.kr.view({B_, n_, Hkv, hd});
    const Tensor v4 = a.v.view({B_, n_, Hkv, hd}), att4 = a.att.view({B_, n_, Hq, hd});
    if (cp_) parallel::attention_backward_start(*cp_, plan_, l, window, a.cp_attention, dqr, dkr, dv, datt4, q4, k4, v4, att4, a.lse);
    else if (!documents_.empty())
        for (size_t i = 0; i < documents_.size(); ++i) {
            const int64_t len = documents_[i].length;
            Tensor dq_doc = document_rows(dqr, i, {1, len, Hq, hd}), dk_doc = document_rows(dkr, i, {1, len, Hkv, hd});
            Tensor dv_doc = document_rows(dv, i, {1, len, Hkv, hd});
            ops::attention_backward(dq_doc, dk_doc, dv_doc, document_rows(datt, i, {1, len, Hq, hd}), document_rows(a.qr, i, {1, len, Hq, hd}),
                                    document_rows(a.kr, i, {1, len, Hkv, hd}), document_rows(a.v, i, {1, len, Hkv, hd}),
                                    document_rows(a.att, i, {1, len, Hq, hd}), a.documents[i].lse, window);
        }
    else ops::attention_backward(dqr, dkr, dv, datt4, q4, k4, v4, att4, a.lse, window);
    // queries first: under context parallelism, gradients of this slice's keys may still be arriving
    Tensor dqn = dqr.view({N, Hq, hd});
    ops::rope_backward(dqn, dqn, positions_, cfg_.rope_theta, &host_positions_);
    Tensor dq = new_tensor({N, Hq, hd});
    ops::rmsnorm_backward(dq, grad_of(w.q_norm), dqn, a.q.view({N, Hq, hd}), w.q_norm, a.rstd_q);
    Tensor dq2 = dq.view({N, Hq * hd});
    ops::matmul(grad_of(w.q_proj), dq2, true, a.xn1, false, 1.0, 1.0);
    if (cp_) parallel::attention_backward_finish(*cp_, plan_, l, window, a.cp_attention, dkr, dv);
    Tensor dkn = dkr.view({N, Hkv, hd});
    ops::rope_backward(dkn, dkn, positions_, cfg_.rope_theta, &host_positions_);
    Tensor dk = new_tensor({N, Hkv, hd});
    ops::rmsnorm_backward(dk, grad_of(w.k_norm), dkn, a.k.view({N, Hkv, hd}), w.k_norm, a.rstd_k);
    Tensor dk2 = dk.view({N, Hkv * hd}), dv2 = dv.view({N, Hkv * hd});
    ops::matmul(grad_of(w.k_proj), dk2, true, a.xn1, false, 1.0, 1.0);
    ops::matmul(grad_of(w.v_proj), dv2, true, a.xn1, false, 1.0, 1.0);
    Tensor dxn1 = new_tensor({N, d});
    ops::matmul(dxn1, dq2, false, w.q_proj, false);
    ops::matmul(dxn1, dk2, false, w.k_proj, false, 1.0, 1.0);
    ops::matmul(dxn1, dv2, false, w.v_proj, false, 1.0, 1.0);
    Tensor dx_in = new_tensor({N, d});
    ops::rmsnorm_backward(dx_in, grad_of(w.input_norm), dxn1, a.x, w.input_norm, a.rstd1);
    ops::add_inplace(dx_in, dh);  // residual
    dx = dx_in;
}

}  // namespace ittt
