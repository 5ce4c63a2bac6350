// The data stage refuses a CF model that lacks a row for a user or a movie of the ratings (one trained
// on other ratings), naming the id, the CF file and the ratings folder, instead of building profiles
// and relevance targets without them.

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <unistd.h>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/movielens.hpp"
#include "p4lm/pipeline/data_stage.hpp"

TEST_CASE("data build: a CF model without a row for a user or movie of the ratings is an error",
          "[pipeline][data]") {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("p4lm_test_data_stage_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const auto ml = p4lm::cf::load_movielens(p4lm::cf::bundled_movielens(), {.tags = false, .genome = false});
  const auto& users = ml.users.ids();
  const auto& items = ml.items.ids();
  REQUIRE(users.size() > 2);
  const auto build_with = [&](std::vector<std::int64_t> user_ids, std::vector<std::int64_t> item_ids) {
    p4lm::cf::Embeddings<16> e(user_ids.size(), item_ids.size());
    e.user_ids = std::move(user_ids), e.item_ids = std::move(item_ids);
    p4lm::cf::save_embeddings(e, root / "cf.safetensors");
    p4lm::pipeline::DataBuildConfig c;
    *c.cf = (root / "cf.safetensors").string();
    *c.out = (root / "data").string();
    *c.progress = false;
    p4lm::pipeline::build_data(c);
  };
  const std::string cf_file = (root / "cf.safetensors").string();
  // The last user of the ratings is missing.
  CHECK_THROWS_AS(build_with({users.begin(), users.end() - 1}, items), p4lm::InvalidArgument);
  CHECK_THROWS_WITH(
      build_with({users.begin(), users.end() - 1}, items),
      Catch::Contains(cf_file + ": user " + std::to_string(users.back()) + " of the ratings in ") &&
          Catch::Contains("has no row (the CF model has " + std::to_string(users.size() - 1) +
                          " users): it was trained on other ratings"));
  // A movie is missing.
  CHECK_THROWS_WITH(
      build_with(users, {items.begin() + 1, items.end()}),
      Catch::Contains(cf_file + ": movie " + std::to_string(items.front()) + " of the ratings in "));
  CHECK_FALSE(fs::exists(root / "data" / "stats.json"));
  fs::remove_all(root);
}
