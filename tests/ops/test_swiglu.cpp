#include <cmath>

#include <catch2/catch.hpp>

#include <p4lm/ops/swiglu.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEST_CASE("swiglu_forward is silu(gate) * up", "[ops][swiglu]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{13}, std::size_t{70001}}) {
    const auto gate = uniform(Shape{n}, n, -8.0, 8.0), up = uniform(Shape{n}, n + 1);
    CpuTensor<double> out(gate.shape()), ref(gate.shape());
    ops::swiglu_forward(out, gate, up);
    for (std::size_t i = 0; i < n; ++i) {
      const double g = gate.data()[i];
      ref.data()[i] = g / (1.0 + std::exp(-g)) * up.data()[i];
    }
    INFO("n = " << n);
    CHECK(closeness(out, ref, 1e-15, 1e-14) <= 1);
    CpuTensor<float> outf(gate.shape());
    ops::swiglu_forward(outf, cast<float>(gate), cast<float>(up));
    CHECK(closeness(outf, ref, 1e-6, 1e-6) <= 1);
  }
}

TEST_CASE("swiglu_backward matches finite differences for gate and up", "[ops][swiglu][grad]") {
  auto gate = uniform(Shape{2, 9}, 1, -4.0, 4.0), up = uniform(Shape{2, 9}, 2);
  const auto g = weights(gate.shape(), 3);
  CpuTensor<double> out(gate.shape()), dgate(gate.shape()), dup(gate.shape());
  auto loss = [&] {
    ops::swiglu_forward(out, gate, up);
    return dot(out, g);
  };
  P4LM_CHECK_GRADIENT(check_input(loss, gate, dgate, [&] { ops::swiglu_backward(dgate, {}, g, gate, up); }));
  P4LM_CHECK_GRADIENT(check_input(loss, up, dup, [&] { ops::swiglu_backward({}, dup, g, gate, up); }));
  SECTION("float agrees with double") {
    CpuTensor<float> dgf(gate.shape()), duf(gate.shape());
    CpuTensor<double> dgd(gate.shape()), dud(gate.shape());
    ops::swiglu_backward(dgf, duf, cast<float>(g), cast<float>(gate), cast<float>(up));
    ops::swiglu_backward(dgd, dud, g, gate, up);
    CHECK(closeness(dgf, dgd, 1e-6, 1e-5) <= 1);
    CHECK(closeness(duf, dud, 1e-6, 1e-5) <= 1);
  }
  CpuTensor<double> short_up(Shape{2, 8});
  CHECK_THROWS_WITH(ops::swiglu_forward(out, gate, short_up), Catch::Contains("swiglu_forward: up") &&
                                                                  Catch::Contains("(2, 9)") &&
                                                                  Catch::Contains("(2, 8)"));
}
