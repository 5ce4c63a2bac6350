#include <catch2/catch.hpp>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/rl/value_head.hpp"

using namespace p4lm;

TEST_CASE("value head forward by hand", "[rl][value_head]") {
  rl::ValueHead<double> head(3);
  auto params = head.parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "v_head.weight");
  CHECK(params[1].name == "v_head.bias");
  CHECK(!params[1].decay);
  params[0].value.data()[0] = 1, params[0].value.data()[1] = -2, params[0].value.data()[2] = 0.5;
  params[1].value.data()[0] = 0.25;
  CpuTensor<double> h(Shape{1, 2, 3}, {1, 1, 1, 2, 0, -4}), v(Shape{1, 2});
  head.forward(v.view(), h.view());
  CHECK(v.data()[0] == Approx(1 - 2 + 0.5 + 0.25));
  CHECK(v.data()[1] == Approx(2 - 2 + 0.25));
}

TEST_CASE("value head gradients match finite differences in double", "[rl][value_head]") {
  const std::size_t B = 2, S = 3, C = 5;
  rl::ValueHead<double> head(C);
  Rng rng(11);
  head.init(rng, 0.5);
  head.parameters()[1].value.data()[0] = 0.3;
  CpuTensor<double> h(Shape{B, S, C}), g(Shape{B, S}), v(Shape{B, S}), dh(Shape{B, S, C});
  for (auto& x : h.span()) x = rng.normal();
  for (auto& x : g.span()) x = rng.normal();
  // loss = Σ g · v(h): its gradient w.r.t. v is g.
  auto loss = [&] {
    head.forward(v.view(), h.view());
    double l = 0;
    for (std::size_t i = 0; i < v.numel(); ++i) l += g.data()[i] * v.data()[i];
    return l;
  };
  loss();
  head.zero_grad();
  head.backward(dh.view(), g.view(), h.view());
  auto rh = check_gradient(loss, h.view(), dh.view());
  INFO(rh.str());
  CHECK(rh.max_relative_error < 1e-8);
  for (auto& p : head.parameters()) {
    CpuTensor<double> analytic(p.grad);
    auto rp = check_gradient(loss, p.value, analytic.view());
    INFO(p.name << ": " << rp.str());
    CHECK(rp.max_relative_error < 1e-8);
  }
  // Gradients accumulate until zero_grad, like the LM's.
  const double gb = head.parameters()[1].grad.data()[0];
  head.backward({}, g.view(), h.view());
  CHECK(head.parameters()[1].grad.data()[0] == Approx(2 * gb));
}
