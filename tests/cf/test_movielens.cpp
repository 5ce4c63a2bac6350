#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>

#include <p4lm/cf/movielens.hpp>
#include <p4lm/io/atomic_file.hpp>

namespace fs = std::filesystem;
using namespace p4lm::cf;

namespace {
fs::path make_folder(const std::string& name) {
  const auto dir = fs::temp_directory_path() / "p4lm_test_movielens" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
void write(const fs::path& path, const std::string& content) {
  p4lm::io::write_file_atomically(path, content);
}
}  // namespace

TEST_CASE("parse_title splits name and year(s)", "[cf][movielens]") {
  auto t = parse_title("Heat (1995)");
  CHECK(t.name == "Heat");
  CHECK(t.year == 1995);
  CHECK_FALSE(t.year_end);
  t = parse_title("From Dusk Till Dawn 2: Texas Blood Money (1999) ");
  CHECK(t.name == "From Dusk Till Dawn 2: Texas Blood Money");
  CHECK(t.year == 1999);
  t = parse_title("Moonlight");
  CHECK(t.name == "Moonlight");
  CHECK_FALSE(t.year);
  t = parse_title(
      "Death Note: Desu n\xC3\xB4to (2006\xE2\x80\x93"
      "2007)");
  CHECK(t.name == "Death Note: Desu n\xC3\xB4to");
  CHECK(t.year == 2006);
  CHECK(t.year_end == 2007);
  t = parse_title("Some Series (2014-)");
  CHECK(t.year == 2014);
  CHECK_FALSE(t.year_end);
  t = parse_title("Assembly (Ji jie hao) (2007) ");
  CHECK(t.name == "Assembly (Ji jie hao)");
  t = parse_title("Brazil (Director's Cut)");
  CHECK(t.name == "Brazil (Director's Cut)");
  CHECK_FALSE(t.year);
  CHECK(parse_title("(1995)").year == 1995);
}

TEST_CASE("load_movielens: ids, genres, links, tags, genome, overviews on a hand-made folder",
          "[cf][movielens]") {
  const auto dir = make_folder("tiny");
  write(dir / "movies.csv",
        "movieId,title,genres\r\n10,\"American President, The (1995)\",Comedy|Drama|Romance\r\n"
        "3,Moonlight,(no genres listed)\r\n7,Heat (1995),Action\r\n");
  write(dir / "ratings.csv", "userId,movieId,rating,timestamp\n5,7,4.5,100\n5,3,3.0,90\n2,10,5.0,80\n");
  write(dir / "links.csv", "movieId,imdbId,tmdbId\n10,0112346,9087\n3,0000001,\n7,0113277,949\n");
  write(dir / "tags.csv", "userId,movieId,tag,timestamp\n99,7,\"heist, LA\",5\n");
  write(dir / "genome-tags.csv", "tagId,tag\n1,007\n2,action\n");
  write(dir / "genome-scores.csv", "movieId,tagId,relevance\n7,1,0.25\n7,2,0.75\n10,2,0.5\n");
  write(dir / "overviews.csv",
        "tmdbId,overview\n949,\"Obsessive master thief, Neil McCauley...\"\n1,nobody\n");
  const auto ml = load_movielens(dir, {.overviews = dir / "overviews.csv"});
  REQUIRE(ml.movies.size() == 3);
  CHECK(ml.items.ids() == std::vector<std::int64_t>{10, 3, 7});
  CHECK(ml.movies[0].title == "American President, The");
  CHECK(ml.movies[0].genres == std::vector<std::string>{"Comedy", "Drama", "Romance"});
  CHECK(ml.movies[1].genres.empty());
  CHECK_FALSE(ml.movies[1].tmdb_id);
  CHECK(ml.movies[0].imdb_id == "0112346");
  CHECK(ml.movies[2].overview == "Obsessive master thief, Neil McCauley...");
  CHECK(ml.overview_count() == 1);
  CHECK(ml.users.ids() == std::vector<std::int64_t>{5, 2});
  CHECK(ml.ratings.n_users == 2);
  CHECK(ml.ratings.n_items == 3);
  CHECK(ml.ratings.user == std::vector<Index>{0, 0, 1});
  CHECK(ml.ratings.item == std::vector<Index>{2, 1, 0});
  CHECK(ml.ratings.rating == std::vector<float>{4.5f, 3.0f, 5.0f});
  CHECK(ml.ratings.timestamp == std::vector<std::int64_t>{100, 90, 80});
  REQUIRE(ml.tags.size() == 1);
  CHECK(ml.tags[0].tag == "heist, LA");
  CHECK(ml.tags[0].user_id == 99);
  REQUIRE(ml.genome);
  CHECK(ml.genome->items == std::vector<Index>{2, 0});
  CHECK(ml.genome->relevance(0, 1) == 0.75f);
  CHECK(ml.genome->relevance(1, 1) == 0.5f);
  CHECK(ml.genome->relevance(1, 0) == 0.0f);
}

TEST_CASE("load_movielens: malformed files are errors naming file, line and field", "[cf][movielens]") {
  const auto dir = make_folder("bad");
  write(dir / "movies.csv", "movieId,title,genres\n1,A (2000),Drama\n2,B (2001),Drama\n");
  write(dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,four,2\n");
  CHECK_THROWS_WITH(load_movielens(dir), Catch::Contains("ratings.csv:3: field 'rating'"));
  write(dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,3,4.0,2\n");
  CHECK_THROWS_WITH(load_movielens(dir), Catch::Contains("ratings.csv:3: field 'movieId'") &&
                                             Catch::Contains("movie 3 is not in movies.csv"));
  write(dir / "ratings.csv", "userId,movieId,timestamp\n1,1,1\n");
  CHECK_THROWS_WITH(load_movielens(dir), Catch::Contains("ratings.csv:1: field 'rating'"));
  write(dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n");
  write(dir / "movies.csv", "movieId,title,genres\n1,A (2000),Drama\n1,B (2001),Drama\n");
  CHECK_THROWS_WITH(load_movielens(dir), Catch::Contains("movies.csv:3: field 'movieId'"));
  CHECK_THROWS_AS(load_movielens(dir / "nowhere"), p4lm::DataNotFound);
}

TEST_CASE("load_movielens: the bundled ml-latest-small with TMDB overviews", "[cf][movielens][data]") {
  const auto ml = load_movielens(bundled_movielens(), {.overviews = bundled_overviews()});
  CHECK(ml.ratings.size() == 100836);
  CHECK(ml.users.size() == 610);
  CHECK(ml.movies.size() == 9742);
  CHECK(ml.tags.size() == 3683);
  CHECK_FALSE(ml.genome);
  CHECK(ml.overview_count() == 6581);  // PROVENANCE.md: 6,581 movies have an overview
  const auto& toy = ml.movies[static_cast<std::size_t>(ml.items.at(1))];
  CHECK(toy.title == "Toy Story");
  CHECK(toy.year == 1995);
  CHECK(toy.tmdb_id == 862);
  CHECK(toy.overview.starts_with("Led by Woody"));
  std::size_t without_year = 0;
  for (const auto& m : ml.movies) without_year += !m.year;
  CHECK(without_year == 12);  // 'Babylon 5', 'Moonlight', ... (titles without "(yyyy)")
  CHECK(std::abs(ml.ratings.mean() - 3.50156) < 1e-4);
  ml.ratings.check();
}
