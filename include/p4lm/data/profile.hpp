#pragma once
// User profiles: what a user likes and dislikes, from TRAINING ratings only, as data and as the short
// text the paper's PaLM 2 profiles stand in for ("Loves Sci-Fi and Thriller; dislikes Romance; ...").
//
//   auto split = p4lm::cf::holdout_split(ml.ratings, 0.2, 1);
//   auto profiles = p4lm::data::build_profiles(split.train, catalog, ml.users);
//   std::cout << profiles[0].text;
//
// Affinity of user u for a genre (or tag) g: the user's ratings centred on the user's own mean,
// summed over u's rated movies that have g, divided by (count + shrinkage):
//   a(u, g) = sum_{i has g} (r_ui - mean_u) / (n_ug + shrinkage)
// so one lucky rating does not make a "favourite genre", and a harsh or lenient rater is judged
// against themselves. Liked: a >= like_threshold; disliked: a <= -like_threshold; both need
// min_count movies.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/data/catalog.hpp"

namespace p4lm::data {

struct Affinity {
  std::string name;  // genre name, or tag key (lower-cased) for tags
  double score = 0;  // shrunk mean-centred rating, in stars
  int count = 0;     // rated movies that carry it
};

struct UserProfile {
  cf::Index user = 0;
  std::int64_t user_id = 0;
  std::size_t n_ratings = 0;  // training ratings
  double mean_rating = 0;
  std::vector<Affinity> liked_genres, disliked_genres, liked_tags, disliked_tags;  // strongest first
  std::vector<cf::Index> favourites;  // highest-rated training movies, best first
  std::string text;                   // render_profile(*this, catalog)
};

struct ProfileOptions {
  double shrinkage = 3.0;        // pseudo-count added to each genre/tag count
  double like_threshold = 0.15;  // stars above (below: minus) the user's mean
  int min_count = 2;             // movies a genre/tag needs before it can be liked or disliked
  std::size_t max_genres = 3, max_tags = 3, max_favourites = 3;
  std::size_t tags_per_movie = 5;  // a movie's top tags that count towards tag affinity
  // CF genre taste (set_cf_genre_taste): liked above this many standard deviations across users,
  // disliked below minus it; a genre needs cf_min_movies movies with training ratings.
  double cf_taste_threshold = 0.5;
  std::size_t cf_min_movies = 10;
};

namespace detail {
// Strongest first (score, then count, then name: the same on every platform); liked: the first
// `max` with score >= threshold, disliked: the last `max` with score <= -threshold, weakest first.
inline void split_affinities(std::vector<Affinity> all, double threshold, std::size_t max,
                             std::vector<Affinity>& liked, std::vector<Affinity>& disliked) {
  std::sort(all.begin(), all.end(), [](const Affinity& a, const Affinity& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.count != b.count) return a.count > b.count;
    return a.name < b.name;
  });
  liked.clear(), disliked.clear();
  for (const auto& a : all)
    if (a.score >= threshold && liked.size() < max) liked.push_back(a);
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (it->score <= -threshold && disliked.size() < max) disliked.push_back(*it);
}

inline void rank_affinities(const std::map<std::string, std::pair<double, int>>& sums,
                            const ProfileOptions& o, std::vector<Affinity>& liked,
                            std::vector<Affinity>& disliked, std::size_t max) {
  std::vector<Affinity> all;
  for (const auto& [name, sc] : sums) {
    if (sc.second < o.min_count) continue;
    all.push_back({name, sc.first / (sc.second + o.shrinkage), sc.second});
  }
  split_affinities(std::move(all), o.like_threshold, max, liked, disliked);
}

inline std::string join_and(const std::vector<std::string>& words) {
  std::string out;
  for (std::size_t k = 0; k < words.size(); ++k) {
    if (k > 0) out += k + 1 == words.size() ? " and " : ", ";
    out += words[k];
  }
  return out;
}
}  // namespace detail

