// rng.h: a seeded, counter-based random generator that gives the same numbers
// on every machine and on the GPU.
//
// Number i of stream `seed` is splitmix64(seed * GOLDEN + i): a pure function of
// (seed, i). That is what makes it reproducible everywhere (no hidden state in a
// library's distribution objects, whose algorithms differ between standard
// libraries) and parallel (a GPU thread computes element i directly, no
// sequential state to share). SplitMix64 passes BigCrush as a hash of a counter;
// for weight init and toy data that is more than enough.
//
//   Rng rng(42);            float x = rng.normal();      int t = rng.randint(0, 10);
//   uniform_at(42, i)       // stateless: the same value a GPU kernel would compute
#pragma once
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#if defined(__CUDACC__)
#define ITTT_HOST_DEVICE __host__ __device__
#else
#define ITTT_HOST_DEVICE
#endif

namespace ittt {

ITTT_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// The i-th 64-bit draw of stream `seed`.
ITTT_HOST_DEVICE inline uint64_t random_bits_at(uint64_t seed, uint64_t i) {
    return splitmix64(splitmix64(seed) + i * 0x9E3779B97F4A7C15ull);
}

// Uniform in [0, 1) with 53 random bits.
ITTT_HOST_DEVICE inline double uniform_at(uint64_t seed, uint64_t i) {
    return static_cast<double>(random_bits_at(seed, i) >> 11) * (1.0 / 9007199254740992.0);
}

// Standard normal via Box-Muller on draws 2i and 2i+1 (one normal per pair keeps
// element i a pure function of i).
ITTT_HOST_DEVICE inline double normal_at(uint64_t seed, uint64_t i) {
    double u1 = uniform_at(seed, 2 * i);
    double u2 = uniform_at(seed, 2 * i + 1);
    double r = std::sqrt(-2.0 * std::log(1.0 - u1));  // 1-u1 in (0,1]: log is finite
    return r * std::cos(6.283185307179586 * u2);
}

// A sequential view of one stream: draw k is random_bits_at(seed, k).
class Rng {
public:
    explicit Rng(uint64_t seed = 0) : seed_(seed) {}

    uint64_t seed() const { return seed_; }
    uint64_t counter() const { return counter_; }
    void set_counter(uint64_t c) { counter_ = c; }  // resume a stream exactly

    uint64_t next_u64() { return random_bits_at(seed_, counter_++); }
    double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
    double normal() {
        double v = normal_at(seed_, counter_);
        counter_ += 1;
        return v;
    }
    // Uniform integer in [lo, hi). Rejection sampling removes modulo bias.
    int64_t randint(int64_t lo, int64_t hi) {
        uint64_t range = static_cast<uint64_t>(hi - lo);
        uint64_t limit = UINT64_MAX - UINT64_MAX % range;
        uint64_t x;
        do { x = next_u64(); } while (x >= limit);
        return lo + static_cast<int64_t>(x % range);
    }
    // Fisher-Yates, reproducible across standard libraries (std::shuffle is not).
    template <class T>
    void shuffle(std::vector<T>& v) {
        for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(randint(0, static_cast<int64_t>(i)))]);
    }
    // An independent child stream, e.g. one per batch element or per layer.
    Rng fork(uint64_t tag) const { return Rng(splitmix64(seed_ ^ splitmix64(tag + 0x5851F42D4C957F2Dull))); }

private:
    uint64_t seed_;
    uint64_t counter_ = 0;
};

}  // namespace ittt
