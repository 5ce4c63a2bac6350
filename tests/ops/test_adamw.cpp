#include <cmath>

#include <catch2/catch.hpp>

#include <p4lm/ops/adamw.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEMPLATE_TEST_CASE("adamw_update: two steps against the hand-computed reference", "[ops][adamw]", float,
                   double) {
  using T = TestType;
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01; p0 = 1, g1 = 0.5, g2 = -0.25.
  // Step 1: m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25 => p1 = 1 - 0.1 (0.5/(0.5 + 1e-8) + 0.01)
  //         = 0.899000002.
  // Step 2: m = 0.9·0.05 - 0.1·0.25 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225;
  //         m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999 => p2 = p1 - 0.1 (m̂/(√v̂ + 1e-8) + 0.01 p1)
  //         = 0.8714672987058464.
  const ops::AdamWConfig cfg{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
  CpuTensor<T> p(Shape{1}, {T(1)}), g(Shape{1}, {T(0.5)}), m(Shape{1}), v(Shape{1});
  ops::adamw_update(p, g, m, v, 1, cfg);
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-15;
  CHECK(double(p.data()[0]) == Approx(0.899000002).epsilon(tol));
  CHECK(double(m.data()[0]) == Approx(0.05).epsilon(tol));
  CHECK(double(v.data()[0]) == Approx(0.00025).epsilon(tol));
  g.data()[0] = T(-0.25);
  ops::adamw_update(p, g, m, v, 2, cfg);
  CHECK(double(p.data()[0]) == Approx(0.8714672987058464).epsilon(tol));
  CHECK(double(m.data()[0]) == Approx(0.02).epsilon(tol));
  CHECK(double(v.data()[0]) == Approx(0.00031225).epsilon(tol));
}

TEST_CASE("adamw_update agrees with a scalar loop over a tensor that spans threads", "[ops][adamw]") {
  const std::size_t n = 100003;
  auto p = uniform(Shape{n}, 1), m = uniform(Shape{n}, 2, -0.1, 0.1), v = uniform(Shape{n}, 3, 0.0, 0.01);
  const auto g = uniform(Shape{n}, 4);
  CpuTensor<double> rp(p), rm(m), rv(v);
  const ops::AdamWConfig cfg{.lr = 3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  const std::int64_t step = 17;
  ops::adamw_update(p, g, m, v, step, cfg);
  for (std::size_t i = 0; i < n; ++i) {
    double& pi = rp.data()[i];
    double& mi = rm.data()[i];
    double& vi = rv.data()[i];
    const double gi = g.data()[i];
    mi = 0.9 * mi + 0.1 * gi;
    vi = 0.95 * vi + 0.05 * gi * gi;
    const double mh = mi / (1 - std::pow(0.9, 17)), vh = vi / (1 - std::pow(0.95, 17));
    pi -= 3e-4 * (mh / (std::sqrt(vh) + 1e-8) + 0.1 * pi);
  }
  CHECK(closeness(p, rp, 1e-15, 1e-13) <= 1);
  CHECK(closeness(m, rm, 1e-16, 1e-14) <= 1);
  CHECK(closeness(v, rv, 1e-16, 1e-14) <= 1);
}

TEST_CASE("adamw_update refuses step 0 and mismatched state", "[ops][adamw]") {
  CpuTensor<float> p(Shape{3}), g(Shape{3}), m(Shape{3}), v(Shape{4});
  CHECK_THROWS_WITH(ops::adamw_update(p, g, m, m, 0, {}), Catch::Contains("step 0"));
  CHECK_THROWS_WITH(ops::adamw_update(p, g, m, v, 1, {}),
                    Catch::Contains("adamw_update: v") && Catch::Contains("(3)") && Catch::Contains("(4)"));
}
