#include <catch2/catch.hpp>

#include <cmath>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/rl/ppo_loss.hpp"

using namespace p4lm;

TEST_CASE("clipped policy loss, gradient, clipfrac and approx-KL by hand", "[rl][ppo_loss]") {
  // Ratios 1.5, 0.5, 0.5, 1.1 (and a padded token); advantages 2, 1, -1, -2; cliprange 0.2.
  //   1.5, A=2:  -3   vs -2.4  -> clipped wins (-2.4), no gradient
  //   0.5, A=1:  -0.5 vs -0.8  -> unclipped (-0.5),    d/dlogp = -A ρ / n = -0.125
  //   0.5, A=-1: 0.5  vs 0.8   -> clipped wins (0.8),  no gradient
  //   1.1, A=-2: 2.2  vs 2.2   -> tie (2.2),           d/dlogp = 2.2 / 4 = 0.55
  CpuTensor<double> old(Shape{5}, {-1, -2, -0.5, -3, -1});
  CpuTensor<double> lp(Shape{5},
                       {-1 + std::log(1.5), -2 + std::log(0.5), -0.5 + std::log(0.5), -3 + std::log(1.1), 7});
  CpuTensor<double> adv(Shape{5}, {2, 1, -1, -2, 100});
  CpuTensor<double> mask(Shape{5}, {1, 1, 1, 1, 0});
  CpuTensor<double> d(Shape{5});
  const auto s = rl::policy_loss(d.view(), lp.view(), old.view(), adv.view(), mask.view(), 0.2);
  CHECK(s.loss == Approx((-2.4 - 0.5 + 0.8 + 2.2) / 4));
  CHECK(s.clipfrac == Approx(0.5));
  CHECK(s.approxkl == Approx(0.1417990015129876));
  CHECK(s.ratio_mean == Approx((1.5 + 0.5 + 0.5 + 1.1) / 4));
  CHECK(d.data()[0] == 0.0);
  CHECK(d.data()[1] == Approx(-0.125));
  CHECK(d.data()[2] == 0.0);
  CHECK(d.data()[3] == Approx(0.55));
  CHECK(d.data()[4] == 0.0);
}

TEST_CASE("clipped value loss, gradient and clipfrac by hand", "[rl][ppo_loss]") {
  // cliprange_value 0.2:
  //   v=1,   old=0.5, G=2: vc=0.7, l1=1,    l2=1.69 -> 1.69 clipped, no gradient
  //   v=1,   old=0.9, G=0: vc=1,   l1=l2=1          -> 1,    d/dv = 1/4
  //   v=0,   old=0.5, G=0: vc=0.3, l1=0,    l2=0.09 -> 0.09 clipped, no gradient
  //   v=0.2, old=0.5, G=1: vc=0.3, l1=0.64, l2=0.49 -> 0.64, d/dv = -0.8/4
  CpuTensor<double> v(Shape{2, 3}, {1, 1, 0, 0.2, 5, 5});
  CpuTensor<double> old(Shape{2, 3}, {0.5, 0.9, 0.5, 0.5, 0, 0});
  CpuTensor<double> ret(Shape{2, 3}, {2, 0, 0, 1, 0, 0});
  CpuTensor<double> mask(Shape{2, 3}, {1, 1, 1, 1, 0, 0});
  CpuTensor<double> d(Shape{2, 3});
  const auto s = rl::value_loss(d.view(), v.view(), old.view(), ret.view(), mask.view(), 0.2);
  CHECK(s.loss == Approx(0.5 * (1.69 + 1 + 0.09 + 0.64) / 4));
  CHECK(s.clipfrac == Approx(0.5));
  CHECK(d.data()[0] == 0.0);
  CHECK(d.data()[1] == Approx(0.25));
  CHECK(d.data()[2] == 0.0);
  CHECK(d.data()[3] == Approx(-0.2));
  CHECK(d.data()[4] == 0.0);
}

TEST_CASE("PPO losses' gradients match finite differences away from the clip kinks", "[rl][ppo_loss]") {
  Rng rng(3);
  const std::size_t n = 40;
  CpuTensor<double> lp(Shape{n}), old(Shape{n}), adv(Shape{n}), mask(Shape{n}), d(Shape{n});
  CpuTensor<double> v(Shape{n}), vold(Shape{n}), ret(Shape{n}), dv(Shape{n});
  for (std::size_t i = 0; i < n; ++i) {
    old.data()[i] = -1 - rng.uniform_double();
    // Ratios spread over [0.6, 1.4] but never within 1e-3 of a clip edge (0.8, 1.2).
    double ratio;
    do ratio = 0.6 + 0.8 * rng.uniform_double();
    while (std::abs(ratio - 0.8) < 1e-3 || std::abs(ratio - 1.2) < 1e-3);
    lp.data()[i] = old.data()[i] + std::log(ratio);
    adv.data()[i] = rng.normal();
    mask.data()[i] = i % 7 == 3 ? 0 : 1;
    vold.data()[i] = rng.normal();
    double dvv;
    do dvv = 0.6 * (2 * rng.uniform_double() - 1);
    while (std::abs(std::abs(dvv) - 0.2) < 1e-3);
    v.data()[i] = vold.data()[i] + dvv;
    ret.data()[i] = rng.normal();
  }
  rl::policy_loss(d.view(), lp.view(), old.view(), adv.view(), mask.view(), 0.2);
  auto pr = check_gradient(
      [&] { return rl::policy_loss<double>({}, lp.view(), old.view(), adv.view(), mask.view(), 0.2).loss; },
      lp.view(), d.view());
  INFO(pr.str());
  CHECK(pr.max_relative_error < 1e-6);
  rl::value_loss(dv.view(), v.view(), vold.view(), ret.view(), mask.view(), 0.2);
  auto vr = check_gradient(
      [&] { return rl::value_loss<double>({}, v.view(), vold.view(), ret.view(), mask.view(), 0.2).loss; },
      v.view(), dv.view());
  INFO(vr.str());
  CHECK(vr.max_relative_error < 1e-6);
}

TEST_CASE("PPO losses reject mismatched shapes and negative clip ranges", "[rl][ppo_loss]") {
  CpuTensor<float> a(Shape{3}), b(Shape{4}), m(Shape{3});
  CHECK_THROWS_AS(rl::policy_loss<float>({}, a.view(), b.view(), a.view(), m.view(), 0.2), ShapeError);
  CHECK_THROWS_AS(rl::value_loss<float>({}, a.view(), a.view(), a.view(), m.view(), -1), InvalidArgument);
}
