#pragma once
// Test-only helpers for the matmul/element-wise/loss/optimizer op tests (namespace ops_test, apart
// from the attention tests' helpers): random tensors, casts, and the gradient check of one op input
// that also verifies backward accumulates.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>

#include <catch2/catch.hpp>

#include <p4lm/core/gradcheck.hpp>
#include <p4lm/core/rng.hpp>
#include <p4lm/core/tensor.hpp>

namespace p4lm::ops_test {

// Uniform in [lo, hi).
template <class T = double>
CpuTensor<T> uniform(Shape shape, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Rng rng(seed);
  CpuTensor<T> t(shape);
  for (auto& x : t.span()) x = static_cast<T>(lo + (hi - lo) * rng.uniform_double());
  return t;
}

// Upstream gradients bounded away from zero (|w| in [0.5, 1.5)), so no element of the checked
// gradient is a near-zero whose relative error is all finite-difference noise.
template <class T = double>
CpuTensor<T> weights(Shape shape, std::uint64_t seed) {
  Rng rng(seed);
  CpuTensor<T> t(shape);
  for (auto& x : t.span()) {
    const double m = 0.5 + rng.uniform_double();
    x = static_cast<T>(rng.uniform() < 0.5f ? -m : m);
  }
  return t;
}

template <class To, class From>
CpuTensor<To> cast(const TensorView<backend::cpu, From>& src) {
  CpuTensor<To> t(src.shape());
  for (std::size_t i = 0; i < src.numel(); ++i) t.data()[i] = static_cast<To>(src.data()[i]);
  return t;
}

template <class A, class B>
double dot(const TensorView<backend::cpu, A>& a, const TensorView<backend::cpu, B>& b) {
  REQUIRE(a.numel() == b.numel());
  double s = 0;
  for (std::size_t i = 0; i < a.numel(); ++i) s += double(a.data()[i]) * double(b.data()[i]);
  return s;
}

// max over elements of |a - b| / (atol + rtol |b|): <= 1 means close. The shapes must agree, or one
// side be the other flattened (an op's per-row statistics (B*T) against a fixture's (B, T)).
template <class A, class B>
double closeness(const TensorView<backend::cpu, A>& a, const TensorView<backend::cpu, B>& b, double atol,
                 double rtol) {
  if (a.shape() != b.shape()) {
    REQUIRE(a.numel() == b.numel());
    REQUIRE((a.shape().size() == 1 || b.shape().size() == 1));
  }
  double worst = 0;
  for (std::size_t i = 0; i < a.numel(); ++i) {
    const double x = double(a.data()[i]), y = double(b.data()[i]);
    if (std::isnan(x) != std::isnan(y)) return INFINITY;
    if (std::isnan(x)) continue;
    worst = std::max(worst, std::abs(x - y) / (atol + rtol * std::abs(y)));
  }
  return worst;
}

// Gradient check of one input: `grad` is pre-filled with noise, `backward()` must add d loss/d x to it,
// and the difference is compared with central differences of `loss()` (which reads x). So every
// check also proves backward accumulates rather than overwrites.
template <class Loss, class Backward>
GradientReport check_input(Loss&& loss, CpuTensor<double>& x, CpuTensor<double>& grad, Backward&& backward,
                           std::uint64_t seed = 99) {
  REQUIRE(grad.shape() == x.shape());
  const CpuTensor<double> before = uniform<double>(x.shape(), seed);
  copy(grad.view(), before.view());
  backward();
  CpuTensor<double> added(x.shape());
  for (std::size_t i = 0; i < x.numel(); ++i) added.data()[i] = grad.data()[i] - before.data()[i];
  return check_gradient(loss, x, added, 1e-5);
}

}  // namespace p4lm::ops_test

// The gradient-check assertion: prints the worst element when it fails.
#define P4LM_CHECK_GRADIENT(report)                \
  do {                                             \
    const auto p4lm_report_ = (report);            \
    INFO(p4lm_report_.str());                      \
    CHECK(p4lm_report_.max_relative_error < 1e-6); \
  } while (0)
