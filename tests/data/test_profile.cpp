#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include <p4lm/data/profile.hpp>

#include "fixture.hpp"

using namespace p4lm::data;
using p4lm::cf::Index;

namespace {
// Three movies: 0 Drama, 1 Drama, 2 Horror; 3 Comedy.
Catalog tiny_catalog() {
  std::vector<CatalogItem> items(4);
  const char* genres[] = {"Drama", "Drama", "Horror", "Comedy"};
  for (int i = 0; i < 4; ++i) {
    items[static_cast<std::size_t>(i)].item = i;
    items[static_cast<std::size_t>(i)].movie_id = 100 + i;
    items[static_cast<std::size_t>(i)].title = "Movie " + std::to_string(i);
    items[static_cast<std::size_t>(i)].year = 2000 + i;
    items[static_cast<std::size_t>(i)].genres = {genres[i]};
  }
  items[0].tags = {{"slow", "slow", 3}};
  items[1].tags = {{"slow", "slow", 1}};
  return Catalog(std::move(items));
}
}  // namespace

TEST_CASE("build_profiles: shrunk mean-centred affinities, favourites, text", "[data][profile]") {
  const auto catalog = tiny_catalog();
  p4lm::cf::Ratings r;
  r.n_users = 2;
  r.n_items = 4;
  r.add(0, 0, 5.0f);
  r.add(0, 1, 4.5f);
  r.add(0, 2, 1.0f);
  r.add(0, 3, 3.0f);
  p4lm::cf::IdMap users;
  users.insert(7);
  users.insert(9);
  ProfileOptions o;
  o.min_count = 1;
  const auto profiles = build_profiles(r, catalog, users, o);
  REQUIRE(profiles.size() == 2);
  const auto& p = profiles[0];
  CHECK(p.user_id == 7);
  CHECK(p.n_ratings == 4);
  CHECK(p.mean_rating == Approx(3.375));
  // Drama: (1.625 + 1.125) / (2 + 3); Horror: -2.375 / (1 + 3); Comedy: -0.375 / 4 (inside the band).
  REQUIRE(p.liked_genres.size() == 1);
  CHECK(p.liked_genres[0].name == "Drama");
  CHECK(p.liked_genres[0].score == Approx(2.75 / 5));
  REQUIRE(p.disliked_genres.size() == 1);
  CHECK(p.disliked_genres[0].name == "Horror");
  CHECK(p.disliked_genres[0].score == Approx(-2.375 / 4));
  REQUIRE(p.liked_tags.size() == 1);
  CHECK(p.liked_tags[0].name == "slow");
  CHECK(p.favourites == std::vector<Index>{0, 1});  // 3.0 is below the user's mean: not a favourite
  CHECK(
      p.text ==
      "Loves Drama; enjoys movies tagged slow; dislikes Horror; favourites: Movie 0 (2000), Movie 1 (2001). "
      "4 ratings, mean 3.4.");
  // A user without ratings gets an empty profile, not an error.
  CHECK(profiles[1].n_ratings == 0);
  CHECK(profiles[1].text == "0 ratings, mean 0.0.");
  // With the default min_count of 2, the single Horror movie is not enough to dislike Horror.
  CHECK(build_profiles(r, catalog, users)[0].disliked_genres.empty());
}

