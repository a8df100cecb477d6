// sequence_rows.h: runs of rows of every sequence of a batch (internal to src/parallel).
// x is (B, n, W...): B sequences of n rows; a "run" is rows [r0, r1) of each of them.
// Works on any device (views and copies only).
#pragma once
#include <cstdint>

#include "runtime/tensor.h"

namespace ittt::parallel {

// rows [r0, r1) of every sequence of x (B, n, W...), packed: (B, r1 - r0, W...).
Tensor take_rows(const Tensor& x, int64_t r0, int64_t r1);
// part (B, len, W...) written (add: added) into rows [r0, r0 + len) of every sequence of x.
void put_rows(Tensor& x, int64_t r0, const Tensor& part, bool add);

}  // namespace ittt::parallel
