#pragma once
// Test-only helpers for the norm, RoPE and attention tests: random tensors, precision casts and
// the "sum(out * G)" losses whose gradient with respect to out is the upstream gradient G.

#include <cmath>
#include <cstddef>
#include <string>

#include <catch2/catch.hpp>

#include <p4lm/core/gradcheck.hpp>
#include <p4lm/core/rng.hpp>
#include <p4lm/core/tensor.hpp>

#include "ops_test_helpers.hpp"

namespace p4lm::test {

template <class T = double>
CpuTensor<T> random_normal(Shape shape, Rng& rng, double scale = 1.0, double shift = 0.0) {
  CpuTensor<T> t(shape);
  for (auto& x : t.span()) x = static_cast<T>(shift + scale * rng.normal());
  return t;
}

template <class To, class From>
CpuTensor<To> cast(const TensorView<backend::cpu, From>& src) {
  CpuTensor<To> t(src.shape());
  for (std::size_t i = 0; i < src.numel(); ++i) t.data()[i] = static_cast<To>(src.data()[i]);
  return t;
}

// Summed in long double: the rounding of a plain double sum of many terms would dominate the
// finite differences of a loss built from it.
template <class A, class B>
double dot(const TensorView<backend::cpu, A>& a, const TensorView<backend::cpu, B>& b) {
  long double s = 0;
  for (std::size_t i = 0; i < a.numel(); ++i)
    s += static_cast<long double>(a.data()[i]) * static_cast<long double>(b.data()[i]);
  return static_cast<double>(s);
}

// The closeness measure of the op tests (<= 1 means close), one definition for the whole folder.
using ops_test::closeness;

// Runs check_gradient on x and requires a max relative error below 1e-6, naming the input.
template <class Loss>
void require_gradient(const std::string& name, Loss&& loss, TensorView<backend::cpu, double> x,
                      const TensorView<backend::cpu, double>& analytic, double eps = 1e-6) {
  const double tolerance = 1e-6;
  const auto report = check_gradient(loss, x, analytic, eps);
  INFO("d loss / d " << name << ": " << report.str());
  CHECK(report.max_relative_error < tolerance);
}

}  // namespace p4lm::test
