#include <catch2/catch.hpp>

#include <cmath>

#include "p4lm/rl/kl_estimator.hpp"

using namespace p4lm;
using rl::KLEstimator;

TEST_CASE("KL estimators k1, k2, k3 on hand-computed tokens", "[rl][kl]") {
  // log r = ref - logp = -0.5
  CHECK(rl::kl_estimate(-1.0, -1.5, KLEstimator::k1) == Approx(0.5));
  CHECK(rl::kl_estimate(-1.0, -1.5, KLEstimator::k2) == Approx(0.125));
  CHECK(rl::kl_estimate(-1.0, -1.5, KLEstimator::k3) == Approx(std::exp(-0.5) - 1 + 0.5));  // 0.1065307
  // log r = 1: k1 goes negative, k2 and k3 do not.
  CHECK(rl::kl_estimate(-2.0, -1.0, KLEstimator::k1) == Approx(-1.0));
  CHECK(rl::kl_estimate(-2.0, -1.0, KLEstimator::k2) == Approx(0.5));
  CHECK(rl::kl_estimate(-2.0, -1.0, KLEstimator::k3) == Approx(0.7182818284590451));
  for (auto e : {KLEstimator::k1, KLEstimator::k2, KLEstimator::k3})
    CHECK(rl::kl_estimate(-0.7, -0.7, e) == 0.0);
}

TEST_CASE("k1 and k3 are unbiased: their expectation under p is KL(p || q)", "[rl][kl]") {
  const double p[] = {0.5, 0.3, 0.2}, q[] = {0.2, 0.3, 0.5};
  double e1 = 0, e2 = 0, e3 = 0;
  for (int i = 0; i < 3; ++i) {
    e1 += p[i] * rl::kl_estimate(std::log(p[i]), std::log(q[i]), KLEstimator::k1);
    e2 += p[i] * rl::kl_estimate(std::log(p[i]), std::log(q[i]), KLEstimator::k2);
    e3 += p[i] * rl::kl_estimate(std::log(p[i]), std::log(q[i]), KLEstimator::k3);
  }
  const double kl = 0.3 * std::log(2.5);  // 0.5 ln 2.5 + 0.2 ln 0.4 = 0.2748872
  CHECK(e1 == Approx(kl));
  CHECK(e3 == Approx(kl));
  CHECK(e2 == Approx(0.29385604686146616));  // k2 is biased (here upwards)
}

TEST_CASE("per-token KL is zero on padding; names parse", "[rl][kl]") {
  CpuTensor<float> lp(Shape{1, 3}, {-1.0f, -2.0f, -3.0f}), ref(Shape{1, 3}, {-1.5f, -1.0f, 0.0f});
  CpuTensor<float> mask(Shape{1, 3}, {1, 1, 0}), kl(Shape{1, 3});
  rl::kl_per_token(kl.view(), lp.view(), ref.view(), mask.view(), KLEstimator::k1);
  CHECK(kl.data()[0] == Approx(0.5));
  CHECK(kl.data()[1] == Approx(-1.0));
  CHECK(kl.data()[2] == 0.0f);
  CHECK(rl::kl_estimator_from_name("k3") == KLEstimator::k3);
  CHECK(rl::kl_estimator_from_name("kl") == KLEstimator::k1);
  CHECK_THROWS_WITH(rl::kl_estimator_from_name("k4"), Catch::Contains("unknown estimator 'k4'"));
}
