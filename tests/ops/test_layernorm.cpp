#include <catch2/catch.hpp>

#include <p4lm/ops/layernorm.hpp>

#include "attn_test_helpers.hpp"
#include "fixture_reader.hpp"

using namespace p4lm;
using p4lm::test::closeness;
using p4lm::test::random_normal;

namespace {
template <class T>
struct LayerNormRun {
  CpuTensor<T> out, mean, rstd, dx, dw, db;
  LayerNormRun(const CpuTensor<T>& x, const CpuTensor<T>& w, const CpuTensor<T>& b, const CpuTensor<T>& g,
               T eps = T(1e-5))
      : out(x.shape()),
        mean(Shape{x.shape().rows()}),
        rstd(Shape{x.shape().rows()}),
        dx(x.shape(), T(0)),
        dw(w.shape(), T(0)),
        db(b.shape(), T(0)) {
    ops::layernorm_forward<T>(out, mean, rstd, x, w, b, eps);
    ops::layernorm_backward<T>(dx, dw, db, g, x, w, mean, rstd);
  }
};
}  // namespace

TEST_CASE("layernorm gradients match finite differences for every input", "[ops][layernorm]") {
  Rng rng(1);
  for (const Shape shape : {Shape{2, 3, 7}, Shape{1, 1, 8}, Shape{5, 33}}) {
    INFO("x shape " << shape);
    auto x = random_normal(shape, rng, 2.0, 3.0);
    auto w = random_normal(Shape{shape.last()}, rng, 0.5, 1.0);
    auto b = random_normal(Shape{shape.last()}, rng);
    auto g = random_normal(shape, rng);
    LayerNormRun<double> run(x, w, b, g);
    auto loss = [&] {
      CpuTensor<double> out(shape), mean(Shape{shape.rows()}), rstd(Shape{shape.rows()});
      ops::layernorm_forward<double>(out, mean, rstd, x, w, b);
      return test::dot(out, g);
    };
    test::require_gradient("x", loss, x, run.dx);
    test::require_gradient("weight", loss, w, run.dw);
    test::require_gradient("bias", loss, b, run.db);
  }
}

TEST_CASE("layernorm float agrees with double; backward accumulates; out may alias x", "[ops][layernorm]") {
  Rng rng(2);
  const Shape shape{64, 300};                      // large enough for the OpenMP path
  auto x = random_normal(shape, rng, 1.0, 100.0);  // a large mean: the one-pass variance must not cancel
  auto w = random_normal(Shape{300}, rng, 0.5, 1.0), b = random_normal(Shape{300}, rng);
  auto g = random_normal(shape, rng);
  LayerNormRun<double> d(x, w, b, g);
  LayerNormRun<float> f(test::cast<float>(x), test::cast<float>(w), test::cast<float>(b),
                        test::cast<float>(g));
  CHECK(closeness(f.out, d.out, 1e-4, 1e-4) <= 1);
  CHECK(closeness(f.mean, d.mean, 1e-4, 1e-6) <= 1);
  CHECK(closeness(f.rstd, d.rstd, 1e-6, 1e-4) <= 1);
  CHECK(closeness(f.dx, d.dx, 1e-4, 1e-3) <= 1);
  CHECK(closeness(f.dw, d.dw, 1e-3, 1e-4) <= 1);
  CHECK(closeness(f.db, d.db, 1e-3, 1e-4) <= 1);

  CpuTensor<double> dx2(d.dx), dw2(d.dw), db2(d.db);
  ops::layernorm_backward<double>(dx2, dw2, db2, g, x, w, d.mean, d.rstd);
  for (std::size_t i = 0; i < dx2.numel(); ++i) REQUIRE(dx2.data()[i] == Approx(2 * d.dx.data()[i]));
  for (std::size_t i = 0; i < dw2.numel(); ++i) REQUIRE(dw2.data()[i] == Approx(2 * d.dw.data()[i]));

  CpuTensor<double> inplace(x);
  CpuTensor<double> mean(Shape{64}), rstd(Shape{64});
  ops::layernorm_forward<double>(inplace, mean, rstd, inplace, w, b);
  CHECK(closeness(inplace, d.out, 1e-12, 1e-12) <= 1);
}

TEST_CASE("layernorm matches PyTorch (F.layer_norm, float64)", "[ops][layernorm][fixture]") {
  const auto fx = test::Fixture::ops("layernorm");
  auto x = fx.tensor("x"), w = fx.tensor("weight"), b = fx.tensor("bias"), g = fx.tensor("G");
  LayerNormRun<double> run(x, w, b, g, fx.scalar("eps"));
  CHECK(closeness(run.out, fx.tensor("out"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.mean, fx.tensor("mean"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.rstd, fx.tensor("rstd"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.dx, fx.tensor("dx"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.dw, fx.tensor("dweight"), 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.db, fx.tensor("dbias"), 1e-12, 1e-10) <= 1);
  LayerNormRun<float> f(test::cast<float>(x), test::cast<float>(w), test::cast<float>(b),
                        test::cast<float>(g), static_cast<float>(fx.scalar("eps")));
  CHECK(closeness(f.out, fx.tensor("out"), 1e-5, 1e-5) <= 1);
  CHECK(closeness(f.dx, fx.tensor("dx"), 1e-4, 1e-4) <= 1);
}

TEST_CASE("layernorm shape errors name the op, the argument and both shapes", "[ops][layernorm]") {
  CpuTensor<float> x(Shape{2, 4}), out(Shape{2, 4}), mean(Shape{2}), rstd(Shape{2}), w(Shape{4}), b(Shape{3});
  CHECK_THROWS_AS(ops::layernorm_forward<float>(out, mean, rstd, x, w, b), ShapeError);
  CHECK_THROWS_WITH(
      ops::layernorm_forward<float>(out, mean, rstd, x, w, b),
      Catch::Contains("layernorm_forward: bias") && Catch::Contains("(4)") && Catch::Contains("(3)"));
  CpuTensor<float> bad_mean(Shape{3});
  CHECK_THROWS_WITH(ops::layernorm_forward<float>(out, bad_mean, rstd, x, w, w),
                    Catch::Contains("layernorm_forward: mean"));
}
