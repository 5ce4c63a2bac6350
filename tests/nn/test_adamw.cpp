// nn/adamw.hpp's optimizer object and nn/parameter.hpp's name globs: parameter groups with their own
// learning rate (scale_lr) step exactly as an optimizer built with that rate would.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/parameter.hpp"

namespace {

using p4lm::AdamW;
using p4lm::CpuTensor;
using p4lm::Parameter;
using p4lm::Shape;

// Two named parameters with fixed values and gradients, held in tensors the views point into.
struct TwoParams {
  CpuTensor<double> values{Shape{2, 3}}, grads{Shape{2, 3}};
  std::vector<Parameter<double>> params;
  TwoParams() {
    for (std::size_t i = 0; i < 6; ++i) {
      values.data()[i] = 0.1 * static_cast<double>(i) - 0.2;
      grads.data()[i] = 0.3 - 0.07 * static_cast<double>(i * i);
    }
    params.push_back({"adapter.user.w", {values.data(), Shape{3}}, {grads.data(), Shape{3}}});
    params.push_back({"h.0.w", {values.data() + 3, Shape{3}}, {grads.data() + 3, Shape{3}}});
  }
};

}  // namespace

TEST_CASE("glob_match: * spans dots, ? is one character, the whole name must match", "[nn][parameter]") {
  CHECK(p4lm::glob_match("adapter.*", "adapter.user.w"));
  CHECK(p4lm::glob_match("*.w", "adapter.user.w"));
  CHECK(p4lm::glob_match("h.?.w", "h.0.w"));
  CHECK_FALSE(p4lm::glob_match("h.?.w", "h.10.w"));
  CHECK_FALSE(p4lm::glob_match("adapter.*", "lm.adapter.w"));
  CHECK_FALSE(p4lm::glob_match("adapter", "adapter.user.w"));
}

TEST_CASE("AdamW::scale_lr: a group steps exactly as an optimizer at the scaled rate", "[nn][adamw]") {
  const double lr = 1e-2, factor = 5.0;
  TwoParams grouped, plain, scaled;
  AdamW<double> opt_grouped(grouped.params, {.weight_decay = 0.1});
  AdamW<double> opt_plain(plain.params, {.weight_decay = 0.1});
  AdamW<double> opt_scaled(scaled.params, {.weight_decay = 0.1});
  REQUIRE(opt_grouped.scale_lr("adapter.*", factor) == 1);
  CHECK(opt_grouped.lr_scale(0) == factor);
  CHECK(opt_grouped.lr_scale(1) == 1.0);
  for (int step = 0; step < 3; ++step) {
    opt_grouped.step(grouped.params, lr);
    opt_plain.step(plain.params, lr);
    opt_scaled.step(scaled.params, lr * factor);
  }
  // The adapter moved as under lr × factor, the transformer weight as under lr, bit for bit.
  CHECK(std::memcmp(grouped.values.data(), scaled.values.data(), 3 * sizeof(double)) == 0);
  CHECK(std::memcmp(grouped.values.data() + 3, plain.values.data() + 3, 3 * sizeof(double)) == 0);
  CHECK(std::memcmp(grouped.values.data(), plain.values.data(), 3 * sizeof(double)) != 0);
}

TEST_CASE("AdamW::scale_lr: unmatched globs count zero, bad factors are refused", "[nn][adamw]") {
  TwoParams p;
  AdamW<double> opt(p.params);
  CHECK(opt.scale_lr("lm_head.*", 2.0) == 0);
  CHECK(opt.scale_lr("*", 2.0) == 2);
  CHECK_THROWS_AS(opt.scale_lr("adapter.*", 0.0), p4lm::InvalidArgument);
  CHECK_THROWS_AS(opt.scale_lr("adapter.*", -1.0), p4lm::InvalidArgument);
  CHECK_THROWS_AS(opt.scale_lr("adapter.*", std::numeric_limits<double>::infinity()), p4lm::InvalidArgument);
  CHECK_THROWS_WITH(opt.scale_lr("adapter.*", std::nan("")), Catch::Contains("adapter.*"));
}

