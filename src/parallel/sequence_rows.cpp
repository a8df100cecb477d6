#include "parallel/sequence_rows.h"

#include <algorithm>

#include "ops/ops.h"

namespace ittt::parallel {

Tensor take_rows(const Tensor& x, int64_t r0, int64_t r1) {
    const int64_t B = x.dim(0), n = x.dim(1), len = r1 - r0, W = x.numel() / std::max<int64_t>(1, B * n);
    ITTT_CHECK(0 <= r0 && r0 <= r1 && r1 <= n, "take_rows: rows [", r0, ", ", r1, ") of ", x.describe());
    Shape shape = x.shape();
    shape[1] = len;
    Tensor out = Tensor::empty(shape, x.dtype(), x.device());
    Tensor src = x.view({B * n, W}), dst = out.view({B * len, W});
    for (int64_t b = 0; b < B; ++b) {
        Tensor to = dst.rows(b * len, (b + 1) * len);
        to.copy_from(src.rows(b * n + r0, b * n + r1));
    }
    return out;
}

void put_rows(Tensor& x, int64_t r0, const Tensor& part, bool add) {
    const int64_t B = x.dim(0), n = x.dim(1), len = part.dim(1), W = x.numel() / std::max<int64_t>(1, B * n);
    ITTT_CHECK(part.dim(0) == B && 0 <= r0 && r0 + len <= n, "put_rows: ", part.describe(), " at row ", r0, " of ", x.describe());
    Tensor dst = x.view({B * n, W}), src = part.view({B * len, W});
    for (int64_t b = 0; b < B; ++b) {
        Tensor to = dst.rows(b * n + r0, b * n + r0 + len);
        if (add) ops::add_inplace(to, src.rows(b * len, (b + 1) * len));
        else to.copy_from(src.rows(b * len, (b + 1) * len));
    }
}

}  // namespace ittt::parallel
