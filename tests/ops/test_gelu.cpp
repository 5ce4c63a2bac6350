#include <cmath>

#include <catch2/catch.hpp>

#include <p4lm/ops/gelu.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

namespace {
double gelu_reference(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
}  // namespace

TEST_CASE("gelu_forward is the tanh-form GELU for any size (SIMD body, tail and threads)", "[ops][gelu]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{100003}}) {
    const auto x = uniform(Shape{n}, n, -6.0, 6.0);
    CpuTensor<double> y(x.shape());
    ops::gelu_forward(y, x);
    CpuTensor<double> ref(x.shape());
    for (std::size_t i = 0; i < n; ++i) ref.data()[i] = gelu_reference(x.data()[i]);
    INFO("n = " << n);
    CHECK(closeness(y, ref, 1e-15, 1e-14) <= 1);
    CpuTensor<float> yf(x.shape());
    ops::gelu_forward(yf, cast<float>(x));
    CHECK(closeness(yf, ref, 1e-6, 1e-6) <= 1);
  }
}

TEST_CASE("gelu_backward matches finite differences and accumulates", "[ops][gelu][grad]") {
  auto x = uniform(Shape{3, 7}, 1, -3.0, 3.0);
  const auto g = weights(x.shape(), 2);
  CpuTensor<double> y(x.shape()), dx(x.shape());
  auto loss = [&] {
    ops::gelu_forward(y, x);
    return dot(y, g);
  };
  P4LM_CHECK_GRADIENT(check_input(loss, x, dx, [&] { ops::gelu_backward(dx, g, x); }));
  SECTION("float agrees with double") {
    CpuTensor<float> dxf(x.shape());
    ops::gelu_backward(dxf, cast<float>(g), cast<float>(x));
    CpuTensor<double> dxd(x.shape());
    ops::gelu_backward(dxd, g, x);
    CHECK(closeness(dxf, dxd, 1e-6, 1e-5) <= 1);
  }
  CpuTensor<double> bad(Shape{7, 3});
  CHECK_THROWS_WITH(ops::gelu_backward(bad, g, x), Catch::Contains("gelu_backward: dinp"));
}
