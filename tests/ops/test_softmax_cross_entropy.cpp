#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include <p4lm/ops/softmax_cross_entropy.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;
using Ids = Tensor<backend::cpu, std::int32_t>;

namespace {
constexpr std::int32_t kIgnore = ops::ignore_index_default;

// Per-row -log softmax(x)[t] by the textbook formula in long double.
double row_loss(const double* x, std::size_t V, std::int32_t t) {
  long double m = x[0], s = 0;
  for (std::size_t j = 0; j < V; ++j) m = std::max<long double>(m, x[j]);
  for (std::size_t j = 0; j < V; ++j) s += std::exp((long double)x[j] - m);
  return double(m + std::log(s) - x[t]);
}
}  // namespace

TEST_CASE("softmax_cross_entropy_forward: per-row losses, mean over non-ignored rows, probabilities",
          "[ops][softmax_cross_entropy]") {
  const std::size_t V = 11;
  const auto logits = uniform(Shape{2, 3, V}, 1, -4.0, 4.0);
  const Ids targets(Shape{2, 3}, {3, kIgnore, 0, 10, 5, kIgnore});
  CpuTensor<double> losses(Shape{2, 3}), probs(logits.shape());
  const double mean = ops::softmax_cross_entropy_forward(losses, probs, logits, targets);
  double total = 0;
  for (std::size_t r = 0; r < 6; ++r) {
    const auto t = targets.data()[r];
    const double expected = t == kIgnore ? 0.0 : row_loss(logits.data() + r * V, V, t);
    CHECK(losses.data()[r] == Approx(expected).epsilon(1e-13));
    total += expected;
    double s = 0;
    for (std::size_t j = 0; j < V; ++j) s += probs.data()[r * V + j];
    CHECK(s == Approx(1.0).epsilon(1e-14));
  }
  CHECK(mean == Approx(total / 4).epsilon(1e-13));

  SECTION("probabilities in place over the logits") {
    CpuTensor<double> inplace(logits), losses2(Shape{2, 3});
    const double mean2 = ops::softmax_cross_entropy_forward(losses2, inplace, inplace, targets);
    CHECK(mean2 == mean);
    CHECK(closeness(inplace, probs, 0, 0) <= 1);
    CHECK(closeness(losses2, losses, 0, 0) <= 1);
  }
  SECTION("without probabilities") {
    CpuTensor<double> losses3(Shape{2, 3});
    CHECK(ops::softmax_cross_entropy_forward(losses3, {}, logits, targets) == mean);
  }
}

TEST_CASE("softmax_cross_entropy is stable for huge logits and handles one token and no targets",
          "[ops][softmax_cross_entropy]") {
  CpuTensor<float> logits(Shape{1, 4}, {1000.f, -1000.f, 999.f, 0.f});
  const Ids t(Shape{1}, {2});
  CpuTensor<float> losses(Shape{1}), probs(logits.shape());
  const float mean = ops::softmax_cross_entropy_forward(losses, probs, logits, t);
  CHECK(std::isfinite(mean));
  CHECK(mean == Approx(1.0 + std::log1p(std::exp(-1.0))).epsilon(1e-6));  // lse - 999
  for (float p : probs.span()) CHECK(std::isfinite(p));

  const Ids none(Shape{2}, {kIgnore, kIgnore});
  CpuTensor<double> x = uniform(Shape{2, 5}, 3), l2(Shape{2}), p2(Shape{2, 5});
  CHECK(ops::softmax_cross_entropy_forward(l2, p2, x, none) == 0.0);
  CpuTensor<double> dx(Shape{2, 5}, 0.25);
  ops::softmax_cross_entropy_backward(dx, p2, none);
  for (double d : dx.span()) CHECK(d == 0.25);
  CHECK(ops::softmax_cross_entropy_fused(x, l2, none) == 0.0);
  for (double d : x.span()) CHECK(d == 0.0);
}

