#pragma once
// GELU, tanh approximation (GPT-2): y = x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))).
// Computed as the equal x · σ(2u) = x / (1 + exp(-2u)), u the tanh argument: one exp_fast and a division
// instead of a tanh (three times the work, and the memory-bound op was waiting on it), and no
// cancellation in 1 + tanh u for negative u.

#include <cstddef>

#include "p4lm/backend/cpu/simd.hpp"
#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/fast_math.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {
inline constexpr double gelu_scale = 0.7978845608028654;  // √(2/π)
inline constexpr double gelu_cube = 0.044715;

// exp(-2u) for the batch x, the argument capped at 80 (the capped value already makes σ(2u) < 1e-34,
// and e · σ(2u) in backward stays finite in double too). min's operand order passes NaN through.
template <class B>
B gelu_exp_minus_2u(const B& x, const B& x2) {
  using T = typename B::value_type;
  const B a = T(-2 * gelu_scale) * x * backend::cpu_simd::fma(B(T(gelu_cube)), x2, B(T(1)));
  return exp_fast(xsimd::min(B(T(80)), a));
}
}  // namespace detail

// inp (any shape) -> out (same shape)
template <Scalar T>
void gelu_forward(CpuView<T> out, const CpuView<T>& inp) {
  check::unary_forward("gelu_forward", out, inp);
  detail::simd_map(
      inp.numel(), [](auto x) { return x / (T(1) + detail::gelu_exp_minus_2u(x, x * x)); }, out.data(),
      inp.data());
}

// dout, inp (same shape) -> dinp (same shape) += dout · gelu'(inp)
template <Scalar T>
void gelu_backward(CpuView<T> dinp, const CpuView<T>& dout, const CpuView<T>& inp) {
  check::unary_backward("gelu_backward", dinp, dout, inp);
  detail::simd_map(
      inp.numel(),
      [](auto d, auto x, auto g) {
        // With s = σ(2u) and e = exp(-2u): 1 + tanh u = 2s and 1 - tanh² u = 4 s (1 - s) = 4 s² e, so
        // gelu' = s + 2 x s² e u'(x), u' = √(2/π) (1 + 3 · 0.044715 x²).
        const auto x2 = x * x;
        const auto e = detail::gelu_exp_minus_2u(x, x2);
        const auto s = T(1) / (T(1) + e);
        const auto du = T(2 * detail::gelu_scale) *
                        backend::cpu_simd::fma(decltype(x)(T(3 * detail::gelu_cube)), x2, decltype(x)(T(1)));
        return backend::cpu_simd::fma(g, backend::cpu_simd::fma(x * s * s * e, du, s), d);
      },
      dinp.data(), dinp.data(), inp.data(), dout.data());
}

// Exact GELU (BERT's "gelu", PyTorch's default): y = x/2 · (1 + erf(x/√2)). The tanh form above differs
// from it by up to ~5e-4, too much to reproduce a BERT checkpoint's embeddings; xsimd's vector erf.
// inp (any shape) -> out (same shape)
template <Scalar T>
void gelu_erf_forward(CpuView<T> out, const CpuView<T>& inp) {
  check::unary_forward("gelu_erf_forward", out, inp);
  detail::simd_map(
      inp.numel(), [](auto x) { return T(0.5) * x * (T(1) + xsimd::erf(x * T(0.7071067811865476))); },
      out.data(), inp.data());
}

// dout, inp (same shape) -> dinp (same shape) += dout · (Φ(x) + x φ(x)), Φ, φ the normal cdf and pdf
template <Scalar T>
void gelu_erf_backward(CpuView<T> dinp, const CpuView<T>& dout, const CpuView<T>& inp) {
  check::unary_backward("gelu_erf_backward", dinp, dout, inp);
  detail::simd_map(
      inp.numel(),
      [](auto d, auto x, auto g) {
        using V = decltype(x);
        const auto cdf = T(0.5) * (T(1) + xsimd::erf(x * T(0.7071067811865476)));
        const auto pdf = T(0.3989422804014327) * xsimd::exp(T(-0.5) * x * x);
        return backend::cpu_simd::fma(g, backend::cpu_simd::fma(x, pdf, cdf), V(d));
      },
      dinp.data(), dinp.data(), inp.data(), dout.data());
}

}  // namespace p4lm::ops