TEST_CASE("AdamW: moments only for the parameters trainable when it is built", "[nn][adamw][frozen]") {
  TwoParams p;
  p.params[1].trainable = false;  // "h.0.w": the frozen base
  AdamW<double> opt(p.params);
  CHECK(opt.has_state(0));
  CHECK_FALSE(opt.has_state(1));
  CHECK(opt.state_numel() == 3);  // the trainable tensor's 3 elements, not 6
  CHECK(opt.m(0, Shape{3}).data() != nullptr);
  CHECK_THROWS_WITH(opt.m(1, Shape{3}), Catch::Contains("h.0.w"));
  CHECK_THROWS_WITH(opt.v(1, Shape{3}), Catch::Contains("frozen"));

  TwoParams all;
  AdamW<double> everything(all.params);
  CHECK(everything.has_state(1));
  CHECK(everything.state_numel() == 6);

  // Unfrozen after the optimizer was built: refused, naming the tensor, rather than stepped without moments.
  p.params[1].trainable = true;
  CHECK_THROWS_WITH(opt.step(p.params, 1e-3), Catch::Contains("h.0.w"));
  CHECK(opt.steps() == 0);
}

TEST_CASE("AdamW with a frozen parameter: hand-computed steps on the trainable one, the frozen one untouched",
          "[nn][adamw][frozen]") {
  // The frozen tensor's gradients are large: they must count neither in the clipping norm nor anywhere.
  const double lr = 1e-2, wd = 0.1, b1 = 0.9, b2 = 0.95, eps = 1e-8, max_norm = 0.2;
  TwoParams p;
  p.params[1].trainable = false;
  const std::vector<double> x0(p.values.data(), p.values.data() + 6), g0(p.grads.data(), p.grads.data() + 6);
  AdamW<double> opt(p.params,
                    {.beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd, .max_grad_norm = max_norm});
  std::vector<double> x(x0.begin(), x0.begin() + 3), m(3, 0.0), v(3, 0.0);
  for (int t = 1; t <= 3; ++t) {
    std::copy(g0.begin(), g0.end(), p.grads.data());  // the same gradients each step (clipping scales them)
    opt.step(p.params, lr);
    double norm = 0;
    for (int i = 0; i < 3; ++i) norm += g0[i] * g0[i];
    norm = std::sqrt(norm);
    const double scale = norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
    for (int i = 0; i < 3; ++i) {
      const double g = g0[i] * scale;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      x[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * x[i]);
    }
  }
  REQUIRE(std::sqrt(g0[0] * g0[0] + g0[1] * g0[1] + g0[2] * g0[2]) > max_norm);  // clipping did happen
  for (int i = 0; i < 3; ++i) {
    INFO("element " << i);
    CHECK(p.values.data()[i] == Approx(x[i]).epsilon(1e-12));
    CHECK(opt.m(0, Shape{3}).data()[i] == Approx(m[i]).epsilon(1e-12));
    CHECK(opt.v(0, Shape{3}).data()[i] == Approx(v[i]).epsilon(1e-12));
  }
  CHECK(std::memcmp(p.values.data() + 3, x0.data() + 3, 3 * sizeof(double)) == 0);
  CHECK(opt.steps() == 3);
}

TEST_CASE(
    "AdamW with a frozen parameter steps the trainable one bit-identically to an optimizer over it alone",
    "[nn][adamw][frozen]") {
  TwoParams frozen, alone;
  frozen.params[1].trainable = false;
  alone.params.pop_back();  // the previous layout's behaviour on the trainable tensor: moments for it only
  AdamW<double> a(frozen.params, {.weight_decay = 0.1, .max_grad_norm = 0.5});
  AdamW<double> b(alone.params, {.weight_decay = 0.1, .max_grad_norm = 0.5});
  REQUIRE(a.scale_lr("adapter.*", 3.0) == 1);
  REQUIRE(b.scale_lr("adapter.*", 3.0) == 1);
  for (int step = 0; step < 4; ++step) {
    const double lr = 1e-2 * (step + 1);  // a schedule: the step's rate reaches the trainable tensor as given
    CHECK(a.step(frozen.params, lr) == b.step(alone.params, lr));
  }
  CHECK(std::memcmp(frozen.values.data(), alone.values.data(), 3 * sizeof(double)) == 0);
  CHECK(std::memcmp(a.m(0, Shape{3}).data(), b.m(0, Shape{3}).data(), 3 * sizeof(double)) == 0);
  CHECK(std::memcmp(a.v(0, Shape{3}).data(), b.v(0, Shape{3}).data(), 3 * sizeof(double)) == 0);
}
