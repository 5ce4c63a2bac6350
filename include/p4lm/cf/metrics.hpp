#pragma once
// Accuracy of rating predictions (RMSE, MAE) and of top-K lists (Recall@K, NDCG@K, catalog coverage).
// Ranking protocol: for each test user, every item is scored, the user's training items are removed,
// ties go to the lower item index; the relevant items are the user's test items rated >=
// relevance_threshold, and users without one are skipped. Binary relevance:
//   Recall@K = hits in top K / |relevant|,
//   NDCG@K   = sum_{hits at rank r <= K} 1/log2(r+1)  /  sum_{r=1..min(K,|relevant|)} 1/log2(r+1),
//   coverage@K = |union of all evaluated users' top-K lists| / n_items.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <span>
#include <vector>

#include "p4lm/cf/detail/parallel.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::cf {

template <class M>
concept RatingPredictor = requires(const M& m, Index u, Index i) {
  { m.predict(u, i) } -> std::convertible_to<float>;
};

template <class M>
concept ItemScorer = requires(const M& m, Index u, std::span<float> scores) {
  m.score_items(u, scores);
};

struct RatingMetrics {
  double rmse = 0.0, mae = 0.0;
  std::size_t count = 0;
};

// Predictions are clipped to [lo, hi] first (MovieLens: 0.5..5), as any rating predictor would.
template <RatingPredictor M>
RatingMetrics rating_metrics(const M& model, const Ratings& test,
                             float lo = -std::numeric_limits<float>::infinity(),
                             float hi = std::numeric_limits<float>::infinity()) {
  double se = 0.0, ae = 0.0;
  for (std::size_t k = 0; k < test.size(); ++k) {
    const float p = std::clamp(static_cast<float>(model.predict(test.user[k], test.item[k])), lo, hi);
    const double err = static_cast<double>(p) - test.rating[k];
    se += err * err;
    ae += std::abs(err);
  }
  const auto n = static_cast<double>(test.size());
  if (test.empty()) return {};
  return {std::sqrt(se / n), ae / n, test.size()};
}

// Recall and NDCG of one ranked list (item indices, best first) against a set of relevant items.
inline double recall_at_k(std::span<const Index> ranked, std::span<const Index> relevant, std::size_t k) {
  if (relevant.empty()) return 0.0;
  std::size_t hits = 0;
  for (std::size_t r = 0; r < std::min(k, ranked.size()); ++r)
    hits += std::find(relevant.begin(), relevant.end(), ranked[r]) != relevant.end();
  return static_cast<double>(hits) / static_cast<double>(relevant.size());
}

inline double ndcg_at_k(std::span<const Index> ranked, std::span<const Index> relevant, std::size_t k) {
  double dcg = 0.0, ideal = 0.0;
  for (std::size_t r = 0; r < std::min(k, ranked.size()); ++r)
    if (std::find(relevant.begin(), relevant.end(), ranked[r]) != relevant.end())
      dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  for (std::size_t r = 0; r < std::min(k, relevant.size()); ++r)
    ideal += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  return ideal > 0.0 ? dcg / ideal : 0.0;
}

struct RankingOptions {
  std::vector<int> ks{10, 20};
  float relevance_threshold = 4.0f;  // test ratings >= this are relevant
};

struct RankingMetrics {
  std::map<int, double> recall, ndcg, coverage;  // by K
  std::size_t users = 0;                         // users evaluated
};

template <ItemScorer M>
RankingMetrics ranking_metrics(const M& model, const Ratings& train, const Ratings& test,
                               const RankingOptions& options = {}) {
  if (options.ks.empty()) fail<InvalidArgument>("ranking_metrics: no K given");
  const std::size_t max_k = static_cast<std::size_t>(*std::max_element(options.ks.begin(), options.ks.end()));
  const std::size_t n_items = train.n_items;
  const Csr seen = by_user(train), held = by_user(test);
  std::vector<Index> users;
  for (std::size_t u = 0; u < held.rows(); ++u) {
    const auto v = held.values_of(u);
    if (std::any_of(v.begin(), v.end(), [&](float r) { return r >= options.relevance_threshold; }))
      users.push_back(static_cast<Index>(u));
  }
  const std::size_t nk = options.ks.size();
  std::vector<double> recall(users.size() * nk), ndcg(users.size() * nk);
  std::vector<Index> tops(users.size() * max_k, -1);  // each user's top max_k, for coverage
  const auto n_users = static_cast<std::int64_t>(users.size());
#pragma omp parallel num_threads(detail::team_size())
  {
    std::vector<float> scores(n_items);
    std::vector<Index> order(n_items), relevant;
#pragma omp for schedule(dynamic, 16)
    for (std::int64_t x = 0; x < n_users; ++x) {
      const Index u = users[static_cast<std::size_t>(x)];
      model.score_items(u, scores);
      for (Index i : seen.cols_of(static_cast<std::size_t>(u)))
        scores[static_cast<std::size_t>(i)] = -std::numeric_limits<float>::infinity();
      relevant.clear();
      const auto cols = held.cols_of(static_cast<std::size_t>(u));
      const auto vals = held.values_of(static_cast<std::size_t>(u));
      for (std::size_t j = 0; j < cols.size(); ++j)
        if (vals[j] >= options.relevance_threshold) relevant.push_back(cols[j]);
      std::iota(order.begin(), order.end(), 0);
      const std::size_t top = std::min(max_k, n_items - seen.row_size(static_cast<std::size_t>(u)));
      std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(),
                        [&](Index a, Index b) {
                          const float sa = scores[static_cast<std::size_t>(a)],
                                      sb = scores[static_cast<std::size_t>(b)];
                          return sa > sb || (sa == sb && a < b);
                        });
      const std::span<const Index> ranked(order.data(), top);
      for (std::size_t q = 0; q < nk; ++q) {
        const auto k = static_cast<std::size_t>(options.ks[q]);
        recall[static_cast<std::size_t>(x) * nk + q] = recall_at_k(ranked, relevant, k);
        ndcg[static_cast<std::size_t>(x) * nk + q] = ndcg_at_k(ranked, relevant, k);
      }
      std::copy(ranked.begin(), ranked.end(), tops.begin() + x * static_cast<std::int64_t>(max_k));
    }
  }
  RankingMetrics out;
  out.users = users.size();
  for (std::size_t q = 0; q < nk; ++q) {
    double sr = 0.0, sn = 0.0;
    for (std::size_t x = 0; x < users.size(); ++x) {
      sr += recall[x * nk + q];
      sn += ndcg[x * nk + q];
    }
    const int k = options.ks[q];
    std::vector<char> shown(n_items, 0);
    for (std::size_t x = 0; x < users.size(); ++x)
      for (std::size_t r = 0; r < static_cast<std::size_t>(k); ++r)
        if (const Index i = tops[x * max_k + r]; i >= 0) shown[static_cast<std::size_t>(i)] = 1;
    const double n = users.empty() ? 1.0 : static_cast<double>(users.size());
    out.recall[k] = sr / n;
    out.ndcg[k] = sn / n;
    out.coverage[k] = n_items == 0 ? 0.0
                                   : static_cast<double>(std::count(shown.begin(), shown.end(), 1)) /
                                         static_cast<double>(n_items);
  }
  return out;
}

}  // namespace p4lm::cf
