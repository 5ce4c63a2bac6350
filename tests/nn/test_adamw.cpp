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
