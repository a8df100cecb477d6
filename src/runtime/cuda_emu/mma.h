// mma.h (CUDA emulator): nvcuda::wmma, for the one shape the project uses:
// m16n16k8 with precision::tf32 inputs (matrix_a 16 x 8, matrix_b 8 x 16) and float
// accumulators (16 x 16). Other shapes and types fail to compile with a message.
//
// Fragments hold their tile's elements spread over the 32 lanes of a warp in a
// layout of the emulator's choosing, deliberately scrambled (a fixed pseudo-random
// permutation per fragment kind), so that code which assumes a fragment layout
// gets wrong answers instead of passing by luck. What the CUDA documentation
// promises still holds: element-wise loops over frag.x[i] (num_elements per lane),
// and two accumulator fragments map their elements alike.
//
// load/store/mma are warp-collective (all 32 lanes, as the _sync says); the last
// lane to arrive does the warp's work. The hardware's rules are checked: every lane
// passes the same pointer and ldm, the pointer is 256-bit (32-byte) aligned, ldm is
// a multiple of 4 floats. mma_sync uses the inputs' top 19 bits (TF32) and adds the
// 8 products of each output in order in float; the tensor cores' own summation
// order and rounding are not reproduced (docs/cuda-emulator.md).
#pragma once
#include <cstdint>
#include <string>

#include "cuda_runtime.h"
#include "runtime/error.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
    static_assert(ittt::cuda_emu::kNotEmulated<Use, T, Layout>,
                  "the CUDA emulator's WMMA provides fragment<matrix_a / matrix_b, 16, 16, 8, precision::tf32, row_major / "
                  "col_major> and fragment<accumulator, 16, 16, 8, float> only (src/runtime/cuda_emu/mma.h)");
};

namespace detail {

// A fixed pseudo-random permutation of 0 .. N-1 (Fisher-Yates with a 64-bit LCG).
template <int N>
struct Scramble {
    uint16_t position[N];
    constexpr explicit Scramble(uint64_t seed) : position{} {
        for (int i = 0; i < N; ++i) position[i] = static_cast<uint16_t>(i);
        for (int i = N - 1; i > 0; --i) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const int j = static_cast<int>((seed >> 33) % static_cast<uint64_t>(i + 1));
            const uint16_t t = position[i];
            position[i] = position[j];
            position[j] = t;
        }
    }
};

// Element i of lane l's fragment is tile element position[l * kPerLane + i] (row-major in the tile).
template <class Use>
struct Tile;
template <>
struct Tile<matrix_a> {
    static constexpr int kRows = 16, kCols = 8, kPerLane = 4;
    static constexpr Scramble<128> layout{0xa11ce5ull};
};
template <>
struct Tile<matrix_b> {
    static constexpr int kRows = 8, kCols = 16, kPerLane = 4;
    static constexpr Scramble<128> layout{0xb0b5ull};
};
template <>
struct Tile<accumulator> {
    static constexpr int kRows = 16, kCols = 16, kPerLane = 8;
    static constexpr Scramble<256> layout{0xacc0ull};
};

template <class Use, class T>
struct FragmentBase {
    using element_type = T;
    static constexpr int num_elements = Tile<Use>::kPerLane;
    T x[num_elements];
};

}  // namespace detail

template <class Layout>
class fragment<matrix_a, 16, 16, 8, precision::tf32, Layout> : public detail::FragmentBase<matrix_a, float> {};
template <class Layout>
class fragment<matrix_b, 16, 16, 8, precision::tf32, Layout> : public detail::FragmentBase<matrix_b, float> {};
template <>
class fragment<accumulator, 16, 16, 8, float, void> : public detail::FragmentBase<accumulator, float> {};

// Round to TF32 (10 mantissa bits), to nearest with ties away from zero, as cvt.rna.tf32.f32.
inline float __float_to_tf32(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;  // inf and NaN unchanged
    u = (u + 0x1000u) & 0xffffe000u;
    return __uint_as_float(u);
}

template <class Use, class T, class L>
void fill_fragment(fragment<Use, 16, 16, 8, T, L>& f, float value) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = value;
}

