#include <catch2/catch.hpp>

#include "p4lm/rl/masked.hpp"

using namespace p4lm;

TEST_CASE("masked mean, variance and whitening count only the mask", "[rl][masked]") {
  // Row 0: 1 2 3 | 100 (padding); row 1: 4 | 7 7 7 (padding). Counted: 1 2 3 4.
  CpuTensor<double> x(Shape{2, 4}, {1, 2, 3, 100, 4, 7, 7, 7});
  CpuTensor<double> mask(Shape{2, 4}, {1, 1, 1, 0, 1, 0, 0, 0});
  CHECK(rl::mask_count(mask.view()) == 4);
  CHECK(rl::masked_mean(x.view(), mask.view()) == Approx(2.5));
  // Unbiased: ((1.5² + 0.5²) · 2) / 3 = 5 / 3.
  CHECK(rl::masked_var(x.view(), mask.view()) == Approx(5.0 / 3.0));
  // Mean over the 2 rows of each row's sum: (6 + 4) / 2.
  CHECK(rl::mean_row_sum(x.view(), mask.view()) == Approx(5.0));

  rl::whiten(x.view(), mask.view());
  const double s = std::sqrt(5.0 / 3.0);
  CHECK(x.data()[0] == Approx(-1.5 / s));
  CHECK(x.data()[1] == Approx(-0.5 / s));
  CHECK(x.data()[2] == Approx(0.5 / s));
  CHECK(x.data()[4] == Approx(1.5 / s));
  CHECK(x.data()[3] == 0.0);  // padding zeroed
  CHECK(rl::masked_mean(x.view(), mask.view()) == Approx(0.0).margin(1e-12));
  CHECK(rl::masked_var(x.view(), mask.view()) == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("whitening without shifting keeps the mean", "[rl][masked]") {
  CpuTensor<double> x(Shape{1, 3}, {1, 3, 5});
  CpuTensor<double> mask(Shape{1, 3}, {1, 1, 1});
  rl::whiten(x.view(), mask.view(), false);
  // mean 3, var 4: (x - 3) / 2 + 3
  CHECK(x.data()[0] == Approx(2.0));
  CHECK(x.data()[1] == Approx(3.0));
  CHECK(x.data()[2] == Approx(4.0));
}

TEST_CASE("masked statistics reject mismatched masks", "[rl][masked]") {
  CpuTensor<float> x(Shape{2, 3}), mask(Shape{3, 2});
  CHECK_THROWS_AS(rl::masked_mean(x.view(), mask.view()), ShapeError);
}
