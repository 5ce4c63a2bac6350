#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <utility>
#include <vector>

#include <p4lm/cf/split.hpp>

using namespace p4lm::cf;

namespace {
// User u has u + 1 ratings (items 0..u), timestamps decreasing with the item so order matters.
Ratings staircase(int users) {
  Ratings r;
  r.n_users = static_cast<std::size_t>(users);
  r.n_items = static_cast<std::size_t>(users);
  for (Index u = 0; u < users; ++u)
    for (Index i = 0; i <= u; ++i) r.add(u, i, static_cast<float>(1 + (u + i) % 5), 1000 - i);
  return r;
}
std::set<std::pair<Index, Index>> pairs(const Ratings& r) {
  std::set<std::pair<Index, Index>> out;
  for (std::size_t k = 0; k < r.size(); ++k) out.emplace(r.user[k], r.item[k]);
  return out;
}
}  // namespace

TEST_CASE("holdout_split: per-user fractions, disjoint, complete, seeded", "[cf][split]") {
  const auto r = staircase(30);
  const auto s = holdout_split(r, 0.2, 7);
  CHECK(s.train.size() + s.test.size() == r.size());
  const auto train = pairs(s.train), test = pairs(s.test);
  for (const auto& p : test) CHECK(train.count(p) == 0);
  std::map<Index, std::size_t> test_per_user, train_per_user;
  for (Index u : s.test.user) ++test_per_user[u];
  for (Index u : s.train.user) ++train_per_user[u];
  for (Index u = 0; u < 30; ++u) {
    const auto n = static_cast<std::size_t>(u + 1);
    const auto expected =
        n < 2 ? 0 : std::min<std::size_t>(n - 1, static_cast<std::size_t>(std::llround(0.2 * n)));
    CHECK(test_per_user[u] == expected);
    CHECK(train_per_user[u] >= 1);
  }
  // Same seed, same split; another seed, another split.
  CHECK(pairs(holdout_split(r, 0.2, 7).test) == test);
  CHECK(pairs(holdout_split(r, 0.2, 8).test) != test);
  // Pinned: the first test pairs for seed 7 do not change across platforms or releases. PROVENANCE:
  // scripts/fixtures/cf_split_pins.py (Philox4x32-10, Lemire's bounded draw and the partial
  // Fisher-Yates written again in Python).
  REQUIRE(s.test.size() > 6);
  const std::vector<std::pair<Index, Index>> first{{2, 2}, {3, 3}, {4, 0}, {5, 0}, {6, 2}, {7, 2}};
  for (std::size_t k = 0; k < first.size(); ++k)
    CHECK(std::make_pair(s.test.user[k], s.test.item[k]) == first[k]);
  CHECK(s.test.n_users == 30);
  CHECK_THROWS_AS(holdout_split(r, 1.0, 1), p4lm::InvalidArgument);
}

TEST_CASE("temporal_split: the last k ratings by time go to test", "[cf][split]") {
  const auto r = staircase(6);
  const auto s = temporal_split(r, 2);
  // Timestamps fall with the item index, so the most recent ratings are the lowest items.
  const std::set<std::pair<Index, Index>> expected{{1, 0}, {2, 0}, {2, 1}, {3, 0}, {3, 1},
                                                   {4, 0}, {4, 1}, {5, 0}, {5, 1}};
  CHECK(pairs(s.test) == expected);
  CHECK(s.train.size() == r.size() - expected.size());
}
