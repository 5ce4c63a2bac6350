// softmax_cross_entropy (ops/softmax_cross_entropy.hpp) against PyTorch's F.cross_entropy with
// ignore_index = -100, float64 autograd (fixture written by scripts/fixtures/make_ops_fixtures.py).

#include <catch2/catch.hpp>

#include <cstdint>

#include <p4lm/ops/softmax_cross_entropy.hpp>

#include "attn_test_helpers.hpp"
#include "fixture_reader.hpp"

using namespace p4lm;
using p4lm::test::closeness;

TEMPLATE_TEST_CASE("softmax_cross_entropy matches PyTorch (ignore_index, mean over counted targets)",
                   "[ops][softmax_cross_entropy][fixture]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  const auto fx = test::Fixture::ops("cross_entropy");
  const auto logits = fx.tensor<T>("logits");
  const auto targets = fx.tensor<std::int32_t>("targets");
  const auto ignore = static_cast<std::int32_t>(fx.scalar("ignore_index"));
  CpuTensor<T> losses(targets.shape()), probs(logits.shape()), dlogits(logits.shape(), T(0));

  const T mean = ops::softmax_cross_entropy_forward<T>(losses, probs, logits, targets, ignore);
  CHECK(mean == Approx(fx.scalar("loss_mean")).epsilon(tol));
  CHECK(closeness(losses, fx.tensor("losses"), tol, tol) <= 1);

  ops::softmax_cross_entropy_backward<T>(dlogits, probs, targets, T(1), ignore);
  CHECK(closeness(dlogits, fx.tensor("dlogits_mean"), tol, tol) <= 1);

  CpuTensor<T> fused(logits), fused_losses(targets.shape());
  const T fused_mean = ops::softmax_cross_entropy_fused<T>(fused, fused_losses, targets, T(1), ignore);
  CHECK(fused_mean == Approx(fx.scalar("loss_mean")).epsilon(tol));
  CHECK(closeness(fused, fx.tensor("dlogits_mean"), tol, tol) <= 1);
  CHECK(closeness(fused_losses, fx.tensor("losses"), tol, tol) <= 1);
}
