#include <catch2/catch.hpp>

#include <p4lm/ops/rmsnorm.hpp>

#include "attn_test_helpers.hpp"
#include "fixture_reader.hpp"

using namespace p4lm;
using p4lm::test::closeness;
using p4lm::test::random_normal;

namespace {
template <class T>
struct RmsNormRun {
  CpuTensor<T> out, rstd, dx, dw;
  RmsNormRun(const CpuTensor<T>& x, const CpuTensor<T>& w, const CpuTensor<T>& g, T eps = T(1e-5))
      : out(x.shape()), rstd(Shape{x.shape().rows()}), dx(x.shape(), T(0)), dw(w.shape(), T(0)) {
    ops::rmsnorm_forward<T>(out, rstd, x, w, eps);
    ops::rmsnorm_backward<T>(dx, dw, g, x, w, rstd);
  }
};
}  // namespace

TEST_CASE("rmsnorm gradients match finite differences for every input", "[ops][rmsnorm]") {
  Rng rng(3);
  for (const Shape shape : {Shape{2, 3, 7}, Shape{1, 1, 8}, Shape{4, 33}}) {
    INFO("x shape " << shape);
    auto x = random_normal(shape, rng, 1.5, 0.5);
    auto w = random_normal(Shape{shape.last()}, rng, 0.5, 1.0);
    auto g = random_normal(shape, rng);
    RmsNormRun<double> run(x, w, g);
    auto loss = [&] {
      CpuTensor<double> out(shape), rstd(Shape{shape.rows()});
      ops::rmsnorm_forward<double>(out, rstd, x, w);
      return test::dot(out, g);
    };
    test::require_gradient("x", loss, x, run.dx);
    test::require_gradient("weight", loss, w, run.dw);
  }
}

TEST_CASE("rmsnorm float agrees with double; backward accumulates; out may alias x", "[ops][rmsnorm]") {
  Rng rng(4);
  const Shape shape{64, 288};
  auto x = random_normal(shape, rng), w = random_normal(Shape{288}, rng, 0.5, 1.0),
       g = random_normal(shape, rng);
  RmsNormRun<double> d(x, w, g);
  RmsNormRun<float> f(test::cast<float>(x), test::cast<float>(w), test::cast<float>(g));
  CHECK(closeness(f.out, d.out, 1e-5, 1e-4) <= 1);
  CHECK(closeness(f.rstd, d.rstd, 1e-6, 1e-5) <= 1);
  CHECK(closeness(f.dx, d.dx, 1e-4, 1e-3) <= 1);
  CHECK(closeness(f.dw, d.dw, 1e-3, 1e-4) <= 1);

  CpuTensor<double> dx2(d.dx), dw2(d.dw);
  ops::rmsnorm_backward<double>(dx2, dw2, g, x, w, d.rstd);
  for (std::size_t i = 0; i < dx2.numel(); ++i) REQUIRE(dx2.data()[i] == Approx(2 * d.dx.data()[i]));
  for (std::size_t i = 0; i < dw2.numel(); ++i) REQUIRE(dw2.data()[i] == Approx(2 * d.dw.data()[i]));

  CpuTensor<double> inplace(x), rstd(Shape{64});
  ops::rmsnorm_forward<double>(inplace, rstd, inplace, w);
  CHECK(closeness(inplace, d.out, 1e-12, 1e-12) <= 1);
}

TEST_CASE("rmsnorm matches PyTorch (Meta's RMSNorm, float64)", "[ops][rmsnorm][fixture]") {
  const auto fx = test::Fixture::ops("rmsnorm");
  auto x = fx.tensor("x"), w = fx.tensor("weight"), g = fx.tensor("G");
  RmsNormRun<double> run(x, w, g, fx.scalar("eps"));
  CHECK(closeness(run.out, fx.tensor("out"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.rstd, fx.tensor("rstd"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.dx, fx.tensor("dx"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.dw, fx.tensor("dweight"), 1e-12, 1e-10) <= 1);
}

TEST_CASE("rmsnorm shape errors name the op and the argument", "[ops][rmsnorm]") {
  CpuTensor<double> x(Shape{2, 4}), out(Shape{2, 5}), rstd(Shape{2}), w(Shape{4});
  CHECK_THROWS_WITH(ops::rmsnorm_forward<double>(out, rstd, x, w), Catch::Contains("rmsnorm_forward: out") &&
                                                                       Catch::Contains("(2, 4)") &&
                                                                       Catch::Contains("(2, 5)"));
}
