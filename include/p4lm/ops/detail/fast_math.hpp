#pragma once
// Vector exp for the memory-bound CPU ops (do not include directly). xsimd's exp handles every corner
// case and costs about three times the work; the vocabulary-wide softmaxes and GELU spend most of their
// time in it, so float batches take this shorter version. Double batches keep xsimd::exp: the
// finite-difference tests run in double and the speed that matters is float's.

#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "p4lm/backend/cpu/simd.hpp"

namespace p4lm::ops::detail {

// The float core, for x already clamped to where the result is a normal float:
// exp(x) = 2^n · exp(r) with n = round(x / ln 2) and |r| <= ln(2)/2; exp(r) = 1 + r (1 + r q(r)) with
// q a degree-4 polynomial interpolating (e^r - 1 - r) / r² at Chebyshev nodes (its own error is 1e-8
// relative, far below float rounding; the nested form keeps rounding to ~1 ulp); 2^n is added to
// the exponent bits.
template <class A>
xsimd::batch<float, A> exp_in_range(xsimd::batch<float, A> xc) noexcept {
  using F = xsimd::batch<float, A>;
  using I = xsimd::batch<std::int32_t, A>;
  // Round x / ln 2 to an integer by adding 1.5 · 2^23: the sum's low mantissa bits hold n, so n << 23
  // is the sum's bits shifted (the constant's own bits shift out), no round or convert instruction.
  const F magic(12582912.0f);
  const F t = backend::cpu_simd::fma(xc, F(1.44269504088896341f), magic);
  const F n = t - magic;
  // ln 2 split in two floats: n · hi is exact inside the FMA, lo restores the remaining bits.
  F r = backend::cpu_simd::fma(n, F(-0.693147182464599609375f), xc);
  r = backend::cpu_simd::fma(n, F(1.904654299957768e-09f), r);
  F q(1.392617589e-03f);
  q = backend::cpu_simd::fma(q, r, F(8.363173343e-03f));
  q = backend::cpu_simd::fma(q, r, F(4.166655615e-02f));
  q = backend::cpu_simd::fma(q, r, F(1.666657776e-01f));
  q = backend::cpu_simd::fma(q, r, F(0.5f));
  const F p = backend::cpu_simd::fma(backend::cpu_simd::fma(q, r, F(1.0f)), r, F(1.0f));
  return xsimd::bitwise_cast<F>(xsimd::bitwise_cast<I>(p) + (xsimd::bitwise_cast<I>(t) << 23));
}

// exp(x) for a float batch within 1 ulp of the exact value (0.91 measured by tests/ops/test_fast_math.cpp
// checks a dense sweep) for x in [-87.33, 88.37]. Below that range (where exp is subnormal) it
// returns 0, above it exp(88.37) instead of overflowing, NaN stays NaN.
template <class A>
xsimd::batch<float, A> exp_fast(xsimd::batch<float, A> x) noexcept {
  using F = xsimd::batch<float, A>;
  const F xc = xsimd::min(F(88.37f), x);  // this operand order lets NaN through (minps returns x)
  return xsimd::select(xc < F(-87.33f), F(0.0f), exp_in_range(xc));
}

template <class A>
xsimd::batch<double, A> exp_fast(xsimd::batch<double, A> x) noexcept {
  return xsimd::exp(x);
}

// exp(x) for x <= 0 whose result is only added to a sum that is >= 1 (a softmax denominator shifted by
// its max): exp_fast without the overflow clamp, and below -87 it returns exp(-87) ~ 1.6e-38 instead
// of 0, which no float sum >= 1 can see. One max replaces a min, a compare and a select: these rows
// are bound by the exps' instruction count. NaN stays NaN (maxps returns its second operand then).
template <class A>
xsimd::batch<float, A> exp_nonpositive(xsimd::batch<float, A> x) noexcept {
  return exp_in_range(xsimd::max(xsimd::batch<float, A>(-87.0f), x));
}

template <class A>
xsimd::batch<double, A> exp_nonpositive(xsimd::batch<double, A> x) noexcept {
  return xsimd::exp(x);
}

}  // namespace p4lm::ops::detail
