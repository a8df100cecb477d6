// model_parallel.cpp: the TTT scan across ranks, slicing and gathering sequences, and
// the check that every rank runs on the same input (model_parallel.h).
#include <cstdio>

#include "ops/ops.h"
#include "parallel/model_parallel.h"
#include "parallel/sequence_rows.h"
#include "runtime/nvtx.h"

namespace ittt::parallel {

namespace {

// Adds part (B, d, f) to every s_i of s (B, T, d, f).
void add_to_every_chunk(Tensor& s, const Tensor& part) {
    const Tensor one = part.view({s.dim(0), 1, s.dim(2), s.dim(3)});
    for (int64_t i = 0; i < s.dim(1); ++i) put_rows(s, i, one, true);
}

// (B, d, f) = a_i + b_i over the chunks i of a, b (B, T, d, f): a rank's whole sum from
// its exclusive scan and one of its terms.
Tensor chunk_sum(const Tensor& a, const Tensor& b, int64_t i) {
    Tensor total = take_rows(a, i, i + 1).view({a.dim(0), a.dim(2), a.dim(3)});
    ops::add_inplace(total, take_rows(b, i, i + 1).view(total.shape()));
    return total;
}

}  // namespace

uint64_t fnv1a_hash(const void* data, size_t bytes, uint64_t h) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

std::string hash_hex(uint64_t h) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

void ttt_add_earlier_ranks(Context& ctx, Tensor& s, const Tensor& delta, int layer) {
    ITTT_NVTX_RANGE("cp_ttt_scan");
    if (ctx.size() == 1) return;
    // This rank's sum of deltas: the last exclusive prefix plus the last delta.
    Tensor total = chunk_sum(s, delta, s.dim(1) - 1);
    Tensor before = Tensor::empty(total.shape(), total.dtype(), total.device());
    ctx.exclusive_scan_sum(before, total, false, layer);
    if (ctx.rank() > 0) add_to_every_chunk(s, before);
}

void ttt_add_later_ranks(Context& ctx, Tensor& g, const Tensor& p, int layer) {
    ITTT_NVTX_RANGE("cp_ttt_scan_backward");
    if (ctx.size() == 1) return;
    Tensor total = chunk_sum(g, p, 0);  // the first reverse-exclusive suffix plus the first term
    Tensor after = Tensor::empty(total.shape(), total.dtype(), total.device());
    ctx.exclusive_scan_sum(after, total, true, layer);
    if (ctx.rank() + 1 < ctx.size()) add_to_every_chunk(g, after);
}

Tensor local_slice(const Tensor& x, const SlicePlan& plan, int rank) {
    ITTT_CHECK(x.ndim() >= 2 && x.dim(1) == plan.n, "context parallel: ", x.describe(), " is not (B, ", plan.n, ", ...)");
    return take_rows(x, plan.begin(rank), plan.end(rank));
}

Tensor gather_slices(Context& ctx, const SlicePlan& plan, const Tensor& local) {
    ITTT_NVTX_RANGE("cp_gather");
    const int r = ctx.rank();
    ITTT_CHECK(local.ndim() >= 2 && local.dim(1) == plan.length(r), ctx.who(), ": gather_slices: ", local.describe(),
               " is not (B, ", plan.length(r), ", ...)");
    Exchange ex(ctx, Traffic::Gather, -1, "the gather of results on rank 0");
    std::vector<Tensor> parts(static_cast<size_t>(ctx.size()));
    if (r != 0) {
        ex.send(local, 0);
    } else {
        parts[0] = local;
        for (int j = 1; j < ctx.size(); ++j) {
            Shape s = local.shape();
            s[1] = plan.length(j);
            parts[static_cast<size_t>(j)] = Tensor::empty(s, local.dtype(), local.device());
            ex.recv(parts[static_cast<size_t>(j)], j);
        }
    }
    ex.start();
    ex.wait();
    if (r != 0) return Tensor();
    Shape s = local.shape();
    s[1] = plan.n;
    Tensor full = Tensor::empty(s, local.dtype(), local.device());
    for (int j = 0; j < ctx.size(); ++j) put_rows(full, plan.begin(j), parts[static_cast<size_t>(j)], false);
    return full;
}

void require_same_input(Context& ctx, const Tensor& tokens, const std::string& options) {
    Tensor host = tokens.to(Device::CPU);
    ctx.require_same("the input", {{"shape", shape_str(tokens.shape())},
                                   {"the hash of the token ids", hash_hex(fnv1a_hash(host.raw(), host.bytes()))},
                                   {"forward options", options}});
}

}  // namespace ittt::parallel
