#pragma once
// SwiGLU gate of the Llama MLP: out = silu(gate) ⊙ up, silu(g) = g · σ(g).

#include <cstddef>

#include "p4lm/ops/detail/common.hpp"

namespace p4lm::ops {

// gate (..., H), up (..., H) -> out (..., H) = silu(gate) · up
template <Scalar T>
void swiglu_forward(CpuView<T> out, const CpuView<T>& gate, const CpuView<T>& up) {
  expect_shape("swiglu_forward: up", up.shape(), gate.shape());
  expect_shape("swiglu_forward: out", out.shape(), gate.shape());
  detail::simd_map(
      gate.numel(), [](auto g, auto u) { return g / (T(1) + xsimd::exp(-g)) * u; }, out.data(), gate.data(),
      up.data());
}

// dout, gate, up (..., H) -> dgate += dout · up · silu'(gate),  dup += dout · silu(gate)
// silu'(g) = σ(g) (1 + g (1 - σ(g))). Either gradient may be {} (skipped).
template <Scalar T>
void swiglu_backward(CpuView<T> dgate, CpuView<T> dup, const CpuView<T>& dout, const CpuView<T>& gate,
                     const CpuView<T>& up) {
  expect_shape("swiglu_backward: up", up.shape(), gate.shape());
  expect_shape("swiglu_backward: dout", dout.shape(), gate.shape());
  const bool dg = detail::given(dgate), du = detail::given(dup);
  if (dg) expect_shape("swiglu_backward: dgate", dgate.shape(), gate.shape());
  if (du) expect_shape("swiglu_backward: dup", dup.shape(), gate.shape());
  const std::size_t n = gate.numel();
  if (dg)
    detail::simd_map(
        n,
        [](auto acc, auto d, auto g, auto u) {
          const auto s = T(1) / (T(1) + xsimd::exp(-g));
          return acc + d * u * s * (T(1) + g * (T(1) - s));
        },
        dgate.data(), dgate.data(), dout.data(), gate.data(), up.data());
  if (du)
    detail::simd_map(
        n, [](auto acc, auto d, auto g) { return acc + d * g / (T(1) + xsimd::exp(-g)); }, dup.data(),
        dup.data(), dout.data(), gate.data());
}

}  // namespace p4lm::ops
