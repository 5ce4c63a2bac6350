// Token alignment (Precision's features) on hand-made token states with known answers, and the soft
// minimum that turns token scores into a sentence's entailment logit; the soft maximum (log-sum-exp)
// that turns sentence scores into a pitch's personalization.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "p4lm/reward/token_alignment.hpp"

using namespace p4lm;
using reward::TokenStates;

TEST_CASE("Alignment rows: best cosine, exact id and bigram support per hypothesis token",
          "[reward][alignment]") {
  const std::size_t d = 2;
  // Premise tokens 5 6 7 along (1,0), (0,1), (0.6,0.8).
  const TokenStates premise{{5, 6, 7}, {1, 0, 0, 1, 0.6f, 0.8f}};
  // Hypothesis tokens 6 7 9: "6 7" is a premise bigram, 9 is not in the premise.
  const TokenStates hyp{{6, 7, 9}, {0, 1, 0.8f, 0.6f, -1, 0}};
  std::vector<float> rows;
  REQUIRE(reward::append_alignment_rows(premise, hyp, d, rows) == 3);
  const std::size_t w = reward::alignment_width(d);
  REQUIRE(rows.size() == 3 * w);
  const auto at = [&](std::size_t t, std::size_t k) { return rows[t * w + k]; };
  // Token 0 = (0,1): best premise match is token 6 (0,1), cosine 1.
  CHECK(at(0, 0) == Approx(0));
  CHECK(at(0, 1) == Approx(std::sqrt(2.0)));
  CHECK(at(0, 2) == Approx(0));  // h ⊙ p · d
  CHECK(at(0, 3) == Approx(2));
  CHECK(at(0, 4) == Approx(1));  // max cosine
  CHECK(at(0, 5) == 1);          // id 6 is in the premise
  CHECK(at(0, 6) == 1);          // (6, 7) is a premise bigram
  // Token 1 = (0.8,0.6): cosines 0.8, 0.6, 0.96 -> token 7.
  CHECK(at(1, 4) == Approx(0.96));
  CHECK(at(1, 2) == Approx(0.8 * 0.6 * 2));
  CHECK(at(1, 6) == 1);
  // Token 2 = (-1,0): cosines -1, 0, -0.6 -> token 6, cosine 0; id 9 unseen, no bigram.
  CHECK(at(2, 4) == Approx(0));
  CHECK(at(2, 5) == 0);
  CHECK(at(2, 6) == 0);

  // A hypothesis without tokens still gets one (zero) row, so every sentence has a score.
  rows.clear();
  CHECK(reward::append_alignment_rows(premise, TokenStates{}, d, rows) == 1);
  CHECK(rows == std::vector<float>(w, 0.f));
  CHECK_THROWS_WITH(reward::append_alignment_rows(premise, TokenStates{{1}, {1, 0, 0}}, d, rows),
                    Catch::Contains("not (tokens, 2)"));
}

namespace {
// The gradient `backward` gives for the loss Σ_i d[i]·f(c)[i] against central differences of f.
template <class F>
void check_group_gradient(F f, const std::vector<double>& dc, const std::vector<double>& c,
                          const std::vector<std::size_t>& offsets, const std::vector<double>& d) {
  const double eps = 1e-6;
  for (std::size_t t = 0; t < c.size(); ++t) {
    auto hi = c, lo = c;
    hi[t] += eps, lo[t] -= eps;
    const auto fh = f(hi, offsets), fl = f(lo, offsets);
    double num = 0;
    for (std::size_t i = 0; i < d.size(); ++i) num += d[i] * (fh[i] - fl[i]) / (2 * eps);
    CHECK(dc[t] == Approx(num).epsilon(1e-6).margin(1e-9));
  }
}
}  // namespace

TEST_CASE("Soft minimum: z = -log sum exp(c) per sentence, and its gradient", "[reward][alignment]") {
  const std::vector<double> c = {0.5, -1.0, 800.0, 799.0, 2.0};
  const std::vector<std::size_t> offsets = {0, 2, 4, 5};
  const auto z = reward::soft_min_logits(c, offsets);
  REQUIRE(z.size() == 3);
  CHECK(z[0] == Approx(-std::log(std::exp(0.5) + std::exp(-1.0))));
  CHECK(z[1] == Approx(-(800.0 + std::log(1 + std::exp(-1.0)))));  // no overflow
  CHECK(z[2] == Approx(-2.0));
  const std::vector<double> dz = {1.0, -2.0, 0.5};
  check_group_gradient(reward::soft_min_logits<double>, reward::soft_min_logits_backward(dz, c, z, offsets),
                       c, offsets, dz);
  CHECK_THROWS_WITH(reward::soft_min_logits(c, {0, 2, 2, 5}), Catch::Contains("sentence 1 has no tokens"));
  CHECK_THROWS_WITH(reward::soft_min_logits(c, {0, 2}), Catch::Contains("offsets end at 2"));
}

TEST_CASE("Log-sum-exp over groups: a soft maximum, and its gradient", "[reward][bt]") {
  const std::vector<double> c = {0.5, -1.0, 2.0, 800.0, 799.0};
  const std::vector<std::size_t> offsets = {0, 3, 5};
  const auto r = reward::log_sum_exp_groups(c, offsets);
  CHECK(r[0] == Approx(std::log(std::exp(0.5) + std::exp(-1.0) + std::exp(2.0))).epsilon(1e-12));
  CHECK(r[1] == Approx(800 + std::log(1 + std::exp(-1.0))).epsilon(1e-12));  // no overflow
  const std::vector<double> dr = {0.7, -1.3};
  check_group_gradient(reward::log_sum_exp_groups<double>,
                       reward::log_sum_exp_groups_backward(dr, c, r, offsets), c, offsets, dr);
}
