#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <p4lm/cf/baselines.hpp>
#include <p4lm/cf/metrics.hpp>

using namespace p4lm::cf;

namespace {
// Scores items by a fixed list, the same for every user.
struct FixedScores {
  std::vector<float> scores;
  void score_items(Index, std::span<float> out) const {
    std::copy(scores.begin(), scores.end(), out.begin());
  }
};
}  // namespace

TEST_CASE("recall_at_k and ndcg_at_k by hand", "[cf][metrics]") {
  const std::vector<Index> ranked{5, 2, 9, 1};
  const std::vector<Index> relevant{2, 1, 7};
  CHECK(recall_at_k(ranked, relevant, 1) == 0.0);
  CHECK(recall_at_k(ranked, relevant, 2) == Approx(1.0 / 3));
  CHECK(recall_at_k(ranked, relevant, 4) == Approx(2.0 / 3));
  // DCG@4 = 1/log2(3) + 1/log2(5); IDCG@4 = 1 + 1/log2(3) + 1/log2(4).
  const double dcg = 1 / std::log2(3.0) + 1 / std::log2(5.0), idcg = 1 + 1 / std::log2(3.0) + 0.5;
  CHECK(ndcg_at_k(ranked, relevant, 4) == Approx(dcg / idcg));
  CHECK(ndcg_at_k(ranked, std::vector<Index>{5}, 10) == 1.0);
  CHECK(ndcg_at_k(ranked, std::vector<Index>{}, 10) == 0.0);
}

TEST_CASE("rating_metrics: RMSE and MAE with clipping", "[cf][metrics]") {
  Ratings test;
  test.n_users = 1;
  test.n_items = 3;
  test.add(0, 0, 4.0f);
  test.add(0, 1, 2.0f);
  test.add(0, 2, 5.0f);
  const GlobalMean three{3.0f, 3};
  const auto m = rating_metrics(three, test);
  CHECK(m.rmse == Approx(std::sqrt((1.0 + 1.0 + 4.0) / 3)));
  CHECK(m.mae == Approx(4.0 / 3));
  CHECK(m.count == 3);
  const GlobalMean nine{9.0f, 3};
  CHECK(rating_metrics(nine, test, 0.5f, 5.0f).mae == Approx((1.0 + 3.0 + 0.0) / 3));
}

TEST_CASE("ranking_metrics excludes training items, applies the threshold, counts coverage",
          "[cf][metrics]") {
  Ratings train, test;
  train.n_users = test.n_users = 3;
  train.n_items = test.n_items = 6;
  train.add(0, 0, 5.0f);  // user 0 saw item 0, the top-scored item
  test.add(0, 1, 5.0f);   // ... and likes item 1, next in line
  test.add(0, 5, 1.0f);   // disliked: not relevant
  train.add(1, 1, 3.0f);
  test.add(1, 3, 4.0f);  // user 1's relevant item is ranked 3rd after removing item 1
  train.add(2, 2, 3.0f);
  test.add(2, 3, 3.5f);  // user 2 has nothing relevant: skipped
  const FixedScores model{{6, 5, 4, 3, 2, 1}};
  const auto m = ranking_metrics(model, train, test, {.ks = {1, 3}, .relevance_threshold = 4.0f});
  CHECK(m.users == 2);
  CHECK(m.recall.at(1) == Approx(0.5));  // user 0 hit, user 1 miss
  CHECK(m.recall.at(3) == Approx(1.0));
  CHECK(m.ndcg.at(3) == Approx((1.0 + 1.0 / std::log2(4.0)) / 2));
  // Top-1 lists: {1} for user 0, {0} for user 1 -> 2 of 6 items; top-3: {1,2,3} and {0,2,3}.
  CHECK(m.coverage.at(1) == Approx(2.0 / 6));
  CHECK(m.coverage.at(3) == Approx(4.0 / 6));
  // Ties go to the lower item index.
  const auto tied = ranking_metrics(FixedScores{{1, 1, 1, 1, 1, 1}}, train, test, {.ks = {1}});
  CHECK(tied.recall.at(1) == Approx(0.5));
}

TEST_CASE("BiasOnly recovers additive biases; Popularity counts", "[cf][baselines]") {
  Ratings r;
  r.n_users = 3;
  r.n_items = 4;
  const float bu[3] = {-0.5f, 0.0f, 0.5f}, bi[4] = {1.0f, -1.0f, 0.25f, -0.25f};
  for (Index u = 0; u < 3; ++u)
    for (Index i = 0; i < 4; ++i) r.add(u, i, 3.0f + bu[u] + bi[i]);
  const auto m = BiasOnly::fit(r, 0.0f, 0.0f, 20);
  CHECK(rating_metrics(m, r).rmse < 1e-5);
  CHECK(m.item_bias[0] - m.item_bias[1] == Approx(2.0f));
  r.add(0, 3, 3.0f);
  const auto pop = Popularity::fit(r);
  CHECK(pop.counts == std::vector<float>{3, 3, 3, 4});
}
