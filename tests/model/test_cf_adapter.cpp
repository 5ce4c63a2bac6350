// CFAdapter: shapes and names, finite-difference gradients (double), frozen halves, gathering from
// cf::Embeddings, and the compile-time check of the embedding width.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <tuple>
#include <type_traits>
#include <vector>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/model/cf_adapter.hpp"

namespace {

using p4lm::CpuTensor;
using p4lm::Shape;

template <class T>
void fill_normal(p4lm::TensorView<p4lm::backend::cpu, T> t, p4lm::Rng& rng, double s = 1.0) {
  for (auto& x : t.span()) x = static_cast<T>(s * rng.normal());
}

// Can CFAdapter<AdapterDim> take cf::Embeddings<EmbDim>? (A requires-expression: false when the
// constrained member rejects the call, instead of a hard error.)
template <int AdapterDim, int EmbDim>
constexpr bool accepts = requires(p4lm::CFAdapter<AdapterDim>& a, const p4lm::cf::Embeddings<EmbDim>& e,
                                  p4lm::TensorView<p4lm::backend::cpu, float> prefix,
                                  std::span<const p4lm::cf::Index> ids) {
  a.forward(prefix, e, ids, ids);
};

// Backward of loss = Σ weights ⊙ prefix (so d loss / d prefix = weights) against finite differences,
// for every parameter and both inputs. eps = 1e-5: the loss sums O(100) O(1) terms, so eps = 1e-6
// would leave ~1e-9 of rounding in each difference.
template <class Adapter, class Loss>
void check_adapter_gradients(Adapter& adapter, Loss&& loss, CpuTensor<double>& user, CpuTensor<double>& item,
                             const CpuTensor<double>& weights) {
  loss();
  adapter.zero_grad();
  CpuTensor<double> duser(user.shape()), ditem(item.shape());
  adapter.backward(weights, duser, ditem);
  for (auto& p : adapter.parameters()) {
    INFO(p.name);
    const CpuTensor<double> analytic(p.grad);
    const auto report = p4lm::check_gradient(loss, p.value, analytic, 1e-5);
    INFO(report.str());
    CHECK(report.max_relative_error < 1e-6);
  }
  for (auto [input, grad, what] : {std::tuple{&user, &duser, "user"}, std::tuple{&item, &ditem, "item"}}) {
    const auto report = p4lm::check_gradient(loss, input->view(), *grad, 1e-5);
    INFO(what << " input: " << report.str());
    CHECK(report.max_relative_error < 1e-6);
  }
}

}  // namespace

TEST_CASE("CFAdapter: embedding width is checked at compile time", "[model][cf_adapter]") {
  STATIC_REQUIRE(accepts<32, 32>);
  STATIC_REQUIRE(!accepts<32, 16>);
  STATIC_REQUIRE(!accepts<8, 64>);
  STATIC_REQUIRE(p4lm::CFDimMatches<16, 16>);
  STATIC_REQUIRE(!p4lm::CFDimMatches<16, 32>);
  using Gather = decltype([](const auto& e) {
    p4lm::TensorView<p4lm::backend::cpu, float> v;
    p4lm::CFAdapter<32>::gather(e, {}, {}, v, v);
  });
  STATIC_REQUIRE(std::is_invocable_v<Gather, const p4lm::cf::Embeddings<32>&>);
}

