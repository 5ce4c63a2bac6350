// `p4lm data build`: the item catalog, user profiles, the teacher's pitch corpus and the AI-feedback
// datasets (stages 3-4 of the pipeline), as JSONL under --out (layout and schemas: docs/data.md).
//   p4lm data build --out runs/data                          bundled ml-latest-small + TMDB overviews
//   p4lm data build --cf runs/cf/cf.safetensors --out ...   relevance targets and the split of that model

#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <utility>

#include <p4lm/cf/embeddings.hpp>
#include <p4lm/cf/movielens.hpp>
#include <p4lm/cf/split.hpp>
#include <p4lm/data/catalog.hpp>
#include <p4lm/data/datasets.hpp>
#include <p4lm/data/profile.hpp>
#include <p4lm/data/teacher.hpp>
#include <p4lm/p4lm.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

struct DataBuildConfig {
  Param<std::string> data{"", "MovieLens folder in the ml-25m schema (default: bundled ml-latest-small)"};
  Param<std::string> overviews{
      "", "CSV with tmdbId,overview (default: the bundled TMDB overviews; 'none': skip)"};
  Param<std::string> out{"runs/data", "output folder"};
  Param<std::string> cf{"",
                        "cf.safetensors from `p4lm cf train`: relevance targets, and its split is reused"};
  Param<std::int64_t> seed{1, "seed of the user split and the teacher"};
  Param<int> pitches_per_user{20, "SFT pitches per user (fewer if the user rated fewer eligible movies)"};
  Param<double> defect_rate{0.25, "share of SFT pitches with one defect"};
  Param<std::vector<double>> defect_weights{{1.0, 1.0, 1.0, 1.0},
                                            "relative weights of hallucinated,generic,off_preference,bland"};
  Param<double> val_users{0.1, "fraction of users in the validation split"};
  Param<double> test_users{0.1, "fraction of users in the test split"};
  Param<double> positive_threshold{4.0, "training ratings >= this are positive"};
  Param<double> positive_share{0.8, "share of each user's pitched movies that are positives"};
  Param<bool> require_overview{true, "pitch only movies that have an overview"};
  Param<std::string> split{"holdout", "CF rating split when --cf is not given: holdout or temporal"};
  Param<double> test_fraction{0.2, "holdout: fraction of each user's ratings held out (as p4lm cf train)"};
  Param<int> test_k{5, "temporal: ratings per user held out"};
  Param<std::int64_t> split_seed{1, "seed of the rating split (as p4lm cf train --seed)"};
  Param<std::string> genre_taste{"auto",
                                 "profiles' liked and disliked genres: ratings (rating averages), cf (the CF "
                                 "model's view; needs --cf) or auto (cf when --cf is given)"};
  Param<bool> progress{true, "show progress on stderr"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::DataBuildConfig, data, overviews, out, cf, seed, pitches_per_user,
                        defect_rate, defect_weights, val_users, test_users, positive_threshold,
                        positive_share, require_overview, split, test_fraction, test_k, split_seed,
                        genre_taste, progress);

namespace p4lm::cli {
namespace {

// The CF widths `p4lm data build` is compiled for.
template <class F>
decltype(auto) with_cf_dim(int dim, F&& f) {
  return cf::DimList<8, 16, 32, 64, 128>::visit<UsageError>(dim, std::forward<F>(f), "--cf: embedding width");
}

int run_build(std::span<const std::string> args) {
  auto c = parse_flags<DataBuildConfig>(args);
  const auto started = std::chrono::steady_clock::now();
  if (c.defect_weights->size() != 4) fail<UsageError>("--defect-weights: expected 4 numbers");
  if (!(*c.defect_rate >= 0 && *c.defect_rate <= 1)) fail<UsageError>("--defect-rate must be in [0, 1]");
  if (*c.pitches_per_user < 0) fail<UsageError>("--pitches-per-user must be >= 0");
  if (*c.genre_taste != "ratings" && *c.genre_taste != "cf" && *c.genre_taste != "auto")
    fail<UsageError>("--genre-taste: expected ratings, cf or auto, got '", *c.genre_taste, "'");
  if (*c.genre_taste == "auto") c.genre_taste = c.cf->empty() ? "ratings" : "cf";
  if (*c.genre_taste == "cf" && c.cf->empty()) fail<UsageError>("--genre-taste cf needs --cf");

  // The CF model's recorded split settings win, so profiles see exactly its training ratings.
  std::optional<int> cf_dim;
  std::map<std::string, std::string> cf_metadata;
  if (!c.cf->empty()) {
    cf_dim = cf::embeddings_dim(*c.cf);
    with_cf_dim(*cf_dim,
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
  cf::Split split;
  if (*c.split == "holdout")
    split = cf::holdout_split(ml.ratings, *c.test_fraction, static_cast<std::uint64_t>(*c.split_seed));
  else if (*c.split == "temporal")
    split = cf::temporal_split(ml.ratings, static_cast<std::size_t>(*c.test_k));
  else
    fail<UsageError>("--split ", *c.split, ": expected holdout or temporal");

  const auto catalog = data::build_catalog(ml);
  auto profiles = data::build_profiles(split.train, catalog, ml.users);
  if (*c.genre_taste == "cf") {
    with_cf_dim(*cf_dim, [&](auto d) {
      data::set_cf_genre_taste(profiles, cf::load_embeddings<decltype(d)::value>(*c.cf), split.train, catalog,
                               ml.items);
    });
  }
  std::optional<data::ItemTargets> targets;
  if (cf_dim)
    with_cf_dim(*cf_dim, [&](auto d) {
      targets = data::item_targets(cf::load_embeddings<decltype(d)::value>(*c.cf), ml.items);
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

  const auto& train = stats["splits"]["train"];
  std::cout << "wrote " << out.string() << ": " << train["sft"] << " train pitches ("
            << stats["splits"]["val"]["sft"] << " val, " << stats["splits"]["test"]["sft"]
            << " test), defects " << stats["defects"].dump() << ", " << stats["seconds"] << " s\n";
  return 0;
}

int run_data(std::span<const std::string> args) {
  if (args.empty()) fail<UsageError>("expected a verb: build (see p4lm data --help)");
  if (args[0] != "build") fail<UsageError>("unknown verb '", args[0], "': expected build");
  const auto rest = args.subspan(1);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << "usage: p4lm data build [options]\n\n" << flags_help<DataBuildConfig>();
    return 0;
  }
  return run_build(rest);
}

const Registration data_registration{
    "data",
    Command{"catalog, profiles, teacher pitches and reward datasets as JSONL: data build",
            "verbs:\n  build    write catalog, profiles, SFT/NLI/appeal/personalization/relevance JSONL\n"
            "see p4lm data build --help\n" +
                flags_help<DataBuildConfig>(),
            run_data}};

}  // namespace
}  // namespace p4lm::cli
