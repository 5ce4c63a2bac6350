// Ratings that cannot train or evaluate anything are refused by name: a header-only file, one
// rating, duplicates, ratings off the MovieLens scale, fractional ids, test_fraction 0; and solvers
// that diverge (NaN init, overflowing confidence) stop naming the epoch and the matrix.

#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <omp.h>

#include <p4lm/cf/als.hpp>
#include <p4lm/cf/embeddings.hpp>
#include <p4lm/cf/implicit_als.hpp>
#include <p4lm/cf/metrics.hpp>
#include <p4lm/cf/movielens.hpp>
#include <p4lm/cf/split.hpp>
#include <p4lm/io/safetensors.hpp>

using namespace p4lm::cf;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {
fs::path folder_with(const std::string& ratings) {
  const auto dir = fs::temp_directory_path() / ("p4lm_test_ratings_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "movies.csv")
      << "movieId,title,genres\n1,A (2000),Drama\n2,B (2001),Drama\n3,C (2002),Comedy\n";
  std::ofstream(dir / "ratings.csv") << "userId,movieId,rating,timestamp\n" << ratings;
  return dir;
}

Ratings block(int users, int items) {
  Ratings r;
  r.n_users = static_cast<std::size_t>(users);
  r.n_items = static_cast<std::size_t>(items);
  for (Index u = 0; u < users; ++u)
    for (Index i = 0; i < items; ++i)
      if ((u + i) % 3 != 0) r.add(u, i, static_cast<float>(1 + (u * 7 + i) % 5));
  return r;
}
}  // namespace

TEST_CASE("ratings.csv with a header only, or too few ratings to split, is refused", "[cf][ratings]") {
  auto dir = folder_with("");
  CHECK_THROWS_WITH(load_movielens(dir), Contains("ratings.csv") && Contains("no ratings"));
  dir = folder_with("1,1,4.0,1\n");
  const auto one = load_movielens(dir);                  // loads: one rating is a valid file ...
  CHECK_THROWS_WITH(holdout_split(one.ratings, 0.2, 1),  // ... but trains and tests nothing
                    Contains("too few ratings to train and evaluate") && Contains("one user with 2 ratings"));
  CHECK_THROWS_WITH(temporal_split(one.ratings, 1), Contains("too few ratings"));
  Ratings empty;
  CHECK_THROWS_WITH(ALS<4>().fit(empty), Contains("ALS: no ratings to train on"));
  CHECK_THROWS_WITH(ImplicitALS<4>().fit(empty), Contains("ImplicitALS: no ratings to train on"));
  dir = folder_with("1,1,4.0,1\n1,2,3.0,2\n");
  CHECK(holdout_split(load_movielens(dir).ratings, 0.5, 1).test.size() == 1);  // the minimum works
  fs::remove_all(dir);
}

TEST_CASE("test_fraction 0 is refused", "[cf][ratings]") {
  const auto r = block(4, 6);
  CHECK_THROWS_WITH(holdout_split(r, 0.0, 1), Contains("test_fraction must be in (0, 1), got 0"));
  CHECK_THROWS_AS(holdout_split(r, std::numeric_limits<double>::quiet_NaN(), 1), p4lm::InvalidArgument);
}

TEST_CASE("duplicate ratings name both lines, grouped or not", "[cf][ratings]") {
  auto dir = folder_with("1,1,4.0,1\n1,2,3.0,2\n1,1,5.0,3\n");
  CHECK_THROWS_WITH(load_movielens(dir), Contains("ratings.csv:4: field 'movieId'") &&
                                             Contains("user 1 rates movie 1 twice (first on line 2"));
  dir = folder_with("1,1,4.0,1\n2,2,3.0,2\n1,3,5.0,3\n2,3,1.0,4\n1,1,2.0,5\n");  // user 1 comes back
  CHECK_THROWS_WITH(load_movielens(dir), Contains("ratings.csv:6") && Contains("first on line 2"));
  dir = folder_with("1,1,4.0,1\n2,2,3.0,2\n1,3,5.0,3\n2,1,1.0,4\n");  // not grouped, no duplicate
  CHECK(load_movielens(dir).ratings.size() == 4);
  fs::remove_all(dir);
}

TEST_CASE("ratings off the MovieLens half-star scale and fractional ids name file:line:field",
          "[cf][ratings]") {
  for (const char* bad : {"7.0", "0", "0.25", "5.5", "-1", "nan", "inf", "4.49"}) {
    INFO(bad);
    const auto dir = folder_with(std::string("1,1,4.0,1\n1,2,") + bad + ",2\n");
    CHECK_THROWS_WITH(load_movielens(dir),
                      Contains("ratings.csv:3: field 'rating'") && Contains("not on the MovieLens scale"));
  }
  auto dir = folder_with("1,1,4.0,1\n1,2,7.0,2\n");
  CHECK(load_movielens(dir, {.half_stars = false}).ratings.rating[1] == 7.0f);  // other scales: opt out
  dir = folder_with("1,1,4.0,1\n1,2,nan,2\n");
  CHECK_THROWS_WITH(load_movielens(dir, {.half_stars = false}), Contains("not finite"));
  dir = folder_with("1,1,4.0,1\n1.5,2,3.0,2\n");
  CHECK_THROWS_WITH(load_movielens(dir), Contains("ratings.csv:3: field 'userId'"));
  dir = folder_with("1,1,4.0,1\n1,2.0,3.0,2\n");
  CHECK_THROWS_WITH(load_movielens(dir), Contains("ratings.csv:3: field 'movieId'"));
  dir = folder_with("1,1,0.5,1\n1,2,5.0,2\n1,3,3.5,3\n");
  CHECK(load_movielens(dir).ratings.size() == 3);
  fs::remove_all(dir);
}

TEST_CASE("diverging CF solvers stop, naming the epoch and the matrix", "[cf][ratings][finite]") {
  const auto r = block(8, 9);
  CHECK_THROWS_WITH(ALS<4>({.init_std = std::numeric_limits<float>::quiet_NaN()}),
                    Contains("init_std must be finite"));
  CHECK_THROWS_WITH(ALS<4>({.reg = std::numeric_limits<float>::infinity()}), Contains("reg must be finite"));
  CHECK_THROWS_WITH(ImplicitALS<4>({.alpha = std::numeric_limits<float>::quiet_NaN()}),
                    Contains("alpha must be finite"));
  // `cf train --model implicit --alpha 1e38`: confidences overflow (5 * 1e38) or the factors do.
  CHECK_THROWS_WITH(ImplicitALS<4>({.alpha = 1e38f, .weight_by_rating = true}).fit(r),
                    Contains("confidence 1 + alpha * s overflows"));
  CHECK_THROWS_WITH(ImplicitALS<4>({.alpha = 1e38f}).fit(r),
                    Contains("ImplicitALS: epoch 1: user factors became non-finite"));
  // Finite ratings whose sums overflow float: the normal equations' right-hand sides become inf.
  Ratings huge = r;
  for (std::size_t k = 0; k < huge.size(); ++k) huge.rating[k] = huge.user[k] % 2 ? 3e38f : -3e38f;
  CHECK_THROWS_WITH(ALS<4>().fit(huge), Contains("ALS: epoch 1: user ") && Contains("became non-finite"));
  CHECK_NOTHROW(ALS<4>({.epochs = 3}).fit(r));
}

TEST_CASE("CF loops cap their team at the hardware threads, whatever OpenMP is set to",
          "[cf][ratings][threads]") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(100000);  // `cf train --threads 100000` crashed libgomp (SIGSEGV)
  CHECK(detail::team_size() >= 1);
  CHECK(detail::team_size() <= static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  Ratings r;
  r.n_users = 300;
  r.n_items = 200;
  for (Index u = 0; u < 300; ++u)
    for (Index i = 0; i < 200; ++i)
      if ((u * 31 + i * 17) % 3 == 0) r.add(u, i, static_cast<float>(1 + (u + i) % 5));
  REQUIRE(r.size() >= detail::parallel_min_ratings);  // the parallel branch runs
  CHECK_NOTHROW(ALS<4>({.epochs = 1}).fit(r));
  CHECK_NOTHROW(ImplicitALS<4>({.epochs = 1}).fit(r));
  omp_set_num_threads(saved);
}

TEST_CASE("CF embeddings holding NaN are refused on load, naming the tensor", "[cf][ratings][finite]") {
  Embeddings<4> e(3, 2);
  e.users(1, 2) = std::numeric_limits<float>::quiet_NaN();
  const auto path =
      fs::temp_directory_path() / ("p4lm_test_cf_nan_" + std::to_string(::getpid()) + ".safetensors");
  save_embeddings(e, path);
  CHECK_THROWS_WITH(load_embeddings<4>(path), Contains("user_factors") && Contains("NaN"));
  fs::remove(path);
}
