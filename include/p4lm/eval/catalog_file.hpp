#pragma once
// Reads the catalog.jsonl that `p4lm data build` writes (schema: docs/data.md) back into a
// data::Catalog, so the gold judge checks pitches against exactly the facts the build used, and a
// catalog written by another tool in the same schema works the same way.
//
//   auto catalog = p4lm::eval::read_catalog("runs/data/catalog.jsonl");
//   catalog.by_movie_id(318).facts;   // "m318/genre/Drama", ...
//
// Item indices are line order; the overview sentences are the "ov" facts in order. A line that
// misses a field is a ParseError naming the file, the line and the field.

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/data/catalog.hpp"
#include "p4lm/io/jsonl.hpp"

namespace p4lm::eval {

inline data::Catalog read_catalog(const std::filesystem::path& path) {
  std::vector<data::CatalogItem> items;
  io::for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
    auto at = [&](const char* name) -> const nlohmann::json& {
      if (!j.contains(name)) throw ParseError(path, line, name, "missing");
      return j.at(name);
    };
    data::CatalogItem c;
    c.item = static_cast<cf::Index>(items.size());
    c.movie_id = at("movie_id").get<std::int64_t>();
    c.title = at("title").get<std::string>();
    c.original_title = j.value("original_title", c.title);
    if (!at("year").is_null()) c.year = at("year").get<int>();
    c.genres = at("genres").get<std::vector<std::string>>();
    for (const auto& t : at("tags"))
      c.tags.push_back({t.at("key").get<std::string>(), t.at("tag").get<std::string>(), t.value("count", 1)});
    c.overview = at("overview").get<std::string>();
    for (const auto& f : at("facts")) {
      const auto kind = f.at("kind").get<std::string>();
      data::Fact fact{f.at("id").get<std::string>(), data::FactKind::genre, f.at("value").get<std::string>()};
      if (kind == "genre")
        fact.kind = data::FactKind::genre;
      else if (kind == "year")
        fact.kind = data::FactKind::year;
      else if (kind == "tag")
        fact.kind = data::FactKind::tag;
      else if (kind == "ov")
        fact.kind = data::FactKind::overview;
      else
        throw ParseError(path, line, "facts", "unknown fact kind '" + kind + "'");
      if (fact.kind == data::FactKind::overview) c.overview_sentences.push_back(fact.value);
      c.facts.push_back(std::move(fact));
    }
    items.push_back(std::move(c));
  });
  return data::Catalog(std::move(items));
}

}  // namespace p4lm::eval