TEST_CASE("softmax_cross_entropy_backward matches finite differences (with ignored rows)",
          "[ops][softmax_cross_entropy][grad]") {
  const std::size_t V = 7;
  auto logits = uniform(Shape{4, V}, 5, -2.0, 2.0);
  const Ids targets(Shape{4}, {6, kIgnore, 0, 2});
  // A power of two: the loss lambda's product is then exact, so FMA contraction of plus - minus
  // cannot turn a rounding residual into a fake gradient on the ignored row.
  const double dloss = 0.5;
  CpuTensor<double> losses(Shape{4}), probs(logits.shape()), dlogits(logits.shape());
  auto loss = [&] { return dloss * ops::softmax_cross_entropy_forward(losses, {}, logits, targets); };
  ops::softmax_cross_entropy_forward(losses, probs, logits, targets);
  P4LM_CHECK_GRADIENT(check_input(
      loss, logits, dlogits, [&] { ops::softmax_cross_entropy_backward(dlogits, probs, targets, dloss); }));

  SECTION("the fused pass writes the same gradient over the logits and the same losses") {
    CpuTensor<double> fused(logits), fused_losses(Shape{4}), grad(logits.shape());
    ops::softmax_cross_entropy_backward(grad, probs, targets, dloss);
    const double mean = ops::softmax_cross_entropy_fused(fused, fused_losses, targets, dloss);
    CHECK(mean == Approx(ops::softmax_cross_entropy_forward(losses, {}, logits, targets)).epsilon(1e-15));
    CHECK(closeness(fused, grad, 1e-16, 1e-13) <= 1);
    CHECK(closeness(fused_losses, losses, 1e-16, 1e-13) <= 1);
  }
  SECTION("a custom ignore index") {
    const Ids t2(Shape{4}, {6, -1, 0, 2});
    CpuTensor<double> l2(Shape{4});
    CHECK(ops::softmax_cross_entropy_forward(l2, {}, logits, t2, -1) ==
          ops::softmax_cross_entropy_forward(losses, {}, logits, targets));
  }
}

TEST_CASE("softmax_cross_entropy in float agrees with double at a GPT-2-like vocabulary",
          "[ops][softmax_cross_entropy]") {
  const std::size_t N = 6, V = 5003;
  const auto logits = uniform(Shape{N, V}, 7, -6.0, 6.0);
  const Ids t(Shape{N}, {0, 5002, 17, kIgnore, 4000, 1});
  CpuTensor<double> l(Shape{N}), p(logits.shape()), d(logits.shape());
  CpuTensor<float> lf(Shape{N}), pf(logits.shape());
  const double mean = ops::softmax_cross_entropy_forward(l, p, logits, t);
  auto logits_f = cast<float>(logits);
  const float mean_f = ops::softmax_cross_entropy_forward(lf, pf, logits_f, t);
  CHECK(mean_f == Approx(mean).epsilon(1e-5));
  CHECK(closeness(pf, p, 1e-8, 1e-4) <= 1);
  ops::softmax_cross_entropy_backward(d, p, t);
  const float fused_mean = ops::softmax_cross_entropy_fused(logits_f, lf, t);
  CHECK(fused_mean == Approx(mean).epsilon(1e-5));
  CHECK(closeness(logits_f, d, 1e-8, 1e-4) <= 1);
}

TEST_CASE("softmax_cross_entropy rejects bad targets and shapes", "[ops][softmax_cross_entropy]") {
  CpuTensor<float> logits(Shape{2, 3}), losses(Shape{2});
  CHECK_THROWS_WITH(ops::softmax_cross_entropy_forward(losses, {}, logits, Ids(Shape{2}, {0, 3})),
                    Catch::Contains("targets: id 3 at position 1"));
  CHECK_THROWS_AS(ops::softmax_cross_entropy_fused(logits, losses, Ids(Shape{2}, {-1, 0})), InvalidArgument);
  CHECK_THROWS_WITH(ops::softmax_cross_entropy_forward(losses, {}, logits, Ids(Shape{3}, {0, 0, 0})),
                    Catch::Contains("softmax_cross_entropy_forward: targets") && Catch::Contains("(2)"));
  CpuTensor<float> wrong(Shape{3});
  CHECK_THROWS_WITH(ops::softmax_cross_entropy_forward(wrong, {}, logits, Ids(Shape{2}, {0, 0})),
                    Catch::Contains("losses"));
}