TEST_CASE("CFAdapter: parameter names, shapes and prefix layout", "[model][cf_adapter]") {
  p4lm::CFAdapter<4, 2> adapter(6, 5);
  STATIC_REQUIRE(p4lm::CFAdapter<4, 2>::prefix_length == 4);
  const auto params = adapter.parameters();
  REQUIRE(params.size() == 8);
  CHECK(params[0].name == "adapter.user.fc1.weight");
  CHECK(params[0].value.shape() == Shape{5, 4});
  CHECK(params[1].name == "adapter.user.fc1.bias");
  CHECK(params[2].name == "adapter.user.fc2.weight");
  CHECK(params[2].value.shape() == Shape{12, 5});
  CHECK(params[3].name == "adapter.user.fc2.bias");
  CHECK(params[4].name == "adapter.item.fc1.weight");
  CHECK(params[7].name == "adapter.item.fc2.bias");
  CHECK(params[0].decay);
  CHECK_FALSE(params[1].decay);
  CHECK(adapter.num_parameters() == 2 * (5 * 4 + 5 + 12 * 5 + 12));

  p4lm::Rng rng(3);
  adapter.init_random(rng);
  CpuTensor<float> user(Shape{3, 4}), item(Shape{3, 4}), prefix(Shape{3, 4, 6});
  fill_normal(user.view(), rng);
  fill_normal(item.view(), rng);
  adapter.forward(prefix, user, item);
  // Same user, other item: the user rows stay, the item rows change.
  CpuTensor<float> item2(item), prefix2(Shape{3, 4, 6});
  fill_normal(item2.view(), rng);
  adapter.forward(prefix2, user, item2);
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t k = 0; k < 2 * 6; ++k) {
      CHECK(prefix.data()[b * 24 + k] == prefix2.data()[b * 24 + k]);
      CHECK(prefix.data()[b * 24 + 12 + k] != prefix2.data()[b * 24 + 12 + k]);
    }
  CpuTensor<float> wrong(Shape{3, 3, 6});
  CHECK_THROWS_AS(adapter.forward(wrong, user, item), p4lm::ShapeError);
  CpuTensor<float> bad_user(Shape{3, 5});
  CHECK_THROWS_AS(adapter.forward(prefix, bad_user, item), p4lm::ShapeError);
}

TEST_CASE("CFAdapter: finite-difference gradients (double)", "[model][cf_adapter][gradcheck]") {
  p4lm::CFAdapter<5, 2, double> adapter(4, 7);
  p4lm::Rng rng(11);
  adapter.init_random(rng, 0.5);
  // Non-zero biases so their gradients are exercised through GELU's curved region.
  for (auto& p : adapter.parameters())
    if (p.value.rank() == 1) fill_normal(p.value, rng, 0.3);
  const std::size_t B = 3;
  CpuTensor<double> user(Shape{B, 5}), item(Shape{B, 5}), prefix(Shape{B, 4, 4}), weights(Shape{B, 4, 4});
  fill_normal(user.view(), rng);
  fill_normal(item.view(), rng);
  fill_normal(weights.view(), rng);
  // loss = Σ weights ⊙ prefix, so d loss / d prefix = weights.
  auto loss = [&] {
    adapter.forward(prefix, user, item);
    double s = 0;
    for (std::size_t i = 0; i < prefix.numel(); ++i) s += weights.data()[i] * prefix.data()[i];
    return s;
  };
  check_adapter_gradients(adapter, loss, user, item, weights);
  // Backward accumulates: a second call doubles every gradient.
  const CpuTensor<double> once(adapter.parameters()[2].grad);
  loss();
  adapter.backward(weights);
  for (std::size_t i = 0; i < once.numel(); ++i)
    CHECK(adapter.parameters()[2].grad.data()[i] == Approx(2 * once.data()[i]));
}

TEST_CASE("CFAdapter: frozen parameters get no gradient; clone is independent", "[model][cf_adapter]") {
  p4lm::CFAdapter<3> adapter(4);
  p4lm::Rng rng(5);
  adapter.init_random(rng);
  CHECK(adapter.freeze("adapter.user.*") == 4);
  CpuTensor<float> user(Shape{2, 3}), item(Shape{2, 3}), prefix(Shape{2, 2, 4}),
      dprefix(Shape{2, 2, 4}, 1.0f);
  fill_normal(user.view(), rng);
  fill_normal(item.view(), rng);
  adapter.zero_grad();
  adapter.forward(prefix, user, item);
  adapter.backward(dprefix);
  for (const auto& p : adapter.parameters()) {
    double sum = 0;
    for (float g : p.grad.span()) sum += std::abs(g);
    INFO(p.name);
    if (p.name.starts_with("adapter.user.")) CHECK(sum == 0);
    if (p.name.ends_with("weight") && p.name.starts_with("adapter.item.")) CHECK(sum > 0);
  }
  auto copy = adapter.clone();
  CHECK_FALSE(copy.parameters()[0].trainable);
  copy.parameters()[0].value.data()[0] += 1.0f;
  CHECK(copy.parameters()[0].value.data()[0] != adapter.parameters()[0].value.data()[0]);
  CHECK(copy.parameters()[4].value.data()[1] == adapter.parameters()[4].value.data()[1]);
}

