#include <catch2/catch.hpp>

#include "p4lm/rl/kl_controller.hpp"

using namespace p4lm;

namespace {
struct NotAController {
  double value() const { return 0; }
};
}  // namespace

static_assert(rl::check_kl_controller<rl::AdaptiveKL>());
static_assert(rl::check_kl_controller<rl::FixedKL>());
static_assert(!rl::KLController<NotAController>);  // check_kl_controller<NotAController>() names update()

TEST_CASE("AdaptiveKL follows Ziegler et al.'s proportional rule", "[rl][kl_controller]") {
  rl::AdaptiveKL k(0.2, 6.0, 10000.0);
  k.update(9.0, 256);  // error clipped to +0.2: 0.2 · (1 + 0.2 · 256 / 10000)
  CHECK(k.value() == Approx(0.201024));
  k.update(5.4, 256);  // error -0.1: × (1 - 0.1 · 256 / 10000)
  CHECK(k.value() == Approx(0.20050937856));
  k.update(6.0, 256);  // on target: unchanged
  CHECK(k.value() == Approx(0.20050937856));
  k.update(0.0, 10000);  // far below: clipped to -0.2 per horizon
  CHECK(k.value() == Approx(0.20050937856 * 0.8));
  k.set_value(0.5);
  CHECK(k.value() == 0.5);
}

TEST_CASE("FixedKL never moves; bad settings are rejected", "[rl][kl_controller]") {
  rl::FixedKL f(0.05);
  f.update(100.0, 64);
  CHECK(f.value() == 0.05);
  CHECK_THROWS_WITH(rl::AdaptiveKL(0.2, 0.0, 10.0), Catch::Contains("target must be > 0"));
  CHECK_THROWS_WITH(rl::AdaptiveKL(0.2, 6.0, 0.0), Catch::Contains("horizon must be > 0"));
  CHECK_THROWS_AS(rl::FixedKL(-1.0), InvalidArgument);
}
