// slice_plan.h: how context parallelism cuts one sequence into per-rank slices.
//
// A sequence of n tokens has T = ceil(n / C) TTT chunks of C tokens (the last may
// be short). The chunks are dealt out in contiguous runs: rank r holds chunks
// [c0_r, c1_r), the first T mod R ranks one chunk more than the rest, so rank r's
// tokens are [begin(r), end(r)) with begin a multiple of C. Only the last rank can
// hold the short tail chunk. Every rank needs at least one chunk (T >= R).
//
// Why chunk-aligned: the TTT conv is cut at chunk edges and the fast-weight update
// is per chunk, so a slice that starts on a chunk edge needs nothing from its
// neighbours except the scan's prefix (docs/parallelism.md). Attention needs more
// (halo, ring); halo_sources() says which earlier ranks hold a window's keys.
//
// Pure arithmetic, no MPI: the plan is the same on every rank by construction.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ittt::parallel {

struct SlicePlan {
    int ranks = 1;
    int chunk = 1;                 // C
    int64_t n = 0;                 // tokens of the whole sequence
    std::vector<int64_t> starts;   // ranks + 1 token offsets: rank r holds [starts[r], starts[r+1])

    // Throws an Error naming n, C and R when there are fewer chunks than ranks.
    static SlicePlan make(int64_t n, int chunk, int ranks);

    int64_t begin(int r) const { return starts[static_cast<size_t>(r)]; }
    int64_t end(int r) const { return starts[static_cast<size_t>(r) + 1]; }
    int64_t length(int r) const { return end(r) - begin(r); }
    int64_t chunks() const { return (n + chunk - 1) / chunk; }
    // The rank holding token t.
    int owner(int64_t t) const;

    // A run of tokens [begin, end) that rank `rank` holds and another rank needs.
    struct Piece {
        int rank;
        int64_t begin, end;
    };
    // Sliding window w: rank r's queries see keys back to begin(r) - (w - 1). The pieces
    // of [max(0, begin(r) - w + 1), begin(r)) in rank order (several when slices are
    // shorter than the window; none for rank 0, for w <= 1 and for w <= 0 = no window,
    // which the ring handles instead).
    std::vector<Piece> halo_sources(int r, int window) const;
    // The same relation seen from the sender: what rank r sends, to which later ranks.
    std::vector<Piece> halo_destinations(int r, int window) const;
};

}  // namespace ittt::parallel
