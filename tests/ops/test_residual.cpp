#include <catch2/catch.hpp>

#include <p4lm/ops/residual.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEMPLATE_TEST_CASE("residual_forward adds, in place too", "[ops][residual]", float, double) {
  using T = TestType;
  for (std::size_t n : {std::size_t{1}, std::size_t{31}, std::size_t{80011}}) {
    const auto a = cast<T>(uniform(Shape{n}, 1)), b = cast<T>(uniform(Shape{n}, 2));
    CpuTensor<T> out(a.shape());
    ops::residual_forward(out, a, b);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i) wrong += out.data()[i] != a.data()[i] + b.data()[i];
    CHECK(wrong == 0);
    CpuTensor<T> acc(a);
    ops::residual_forward(acc, acc, b);  // x += f(x), the transformer's residual stream
    CHECK(closeness(acc, out, 0, 0) <= 1);
  }
}

TEST_CASE("residual_backward matches finite differences for both branches", "[ops][residual][grad]") {
  auto a = uniform(Shape{4, 3}, 1), b = uniform(Shape{4, 3}, 2);
  const auto g = weights(a.shape(), 3);
  CpuTensor<double> out(a.shape()), da(a.shape()), db(a.shape());
  auto loss = [&] {
    ops::residual_forward(out, a, b);
    return dot(out, g);
  };
  P4LM_CHECK_GRADIENT(check_input(loss, a, da, [&] { ops::residual_backward(da, {}, g); }));
  P4LM_CHECK_GRADIENT(check_input(loss, b, db, [&] { ops::residual_backward({}, db, g); }));
  CpuTensor<double> bad(Shape{3, 4});
  CHECK_THROWS_WITH(ops::residual_forward(out, a, bad), Catch::Contains("residual_forward: b"));
  CHECK_THROWS_WITH(ops::residual_backward(bad, {}, g), Catch::Contains("residual_backward: da"));
}
