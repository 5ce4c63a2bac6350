#pragma once
// Residual connection: out = a + b; its backward passes the gradient to both branches.

#include <cstddef>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

// a, b (any shape, equal) -> out (same shape) = a + b; out may alias a or b
template <Scalar T>
void residual_forward(CpuView<T> out, const CpuView<T>& a, const CpuView<T>& b) {
  check::residual_forward(out, a, b);
  detail::simd_map(
      a.numel(), [](auto x, auto y) { return x + y; }, out.data(), a.data(), b.data());
}

// dout -> da += dout, db += dout (either may be {})
template <Scalar T>
void residual_backward(CpuView<T> da, CpuView<T> db, const CpuView<T>& dout) {
  check::residual_backward(da, db, dout);
  const auto add = [](auto acc, auto d) { return acc + d; };
  if (is_given(da)) {
    detail::simd_map(dout.numel(), add, da.data(), da.data(), dout.data());
  }
  if (is_given(db)) {
    detail::simd_map(dout.numel(), add, db.data(), db.data(), dout.data());
  }
}

}  // namespace p4lm::ops
