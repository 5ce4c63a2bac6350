// Smoke test on the real bundled data: the models must beat their baselines on an 80/20 split.
// Small settings (Dim 16, 5 epochs) keep it quick under sanitizers; docs/cf.md has the full table.
#include <catch2/catch.hpp>

#include <p4lm/cf/als.hpp>
#include <p4lm/cf/baselines.hpp>
#include <p4lm/cf/implicit_als.hpp>
#include <p4lm/cf/metrics.hpp>
#include <p4lm/cf/movielens.hpp>
#include <p4lm/cf/split.hpp>

using namespace p4lm::cf;

TEST_CASE("ml-latest-small: ALS beats bias-only on RMSE, implicit ALS beats popularity on NDCG@10",
          "[cf][data]") {
  const auto ml = load_movielens(bundled_movielens(), {.tags = false});
  const auto s = holdout_split(ml.ratings, 0.2, 1);
  CHECK(s.train.size() + s.test.size() == 100836);
  CHECK(s.test.size() > 19000);

  const auto bias = BiasOnly::fit(s.train);
  const auto als = ALS<16>({.epochs = 5, .reg = 0.15f, .reg_bias = 1.0f, .seed = 1}).fit(s.train);
  const double rmse_bias = rating_metrics(bias, s.test, 0.5f, 5.0f).rmse;
  const double rmse_als = rating_metrics(als, s.test, 0.5f, 5.0f).rmse;
  CHECK(rmse_bias < rating_metrics(GlobalMean::fit(s.train), s.test, 0.5f, 5.0f).rmse);
  CHECK(rmse_als < rmse_bias - 0.005);

  const auto pop = Popularity::fit(s.train);
  const auto implicit = ImplicitALS<16>({.epochs = 5, .reg = 30.0f, .alpha = 2.0f, .seed = 1}).fit(s.train);
  const double ndcg_pop = ranking_metrics(pop, s.train, s.test, {.ks = {10}}).ndcg.at(10);
  const double ndcg_implicit = ranking_metrics(implicit, s.train, s.test, {.ks = {10}}).ndcg.at(10);
  CHECK(ndcg_implicit > ndcg_pop + 0.01);
}