// "Loves Drama and Crime; enjoys movies tagged dark comedy; dislikes Horror; favourites: Heat (1995),
// Fargo (1996). 212 ratings, mean 3.9."
inline std::string render_profile(const UserProfile& p, const Catalog& catalog) {
  auto names = [](const std::vector<Affinity>& a) {
    std::vector<std::string> out;
    for (const auto& x : a) out.push_back(x.name);
    return out;
  };
  std::vector<std::string> parts;
  if (!p.liked_genres.empty()) parts.push_back("Loves " + detail::join_and(names(p.liked_genres)));
  if (!p.liked_tags.empty()) parts.push_back("enjoys movies tagged " + detail::join_and(names(p.liked_tags)));
  if (!p.disliked_genres.empty()) parts.push_back("dislikes " + detail::join_and(names(p.disliked_genres)));
  if (!p.disliked_tags.empty())
    parts.push_back("avoids movies tagged " + detail::join_and(names(p.disliked_tags)));
  if (!p.favourites.empty()) {
    std::vector<std::string> titles;
    for (auto i : p.favourites) titles.push_back(catalog.at(i).title_with_year());
    std::string fav = "favourites: ";
    for (std::size_t k = 0; k < titles.size(); ++k) fav += (k ? ", " : "") + titles[k];
    parts.push_back(fav);
  }
  std::string out;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (k == 0) {
      out = parts[0];
      out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    } else {
      out += "; " + parts[k];
    }
  }
  std::ostringstream tail;
  tail.setf(std::ios::fixed);
  tail.precision(1);
  tail << p.n_ratings << (p.n_ratings == 1 ? " rating" : " ratings") << ", mean " << p.mean_rating << ".";
  return out.empty() ? tail.str() : out + ". " + tail.str();
}

// One profile per user index in [0, train.n_users), built from `train` only: pass the TRAINING part
// of a split, never the full ratings. A user without training ratings gets an empty profile.
// `users` maps indices back to the source's user ids.
inline std::vector<UserProfile> build_profiles(const cf::Ratings& train, const Catalog& catalog,
                                               const cf::IdMap& users, const ProfileOptions& options = {}) {
  if (train.n_items > catalog.size())
    fail<InvalidArgument>("build_profiles: ratings index ", train.n_items, " items, catalog has ",
                          catalog.size());
  const auto rows = cf::by_user(train);
  const auto popularity = cf::item_counts(train);
  std::vector<UserProfile> profiles(train.n_users);
  for (std::size_t u = 0; u < train.n_users; ++u) {
    auto& p = profiles[u];
    p.user = static_cast<cf::Index>(u);
    p.user_id = u < users.size() ? users.id(static_cast<cf::Index>(u)) : static_cast<std::int64_t>(u);
    const auto items = rows.cols_of(u);
    const auto values = rows.values_of(u);
    p.n_ratings = items.size();
    if (items.empty()) {
      p.text = render_profile(p, catalog);
      continue;
    }
    double sum = 0;
    for (float v : values) sum += v;
    p.mean_rating = sum / static_cast<double>(values.size());
    std::map<std::string, std::pair<double, int>> genre_sums, tag_sums;
    for (std::size_t k = 0; k < items.size(); ++k) {
      const double centred = values[k] - p.mean_rating;
      const auto& movie = catalog.at(items[k]);
      for (const auto& g : movie.genres) {
        auto& s = genre_sums[g];
        s.first += centred;
        ++s.second;
      }
      for (std::size_t t = 0; t < movie.tags.size() && t < options.tags_per_movie; ++t) {
        auto& s = tag_sums[movie.tags[t].key];
        s.first += centred;
        ++s.second;
      }
    }
    detail::rank_affinities(genre_sums, options, p.liked_genres, p.disliked_genres, options.max_genres);
    detail::rank_affinities(tag_sums, options, p.liked_tags, p.disliked_tags, options.max_tags);
    // Favourites: highest rating, then the better-known movie (more training ratings), then index.
    std::vector<std::size_t> order(items.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (values[a] != values[b]) return values[a] > values[b];
      const auto pa = popularity[static_cast<std::size_t>(items[a])],
                 pb = popularity[static_cast<std::size_t>(items[b])];
      if (pa != pb) return pa > pb;
      return items[a] < items[b];
    });
    for (std::size_t k = 0; k < order.size() && p.favourites.size() < options.max_favourites; ++k) {
      if (values[order[k]] < p.mean_rating || values[order[k]] < 3.5f) break;  // only movies the user liked
      p.favourites.push_back(items[order[k]]);
    }
    p.text = render_profile(p, catalog);
  }
  return profiles;
}

