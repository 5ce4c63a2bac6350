#include <catch2/catch.hpp>

#include <p4lm/ops/embedding.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

namespace {
Tensor<backend::cpu, std::int32_t> random_ids(Shape shape, std::size_t V, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<backend::cpu, std::int32_t> ids(shape);
  for (auto& id : ids.span()) id = static_cast<std::int32_t>(rng.below(V));
  return ids;
}
}  // namespace

TEMPLATE_TEST_CASE("embedding_forward looks up token rows and adds position rows", "[ops][embedding]", float,
                   double) {
  using T = TestType;
  const std::size_t V = 7, C = 5, maxT = 6;
  const auto wte = cast<T>(uniform(Shape{V, C}, 1)), wpe = cast<T>(uniform(Shape{maxT, C}, 2));
  const auto ids = random_ids(Shape{3, 4}, V, 3);
  CpuTensor<T> out(Shape{3, 4, C});
  ops::embedding_forward(out, ids, wte, wpe);
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t t = 0; t < 4; ++t)
      for (std::size_t c = 0; c < C; ++c) {
        const std::size_t id = static_cast<std::size_t>(ids.data()[b * 4 + t]);
        CHECK(out.data()[(b * 4 + t) * C + c] == wte.data()[id * C + c] + wpe.data()[t * C + c]);
      }
  SECTION("without positions, ids of any rank (here one token)") {
    const Tensor<backend::cpu, std::int32_t> one(Shape{1}, {6});
    CpuTensor<T> row(Shape{1, C});
    ops::embedding_forward(row, one, wte);
    for (std::size_t c = 0; c < C; ++c) CHECK(row.data()[c] == wte.data()[6 * C + c]);
  }
}

TEST_CASE("embedding_backward matches finite differences, with repeated ids", "[ops][embedding][grad]") {
  const std::size_t V = 5, C = 3, maxT = 5;
  auto wte = uniform(Shape{V, C}, 11), wpe = uniform(Shape{maxT, C}, 12);
  const Tensor<backend::cpu, std::int32_t> ids(Shape{2, 4}, {1, 3, 1, 1, 0, 3, 3, 2});  // id 4 unused
  const auto g = weights(Shape{2, 4, C}, 13);
  CpuTensor<double> out(g.shape());
  auto loss = [&] {
    ops::embedding_forward(out, ids, wte, wpe);
    return dot(out, g);
  };
  CpuTensor<double> dwte(wte.shape()), dwpe(wpe.shape());
  P4LM_CHECK_GRADIENT(check_input(loss, wte, dwte, [&] { ops::embedding_backward(dwte, {}, g, ids); }));
  P4LM_CHECK_GRADIENT(check_input(loss, wpe, dwpe, [&] { ops::embedding_backward({}, dwpe, g, ids); }));
}

TEST_CASE("embedding_backward on threads equals the sequential scatter-add exactly", "[ops][embedding]") {
  // Large enough that the channels are split across threads; few ids, so rows collide a lot.
  const std::size_t V = 4, C = 1031, maxT = 40;
  const auto ids = random_ids(Shape{2, 40}, V, 21);
  const auto g = cast<float>(uniform(Shape{2, 40, C}, 22));
  CpuTensor<float> dwte(Shape{V, C}), dwpe(Shape{maxT, C}), ref_te(Shape{V, C}), ref_pe(Shape{maxT, C});
  ops::embedding_backward(dwte, dwpe, g, ids);
  for (std::size_t r = 0; r < 80; ++r)
    for (std::size_t c = 0; c < C; ++c) {
      ref_te.data()[static_cast<std::size_t>(ids.data()[r]) * C + c] += g.data()[r * C + c];
      ref_pe.data()[(r % 40) * C + c] += g.data()[r * C + c];
    }
  CHECK(closeness(dwte, ref_te, 0, 0) <= 1);
  CHECK(closeness(dwpe, ref_pe, 0, 0) <= 1);
  CpuTensor<float> out(Shape{2, 40, C});
  ops::embedding_forward(out, ids, cast<float>(uniform(Shape{V, C}, 23)),
                         cast<float>(uniform(Shape{maxT, C}, 24)));
}

TEST_CASE("embedding rejects bad ids and short position tables", "[ops][embedding]") {
  CpuTensor<float> wte(Shape{4, 2}), wpe(Shape{2, 2}), out(Shape{1, 3, 2});
  const Tensor<backend::cpu, std::int32_t> bad(Shape{1, 3}, {0, 4, 1}), neg(Shape{1, 3}, {0, -1, 1}),
      ok(Shape{1, 3}, {0, 1, 2});
  CHECK_THROWS_AS(ops::embedding_forward(out, bad, wte), InvalidArgument);
  CHECK_THROWS_WITH(ops::embedding_forward(out, neg, wte), Catch::Contains("id -1 at position 1"));
  CHECK_THROWS_WITH(ops::embedding_forward(out, ok, wte, wpe), Catch::Contains("embedding_forward: wpe"));
  CpuTensor<float> wrong_out(Shape{1, 3, 3});
  CHECK_THROWS_WITH(ops::embedding_forward(wrong_out, ok, wte),
                    Catch::Contains("embedding_forward: out") && Catch::Contains("(1, 3, 2)"));
  CpuTensor<float> dwte(Shape{4, 2});
  CHECK_THROWS_AS(ops::embedding_backward(dwte, {}, out, bad), InvalidArgument);
}