TEST_CASE("CFAdapter: reads rows of cf::Embeddings", "[model][cf_adapter]") {
  p4lm::cf::Embeddings<3> cf(4, 5);
  for (std::size_t i = 0; i < cf.users.size(); ++i) cf.users.data()[i] = static_cast<float>(i);
  for (std::size_t i = 0; i < cf.items.size(); ++i) cf.items.data()[i] = -static_cast<float>(i);
  p4lm::CFAdapter<3, 1, double> adapter(2);
  p4lm::Rng rng(1);
  adapter.init_random(rng);
  const std::vector<p4lm::cf::Index> users{2, 0}, items{4, 1};
  CpuTensor<double> u(Shape{2, 3}), it(Shape{2, 3});
  p4lm::CFAdapter<3, 1, double>::gather(cf, users, items, u, it);
  CHECK(u.data()[0] == 6.0);
  CHECK(u.data()[3] == 0.0);
  CHECK(it.data()[0] == -12.0);
  CHECK(it.data()[5] == -5.0);
  CpuTensor<double> a(Shape{2, 2, 2}), b(Shape{2, 2, 2});
  adapter.forward(a, cf, users, items);
  adapter.forward(b, u, it);
  for (std::size_t i = 0; i < a.numel(); ++i) CHECK(a.data()[i] == b.data()[i]);
  const std::vector<p4lm::cf::Index> out_of_range{4, 0};
  CHECK_THROWS_AS(adapter.forward(a, cf, out_of_range, items), p4lm::InvalidArgument);
}

TEST_CASE("CFAdapter: vocabulary-mixture output, finite-difference gradients (double)",
          "[model][cf_adapter][gradcheck]") {
  const std::size_t C = 4, V = 6, B = 3;
  p4lm::CFAdapter<5, 2, double> adapter(C, 7, V);
  CHECK(adapter.vocabulary() == V);
  CHECK(adapter.parameters()[2].value.shape() == Shape{2 * V, 7});  // fc2: Tokens·V logits
  p4lm::Rng rng(17);
  adapter.init_random(rng);
  for (auto& p : adapter.parameters())
    if (p.value.rank() == 1) fill_normal(p.value, rng, 0.3);
  CpuTensor<double> table(Shape{V, C}), user(Shape{B, 5}), item(Shape{B, 5}), prefix(Shape{B, 4, C}),
      weights(Shape{B, 4, C});
  fill_normal(table.view(), rng);
  fill_normal(user.view(), rng);
  fill_normal(item.view(), rng);
  fill_normal(weights.view(), rng);
  CHECK_THROWS_WITH(adapter.forward(prefix, user, item), Catch::Contains("use_vocabulary"));
  CHECK_THROWS_WITH(adapter.use_vocabulary(CpuTensor<double>(Shape{V, C + 1})), Catch::Contains("table"));
  adapter.use_vocabulary(table);
  auto loss = [&] {
    adapter.forward(prefix, user, item);
    double s = 0;
    for (std::size_t i = 0; i < prefix.numel(); ++i) s += weights.data()[i] * prefix.data()[i];
    return s;
  };
  loss();
  // Each soft token is a convex mixture of the table's rows: inside their per-coordinate range.
  for (std::size_t r = 0; r < B * 4; ++r)
    for (std::size_t c = 0; c < C; ++c) {
      double lo = 1e300, hi = -1e300;
      for (std::size_t v = 0; v < V; ++v)
        lo = std::min(lo, table.data()[v * C + c]), hi = std::max(hi, table.data()[v * C + c]);
      CHECK(prefix.data()[r * C + c] >= lo);
      CHECK(prefix.data()[r * C + c] <= hi);
    }
  check_adapter_gradients(adapter, loss, user, item, weights);
  // The table is read, not trained, through the adapter: clone keeps reading the same table.
  const auto copy = adapter.clone();
  CHECK(copy.vocabulary() == V);
}
