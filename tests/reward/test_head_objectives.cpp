// Reward heads and their objectives: MlpHead's backward by finite differences in double, the
// Bradley-Terry (per row and over sentence rows) and NLI (logistic, per row and over token rows) losses
// against their formulas and gradients, the data order.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/reward/head_objectives.hpp"

using namespace p4lm;
using reward::MlpHead;

namespace {
using V = TensorView<backend::cpu, double>;

// Loss of a head over rows x with fixed output weights c: Σ c·y, so dy = c.
double weighted_out(MlpHead<double>& h, const std::vector<double>& x, std::size_t n,
                    const std::vector<double>& c) {
  const auto y = h.forward(x.data(), n);
  double s = 0;
  for (std::size_t i = 0; i < y.size(); ++i) s += c[i] * y[i];
  return s;
}
// The gradients the last obj.loss(h, b) accumulated in h against finite differences of the loss.
template <class Objective>
void check_objective_gradient(MlpHead<double>& h, Objective& obj, const typename Objective::Batch& b) {
  for (auto& p : h.parameters()) {
    const auto r = check_gradient(
        [&] {  // loss only: the objective's own forward, gradients going to a scratch copy
          MlpHead<double> copy = h;
          return obj.loss(copy, b).loss;
        },
        p.value, p.grad);
    INFO(p.name << ": " << r.str());
    CHECK(r.max_relative_error < 1e-5);
  }
}
}  // namespace

TEST_CASE("MlpHead backward matches finite differences in double", "[reward][head]") {
  for (std::size_t out : {1u, 3u}) {
    MlpHead<double> h(5, 4, out, 7);
    Rng rng(3, 1);
    const std::size_t n = 3;
    std::vector<double> x(n * 5), c(n * out);
    for (auto& v : x) v = rng.normal();
    for (auto& v : c) v = rng.normal();
    h.zero_grad();
    weighted_out(h, x, n, c);
    h.backward(c.data());
    for (auto& p : h.parameters()) {
      const auto r = check_gradient([&] { return weighted_out(h, x, n, c); }, p.value, p.grad);
      INFO(p.name << " out=" << out << ": " << r.str());
      CHECK(r.max_relative_error < 1e-6);
    }
  }
}

TEST_CASE("Bradley-Terry objective: -log sigma(r_w - r_l) and its gradient", "[reward][bt]") {
  const std::size_t width = 4, n = 6;
  Rng rng(5, 2);
  std::vector<double> w(n * width), l(n * width);
  for (auto& v : w) v = rng.normal();
  for (auto& v : l) v = rng.normal();
  MlpHead<double> h(width, 3, 1, 2);
  reward::BradleyTerryObjective<double> obj(w, l, width, n);
  const auto b = obj.batch(0, 0);
  // Independent value: each pair's -log σ(r_w - r_l) from the head's scores.
  const auto rw = h.forward(reward::gather_rows(w, width, b.rows).data(), n);
  const auto rl = h.forward(reward::gather_rows(l, width, b.rows).data(), n);
  double expect = 0;
  for (std::size_t i = 0; i < n; ++i)
    expect += -std::log(1.0 / (1.0 + std::exp(-(rw[i] - rl[i])))) / double(n);
  h.zero_grad();
  const auto got = obj.loss(h, b);
  CHECK(got.loss == Approx(expect).epsilon(1e-12));
  CHECK(got.tokens == n);
  check_objective_gradient(h, obj, b);
}

TEST_CASE("NLI objective: logistic loss on the entailment logit and its gradient", "[reward][nli]") {
  const std::size_t width = 3, n = 5;
  Rng rng(9, 3);
  std::vector<double> x(n * width), y = {1, 0, 1, 1, 0};
  for (auto& v : x) v = rng.normal();
  MlpHead<double> h(width, 4, 1, 3);
  reward::NliObjective<double> obj(x, y, width, n);
  const auto b = obj.batch(0, 0);
  const auto z = h.forward(reward::gather_rows(x, width, b.rows).data(), n);
  double expect = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double p = 1.0 / (1.0 + std::exp(-z[i])), t = y[b.rows[i]];
    expect += -(t * std::log(p) + (1 - t) * std::log(1 - p)) / double(n);
  }
  h.zero_grad();
  CHECK(obj.loss(h, b).loss == Approx(expect).epsilon(1e-12));
  check_objective_gradient(h, obj, b);
}

