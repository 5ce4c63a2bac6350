#pragma once
// Train/test splits per user: random holdout of a fraction of each user's ratings, or the last k by
// time. Both keep at least one rating of every user in train, so every test user has an embedding,
// and both refuse to return an empty train or test set: a model trained or evaluated on nothing would
// report rmse 0. Deterministic across platforms for a given seed (p4lm::Rng, Philox).
//
// The minimum: one user with at least 2 ratings, and for holdout_split a test_fraction that rounds to
// at least one of them (test_fraction * n_u >= 0.5).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"

namespace p4lm::cf {

struct Split {
  Ratings train, test;
};

namespace detail {
// Rating positions grouped by user (input order inside a user).
inline std::vector<std::vector<std::size_t>> positions_by_user(const Ratings& r) {
  std::vector<std::vector<std::size_t>> by(r.n_users);
  for (std::size_t k = 0; k < r.size(); ++k) by[static_cast<std::size_t>(r.user[k])].push_back(k);
  return by;
}

inline Split split_by_flags(const Ratings& r, const std::vector<char>& is_test, const char* what) {
  Split s;
  s.train.n_users = s.test.n_users = r.n_users;
  s.train.n_items = s.test.n_items = r.n_items;
  const auto n_test = static_cast<std::size_t>(std::count(is_test.begin(), is_test.end(), 1));
  s.test.reserve(n_test);
  s.train.reserve(r.size() - n_test);
  for (std::size_t k = 0; k < r.size(); ++k) (is_test[k] ? s.test : s.train).add_from(r, k);
  if (s.test.empty() || s.train.empty())
    fail<InvalidArgument>(what, ": too few ratings to train and evaluate: ", r.size(), " ratings of ",
                          r.n_users, " users leave ", s.train.size(), " to train on and ", s.test.size(),
                          " to test (the minimum is one user with 2 ratings, one of them held out)");
  return s;
}
}  // namespace detail

// Moves round(test_fraction * n_u) random ratings of each user u to test (at most n_u - 1).
// Ratings keep their input order within train and test.
inline Split holdout_split(const Ratings& r, double test_fraction, std::uint64_t seed) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0))
    fail<InvalidArgument>("holdout_split: test_fraction must be in (0, 1), got ", test_fraction);
  Rng rng(seed);
  std::vector<char> is_test(r.size(), 0);
  for (auto& positions : detail::positions_by_user(r)) {
    const std::size_t n = positions.size();
    if (n < 2) continue;
    const auto n_test = std::min<std::size_t>(
        n - 1, static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(n))));
    // Partial Fisher-Yates: the first n_test slots become a uniform random subset.
    for (std::size_t j = 0; j < n_test; ++j) {
      const auto pick = j + static_cast<std::size_t>(rng.below(n - j));
      std::swap(positions[j], positions[pick]);
      is_test[positions[j]] = 1;
    }
  }
  return detail::split_by_flags(r, is_test, "holdout_split");
}

// Moves each user's k most recent ratings to test (at most n_u - 1); equal timestamps are ordered by
// position in the input, later counting as more recent.
inline Split temporal_split(const Ratings& r, std::size_t k) {
  std::vector<char> is_test(r.size(), 0);
  for (auto& positions : detail::positions_by_user(r)) {
    const std::size_t n = positions.size();
    if (n < 2) continue;
    std::stable_sort(positions.begin(), positions.end(),
                     [&](std::size_t a, std::size_t b) { return r.timestamp[a] < r.timestamp[b]; });
    const std::size_t n_test = std::min(k, n - 1);
    for (std::size_t j = n - n_test; j < n; ++j) is_test[positions[j]] = 1;
  }
  return detail::split_by_flags(r, is_test, "temporal_split");
}

}  // namespace p4lm::cf