// Genre taste as a CF model sees it, in place of the rating averages above (`p4lm data build
// --genre-taste cf`): the user's factor against the genre's mean direction in item space,
//   t(u, g) = users[u] . (mean of items[i] over g's movies - mean of items[i] over all movies),
// over the movies with training ratings, then standardised per genre across users, so that "loves
// Horror" reads "leans to Horror more than most users". It is what a user embedding can carry: the
// ALS factors say little about rating-average taste (docs/results.md, third pass). Liked: the
// max_genres highest with t >= cf_taste_threshold; disliked: the lowest with t <= -threshold; an
// Affinity's score is t and its count the user's training ratings in the genre. Users without a CF
// row keep their profile. Rewrites each profile's text.
template <int Dim>
void set_cf_genre_taste(std::vector<UserProfile>& profiles, const cf::Embeddings<Dim>& e,
                        const cf::Ratings& train, const Catalog& catalog, const cf::IdMap& items,
                        const ProfileOptions& o = {}) {
  e.check();
  const auto& genres = catalog.genres();  // sorted
  const auto genre_index = [&](const std::string& g) {
    return static_cast<std::size_t>(std::lower_bound(genres.begin(), genres.end(), g) - genres.begin());
  };
  // Mean item factor per genre and overall, over movies with training ratings.
  const auto popularity = cf::item_counts(train);
  std::vector<std::array<double, Dim>> direction(genres.size(), std::array<double, Dim>{});
  std::vector<std::size_t> genre_movies(genres.size(), 0);
  std::array<double, Dim> all_mean{};
  std::size_t all_movies = 0;
  for (std::size_t row = 0; row < e.n_items(); ++row) {
    const auto item =
        e.item_ids.empty() ? std::optional(static_cast<cf::Index>(row)) : items.find(e.item_ids[row]);
    if (!item || static_cast<std::size_t>(*item) >= std::min(popularity.size(), catalog.size()) ||
        popularity[static_cast<std::size_t>(*item)] == 0)
      continue;
    const auto v = e.item(static_cast<cf::Index>(row));
    for (int d = 0; d < Dim; ++d) all_mean[d] += v[d];
    ++all_movies;
    for (const auto& g : catalog.at(*item).genres) {
      auto& dir = direction[genre_index(g)];
      for (int d = 0; d < Dim; ++d) dir[d] += v[d];
      ++genre_movies[genre_index(g)];
    }
  }
  if (all_movies == 0)
    fail<InvalidArgument>("set_cf_genre_taste: no CF item matches a movie with training ratings");
  std::vector<std::size_t> used;  // genres with enough movies; direction = genre mean - overall mean
  for (std::size_t k = 0; k < genres.size(); ++k) {
    if (genre_movies[k] < std::max<std::size_t>(o.cf_min_movies, 1)) continue;
    for (int d = 0; d < Dim; ++d)
      direction[k][d] = direction[k][d] / double(genre_movies[k]) - all_mean[d] / double(all_movies);
    used.push_back(k);
  }
  // Raw taste of each profile with a CF row (row-major: profile, used genre).
  std::map<std::int64_t, std::size_t> user_row;
  for (std::size_t r = 0; r < e.n_users(); ++r)
    user_row.emplace(e.user_ids.empty() ? static_cast<std::int64_t>(r) : e.user_ids[r], r);
  std::vector<std::size_t> with_row;  // indices into profiles
  std::vector<double> taste;
  for (std::size_t p = 0; p < profiles.size(); ++p) {
    const auto it = user_row.find(profiles[p].user_id);
    if (it == user_row.end()) continue;
    with_row.push_back(p);
    const auto u = e.user(static_cast<cf::Index>(it->second));
    for (const auto k : used) {
      double dot = 0;
      for (int d = 0; d < Dim; ++d) dot += double(u[d]) * direction[k][d];
      taste.push_back(dot);
    }
  }
  // Standardise each genre's column across those users.
  const std::size_t n = with_row.size(), G = used.size();
  for (std::size_t j = 0; j < G; ++j) {
    double sum = 0, sq = 0;
    for (std::size_t r = 0; r < n; ++r) sum += taste[r * G + j], sq += taste[r * G + j] * taste[r * G + j];
    const double mean = n ? sum / double(n) : 0, var = n ? sq / double(n) - mean * mean : 0;
    const double sd = std::sqrt(std::max(var, 0.0));
    for (std::size_t r = 0; r < n; ++r) taste[r * G + j] = sd > 0 ? (taste[r * G + j] - mean) / sd : 0.0;
  }
  const auto by_user = cf::by_user(train);
  for (std::size_t r = 0; r < n; ++r) {
    auto& prof = profiles[with_row[r]];
    std::vector<int> rated(genres.size(), 0);
    if (static_cast<std::size_t>(prof.user) < by_user.rows())
      for (const auto i : by_user.cols_of(static_cast<std::size_t>(prof.user)))
        for (const auto& g : catalog.at(i).genres) ++rated[genre_index(g)];
    std::vector<Affinity> all;
    for (std::size_t j = 0; j < G; ++j) all.push_back({genres[used[j]], taste[r * G + j], rated[used[j]]});
    detail::split_affinities(std::move(all), o.cf_taste_threshold, o.max_genres, prof.liked_genres,
                             prof.disliked_genres);
    prof.text = render_profile(prof, catalog);
  }
}

}  // namespace p4lm::data
