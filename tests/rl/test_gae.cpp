#include <catch2/catch.hpp>

#include "p4lm/rl/gae.hpp"

using namespace p4lm;

TEST_CASE("GAE matches a hand computation with padding and ends", "[rl][gae]") {
  // Row 0: three tokens, rewards 1 0 2, values 0.5 1 -1; row 1: one token (reward 5, value 2).
  CpuTensor<double> r(Shape{2, 4}, {1, 0, 2, 9, 5, 9, 9, 9});
  CpuTensor<double> v(Shape{2, 4}, {0.5, 1.0, -1.0, 9, 2, 9, 9, 9});
  CpuTensor<double> mask(Shape{2, 4}, {1, 1, 1, 0, 1, 0, 0, 0});
  CpuTensor<double> adv(Shape{2, 4}), ret(Shape{2, 4});
  rl::gae(adv.view(), ret.view(), r.view(), v.view(), mask.view(), 0.9, 0.8);
  // t=2: δ = 2 + 0 - (-1) = 3                    A = 3
  // t=1: δ = 0 + 0.9 (-1) - 1 = -1.9             A = -1.9 + 0.72 · 3 = 0.26
  // t=0: δ = 1 + 0.9 · 1 - 0.5 = 1.4             A = 1.4 + 0.72 · 0.26 = 1.5872
  CHECK(adv.data()[2] == Approx(3.0));
  CHECK(adv.data()[1] == Approx(0.26));
  CHECK(adv.data()[0] == Approx(1.5872));
  CHECK(ret.data()[2] == Approx(2.0));
  CHECK(ret.data()[1] == Approx(1.26));
  CHECK(ret.data()[0] == Approx(2.0872));
  // The episode ends after its last token: V past it is 0, not the padding's 9.
  CHECK(adv.data()[4] == Approx(3.0));
  CHECK(ret.data()[4] == Approx(5.0));
  for (std::size_t i : {3, 5, 6, 7}) {
    CHECK(adv.data()[i] == 0.0);
    CHECK(ret.data()[i] == 0.0);
  }
}

TEST_CASE("GAE with gamma = lambda = 1 gives Monte-Carlo returns; lambda = 0 gives TD errors", "[rl][gae]") {
  CpuTensor<double> r(Shape{1, 3}, {1, -2, 4});
  CpuTensor<double> v(Shape{1, 3}, {0.3, -0.7, 1.1});
  CpuTensor<double> mask(Shape{1, 3}, {1, 1, 1});
  CpuTensor<double> adv(Shape{1, 3}), ret(Shape{1, 3});
  rl::gae(adv.view(), ret.view(), r.view(), v.view(), mask.view(), 1.0, 1.0);
  CHECK(ret.data()[0] == Approx(3.0));
  CHECK(ret.data()[1] == Approx(2.0));
  CHECK(ret.data()[2] == Approx(4.0));
  CHECK(adv.data()[0] == Approx(3.0 - 0.3));
  rl::gae(adv.view(), ret.view(), r.view(), v.view(), mask.view(), 0.5, 0.0);
  CHECK(adv.data()[0] == Approx(1 + 0.5 * -0.7 - 0.3));
  CHECK(adv.data()[1] == Approx(-2 + 0.5 * 1.1 + 0.7));
  CHECK(adv.data()[2] == Approx(4 - 1.1));
}

TEST_CASE("GAE rejects tokens after padding and bad gamma", "[rl][gae]") {
  CpuTensor<float> r(Shape{1, 3}), v(Shape{1, 3}), adv(Shape{1, 3}), ret(Shape{1, 3});
  CpuTensor<float> holes(Shape{1, 3}, {1, 0, 1});
  CHECK_THROWS_WITH(rl::gae(adv.view(), ret.view(), r.view(), v.view(), holes.view(), 1.0, 0.95),
                    Catch::Contains("mask row 0 has a token at 2"));
  CpuTensor<float> ok(Shape{1, 3}, {1, 1, 0});
  CHECK_THROWS_AS(rl::gae(adv.view(), ret.view(), r.view(), v.view(), ok.view(), 1.5, 0.95), InvalidArgument);
}
