#include <cmath>

#include <omp.h>
#include <catch2/catch.hpp>

#include <p4lm/ops/dropout.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEST_CASE("dropout keeps element i iff Rng::uniform_at(seed, stream, i) >= p, scaled by 1/(1-p)",
          "[ops][dropout]") {
  const double p = 0.3;
  for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{100003}}) {
    const auto x = uniform(Shape{n}, 1, 0.5, 1.5);  // never 0, so dropped = exactly 0
    CpuTensor<double> y(x.shape());
    ops::dropout_forward(y, x, p, 1234, 7);
    std::size_t kept = 0, wrong = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const bool keep = Rng::uniform_at(1234, 7, i) >= float(p);
      kept += keep;
      wrong += y.data()[i] != (keep ? x.data()[i] * (1.0 / (1.0 - p)) : 0.0);
    }
    CHECK(wrong == 0);
    if (n > 100000) CHECK(std::abs(double(kept) / double(n) - (1 - p)) < 0.01);
  }
}

TEST_CASE("dropout's mask does not depend on the thread count", "[ops][dropout]") {
  const auto x = cast<float>(uniform(Shape{200003}, 2));
  CpuTensor<float> y1(x.shape()), y2(x.shape());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  ops::dropout_forward(y1, x, 0.5, 9, 3);
  omp_set_num_threads(std::max(threads, 2));
  ops::dropout_forward(y2, x, 0.5, 9, 3);
  omp_set_num_threads(threads);
  CHECK(closeness(y1, y2, 0, 0) <= 1);
  CpuTensor<float> other(x.shape());
  ops::dropout_forward(other, x, 0.5, 9, 4);  // another stream, another mask
  CHECK(closeness(other, y1, 0, 0) > 1);
}

TEST_CASE("dropout_backward recomputes the mask and matches finite differences", "[ops][dropout][grad]") {
  auto x = uniform(Shape{5, 7}, 3);
  const auto g = weights(x.shape(), 4);
  CpuTensor<double> y(x.shape()), dx(x.shape());
  auto loss = [&] {
    ops::dropout_forward(y, x, 0.4, 77, 1);
    return dot(y, g);
  };
  P4LM_CHECK_GRADIENT(check_input(loss, x, dx, [&] { ops::dropout_backward(dx, g, 0.4, 77, 1); }));
  SECTION("p = 0 is the identity; p outside [0, 1) is refused") {
    ops::dropout_forward(y, x, 0.0, 77, 1);
    CHECK(closeness(y, x, 0, 0) <= 1);
    CHECK_THROWS_AS(ops::dropout_forward(y, x, 1.0, 77, 1), InvalidArgument);
    CHECK_THROWS_WITH(ops::dropout_backward(dx, g, -0.1, 77, 1), Catch::Contains("dropout_backward"));
  }
}
