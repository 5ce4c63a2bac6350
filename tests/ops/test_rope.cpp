#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

#include <p4lm/ops/rope.hpp>

#include "attn_test_helpers.hpp"
#include "fixture_reader.hpp"

using namespace p4lm;
using p4lm::test::closeness;
using p4lm::test::random_normal;

namespace {
CpuTensor<std::int32_t> positions_of(Shape shape, std::initializer_list<std::int32_t> values) {
  return CpuTensor<std::int32_t>(shape, values);
}
}  // namespace

TEST_CASE("rope follows llama2.c: adjacent pairs, freq = theta^(-2i/D), explicit positions", "[ops][rope]") {
  Rng rng(5);
  const std::size_t B = 2, T = 3, H = 2, D = 8;
  auto x = random_normal(Shape{B, T, H, D}, rng);
  auto pos = positions_of(Shape{B, T}, {0, 1, 2, 5, 6, 40});
  CpuTensor<double> out(x.shape());
  ops::rope_forward<double>(out, x, pos);
  // llama2.c run.c, written out: for i in 0, 2, 4, ...: freq = 1 / 10000^((i % head_size) / head_size).
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t i = 0; i < D; i += 2) {
          const double angle = pos.data()[b * T + t] / std::pow(10000.0, double(i) / double(D));
          const std::size_t at = ((b * T + t) * H + h) * D + i;
          const double x0 = x.data()[at], x1 = x.data()[at + 1];
          REQUIRE(out.data()[at] == Approx(x0 * std::cos(angle) - x1 * std::sin(angle)).margin(1e-14));
          REQUIRE(out.data()[at + 1] == Approx(x0 * std::sin(angle) + x1 * std::cos(angle)).margin(1e-14));
        }
  // Position 0 is the identity.
  for (std::size_t i = 0; i < H * D; ++i) REQUIRE(out.data()[i] == x.data()[i]);
}

TEST_CASE("rope gradient matches finite differences; shared positions broadcast", "[ops][rope]") {
  Rng rng(6);
  for (const std::size_t D : {std::size_t{2}, std::size_t{8}, std::size_t{16}}) {
    const Shape shape{2, 3, 3, D};
    auto x = random_normal(shape, rng), g = random_normal(shape, rng);
    auto pos = positions_of(Shape{2, 3}, {3, 4, 5, 0, 17, 1000});
    CpuTensor<double> dx(shape, 0.0);
    ops::rope_backward<double>(dx, g, pos, 500000.0);
    auto loss = [&] {
      CpuTensor<double> out(shape);
      ops::rope_forward<double>(out, x, pos, 500000.0);
      return test::dot(out, g);
    };
    test::require_gradient("x", loss, x, dx);
  }
  auto x = random_normal(Shape{2, 4, 2, 8}, rng);
  auto shared = positions_of(Shape{4}, {7, 8, 9, 10});
  auto per_batch = positions_of(Shape{2, 4}, {7, 8, 9, 10, 7, 8, 9, 10});
  CpuTensor<double> a(x.shape()), b(x.shape());
  ops::rope_forward<double>(a, x, shared);
  ops::rope_forward<double>(b, x, per_batch);
  CHECK(closeness(a, b, 0, 0) <= 1);
}

TEST_CASE("rope float agrees with double, in place and at long positions", "[ops][rope]") {
  Rng rng(7);
  const Shape shape{2, 64, 4, 32};
  auto x = random_normal(shape, rng);
  CpuTensor<std::int32_t> pos(Shape{2, 64});
  for (std::size_t i = 0; i < 128; ++i) pos.data()[i] = static_cast<std::int32_t>(i * 31);
  CpuTensor<double> d(shape);
  ops::rope_forward<double>(d, x, pos);
  auto f = test::cast<float>(x);
  ops::rope_forward<float>(f, f, pos);  // in place
  CHECK(closeness(f, d, 1e-5, 1e-5) <= 1);
  CpuTensor<float> df(shape, 1.0f);
  ops::rope_backward<float>(df, f, pos);  // accumulates onto the ones: 1 + R^T R x = 1 + x
  auto xf = test::cast<float>(x);
  for (std::size_t i = 0; i < df.numel(); ++i)
    REQUIRE(df.data()[i] == Approx(1.0f + xf.data()[i]).margin(1e-5));
}

TEST_CASE("rope matches PyTorch (Meta's complex-number reference, float64)", "[ops][rope][fixture]") {
  for (const char* name : {"rope", "rope_theta"}) {
    INFO(name);
    const auto fx = test::Fixture::ops(name);
    auto x = fx.tensor("x"), g = fx.tensor("G");
    auto pos = fx.tensor<std::int32_t>("positions");
    CpuTensor<double> out(x.shape()), dx(x.shape(), 0.0);
    ops::rope_forward<double>(out, x, pos, fx.scalar("theta"));
    ops::rope_backward<double>(dx, g, pos, fx.scalar("theta"));
    CHECK(closeness(out, fx.tensor("out"), 1e-12, 1e-10) <= 1);
    CHECK(closeness(dx, fx.tensor("dx"), 1e-12, 1e-10) <= 1);
  }
}

TEST_CASE("rope rejects odd head sizes and mismatched positions", "[ops][rope]") {
  CpuTensor<float> x(Shape{1, 2, 1, 3}), out(Shape{1, 2, 1, 3});
  CpuTensor<std::int32_t> pos(Shape{1, 2});
  CHECK_THROWS_WITH(ops::rope_forward<float>(out, x, pos), Catch::Contains("even"));
  CpuTensor<float> y(Shape{1, 2, 1, 4}), o(Shape{1, 2, 1, 4});
  CpuTensor<std::int32_t> bad(Shape{3});
  CHECK_THROWS_WITH(ops::rope_forward<float>(o, y, bad), Catch::Contains("rope_forward: positions") &&
                                                             Catch::Contains("(3)") &&
                                                             Catch::Contains("(1, 2)"));
}
