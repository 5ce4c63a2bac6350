#pragma once
// The baselines a CF model must beat: the global mean (ratings), regularised user + item biases
// (ratings and ranking by item bias), and popularity (ranking by training-set count).

#include <cstdint>
#include <span>
#include <vector>

#include "p4lm/cf/ratings.hpp"

namespace p4lm::cf {

// predict = mean of the training ratings; all items score the same.
struct GlobalMean {
  float mean = 0.0f;
  std::size_t n_items = 0;

  static GlobalMean fit(const Ratings& train) { return {static_cast<float>(train.mean()), train.n_items}; }
  float predict(Index, Index) const noexcept { return mean; }
  void score_items(Index, std::span<float> out) const noexcept { std::fill(out.begin(), out.end(), 0.0f); }
};

// predict = mu + b_u + b_i, fitted by alternating the closed-form updates
//   b_i = sum_u (r_ui - mu - b_u) / (reg_item + n_i),  b_u = sum_i (r_ui - mu - b_i) / (reg_user + n_u).
struct BiasOnly {
  float mean = 0.0f;
  std::vector<float> user_bias, item_bias;

  static BiasOnly fit(const Ratings& train, float reg_user = 5.0f, float reg_item = 5.0f,
                      int iterations = 10) {
    BiasOnly m;
    m.mean = static_cast<float>(train.mean());
    m.user_bias.assign(train.n_users, 0.0f);
    m.item_bias.assign(train.n_items, 0.0f);
    std::vector<double> sum_u(train.n_users), sum_i(train.n_items);
    std::vector<std::int64_t> n_u(train.n_users, 0), n_i(train.n_items, 0);
    for (std::size_t k = 0; k < train.size(); ++k) {
      ++n_u[static_cast<std::size_t>(train.user[k])];
      ++n_i[static_cast<std::size_t>(train.item[k])];
    }
    for (int it = 0; it < iterations; ++it) {
      std::fill(sum_i.begin(), sum_i.end(), 0.0);
      for (std::size_t k = 0; k < train.size(); ++k)
        sum_i[static_cast<std::size_t>(train.item[k])] +=
            train.rating[k] - m.mean - m.user_bias[static_cast<std::size_t>(train.user[k])];
      for (std::size_t i = 0; i < train.n_items; ++i)
        m.item_bias[i] = static_cast<float>(sum_i[i] / (reg_item + static_cast<double>(n_i[i])));
      std::fill(sum_u.begin(), sum_u.end(), 0.0);
      for (std::size_t k = 0; k < train.size(); ++k)
        sum_u[static_cast<std::size_t>(train.user[k])] +=
            train.rating[k] - m.mean - m.item_bias[static_cast<std::size_t>(train.item[k])];
      for (std::size_t u = 0; u < train.n_users; ++u)
        m.user_bias[u] = static_cast<float>(sum_u[u] / (reg_user + static_cast<double>(n_u[u])));
    }
    return m;
  }
  float predict(Index u, Index i) const noexcept {
    return mean + user_bias[static_cast<std::size_t>(u)] + item_bias[static_cast<std::size_t>(i)];
  }
  void score_items(Index, std::span<float> out) const noexcept {
    std::copy(item_bias.begin(), item_bias.end(), out.begin());
  }
};

// Ranks items by how often they were rated in train; predicts no ratings.
struct Popularity {
  std::vector<float> counts;

  static Popularity fit(const Ratings& train) {
    Popularity m;
    const auto c = item_counts(train);
    m.counts.assign(c.begin(), c.end());
    return m;
  }
  void score_items(Index, std::span<float> out) const noexcept {
    std::copy(counts.begin(), counts.end(), out.begin());
  }
};

}  // namespace p4lm::cf
