#include <catch2/catch.hpp>

#include <set>

#include <p4lm/data/catalog.hpp>

#include "fixture.hpp"

using namespace p4lm::data;

TEST_CASE("split_sentences: abbreviations, initials, quotes", "[data][catalog]") {
  const auto s =
      split_sentences("Dr. No meets J. R. Smith in the U.S. capital. \"Run!\" he says. Then 3 days pass.");
  REQUIRE(s.size() == 3);
  CHECK(s[0] == "Dr. No meets J. R. Smith in the U.S. capital.");
  CHECK(s[1] == "\"Run!\" he says.");
  CHECK(s[2] == "Then 3 days pass.");
  CHECK(split_sentences("").empty());
  CHECK(split_sentences("No final period") == std::vector<std::string>{"No final period"});
  CHECK(split_sentences("Ends... maybe. lower case goes on.").size() == 1);
}

TEST_CASE("display_title: trailing articles and alternate titles", "[data][catalog]") {
  CHECK(display_title("Postman, The (Postino, Il)") == "The Postman");
  CHECK(display_title("Misérables, Les") == "Les Misérables");
  CHECK(display_title("Walk in the Clouds, A") == "A Walk in the Clouds");
  CHECK(display_title("Avventura, L'") == "L'Avventura");
  CHECK(display_title("Heat") == "Heat");
  CHECK(display_title("(500) Days of Summer") == "(500) Days of Summer");
}

TEST_CASE("build_catalog: facts with stable ids from a hand-made MovieLens", "[data][catalog]") {
  p4lm::cf::MovieLens ml;
  ml.items.insert(318);
  ml.items.insert(6);
  ml.movies.push_back({318,
                       "Shawshank Redemption, The",
                       1994,
                       std::nullopt,
                       {"Crime", "Drama"},
                       "",
                       278,
                       "Framed for murder, Andy goes to prison. He meets Red. Dr. Smith helps."});
  ml.movies.push_back({6, "Heat", 1995, std::nullopt, {"Action"}, "", std::nullopt, ""});
  ml.tags = {{1, 0, "Morgan Freeman", 0},   {2, 0, "morgan  freeman", 0}, {3, 0, "prison", 0},
             {4, 0, "In Netflix queue", 0}, {5, 0, "Prison", 0},          {6, 0, "morgan freeman", 0},
             {7, 0, "morgan freeman", 0}};
  const auto catalog = build_catalog(ml, {.max_tag_facts = 1});
  const auto& s = catalog.by_movie_id(318);
  CHECK(s.title == "The Shawshank Redemption");
  REQUIRE(s.tags.size() == 2);  // the Netflix-queue tag is about the viewer, not the movie
  CHECK(s.tags[0].key == "morgan freeman");
  CHECK(s.tags[0].count == 4);                   // spellings differing in case and spaces count together
  CHECK(s.tags[0].display == "morgan freeman");  // the most-used spelling (2 of 4)
  CHECK(s.tags[1].count == 2);
  CHECK(s.has_tag_key("prison"));
  std::vector<std::string> ids;
  for (const auto& f : s.facts) ids.push_back(f.id);
  CHECK(ids == std::vector<std::string>{"m318/genre/Crime", "m318/genre/Drama", "m318/year/1994",
                                        "m318/tag/morgan freeman", "m318/ov/0", "m318/ov/1", "m318/ov/2"});
  CHECK(s.find_fact("m318/ov/2")->value == "Dr. Smith helps.");
  const auto& heat = catalog.at(1);
  CHECK(heat.facts.size() == 2);
  CHECK_FALSE(heat.has_overview());
  CHECK(premise_text(heat) == "Title: Heat. Year: 1995. Genres: Action.");
  CHECK(catalog.genres() == std::vector<std::string>{"Action", "Crime", "Drama"});
  CHECK_THROWS_AS(catalog.at(2), p4lm::InvalidArgument);
  CHECK_THROWS_AS(catalog.by_movie_id(7), p4lm::InvalidArgument);
}

TEST_CASE("build_catalog: bundled ml-latest-small", "[data][catalog]") {
  const auto& b = p4lm_test::bundle();
  const auto& catalog = b.catalog;
  CHECK(catalog.size() == 9742);
  std::size_t with_overview = 0;
  std::set<std::string> ids;
  for (const auto& item : catalog.items()) {
    with_overview += item.has_overview();
    for (const auto& f : item.facts) CHECK(ids.insert(f.id).second);  // ids are unique
  }
  CHECK(with_overview == b.ml.overview_count());
  const auto& toy_story = catalog.by_movie_id(1);
  CHECK(toy_story.title == "Toy Story");
  CHECK(toy_story.find_fact("m1/genre/Animation") != nullptr);
  CHECK(toy_story.find_fact("m1/year/1995") != nullptr);
  CHECK(toy_story.find_fact("m1/ov/0")->value.starts_with("Led by Woody"));
}
