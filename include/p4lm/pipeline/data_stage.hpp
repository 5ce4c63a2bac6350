#pragma once
// The data stage: the item catalog, user profiles, the teacher's pitch corpus and the AI-feedback
// datasets as JSONL (layout and schemas: docs/data.md). `p4lm data build` parses DataBuildConfig from
// flags and prints the summary.
//
//   p4lm::pipeline::DataBuildConfig c;
//   *c.cf = "runs/cf/cf.safetensors";   // relevance targets, CF genre taste, and that model's split
//   *c.out = "runs/data";
//   nlohmann::json stats = p4lm::pipeline::build_data(c);   // also written to runs/data/stats.json
//
// With a CF model, its recorded split settings (split, test_fraction, test_k, seed) and data folder
// win over the config's, so profiles see exactly the ratings the CF model was trained on.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/movielens.hpp"
#include "p4lm/cf/split.hpp"
#include "p4lm/cf/widths.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/data/catalog.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/data/profile.hpp"
#include "p4lm/data/teacher.hpp"
#include "p4lm/io/atomic_file.hpp"

namespace p4lm::pipeline {

struct DataBuildConfig {
  Param<std::string> data{"", "MovieLens folder in the ml-25m schema (default: bundled ml-latest-small)"};
  Param<std::string> overviews{
      "", "CSV with tmdbId,overview (default: the bundled TMDB overviews; 'none': skip)"};
  Param<std::string> out{"runs/data", "output folder"};
  Param<std::string> cf{"",
                        "cf.safetensors from `p4lm cf train`: relevance targets, and its split is reused"};
  Param<std::int64_t> seed{1, "seed of the user split and the teacher"};
  Param<int> pitches_per_user{20, "SFT pitches per user (fewer if the user rated fewer eligible movies)",
                              at_least(0)};
  Param<double> defect_rate{0.25, "share of SFT pitches with one defect", between(0, 1)};
  Param<std::vector<double>> defect_weights{
      {1.0, 1.0, 1.0, 1.0}, "relative weights of hallucinated,generic,off_preference,bland", at_least(0)};
  Param<double> val_users{0.1, "fraction of users in the validation split", between(0, 1)};
  Param<double> test_users{0.1, "fraction of users in the test split", between(0, 1)};
  Param<double> positive_threshold{4.0, "training ratings >= this are positive"};
  Param<double> positive_share{0.8, "share of each user's pitched movies that are positives", between(0, 1)};
  Param<bool> require_overview{true, "pitch only movies that have an overview"};
  Param<std::string> split{"holdout", "CF rating split when --cf is not given: holdout or temporal"};
  Param<double> test_fraction{0.2, "holdout: fraction of each user's ratings held out (as p4lm cf train)",
                              inside(0, 1)};
  Param<int> test_k{5, "temporal: ratings per user held out", at_least(1)};
  Param<std::int64_t> split_seed{1, "seed of the rating split (as p4lm cf train --seed)"};
  Param<std::string> genre_taste{"auto",
                                 "profiles' liked and disliked genres: ratings (rating averages), cf (the CF "
                                 "model's view; needs --cf) or auto (cf when --cf is given)"};
  Param<bool> progress{true, "show progress on stderr"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::DataBuildConfig, data, overviews, out, cf, seed, pitches_per_user,
                        defect_rate, defect_weights, val_users, test_users, positive_threshold,
                        positive_share, require_overview, split, test_fraction, test_k, split_seed,
                        genre_taste, progress);

namespace p4lm::pipeline {

// Checks what the reflected ranges cannot say and resolves genre_taste "auto".
inline DataBuildConfig checked(DataBuildConfig c) {
  if (c.defect_weights->size() != 4) fail<UsageError>("--defect-weights: expected 4 numbers");
  if (*c.genre_taste != "ratings" && *c.genre_taste != "cf" && *c.genre_taste != "auto")
    fail<UsageError>("--genre-taste: expected ratings, cf or auto, got '", *c.genre_taste, "'");
  if (*c.genre_taste == "auto") c.genre_taste = c.cf->empty() ? "ratings" : "cf";
  if (*c.genre_taste == "cf" && c.cf->empty()) fail<UsageError>("--genre-taste cf needs --cf");
  if (*c.split != "holdout" && *c.split != "temporal")
    fail<UsageError>("--split ", *c.split, ": expected holdout or temporal");
  return c;
}

// Every user and movie of the ratings needs a row in the CF model the data is built with: without
// one, a profile would silently keep its rating-average taste, a relevance example lose its target
// and the SFT stage refuse the corpus later. InvalidArgument naming the id, the CF file and the ratings.
template <int Dim>
void check_cf_covers(const cf::Embeddings<Dim>& e, const cf::IdMap& users, const cf::IdMap& items,
                     const std::filesystem::path& cf_file, const std::filesystem::path& ratings) {
  const auto check = [&](const cf::IdMap& ids, const std::vector<std::int64_t>& rows, std::size_t n_rows,
                         const char* what) {
    const std::unordered_set<std::int64_t> known(rows.begin(), rows.end());
    for (const auto id : ids.ids())
      if (rows.empty() ? id < 0 || static_cast<std::size_t>(id) >= n_rows : !known.contains(id))
        fail<InvalidArgument>(cf_file.string(), ": ", what, ' ', id, " of the ratings in ", ratings.string(),
                              " has no row (the CF model has ", n_rows, ' ', what,
                              "s): it was trained on other ratings; build the data from the ratings it was "
                              "trained on (leave --data out) or train a CF model on these");
  };
  check(users, e.user_ids, e.n_users(), "user");
  check(items, e.item_ids, e.n_items(), "movie");
}

// `p4lm data build`: writes config.json, catalog.jsonl, profiles.jsonl, the SFT corpus and the
// reward datasets under c.out, then stats.json (the stage's completion marker: `run_main` reuses a
// folder that has it). Returns the stats (counts per split, defects, the resolved config, seconds).
inline nlohmann::json build_data(DataBuildConfig c) {
  c = checked(std::move(c));
  const auto started = std::chrono::steady_clock::now();

  // The CF model's recorded split settings win, so profiles see exactly its training ratings.
  std::optional<int> cf_dim;
  if (!c.cf->empty()) {
    cf_dim = cf::embeddings_dim(*c.cf);
    std::map<std::string, std::string> cf_metadata;
    cf::with_cf_dim(*cf_dim,
                    [&](auto d) { cf_metadata = cf::load_embeddings<decltype(d)::value>(*c.cf).metadata; });
    if (const auto it = cf_metadata.find("config"); it != cf_metadata.end()) {
      const auto trained = nlohmann::json::parse(it->second);
      if (trained.contains("split")) c.split = trained["split"].get<std::string>();
      if (trained.contains("test_fraction")) c.test_fraction = trained["test_fraction"].get<double>();
      if (trained.contains("test_k")) c.test_k = trained["test_k"].get<int>();
      if (trained.contains("seed")) c.split_seed = trained["seed"].get<std::int64_t>();
      if (c.data->empty() && cf_metadata.count("data")) c.data = cf_metadata.at("data");
    }
  }

  const std::filesystem::path folder =
      c.data->empty() ? cf::bundled_movielens() : std::filesystem::path(*c.data);
  cf::LoadOptions load{.genome = false, .progress = *c.progress};
  if (*c.overviews != "none")
    load.overviews = c.overviews->empty() ? cf::bundled_overviews() : std::filesystem::path(*c.overviews);
  const auto ml = cf::load_movielens(folder, load);
  const cf::Split split =
      *c.split == "holdout"
          ? cf::holdout_split(ml.ratings, *c.test_fraction, static_cast<std::uint64_t>(*c.split_seed))
          : cf::temporal_split(ml.ratings, static_cast<std::size_t>(*c.test_k));

  const auto catalog = data::build_catalog(ml);
  auto profiles = data::build_profiles(split.train, catalog, ml.users);
  std::optional<data::ItemTargets> targets;
  if (cf_dim)
    cf::with_cf_dim(*cf_dim, [&](auto d) {
      const auto e = cf::load_embeddings<decltype(d)::value>(*c.cf);
      check_cf_covers(e, ml.users, ml.items, *c.cf, folder);
      if (*c.genre_taste == "cf") data::set_cf_genre_taste(profiles, e, split.train, catalog, ml.items);
      targets = data::item_targets(e, ml.items);
    });

  data::DatasetOptions o;
  o.seed = static_cast<std::uint64_t>(*c.seed);
  o.val_users = *c.val_users;
  o.test_users = *c.test_users;
  o.pitches_per_user = static_cast<std::size_t>(*c.pitches_per_user);
  o.defect_rate = *c.defect_rate;
  for (std::size_t k = 0; k < 4; ++k) o.defect_weights[k] = (*c.defect_weights)[k];
  o.positive_threshold = static_cast<float>(*c.positive_threshold);
  o.positive_share = *c.positive_share;
  o.require_overview = *c.require_overview;

  const std::filesystem::path out(*c.out);
  io::write_file_atomically(out / "config.json", to_json(c).dump(2) + "\n");
  auto stats = data::build_datasets(
      {catalog, profiles, split.train, split.test, targets ? &*targets : nullptr}, o, out, *c.progress);
  stats["config"] = to_json(c);
  stats["seconds"] =
      std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() * 10) / 10;
  io::write_file_atomically(out / "stats.json", stats.dump(2) + "\n");
  return stats;
}

}  // namespace p4lm::pipeline