TEST_CASE("build_profiles: only the training ratings shape a profile", "[data][profile]") {
  const auto& b = p4lm_test::bundle();
  const std::size_t n = 40;
  const auto train = p4lm_test::first_users(b.split.train, n);
  const auto test = p4lm_test::first_users(b.split.test, n);
  const auto profiles = build_profiles(train, b.catalog, b.ml.users);
  // Adding arbitrary extra ratings to the held-out part changes nothing: the builder never sees it,
  // and everything a profile names comes from the user's training ratings.
  const auto rows = p4lm::cf::by_user(train);
  std::size_t test_favourites_left_out = 0;
  for (std::size_t u = 0; u < n; ++u) {
    const auto& p = profiles[u];
    const auto items = rows.cols_of(u);
    CHECK(p.n_ratings == items.size());
    for (auto f : p.favourites) CHECK(std::find(items.begin(), items.end(), f) != items.end());
    for (std::size_t k = 0; k < test.size(); ++k)
      if (static_cast<std::size_t>(test.user[k]) == u && test.rating[k] == 5.0f)
        test_favourites_left_out +=
            std::find(p.favourites.begin(), p.favourites.end(), test.item[k]) == p.favourites.end();
  }
  CHECK(test_favourites_left_out > 0);
  // Profiles from all ratings differ for some user (the split matters), so the check above has teeth.
  const auto all = build_profiles(p4lm_test::first_users(b.ml.ratings, n), b.catalog, b.ml.users);
  std::size_t differ = 0;
  for (std::size_t u = 0; u < n; ++u) differ += all[u].text != profiles[u].text;
  CHECK(differ > 0);
}

TEST_CASE("set_cf_genre_taste: genres where the user's factor leans more than other users'",
          "[data][profile]") {
  const auto catalog = tiny_catalog();  // 0, 1 Drama; 2 Horror; 3 Comedy
  p4lm::cf::Ratings r;
  r.n_users = 4;
  r.n_items = 4;
  for (Index i = 0; i < 4; ++i) r.add(0, i, 4.0f);  // every movie has training ratings
  r.add(1, 2, 5.0f);
  r.add(3, 0, 5.0f);
  p4lm::cf::IdMap users, items;
  for (std::int64_t id : {7, 9, 11, 13}) users.insert(id);
  for (std::int64_t id : {100, 101, 102, 103}) items.insert(id);
  ProfileOptions o;
  o.min_count = 1;
  auto profiles = build_profiles(r, catalog, users, o);
  const auto from_ratings = profiles[3];
  // Item factors: Drama (1, 0), Horror (0, 1), Comedy (0, 0). Users 7 (1, 0), 9 (0, 1), 11 (-1, -1);
  // user 13 has no CF row.
  p4lm::cf::Embeddings<2> e(3, 4);
  e.user_ids = {7, 9, 11};
  e.item_ids = {100, 101, 102, 103};
  const float user_factors[] = {1, 0, 0, 1, -1, -1}, item_factors[] = {1, 0, 1, 0, 0, 1, 0, 0};
  std::copy(std::begin(user_factors), std::end(user_factors), e.users.data());
  std::copy(std::begin(item_factors), std::end(item_factors), e.items.data());
  o.cf_min_movies = 1;
  set_cf_genre_taste(profiles, e, r, catalog, items, o);
  auto names = [](const std::vector<Affinity>& a) {
    std::vector<std::string> out;
    for (const auto& x : a) out.push_back(x.name);
    std::sort(out.begin(), out.end());
    return out;
  };
  // Taste t = u . (genre mean - all mean), all mean (0.5, 0.25); Drama across users (0.5, -0.25, -0.25)
  // standardises to (sqrt 2, -1/sqrt 2, -1/sqrt 2).
  REQUIRE(profiles[0].liked_genres.size() == 1);
  CHECK(profiles[0].liked_genres[0].name == "Drama");
  CHECK(profiles[0].liked_genres[0].score == Approx(std::sqrt(2.0)));
  CHECK(profiles[0].liked_genres[0].count == 2);  // user 7 rated both Drama movies in training
  CHECK(names(profiles[0].disliked_genres) == std::vector<std::string>{"Comedy", "Horror"});
  CHECK(names(profiles[1].liked_genres) == std::vector<std::string>{"Horror"});
  CHECK(names(profiles[1].disliked_genres) == std::vector<std::string>{"Drama"});  // Comedy: -0.46
  CHECK(names(profiles[2].liked_genres) == std::vector<std::string>{"Comedy"});
  CHECK(profiles[0].text.starts_with("Loves Drama; "));
  CHECK(profiles[3].text == from_ratings.text);  // no CF row: the rating-based profile stays
  o.cf_min_movies = 3;                           // no genre has 3 movies
  set_cf_genre_taste(profiles, e, r, catalog, items, o);
  CHECK(profiles[0].liked_genres.empty());
}
