#include <catch2/catch.hpp>

#include <cstdlib>

#include <p4lm/core/data_dir.hpp>

TEST_CASE("data_dir finds the bundled data and names every place it searched otherwise", "[core][data]") {
  // ctest sets P4LM_DATA to the source tree's data/.
  CHECK(std::filesystem::exists(p4lm::data_path("movielens/ml-latest-small/ratings.csv")));
  CHECK_THROWS_WITH(p4lm::data_path("no/such/file.csv"), Catch::Contains("no/such/file.csv"));

  const std::string saved = std::getenv("P4LM_DATA") ? std::getenv("P4LM_DATA") : "";
  ::setenv("P4LM_DATA", "/nonexistent/p4lm-data", 1);
  const auto candidates = p4lm::data_dir_candidates();
  REQUIRE(candidates.size() >= 2);
  CHECK(candidates.front().origin == "P4LM_DATA");
  CHECK(candidates.front().path == "/nonexistent/p4lm-data");
  // The source tree still holds the data, so it is found after the bad P4LM_DATA.
  CHECK(std::filesystem::exists(p4lm::data_dir() / "INDEX.md"));
  if (saved.empty())
    ::unsetenv("P4LM_DATA");
  else
    ::setenv("P4LM_DATA", saved.c_str(), 1);
}
