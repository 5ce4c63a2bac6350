#pragma once
// GELU, tanh approximation (GPT-2): y = x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))).

#include <cstddef>

#include "p4lm/ops/detail/common.hpp"

namespace p4lm::ops {

namespace detail {
inline constexpr double gelu_scale = 0.7978845608028654;  // √(2/π)
inline constexpr double gelu_cube = 0.044715;
}  // namespace detail

// inp (any shape) -> out (same shape)
template <Scalar T>
void gelu_forward(CpuView<T> out, const CpuView<T>& inp) {
  expect_shape("gelu_forward: out", out.shape(), inp.shape());
  detail::simd_map(
      inp.numel(),
      [](auto x) {
        const auto u = T(detail::gelu_scale) * (x + T(detail::gelu_cube) * x * x * x);
        return T(0.5) * x * (T(1) + xsimd::tanh(u));
      },
      out.data(), inp.data());
}

// dout, inp (same shape) -> dinp (same shape) += dout · gelu'(inp)
template <Scalar T>
void gelu_backward(CpuView<T> dinp, const CpuView<T>& dout, const CpuView<T>& inp) {
  expect_shape("gelu_backward: dout", dout.shape(), inp.shape());
  expect_shape("gelu_backward: dinp", dinp.shape(), inp.shape());
  detail::simd_map(
      inp.numel(),
      [](auto d, auto x, auto g) {
        const auto x2 = x * x;
        const auto th = xsimd::tanh(T(detail::gelu_scale) * (x + T(detail::gelu_cube) * x2 * x));
        const auto local = T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * T(detail::gelu_scale) *
                                                      (T(1) + T(3 * detail::gelu_cube) * x2);
        return d + g * local;
      },
      dinp.data(), dinp.data(), inp.data(), dout.data());
}

}  // namespace p4lm::ops
