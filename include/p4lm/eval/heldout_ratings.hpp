#pragma once
// The ratings the gold judge checks a pitch's statements about a user against: each user's HELD-OUT
// ratings of the CF split, the ratings that no profile, CF model or teacher pitch was built from
// (data build reads only split.train; docs/data.md). Judging "you love Horror" against these is
// not circular: the profile that made the teacher (or a policy) say so never saw them.
//
//   auto held = p4lm::eval::heldout_ratings_of_build("runs/data");   // redoes the build's CF split
//   const auto* u = held.find(414);                                   // nullptr: unknown user
//
// `p4lm data build` writes only the held-out ratings >= 4 of val/test users (heldout/*.jsonl), too
// little to tell what a user dislikes, so heldout_ratings_of_build reloads the MovieLens folder the
// build used and redoes its split from config.json (split, test_fraction, test_k, split_seed; with
// --cf those are already the CF model's own settings): deterministic, so the same ratings, and
// checked against the build's own files (check_build_split).
// Besides the held-out ratings it keeps which movies the user rated at all, only to tell "you loved
// X" about a movie the user never rated (false) from one rated in training (not evidence here).

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/movielens.hpp"
#include "p4lm/cf/split.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"

namespace p4lm::eval {

struct UserHeldout {
  std::vector<std::pair<std::int64_t, float>> ratings;  // (movieId, held-out rating), split order
  std::unordered_set<std::int64_t> rated;               // every movieId the user rated (train or held out)
  double mean = 0;                                      // mean held-out rating (0 when none)

  const float* rating_of(std::int64_t movie_id) const {
    for (const auto& [m, r] : ratings)
      if (m == movie_id) return &r;
    return nullptr;
  }
};

class HeldoutRatings {
 public:
  HeldoutRatings() = default;
  explicit HeldoutRatings(std::unordered_map<std::int64_t, UserHeldout> users) : users_(std::move(users)) {
    for (auto& [_, u] : users_) {
      double sum = 0;
      for (const auto& [m, r] : u.ratings) sum += r;
      u.mean = u.ratings.empty() ? 0.0 : sum / static_cast<double>(u.ratings.size());
    }
  }
  // nullptr when the user has no ratings at all.
  const UserHeldout* find(std::int64_t user_id) const {
    const auto it = users_.find(user_id);
    return it == users_.end() ? nullptr : &it->second;
  }
  std::size_t users() const noexcept { return users_.size(); }

 private:
  std::unordered_map<std::int64_t, UserHeldout> users_;
};

// The held-out side of `split` (indices of ml), keyed by MovieLens ids.
inline HeldoutRatings heldout_ratings(const cf::MovieLens& ml, const cf::Split& split) {
  std::unordered_map<std::int64_t, UserHeldout> users;
  for (const cf::Ratings* part : {&split.train, &split.test})
    for (std::size_t k = 0; k < part->size(); ++k) {
      auto& u = users[ml.users.id(part->user[k])];
      const auto movie = ml.items.id(part->item[k]);
      u.rated.insert(movie);
      if (part == &split.test) u.ratings.emplace_back(movie, part->rating[k]);
    }
  return HeldoutRatings(std::move(users));
}

// A folder built by another version of the split (or with other settings than its config.json says)
// would make the check circular: the judge would read ratings the profiles were built from. The
// build's own files must agree: its held-out pairs (heldout/*.jsonl) are held out here, and the
// movies its pitches are about (sft/*.jsonl, training ratings) are not. ParseError otherwise.
inline void check_build_split(const HeldoutRatings& held, const std::filesystem::path& data_dir) {
  const std::string hint =
      "the folder was built with another rating split than its config.json gives "
      "(another p4lm version?); rebuild it with p4lm data build";
  for (const char* split : {"val", "test"}) {
    const auto heldout = data_dir / "heldout" / (std::string(split) + ".jsonl");
    if (std::filesystem::exists(heldout))
      io::for_each_jsonl(heldout, [&](const nlohmann::json& j, std::size_t line) {
        const auto user = j.at("user_id").get<std::int64_t>(), movie = j.at("movie_id").get<std::int64_t>();
        const auto* u = held.find(user);
        if (!u || !u->rating_of(movie))
          throw ParseError(heldout, line, "movie_id",
                           "user " + std::to_string(user) + "'s rating of movie " + std::to_string(movie) +
                               " is not held out: " + hint);
      });
    const auto sft = data_dir / "sft" / (std::string(split) + ".jsonl");
    if (std::filesystem::exists(sft))
      io::for_each_jsonl(sft, [&](const nlohmann::json& j, std::size_t line) {
        const auto user = j.at("user_id").get<std::int64_t>(), movie = j.at("movie_id").get<std::int64_t>();
        const auto* u = held.find(user);
        if (u && u->rating_of(movie))
          throw ParseError(sft, line, "movie_id",
                           "user " + std::to_string(user) + "'s rating of movie " + std::to_string(movie) +
                               " is held out, yet the pitch was built from it: " + hint);
      });
  }
}

// The held-out ratings of the build in `data_dir` (its config.json; see the file comment), checked
// against the build's own files (check_build_split).
inline HeldoutRatings heldout_ratings_of_build(const std::filesystem::path& data_dir) {
  const auto config_path = data_dir / "config.json";
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(io::read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw ParseError(config_path, 0, "", std::string("invalid JSON: ") + e.what());
  }
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!config.contains(name))
      throw ParseError(config_path, 0, name, "missing (written by p4lm data build)");
    return config.at(name);
  };
  try {
    const auto folder = field("data").get<std::string>();
    const auto split_kind = field("split").get<std::string>();
    const auto ml =
        cf::load_movielens(folder.empty() ? cf::bundled_movielens() : std::filesystem::path(folder),
                           {.tags = false, .genome = false});
    cf::Split split;
    if (split_kind == "holdout")
      split = cf::holdout_split(ml.ratings, field("test_fraction").get<double>(),
                                static_cast<std::uint64_t>(field("split_seed").get<std::int64_t>()));
    else if (split_kind == "temporal")
      split = cf::temporal_split(ml.ratings, static_cast<std::size_t>(field("test_k").get<int>()));
    else
      throw ParseError(config_path, 0, "split", "expected holdout or temporal, got '" + split_kind + "'");
    auto held = heldout_ratings(ml, split);
    check_build_split(held, data_dir);
    return held;
  } catch (const nlohmann::json::exception& e) {
    throw ParseError(config_path, 0, "", std::string("unexpected value: ") + e.what());
  }
}

}  // namespace p4lm::eval
