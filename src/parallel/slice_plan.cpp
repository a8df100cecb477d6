#include "parallel/slice_plan.h"

#include <algorithm>

#include "runtime/error.h"

namespace ittt::parallel {

SlicePlan SlicePlan::make(int64_t n, int chunk, int ranks) {
    ITTT_CHECK(ranks >= 1, "context parallel: need at least one rank, found ", ranks);
    ITTT_CHECK(chunk >= 1, "context parallel: ttt_chunk must be >= 1, found ", chunk);
    ITTT_CHECK(n >= 1, "context parallel: empty sequence");
    SlicePlan p;
    p.ranks = ranks;
    p.chunk = chunk;
    p.n = n;
    const int64_t T = p.chunks();
    ITTT_CHECK(T >= ranks, "context parallel: a sequence of ", n, " tokens has ", T, " chunk", T == 1 ? "" : "s", " of ttt_chunk ",
               chunk, ", fewer than the ", ranks, " ranks; every rank needs at least one chunk (use fewer ranks, a longer "
               "sequence or a smaller ttt_chunk)");
    p.starts.resize(static_cast<size_t>(ranks) + 1);
    int64_t c = 0;
    for (int r = 0; r < ranks; ++r) {
        p.starts[static_cast<size_t>(r)] = std::min(n, c * chunk);
        c += T / ranks + (r < T % ranks ? 1 : 0);
    }
    p.starts[static_cast<size_t>(ranks)] = n;
    return p;
}

int SlicePlan::owner(int64_t t) const {
    auto it = std::upper_bound(starts.begin(), starts.end(), t);
    return static_cast<int>(it - starts.begin()) - 1;
}

std::vector<SlicePlan::Piece> SlicePlan::halo_sources(int r, int window) const {
    std::vector<Piece> out;
    if (window <= 1) return out;
    const int64_t lo = std::max<int64_t>(0, begin(r) - (window - 1)), hi = begin(r);
    for (int j = 0; j < r; ++j) {
        int64_t b = std::max(lo, begin(j)), e = std::min(hi, end(j));
        if (b < e) out.push_back({j, b, e});
    }
    return out;
}

std::vector<SlicePlan::Piece> SlicePlan::halo_destinations(int r, int window) const {
    std::vector<Piece> out;
    for (int j = r + 1; j < ranks; ++j)
        for (const Piece& p : halo_sources(j, window))
            if (p.rank == r) out.push_back({j, p.begin, p.end});
    return out;
}

}  // namespace ittt::parallel
