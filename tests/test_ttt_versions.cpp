// The per-chunk-GEMM versions (2) of ttt_delta and ttt_apply against the direct loops (1).
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
struct VersionGuard {  // restores the default versions even when a check throws
    ~VersionGuard() {
        ops::set_version("ttt_delta", 0);
        ops::set_version("ttt_apply", 0);
    }
};
}  // namespace

TEST_CASE("TTT delta and apply: per-chunk GEMM versions equal the direct loops", "[ttt_apply][ttt_delta]") {
    VersionGuard guard;
    for (auto [n, C] : {std::pair{1, 1}, {17, 5}, {32, 8}, {40, 64}}) {
        const int64_t B = 2, d = 12, f = 20, T = (n + C - 1) / C;
        Tensor v = random_tensor({B, n, d}, 1), z = random_tensor({B, n, f}, 2), dout = random_tensor({B, n, d}, 3);
        Tensor wd = random_tensor({d, f}, 4), s = random_tensor({B, T, d, f}, 5), g = random_tensor({B, T, d, f}, 6);
        Tensor out[2][4];
        for (int ver : {1, 2}) {
            ops::set_version("ttt_delta", ver);
            ops::set_version("ttt_apply", ver);
            Tensor delta = Tensor::empty({B, T, d, f}), o = Tensor::empty({B, n, d});
            Tensor dz = Tensor::empty({B, n, f}), dv = Tensor::empty({B, n, d});
            ops::ttt_chunk_delta(delta, v, z, C);
            ops::ttt_apply_forward(o, z, wd, s, 0.7, C);
            ops::ttt_apply_backward(dz, dv, dout, z, v, wd, s, g, 0.7, C);
            Tensor* slot = out[ver - 1];
            slot[0] = delta, slot[1] = o, slot[2] = dz, slot[3] = dv;
        }
        INFO("n = " << n << ", C = " << C);
        // Same products summed in another order in fp32, sums of <= 64 terms of O(1): 1e-4.
        const char* names[4] = {"delta", "o", "dz", "dv"};
        for (int k = 0; k < 4; ++k) CHECK(check_close(out[1][k], out[0][k], 1e-4, 1e-5, names[k]));
    }
}