namespace detail {

using ittt::cuda_emu::Site;

// What each lane hands to a collective: its fragment(s), the pointer and ldm it passed.
struct LoadStore {
    float* fragment;
    float* pointer;
    unsigned ldm;
    bool tile_row_major;  // element (r, c) at pointer[r * ldm + c], else pointer[c * ldm + r]
    Site site;
};

inline std::string hex_address(const void* p) { return ittt::cat(p); }

// The hardware's rules for the pointer and ldm, the same for every lane.
inline void check_load_store(void* const* lane_data, const char* what) {
    const auto* first = static_cast<const LoadStore*>(lane_data[0]);
    for (int l = 1; l < 32; ++l) {
        const auto* o = static_cast<const LoadStore*>(lane_data[l]);
        if (o->pointer != first->pointer || o->ldm != first->ldm)
            ittt::cuda_emu::fault(ittt::cat(what, ": lane ", l, " passes pointer ", hex_address(o->pointer), " and ldm ", o->ldm, ", lane 0 ",
                                            hex_address(first->pointer), " and ", first->ldm, " (every lane must pass the same)"),
                                  first->site);
    }
    if (reinterpret_cast<uintptr_t>(first->pointer) % 32 != 0)
        ittt::cuda_emu::fault(ittt::cat(what, ": pointer ", hex_address(first->pointer), " is not 256-bit (32-byte) aligned, as the hardware requires"),
                              first->site);
    if (first->ldm % 4 != 0)
        ittt::cuda_emu::fault(ittt::cat(what, ": ldm ", first->ldm, " is not a multiple of 4 (16 bytes of float), as the hardware requires"), first->site);
}

template <class Use, bool kStore>
void load_store_warp(void* const* lane_data, unsigned) {
    check_load_store(lane_data, kStore ? "wmma::store_matrix_sync" : "wmma::load_matrix_sync");
    for (int l = 0; l < 32; ++l) {
        auto* d = static_cast<LoadStore*>(lane_data[l]);
        for (int i = 0; i < Tile<Use>::kPerLane; ++i) {
            const int p = Tile<Use>::layout.position[l * Tile<Use>::kPerLane + i];
            const int r = p / Tile<Use>::kCols, c = p % Tile<Use>::kCols;
            float* element = d->pointer + (d->tile_row_major ? static_cast<size_t>(r) * d->ldm + c : static_cast<size_t>(c) * d->ldm + r);
            if (kStore) *element = d->fragment[i];
            else d->fragment[i] = *element;
        }
    }
}

template <class Use>
void load_store(float* fragment, float* pointer, unsigned ldm, bool tile_row_major, bool store, Site site) {
    LoadStore mine{fragment, pointer, ldm, tile_row_major, site};
    ittt::cuda_emu::warp_collective(0xffffffffu, &mine, store ? &load_store_warp<Use, true> : &load_store_warp<Use, false>,
                                    store ? "wmma::store_matrix_sync" : "wmma::load_matrix_sync", site);
}

inline float tf32_input(float x) { return __uint_as_float(__float_as_uint(x) & 0xffffe000u); }  // the bits the tensor core reads

struct Mma {
    float* d;
    const float* a;
    const float* b;
    const float* c;
};

inline void mma_warp(void* const* lane_data, unsigned) {
    float A[16][8], B[8][16], D[16][16];
    for (int l = 0; l < 32; ++l) {
        const auto* m = static_cast<const Mma*>(lane_data[l]);
        for (int i = 0; i < 4; ++i) {
            const int pa = Tile<matrix_a>::layout.position[l * 4 + i], pb = Tile<matrix_b>::layout.position[l * 4 + i];
            A[pa / 8][pa % 8] = tf32_input(m->a[i]);
            B[pb / 16][pb % 16] = tf32_input(m->b[i]);
        }
        for (int i = 0; i < 8; ++i) {
            const int pc = Tile<accumulator>::layout.position[l * 8 + i];
            D[pc / 16][pc % 16] = m->c[i];
        }
    }
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) {
            float acc = D[r][c];
            for (int k = 0; k < 8; ++k) acc += A[r][k] * B[k][c];
            D[r][c] = acc;
        }
    for (int l = 0; l < 32; ++l) {  // after every input is read: d may be c
        auto* m = static_cast<const Mma*>(lane_data[l]);
        for (int i = 0; i < 8; ++i) {
            const int pc = Tile<accumulator>::layout.position[l * 8 + i];
            m->d[i] = D[pc / 16][pc % 16];
        }
    }
}

}  // namespace detail

template <class L>
void load_matrix_sync(fragment<matrix_a, 16, 16, 8, precision::tf32, L>& a, const float* p, unsigned ldm,
                      ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    detail::load_store<matrix_a>(a.x, const_cast<float*>(p), ldm, std::is_same_v<L, row_major>, false, site);
}
template <class L>
void load_matrix_sync(fragment<matrix_b, 16, 16, 8, precision::tf32, L>& b, const float* p, unsigned ldm,
                      ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    detail::load_store<matrix_b>(b.x, const_cast<float*>(p), ldm, std::is_same_v<L, row_major>, false, site);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 8, float>& c, const float* p, unsigned ldm, layout_t layout,
                             ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    detail::load_store<accumulator>(c.x, const_cast<float*>(p), ldm, layout == mem_row_major, false, site);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 8, float>& c, unsigned ldm, layout_t layout,
                              ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    detail::load_store<accumulator>(const_cast<float*>(c.x), p, ldm, layout == mem_row_major, true, site);
}

template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 8, float>& d, const fragment<matrix_a, 16, 16, 8, precision::tf32, LA>& a,
              const fragment<matrix_b, 16, 16, 8, precision::tf32, LB>& b, const fragment<accumulator, 16, 16, 8, float>& c,
              ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    detail::Mma mine{d.x, a.x, b.x, c.x};
    ittt::cuda_emu::warp_collective(0xffffffffu, &mine, &detail::mma_warp, "wmma::mma_sync", site);
}

}  // namespace nvcuda::wmma
