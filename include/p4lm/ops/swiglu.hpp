#pragma once
// SwiGLU gate of the Llama MLP: out = silu(gate) ⊙ up, silu(g) = g · σ(g).

#include <cstddef>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

// gate (..., H), up (..., H) -> out (..., H) = silu(gate) · up
template <Scalar T>
void swiglu_forward(CpuView<T> out, const CpuView<T>& gate, const CpuView<T>& up) {
  check::swiglu_forward(out, gate, up);
  detail::simd_map(
      gate.numel(), [](auto g, auto u) { return g / (T(1) + xsimd::exp(-g)) * u; }, out.data(), gate.data(),
      up.data());
}

// dout, gate, up (..., H) -> dgate += dout · up · silu'(gate),  dup += dout · silu(gate)
// silu'(g) = σ(g) (1 + g (1 - σ(g))). Either gradient may be {} (skipped).
template <Scalar T>
void swiglu_backward(CpuView<T> dgate, CpuView<T> dup, const CpuView<T>& dout, const CpuView<T>& gate,
                     const CpuView<T>& up) {
  check::swiglu_backward(dgate, dup, dout, gate, up);
  const bool dg = is_given(dgate), du = is_given(dup);
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
