#include <cmath>

#include <catch2/catch.hpp>

#include <p4lm/ops/losses.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEST_CASE("mse: mean squared error and its gradient", "[ops][losses][grad]") {
  auto pred = uniform(Shape{3, 4}, 1), target = uniform(Shape{3, 4}, 2);
  double direct = 0;
  for (std::size_t i = 0; i < 12; ++i) direct += std::pow(pred.data()[i] - target.data()[i], 2);
  CHECK(ops::mse_forward(pred, target) == Approx(direct / 12).epsilon(1e-14));
  CpuTensor<double> dpred(pred.shape()), dtarget(pred.shape());
  P4LM_CHECK_GRADIENT(check_input([&] { return 0.5 * ops::mse_forward(pred, target); }, pred, dpred,
                                  [&] { ops::mse_backward(dpred, pred, target, 0.5); }));
  CHECK(ops::mse_forward(cast<float>(pred), cast<float>(target)) == Approx(direct / 12).epsilon(1e-6));
  CpuTensor<double> bad(Shape{4, 3});
  CHECK_THROWS_WITH(ops::mse_forward(pred, bad), Catch::Contains("mse_forward: target"));
}

TEST_CASE("bce_with_logits: stable logistic loss and its gradient", "[ops][losses][grad]") {
  auto x = uniform(Shape{7}, 3, -4.0, 4.0), y = uniform(Shape{7}, 4, 0.0, 1.0);
  double direct = 0;
  for (std::size_t i = 0; i < 7; ++i) {
    const double s = 1 / (1 + std::exp(-x.data()[i]));
    direct -= y.data()[i] * std::log(s) + (1 - y.data()[i]) * std::log(1 - s);
  }
  CHECK(ops::bce_with_logits_forward(x, y) == Approx(direct / 7).epsilon(1e-13));
  CpuTensor<double> dx(x.shape());
  P4LM_CHECK_GRADIENT(check_input([&] { return 1.3 * ops::bce_with_logits_forward(x, y); }, x, dx,
                                  [&] { ops::bce_with_logits_backward(dx, x, y, 1.3); }));
  // Saturated logits stay finite: loss ≈ |x| for the wrong label, ≈ 0 for the right one.
  const CpuTensor<float> big(Shape{2}, {100.f, -100.f}), labels(Shape{2}, {0.f, 0.f});
  CHECK(ops::bce_with_logits_forward(big, labels) == Approx(50.0f));
  CpuTensor<float> dbig(Shape{2});
  ops::bce_with_logits_backward(dbig, big, labels);
  CHECK(dbig.data()[0] == Approx(0.5f));
  CHECK(dbig.data()[1] == Approx(0.0f).margin(1e-30));
}

TEST_CASE("bradley_terry: -log σ(r_w - r_l) and its gradient for both rewards", "[ops][losses][grad]") {
  auto w = uniform(Shape{5}, 5, -3.0, 3.0), l = uniform(Shape{5}, 6, -3.0, 3.0);
  double direct = 0;
  for (std::size_t i = 0; i < 5; ++i) direct -= std::log(1 / (1 + std::exp(-(w.data()[i] - l.data()[i]))));
  CHECK(ops::bradley_terry_forward(w, l) == Approx(direct / 5).epsilon(1e-13));
  CpuTensor<double> dw(w.shape()), dl(l.shape());
  auto loss = [&] { return 0.8 * ops::bradley_terry_forward(w, l); };
  P4LM_CHECK_GRADIENT(check_input(loss, w, dw, [&] { ops::bradley_terry_backward(dw, {}, w, l, 0.8); }));
  P4LM_CHECK_GRADIENT(check_input(loss, l, dl, [&] { ops::bradley_terry_backward({}, dl, w, l, 0.8); }));
  const CpuTensor<float> hi(Shape{1}, {-200.f}), lo(Shape{1}, {200.f});
  CHECK(ops::bradley_terry_forward(hi, lo) == Approx(400.0f));
  CHECK(ops::bradley_terry_forward(lo, hi) == Approx(0.0f).margin(1e-30));
}

TEST_CASE("losses of empty tensors are 0 and add no gradient", "[ops][losses]") {
  const CpuTensor<float> e(Shape{0});
  CHECK(ops::mse_forward(e, e) == 0.f);
  CHECK(ops::bce_with_logits_forward(e, e) == 0.f);
  CHECK(ops::bradley_terry_forward(e, e) == 0.f);
}
