#pragma once
// Shared test data: the bundled ml-latest-small loaded once, its CF split, and the catalog. Tests that
// build profiles or datasets use the first few users only, so they stay fast under sanitizers.

#include <unistd.h>

#include <filesystem>
#include <string>

#include <p4lm/cf/movielens.hpp>
#include <p4lm/cf/split.hpp>
#include <p4lm/data/catalog.hpp>
#include <p4lm/data/profile.hpp>

namespace p4lm_test {

struct Bundle {
  p4lm::cf::MovieLens ml;
  p4lm::cf::Split split;
  p4lm::data::Catalog catalog;
};

inline const Bundle& bundle() {
  static const Bundle b = [] {
    Bundle out;
    out.ml = p4lm::cf::load_movielens(p4lm::cf::bundled_movielens(),
                                      {.overviews = p4lm::cf::bundled_overviews(), .genome = false});
    out.split = p4lm::cf::holdout_split(out.ml.ratings, 0.2, 1);
    out.catalog = p4lm::data::build_catalog(out.ml);
    return out;
  }();
  return b;
}

// The ratings of users [0, n_users) only, with the index range cut to n_users.
inline p4lm::cf::Ratings first_users(const p4lm::cf::Ratings& r, std::size_t n_users) {
  p4lm::cf::Ratings out;
  out.n_users = n_users;
  out.n_items = r.n_items;
  for (std::size_t k = 0; k < r.size(); ++k)
    if (static_cast<std::size_t>(r.user[k]) < n_users) out.add_from(r, k);
  return out;
}

// A fresh folder under the system temp folder, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("p4lm_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace p4lm_test