TEST_CASE("Token NLI objective: soft minimum over each example's token scores, loss and gradient",
          "[reward][nli]") {
  const std::size_t width = 3;
  const std::vector<std::size_t> offsets = {0, 2, 3, 7};  // 2, 1 and 4 token rows
  const std::vector<double> y = {1, 0, 1};
  Rng rng(5, 2);
  std::vector<double> x(offsets.back() * width);
  for (auto& v : x) v = rng.normal();
  MlpHead<double> h(width, 4, 1, 5);
  reward::TokenNliObjective<double> obj(x, offsets, y, width, 3);
  const auto b = obj.batch(0, 0);
  // Independent recomputation: each example's rows through the head alone, z = -log Σ exp(c).
  double expect = 0;
  for (const auto i : b.rows) {
    const std::vector<double> xi(x.begin() + long(offsets[i] * width),
                                 x.begin() + long(offsets[i + 1] * width));
    const auto c = h.forward(xi.data(), offsets[i + 1] - offsets[i]);
    double sum = 0;
    for (const double v : c) sum += std::exp(v);
    const double z = -std::log(sum), p = 1 / (1 + std::exp(-z));
    expect += -(y[i] * std::log(p) + (1 - y[i]) * std::log(1 - p)) / 3.0;
  }
  h.zero_grad();
  CHECK(obj.loss(h, b).loss == Approx(expect).epsilon(1e-12));
  check_objective_gradient(h, obj, b);
  CHECK_THROWS_WITH(reward::TokenNliObjective<double>(x, {0, 2, 3}, y, width, 3),
                    Catch::Contains("3 labels") && Catch::Contains("3 offsets"));
}

TEST_CASE("Sentence Bradley-Terry objective: log-sum-exp over each pitch's sentence rows", "[reward][bt]") {
  const std::size_t width = 3;
  const std::vector<std::size_t> wo = {0, 2, 3, 6}, lo = {0, 1, 4, 5};  // 3 pairs, 1-3 sentences each
  Rng rng(4, 7);
  std::vector<double> w(wo.back() * width), l(lo.back() * width);
  for (auto& v : w) v = rng.normal();
  for (auto& v : l) v = rng.normal();
  MlpHead<double> h(width, 4, 1, 6);
  reward::SentenceBradleyTerryObjective<double> obj(w, wo, l, lo, width, 3);
  const auto b = obj.batch(0, 0);
  // Independent recomputation: each pitch's rows through the head alone, r = log Σ exp(c).
  const auto pitch_score = [&](const std::vector<double>& x, const std::vector<std::size_t>& o,
                               std::size_t i) {
    const std::vector<double> xi(x.begin() + long(o[i] * width), x.begin() + long(o[i + 1] * width));
    double sum = 0;
    for (const double c : h.forward(xi.data(), o[i + 1] - o[i])) sum += std::exp(c);
    return std::log(sum);
  };
  double expect = 0;
  for (const auto i : b.rows)
    expect += -std::log(1 / (1 + std::exp(-(pitch_score(w, wo, i) - pitch_score(l, lo, i))))) / 3.0;
  h.zero_grad();
  CHECK(obj.loss(h, b).loss == Approx(expect).epsilon(1e-12));
  check_objective_gradient(h, obj, b);
  CHECK_THROWS_WITH(reward::SentenceBradleyTerryObjective<double>(w, wo, l, {0, 1, 4}, width, 3),
                    Catch::Contains("rejected side") && Catch::Contains("3 offsets"));
}

TEST_CASE("Example order: every example once per epoch, a pure function of the step", "[reward][order]") {
  reward::ExampleOrder a(10, 5, 1), b(10, 5, 1);
  std::vector<int> seen(10, 0);
  for (std::size_t s = 0; s < 2; ++s)
    for (auto r : a.rows(s)) ++seen[r];
  for (int k : seen) CHECK(k == 1);
  CHECK(a.rows(7) == b.rows(7));
  CHECK(b.rows(0) == reward::ExampleOrder(10, 5, 1).rows(0));
  CHECK_THROWS_WITH(reward::ExampleOrder(0, 5, 1), Catch::Contains("no examples"));
}
